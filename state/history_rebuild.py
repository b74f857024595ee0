"""Rebuild the explorer history (state/history.py) of a stopped node from its stored blocks.

A node whose blocks were committed by software without (some of) the history indexes has no
history for them: `attrchain node reindex-history` replays every stored block from genesis in a
scratch LevelDB (each block re-executed and its state root checked against the header, as block
sync does), which writes the history exactly as live commits do, then swaps the node's history for
the rebuilt one in one atomic batch. Nothing else in the node's store changes. A node that joined
by state sync holds no blocks before its snapshot and cannot be replayed: refused with one line.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from state import keys
from state.block import decode_block
from state.chain import Chain
from state.genesis import Genesis
from state.store import StateDB

log = logging.getLogger("attrchain.history")


class RebuildError(Exception):
    """The history cannot be rebuilt (one line for the operator)."""


def rebuild(chain: Chain, genesis: Genesis, scratch: Path | None = None,
            progress: Callable[[int, int], None] | None = None) -> int:
    """Replace ``chain``'s history with one rebuilt by replaying blocks 1..height; returns the
    number of history keys written."""
    if chain.genesis_hash is None:
        raise RebuildError("the store holds no chain yet: nothing to rebuild")
    if chain.genesis_hash != genesis.hash():
        raise RebuildError("the genesis file is not this store's genesis (hash differs)")
    top = chain.height
    if top and chain.get_block_bytes(1) is None:
        raise RebuildError("block 1 is not stored (a state-synced node): history can only start at its snapshot")
    with tempfile.TemporaryDirectory(prefix="attrchain-reindex-", dir=scratch) as tmp:
        sdb = StateDB(Path(tmp) / "replay.db")
        try:
            replay = Chain(sdb)
            replay.init_genesis(genesis)
            t0 = last = time.monotonic()
            for height in range(1, top + 1):
                raw = chain.get_block_bytes(height)
                if raw is None:
                    raise RebuildError(f"block {height} is not stored")
                block = decode_block(raw)
                executed = replay.execute(block)
                if executed.state_root != block.header.state_root:
                    raise RebuildError(f"block {height}: replayed state root differs from the header's")
                replay.commit(block, executed, block_bytes=raw, sync=False)
                if progress is not None and (time.monotonic() - last >= 5 or height == top):
                    last = time.monotonic()
                    progress(height, top)
            rebuilt = list(sdb.raw.iterator(prefix=keys.HISTORY))
        finally:
            sdb.close()
    with chain.db.raw.write_batch(sync=True) as batch:
        for key in chain.db.raw.iterator(prefix=keys.HISTORY, include_value=False):
            batch.delete(key)
        for key, value in rebuilt:
            batch.put(key, value)
    log.info("history rebuilt: %d blocks replayed, %d keys, %.1f s", top, len(rebuilt), time.monotonic() - t0)
    return len(rebuilt)
