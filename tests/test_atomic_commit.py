"""A block's state, tree, block, indexes and results land in ONE atomic write: SIGKILL at random
moments never leaves a mix."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from state.chain import Chain
from state.keys import STATE, block_key
from state.tree.smt import SparseMerkleTree
from state.store import StateDB

HERE = Path(__file__).resolve().parent
KILLS = 24


class _DictDB:
    """A plain dict with LevelDB's get(), for rebuilding a reference tree in memory."""

    def __init__(self) -> None:
        self.d: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.d.get(key)


class _Batch:
    def __init__(self, d: dict[bytes, bytes]) -> None:
        self.d = d

    def put(self, k: bytes, v: bytes) -> None:
        self.d[k] = v

    def delete(self, k: bytes) -> None:
        self.d.pop(k, None)


def _check_consistent(path: Path) -> int:
    with StateDB(path) as db:
        chain = Chain(db)
        h = chain.height
        header = chain.get_header(h)
        if h == 0:
            assert header is None
            return 0
        assert header is not None, f"height {h} recorded but block missing"
        assert db.root() == header.state_root, "tree root is not the last committed block's"
        assert chain.get_block(h + 1) is None and db.raw.get(block_key(h + 1)) is None
        # every tx of the last block is indexed, and results are stored
        block = chain.get_block(h)
        assert block is not None and chain.get_results(h) is not None
        from state.crypto import sha256

        for i, raw in enumerate(block.txs):
            loc = chain.get_tx_location(sha256(raw))
            assert loc is not None and loc.height == h and loc.index == i
        # the state values themselves hash to the committed root (no state/tree mix)
        ref_db = _DictDB()
        tree = SparseMerkleTree(ref_db)  # type: ignore[arg-type]
        values = {k: v for k, v in db.raw.iterator(prefix=STATE)}
        update = tree.prepare(values)
        assert update.root == header.state_root, "state values do not match the committed root"
        return h


@pytest.mark.multinode  # a separate OS process, killed again and again
def test_sigkill_at_random_moments_never_leaves_a_mix(tmp_path: Path) -> None:
    rng = random.Random(20261123)
    path = tmp_path / "db"
    last = 0
    for i in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "atomic_writer.py"), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
            # let it commit a random number of blocks, then kill at a random moment mid-block
            for _ in range(rng.randint(0, 3)):
                assert proc.stdout.readline().startswith("committed")
            deadline = time.monotonic() + rng.uniform(0.0, 0.08)
            while time.monotonic() < deadline:
                pass  # busy-wait a random sub-block interval: the kill lands at a random point
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=10)
        h = _check_consistent(path)
        assert h >= last, "height went backwards"
        last = h
    assert last >= KILLS // 2, f"too few blocks committed across {KILLS} runs: {last}"
