"""End to end, real processes: a 2/2 network partition stops commits without a fork; healing it
resumes commits. Also: the deny-list endpoint refuses a node without `[faults] admin`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devnet import faults, launcher
from e2e_kit import devnet_under_load, heights, wait_committed_more, wait_for_heights
from netkit import rpc, running_devnet
from node.config import Home

pytestmark = pytest.mark.multinode

OBSERVE_S = 6.0  # how long the partitioned network is watched for commits


def test_two_two_partition_halts_without_fork_and_heals(tmp_path: Path) -> None:
    with devnet_under_load(tmp_path, 3) as (layout, gen):
        wait_committed_more(gen, 20, 30)
        faults.partition(layout, [[0, 1], [2, 3]])
        # a height whose precommits were already in flight may still complete: allow one
        ceiling = max(h or 0 for h in heights(layout)) + 1
        seen: list[list[int | None]] = []
        deadline = time.monotonic() + OBSERVE_S
        while time.monotonic() < deadline:  # watching for a forbidden commit, not waiting for one
            seen.append(heights(layout))
            assert all((h or 0) <= ceiling for h in seen[-1]), f"committed during a 2/2 partition: {seen}"
            time.sleep(0.25)
        halted = max(h or 0 for h in heights(layout))
        faults.heal(layout)
        wait_for_heights(layout, layout.nodes, halted + 3, 30)
        wait_committed_more(gen, 10, 30)


def test_deny_list_is_refused_without_fault_admin(tmp_path: Path) -> None:
    with running_devnet(tmp_path, 1, start=[]) as layout:
        spec = layout.nodes[0]
        home = Home(layout.dir / spec.home)
        cfg = home.load_config()
        cfg.faults.admin = False
        home.write_config(cfg)
        launcher.start_node(layout, spec)
        wait_for_heights(layout, [spec], 1, 60)
        with pytest.raises(launcher.DevnetError, match="-32601"):
            rpc(spec, "unsafe_set_peer_deny_list", {"peers": ["12D3KooWJHbj4AJuddhdfBC5bqwBBtk5PpgfaqaAJs598pbLVH6h"]})
        # and malformed params are -32602 even where it is disabled
        with pytest.raises(launcher.DevnetError, match="-32602"):
            rpc(spec, "unsafe_set_peer_deny_list", {"peers": "everyone"})
