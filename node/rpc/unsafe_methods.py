"""Devnet-only admin methods (CometBFT calls its own `unsafe_*`): fault injection for tests.

They answer only on a node whose config sets ``[faults] admin = true`` (the devnet does); anywhere
else they are -32601, as if they did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.rpc.env import RPCEnv
from node.rpc.errors import InvalidParams, MethodNotFound
from node.rpc.params import ParamType, _type_name

MAX_PEERS = 256
MAX_PEER_ID = 128


@dataclass(frozen=True)
class PeerIds(ParamType):
    """A JSON array of libp2p peer ids (base58 strings)."""

    doc = f"array of up to {MAX_PEERS} peer id strings"

    def parse(self, value: Any, name: str) -> list[str]:
        if type(value) is not list:
            raise InvalidParams(f"{name}: expected an array of peer ids, got {_type_name(value)}")
        if len(value) > MAX_PEERS:
            raise InvalidParams(f"{name}: at most {MAX_PEERS} peer ids")
        for item in value:
            if type(item) is not str or not 0 < len(item) <= MAX_PEER_ID or not item.isalnum():
                raise InvalidParams(f"{name}: every item must be a peer id string")
        return list(value)


def unsafe_set_peer_deny_list(env: RPCEnv, p: dict[str, Any]) -> list[str]:
    """Replace the node's deny list: drop all gossip from these peers and refuse their sync requests."""
    setter = getattr(env.ctx, "set_deny_list", None)
    if setter is None:
        raise MethodNotFound("unsafe_set_peer_deny_list is not supported by this node")
    try:
        return list(setter(p["peers"]))
    except PermissionError:
        raise MethodNotFound("unsafe_set_peer_deny_list is disabled on this node ([faults] admin = false)") from None
