"""The seam between the running node and its RPC server: what a request handler may use.

The node (node/app.py) implements NodeContext; the RPC methods (node/rpc/) read through it only.
"""

from __future__ import annotations

from typing import Any, Protocol

from node.events import EventBus
from state.chain import Chain
from state.genesis import Genesis


class MempoolAPI(Protocol):
    def submit(self, raw: bytes) -> bytes:
        """Check and add a transaction; returns its hash or raises state.errors.TxRejected."""

    def pending(self, limit: int) -> list[bytes]:
        """Raw transactions in proposal order, at most ``limit``."""

    @property
    def size(self) -> int: ...

    @property
    def bytes(self) -> int: ...


class NodeContext(Protocol):
    chain: Chain
    genesis: Genesis
    mempool: MempoolAPI
    events: EventBus

    def node_info(self) -> dict[str, Any]:
        """id (peer id), moniker, network (chain id), version, listen_addr, rpc_addr."""

    def net_info(self) -> dict[str, Any]:
        """listening, n_peers, peers: [{id, addr}]"""

    def consensus_info(self) -> dict[str, Any]:
        """height, round, step of the consensus in progress."""

    def validator_info(self) -> dict[str, Any] | None:
        """address, pub_key, voting_power of this node's validator key, or None for a full node."""

    def is_syncing(self) -> bool: ...
