"""Worker processes end with their node, even when the node is killed with SIGKILL (before, a pool's
workers held both ends of its call queue and stayed blocked on it for good: leftovers found after
the kill -9 tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

OWNER = """
import sys, time
from node.workers import worker_pool
pool = worker_pool(2)
list(pool.map(abs, range(4)))  # the workers are up
print(*pool._processes, flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_workers_exit_when_their_node_is_killed() -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        workers = [int(p) for p in owner.stdout.readline().split()]
        assert len(workers) == 2 and all(alive(p) for p in workers)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        deadline = time.monotonic() + 15
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p for p in workers if alive(p)]
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
    for pid in left:  # ours (spawned by the owner we started): do not leave them behind either way
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived their node"
