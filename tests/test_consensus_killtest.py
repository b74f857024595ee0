"""kill -9 at random moments never makes a validator double-sign, and the WAL replays the height
in progress.

``consensus._killtest_validator`` runs validator 0 on real files (guard, WAL, block store, and a
signed-message log written and fsynced before sending) against three simulated peers in the same
process. This test SIGKILLs it at random moments at least 50 times, restarting it each time (every
fifth restart also deletes its WAL, leaving only the guard between it and a double signature),
then checks the log: one signed payload per (height, round, step), valid signatures, progress,
and a WAL that replays to the height after the last block, at every restart and at the end.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from consensus._killtest_validator import CHAIN_ID, read_log, signed_positions
from consensus.machine import MachineConfig
from consensus.replay import replay_wal
from consensus.sim import SIM_PARAMS, sim_key
from consensus.wal import read_wal
from state.crypto import verify

ROOT = Path(__file__).resolve().parent.parent
MIN_KILLS = 50
HARD_BUDGET_S = 120.0
READY_TIMEOUT_S = 20.0


def start(run_dir: Path, run: int, wipe: bool) -> tuple[subprocess.Popen[bytes], list[dict[str, object]]]:
    args = [sys.executable, "-m", "consensus._killtest_validator", str(run_dir), str(run)]
    proc = subprocess.Popen(
        args + (["--wipe-wal"] if wipe else []),
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    reports: list[dict[str, object]] = []
    buffered = b""
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "the validator process did not become ready"
            if not sel.select(remaining):
                continue
            chunk = os.read(fd, 65536)
            assert chunk, f"the validator process exited early with {proc.wait()}"
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                if line.strip() == b"ready":
                    return proc, reports
                reports.append(json.loads(line))
    finally:
        sel.close()


@pytest.mark.multinode  # a separate OS process, killed again and again
def test_sigkill_never_causes_a_double_signature(tmp_path: Path) -> None:
    rng = random.Random(2024)
    began = time.monotonic()
    boots: list[dict[str, object]] = []
    kills = 0
    run = 0
    while kills < MIN_KILLS:
        assert time.monotonic() - began < HARD_BUDGET_S
        wipe = run % 5 == 4
        proc, reports = start(tmp_path, run, wipe)
        boots += reports
        # Fault injection: the kill lands at a random point of the running protocol.
        time.sleep(rng.uniform(0.0, 0.2))
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        assert proc.stdout is not None
        proc.stdout.close()
        kills += 1
        run += 1

    # 1. Never two different signed messages at one (height, round, step), all signatures valid.
    key = sim_key(0)
    by_position: dict[tuple[int, int, int], set[bytes]] = {}
    for position, payload, msg in signed_positions(tmp_path / "signed.log"):
        sign_bytes = msg.vote.sign_bytes(CHAIN_ID) if hasattr(msg, "vote") else msg.proposal.sign_bytes(CHAIN_ID)
        assert verify(key.public_key, msg.signature, sign_bytes)
        by_position.setdefault(position, set()).add(payload)
    conflicts = {p: v for p, v in by_position.items() if len(v) > 1}
    assert conflicts == {}, f"double-signed at {sorted(conflicts)}"

    # The deleted WALs made the restarted validator try to sign again where it already had: the
    # guard was really exercised.
    assert read_log(tmp_path / "refusals.log") != []

    # 2. The validator made progress across the restarts, signing at many positions.
    chain = [r[1] for r in read_log(tmp_path / "chain")]
    assert len(chain) >= 3
    assert len(by_position) >= len(chain)

    # 3. At every restart, a WAL for the height after the last block replayed to that height.
    replayed = [b for b in boots if b["replay_height"] is not None]
    assert len(replayed) >= MIN_KILLS // 4, "too few restarts found a height in progress to replay"
    for b in boots:
        if b["wal_height"] == b["chain"] + 1:  # type: ignore[operator]
            assert b["replay_height"] == b["wal_height"]
        assert b["wal_height"] in (None, b["chain"], b["chain"] + 1)  # type: ignore[operator]

    # 4. The WAL left by the last kill replays the height in progress, and every own message in it
    #    was in the signed log before it was written there.
    replay = read_wal(tmp_path / "wal")
    if replay.height == len(chain) + 1:
        config = MachineConfig(CHAIN_ID, key.address, SIM_PARAMS)
        result = replay_wal(config, replay.entries)
        assert result.state.height == len(chain) + 1
        logged = {payload for _, payload, _ in signed_positions(tmp_path / "signed.log")}
        for entry in result.own_messages:
            ev = entry.event
            msg = ev.vote.vote if hasattr(ev, "vote") else ev.proposal.proposal  # type: ignore[union-attr]
            assert msg.encode() in logged  # type: ignore[attr-defined]
    else:
        assert replay.height in (None, len(chain))
