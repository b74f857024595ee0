"""The block context a transaction handler sees. Its own module so domain packages (attribution,
staking, governance) depend on it without importing the state transition that dispatches to them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from state.params import Params


@dataclass
class BlockContext:
    """What a transaction may know about the block it is in. No wall clock: time is BFT time."""

    chain_id: str
    height: int
    time_ms: int
    params: Params
    proposer: bytes = b""  # consensus address of the block's proposer (header.proposer)
    # hashes of transactions whose signatures this node already verified for this chain id
    verified: set[bytes] | frozenset[bytes] = frozenset()
    tx_index: int = 0  # position of the transaction in progress within the block
    fees: int = 0  # fees charged so far in this block, credited to FEE_COLLECTOR after the txs
    events: list[Any] = field(default_factory=list)
    # software-upgrade names this node provides (state/governance/upgrade.py); None: no check
    upgrades: frozenset[str] | None = None
    # the node's already-decoded transaction with exactly these bytes, or None (node/mempool.py's
    # ``pooled_tx``): decoding is a pure function of the bytes, so it stands in for decoding again
    known_tx: Callable[[bytes], Any] | None = None
