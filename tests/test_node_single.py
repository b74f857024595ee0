"""`attrchain node run` on an empty home: a dev chain that commits, stops cleanly, and never loses
a committed block across restarts (issue 5, acceptance point 1). Real processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from devnet.launcher import DevnetError, rpc_call
from state.crypto import PrivateKey, from_hex, to_hex
from state.tx import Transfer, sign_tx
from netkit import free_base_port, wait_until

pytestmark = pytest.mark.multinode

ROOT = Path(__file__).resolve().parent.parent
STOP_DEADLINE_S = 5.0


class DevNode:
    """One `node run` process on a home folder; its output goes to ``home.parent / <name>.out``."""

    def __init__(self, home: Path, rpc_port: int, p2p_port: int) -> None:
        self.home = home
        self.rpc_port = rpc_port
        self.p2p_port = p2p_port
        self.url = f"http://127.0.0.1:{rpc_port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.out_path = home.parent / "node.out"

    def start(self) -> None:
        self.runs += 1
        self.out_path = self.home.parent / f"run{self.runs}.out"
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "node.cli", "node", "run", "--home", str(self.home),
                 "--rpc-port", str(self.rpc_port), "--p2p-port", str(self.p2p_port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(ROOT),
            )

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def rpc(self, method: str, params: Any = None, timeout: float = 5.0) -> Any:
        return rpc_call(self.url, method, params, timeout)

    def height(self) -> int | None:
        try:
            st = self.rpc("status", timeout=2.0)
        except (httpx.HTTPError, DevnetError, ValueError):  # not answering: starting or stopping
            return None
        return int(st["sync_info"]["latest_block_height"])

    def wait_height(self, height: int, timeout: float = 30.0) -> int:
        assert self.proc is not None
        wait_until(lambda: self.proc is not None and (self.proc.poll() is not None or (self.height() or 0) >= height),
                   timeout, f"the dev node to reach height {height}")
        assert self.proc.poll() is None, f"node exited with {self.proc.returncode}:\n{self.tail()}"
        h = self.height()
        assert h is not None and h >= height
        return h

    def signal_and_wait(self, sig: int) -> tuple[int, float]:
        """Send ``sig``; return (exit code, seconds until it exited). Kills it after the deadline."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{signal.Signals(sig).name} did not stop the node within {STOP_DEADLINE_S} s:\n"
                                 f"{self.tail()}") from None
        return code, time.monotonic() - started

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def dev_node(tmp_path: Path) -> Iterator[DevNode]:
    base = free_base_port()
    home = tmp_path / "home"
    home.mkdir()  # an existing but EMPTY folder
    node = DevNode(home, base + 7, base + 6)
    try:
        yield node
    except BaseException:
        print(f"---- tail of {node.out_path} ----\n{node.tail(60)}")
        raise
    finally:
        node.stop()


def hashes(node: DevNode, upto: int) -> dict[int, str]:
    return {h: node.rpc("block", {"height": h})["block_id"]["hash"] for h in range(1, upto + 1)}


def first_height_after_restart(node: DevNode, timeout: float = 30.0) -> int:
    """The first height the restarted node reports (before it can have moved much)."""
    seen: list[int] = []

    def answered() -> bool:
        h = node.height()
        if h is not None:
            seen.append(h)
        return bool(seen)

    wait_until(answered, timeout, "the restarted node to answer status", poll=0.05)
    return seen[0]


def assert_clean_exit(node: DevNode, sig: int) -> None:
    code, took = node.signal_and_wait(sig)
    out = node.output()
    name = signal.Signals(sig).name
    assert code == 0, f"{name}: exit code {code}, expected 0:\n{node.tail()}"
    assert "Traceback" not in out, f"{name}: a traceback in the node's output:\n{out[-4000:]}"
    assert took < STOP_DEADLINE_S, f"{name}: took {took:.1f} s"
    assert "node stopped at height" in out, f"{name}: no shutdown line:\n{node.tail()}"


def stored_height(node: DevNode) -> int:
    """The height the node reported when it stopped ("node stopped at height N")."""
    line = [ln for ln in node.output().splitlines() if "node stopped at height" in ln][-1]
    return int(line.rsplit(" ", 1)[1])


def test_dev_chain_commits_stops_cleanly_and_survives_restarts(tmp_path: Path) -> None:
    with dev_node(tmp_path) as node:
        node.start()
        node.wait_height(2)
        home = node.home
        dev_key_file = home / "dev.key"
        assert dev_key_file.exists(), "an empty home must be initialised with a prefunded dev.key"
        first_lines = "\n".join(node.output().splitlines()[:8])
        assert str(home) in first_lines, f"the first log lines must name the home:\n{first_lines}"
        assert f"http://127.0.0.1:{node.rpc_port}" in first_lines, f"...and the RPC URL:\n{first_lines}"
        assert str(dev_key_file) in first_lines, f"...and the dev key file:\n{first_lines}"

        # a transfer from the dev key, built and signed here, is committed
        dev = PrivateKey.load(dev_key_file)
        chain_id = node.rpc("status")["chain_id"]
        before = node.rpc("account", {"address": to_hex(dev.address)})
        recipient = PrivateKey.from_int(424242).address
        tx = sign_tx(dev, chain_id, before["nonce"], Transfer(recipient, 12_345), fee=1)
        res = node.rpc("broadcast_tx_commit", {"tx": to_hex(tx.raw), "timeout": 20}, timeout=25.0)
        assert res["committed"] is True, f"the transfer was not committed: {res}"
        assert res["result"]["code"] == 0, f"the transfer failed in its block: {res}"
        assert from_hex(res["hash"]) == tx.hash
        assert node.rpc("account", {"address": to_hex(recipient)})["balance"] == 12_345
        after = node.rpc("account", {"address": to_hex(dev.address)})
        assert after["balance"] == before["balance"] - 12_345 - 1, "the dev account pays amount + fee"
        assert after["nonce"] == before["nonce"] + 1
        tx_height = res["height"]

        # SIGTERM: clean stop; the restart resumes from the stored height
        seen = hashes(node, node.height() or 0)
        assert_clean_exit(node, signal.SIGTERM)
        stopped_at = stored_height(node)
        assert stopped_at >= max(seen), f"stopped at {stopped_at} after RPC showed {max(seen)}"
        node.start()
        resumed = first_height_after_restart(node)
        assert resumed >= stopped_at, f"height went backwards across a restart: {stopped_at} -> {resumed}"
        node.wait_height(stopped_at + 2)
        assert hashes(node, max(seen)) == seen, "committed blocks changed across a SIGTERM restart"

        # SIGINT: the same
        seen = hashes(node, node.height() or 0)
        assert_clean_exit(node, signal.SIGINT)
        stopped_at = stored_height(node)
        node.start()
        resumed = first_height_after_restart(node)
        assert resumed >= stopped_at, f"height went backwards across a restart: {stopped_at} -> {resumed}"
        node.wait_height(stopped_at + 1)

        # kill -9 twice, at different moments: no block acknowledged over RPC is ever lost
        for extra in (3, 1):
            acknowledged = node.wait_height((node.height() or 0) + extra)
            seen = hashes(node, acknowledged)
            assert node.proc is not None
            os.kill(node.proc.pid, signal.SIGKILL)
            node.proc.wait()
            node.start()
            resumed = first_height_after_restart(node)
            assert resumed >= acknowledged, f"kill -9 lost blocks: acknowledged {acknowledged}, resumed at {resumed}"
            node.wait_height(resumed + 1)
            assert hashes(node, acknowledged) == seen, "committed blocks changed across kill -9"
        found = node.rpc("tx", {"hash": to_hex(tx.hash)})
        assert found["status"] == "committed" and found["height"] == tx_height, f"the transfer is lost: {found}"
        assert node.rpc("account", {"address": to_hex(recipient)})["balance"] == 12_345
        assert_clean_exit(node, signal.SIGTERM)
