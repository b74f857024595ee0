"""Integrity at start (issue 12, acceptance 4): a node whose stores are damaged or disagree refuses
to start with ONE ERROR line naming the file and the way out, and no traceback. Real `node run`
processes on a real home: kill -9, then a damaged cs.wal, a truncated LevelDB log, a held lock, a
damaged LevelDB."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from consensus.signer import FileGuardStore, Signer
from consensus.votes import NIL
from consensus.wal import read_records
from node.config import Home
from state.block import PRECOMMIT, Vote
from state.chain import Chain
from state.store import StateDB
from test_node_single import DevNode, dev_node

pytestmark = pytest.mark.multinode

REFUSAL_DEADLINE_S = 60.0


def refused(node: DevNode) -> str:
    """Wait for the node to exit on its own; it must exit 1 with one ERROR line and no traceback.
    Returns that line."""
    assert node.proc is not None
    try:
        code = node.proc.wait(timeout=REFUSAL_DEADLINE_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the node did not refuse to start:\n{node.tail()}") from None
    out = node.output()
    errors = [line for line in out.splitlines() if " ERROR " in line]
    assert code == 1, f"exit code {code}, expected 1:\n{node.tail()}"
    assert "Traceback" not in out, f"a traceback instead of one clear line:\n{out[-3000:]}"
    assert len(errors) == 1, f"expected one ERROR line, got {errors}"
    return errors[0]


def kill9_at(node: DevNode, height: int) -> None:
    node.wait_height(height)
    assert node.proc is not None
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait()


def test_a_damaged_wal_and_a_held_lock_refuse_to_start_with_one_line(tmp_path: Path) -> None:
    with dev_node(tmp_path) as node:
        node.start()
        node.wait_height(2)
        # a second node on the same home while the first runs: LevelDB's LOCK is held
        second = DevNode(node.home, node.rpc_port + 100, node.p2p_port + 100)
        second.runs = 10
        second.start()
        try:
            line = refused(second)
        finally:
            second.stop()
        assert "LOCK" in line and "another node runs on this home" in line, line
        kill9_at(node, 3)
        wal = node.home / "data" / "cs.wal"
        data = bytearray(wal.read_bytes())
        records, _ = read_records(bytes(data))
        assert records, "the WAL of the height in progress is empty"
        damaged = bytearray(data)
        damaged[12] ^= 0xFF  # inside the first record's payload
        if len(records) == 1:
            damaged += data  # make sure intact records follow the damaged one
        wal.write_bytes(bytes(damaged))
        node.start()
        line = refused(node)
        assert str(wal) in line and "damaged" in line and f"mv {wal} {wal}.bad" in line, line
        # the way out the line gives: move the WAL aside; the node starts and commits again
        wal.rename(wal.with_name("cs.wal.bad"))
        node.start()
        before = node.wait_height(3)
        node.wait_height(before + 2)


def test_blocks_lost_after_kill9_refuse_to_start_instead_of_rolling_back(tmp_path: Path) -> None:
    """kill -9, then the newest LevelDB log loses its tail: before, the node came back silently at a
    lower height and, as the only validator, stalled for good behind its signer guard."""
    with dev_node(tmp_path) as node:
        node.start()
        kill9_at(node, 8)
        db = node.home / "data" / "state.db"
        logs = sorted(db.glob("*.log"), key=lambda p: p.stat().st_size)
        assert logs, "no LevelDB log file"
        log_file = logs[-1]
        size = log_file.stat().st_size
        with open(log_file, "r+b") as f:
            f.truncate(size // 2)
        node.start()
        line = refused(node)
        assert "stored height" in line and "below the height" in line and str(db) in line, line
        assert "resync" in line, line
        # a LevelDB that does not open at all (its CURRENT pointer damaged)
        (db / "CURRENT").write_text("garbage")
        node.start()
        line = refused(node)
        assert f"{db}: the LevelDB store is damaged" in line and "move" in line, line


def test_started_without_its_wal_a_lone_validator_leaves_the_rounds_its_signer_signed_in(tmp_path: Path) -> None:
    # The way out of a damaged WAL is to move it aside. If the signer had signed in the height in
    # progress (kill -9 after a precommit, before the commit), the guard refuses the proposal and
    # the votes of that round, and the only validator of a dev chain never left it: found as a
    # flaky run of the test above. Here the signer state is set to a precommit at round 2 of the
    # height in progress, signed with the node's own key, so the case is certain.
    with dev_node(tmp_path) as node:
        node.start()
        kill9_at(node, 3)
        home = Home(node.home)
        wal = node.home / "data" / "cs.wal"
        db = StateDB(home.db_dir)
        try:
            height = Chain(db).height + 1  # the height in progress
        finally:
            db.close()
        key = home.validator_key()
        assert key is not None
        chain_id = json.loads(home.genesis_file.read_text())["chain_id"]
        store = FileGuardStore(home.signer_state_file)
        try:
            Signer(key, store).sign_vote(chain_id, Vote(PRECOMMIT, height, 2, NIL, 1, key.address))
        finally:
            store.close()
        wal.rename(wal.with_name("cs.wal.bad"))
        node.start()
        node.wait_height(height + 1)
        assert f"height {height}: rounds 0-2 ended at start" in node.output(), node.tail()
