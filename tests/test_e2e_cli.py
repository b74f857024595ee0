"""End to end through the command line: `attrchain devnet up`, `status --json`, `down`, and `up`
again resuming the same chain (same blocks, height goes on)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devnet import launcher
from e2e_kit import height_on_disk, wait_for
from netkit import free_base_port, rpc

pytestmark = pytest.mark.multinode

ROOT = Path(__file__).resolve().parent.parent


def attrchain(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def status(directory: Path) -> list[dict[str, Any]]:
    done = attrchain("devnet", "status", "--dir", str(directory), "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert isinstance(rows, list)
    return rows


def test_devnet_up_status_down_up_resumes_the_chain(tmp_path: Path) -> None:
    directory = tmp_path / "dn"
    base = free_base_port()
    try:
        up = attrchain("devnet", "up", "--validators", "2", "--dir", str(directory), "--base-port", str(base),
                       "--timeout", "90")
        assert up.returncode == 0, up.stderr[-2000:]
        for i in range(2):
            assert f"http://127.0.0.1:{base + 10 * i + 7}" in up.stdout
        rows = status(directory)
        assert [r["name"] for r in rows] == ["node0", "node1"]
        assert all(r["state"] == "running" and r["pid"] and r["height"] >= 2 for r in rows), rows
        layout = launcher.Layout.load(directory)
        first_block = rpc(layout.nodes[0], "block", {"height": 1})["block_id"]["hash"]

        down = attrchain("devnet", "down", "--dir", str(directory))
        assert down.returncode == 0, down.stderr
        assert "stopped 2 node(s)" in down.stdout
        rows = status(directory)
        assert all(r["state"] == "stopped" and r["pid"] is None for r in rows), rows
        stopped_at = max(height_on_disk(layout, spec) for spec in layout.nodes)

        again = attrchain("devnet", "up", "--dir", str(directory), "--timeout", "90")
        assert again.returncode == 0, again.stderr[-2000:]
        assert "resuming" in again.stderr
        wait_for(layout, lambda: all((r["height"] or 0) > stopped_at for r in status(directory)), 60,
                 f"both nodes to pass height {stopped_at} after the restart")
        for spec in layout.nodes:
            assert rpc(spec, "block", {"height": 1})["block_id"]["hash"] == first_block
    finally:
        attrchain("devnet", "down", "--dir", str(directory))
        if (directory / "devnet.json").exists():  # never leave a node behind, even after a failure
            layout = launcher.Layout.load(directory)
            for spec in layout.nodes:
                launcher.stop_node(layout, spec, timeout=5.0)

