"""A NodeContext for a chain without p2p or consensus: the RPC server over one Chain.

Used by the RPC tests and bench/rpc.py. ``produce_block`` plays the node's part after a decision:
take the mempool's transactions, execute and commit them in one block, update the mempool and
publish the events exactly as node/app.py does (through node.rpc.payloads).
"""

from __future__ import annotations

import dataclasses

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from node.config import RPCConfig
from node.context import MempoolAPI
from node.events import EventBus
from node.rpc.payloads import publish_committed_block
from state.block import Block
from state.chain import Chain
from state.genesis import Genesis


@dataclass
class StandaloneContext:
    chain: Chain
    genesis: Genesis
    mempool: MempoolAPI
    events: EventBus = field(default_factory=EventBus)
    proposer: bytes = b"\x00" * 20
    moniker: str = "standalone"
    rpc_addr: str = ""

    def node_info(self) -> dict[str, Any]:
        return {"id": "standalone", "moniker": self.moniker, "network": self.genesis.chain_id,
                "version": "0.1.0", "listen_addr": "", "external_address": "", "rpc_addr": self.rpc_addr}

    def net_info(self) -> dict[str, Any]:
        return {"listening": False, "n_peers": 0, "peers": []}

    def consensus_info(self) -> dict[str, Any]:
        return {"height": self.chain.height + 1, "round": 0, "step": "propose"}

    def validator_info(self) -> dict[str, Any] | None:
        return None

    def is_syncing(self) -> bool:
        return False

    def produce_block(self, time_ms: int | None = None, max_txs: int = 10_000) -> Block:
        """Commit the next block with up to ``max_txs`` pooled transactions; publish its events."""
        chain = self.chain
        txs = tuple(self.mempool.pending(max_txs))
        t = time_ms if time_ms is not None else self.genesis.genesis_time_ms + 1000 * (chain.height + 1)
        verified = getattr(self.mempool, "verified_hashes", None)
        ex = chain.build_block(txs, t, self.proposer, txs_verified=verified() if verified else frozenset())
        assert ex.block is not None
        chain.commit(ex.block, ex)
        update = getattr(self.mempool, "update_after_block", None)
        if update is not None:
            update(ex.result.tx_hashes)
        publish_committed_block(self.events, ex.block, ex.result.tx_hashes, ex.result.tx_results)
        return ex.block

    async def run_blocks(self, interval_s: float = 0.02) -> None:
        """A dev-chain block producer: every ``interval_s``, commit a block if transactions wait."""
        while True:
            await trio.sleep(interval_s)
            if self.mempool.size:
                self.produce_block()


@asynccontextmanager
async def serving(ctx: Any, config: RPCConfig | None = None, *, front: bool = False,
                  **kw: Any) -> AsyncIterator[str]:
    """Run ``serve_rpc`` on a free port of 127.0.0.1 for the body of the block; yields its URL.
    The HTTP server runs on the RPC thread unless ``front`` (the RPC front process, the node's
    default: a process per server costs each test about a second)."""
    from node.rpc.server import serve_rpc

    config = dataclasses.replace(config or RPCConfig(), front_process=front)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_rpc, ctx, config, host="127.0.0.1", port=0, **kw))
        try:
            yield url
        finally:
            nursery.cancel_scope.cancel()
