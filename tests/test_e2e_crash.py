"""End to end, real processes: a validator is killed with SIGKILL and restarted; then every node
is stopped with SIGTERM at once and restarted. The chain never forks and loses nothing committed."""

from __future__ import annotations

from pathlib import Path

import pytest

from devnet import faults, launcher
from e2e_kit import (
    devnet_under_load,
    height_on_disk,
    heights,
    wait_committed_more,
    wait_for,
    wait_for_heights,
)
from netkit import height_of

pytestmark = pytest.mark.multinode


def test_kill9_one_validator_chain_goes_on_and_it_catches_up(tmp_path: Path) -> None:
    with devnet_under_load(tmp_path, 2) as (layout, gen):
        wait_committed_more(gen, 20, 30)
        victim, live = layout.nodes[3], layout.nodes[:3]
        faults.kill9(layout, victim)
        at_kill = max(h or 0 for h in heights(layout)[:3])
        # 3 of 4 equal validators hold more than 2/3 of the power: the chain keeps committing
        wait_for_heights(layout, live, at_kill + 5, 30)
        wait_committed_more(gen, 20, 30)
        down_at = height_of(live[0]) or 0
        faults.start(layout, victim)
        wait_for(layout, lambda: (height_of(victim) or 0) >= (height_of(live[0]) or 0) > down_at + 2, 60,
                 "the restarted validator to catch up with the others")
        wait_committed_more(gen, 10, 30)


def test_frozen_validator_resumes_and_a_restarted_one_rejoins(tmp_path: Path) -> None:
    with devnet_under_load(tmp_path, 2) as (layout, gen):
        frozen, live = layout.nodes[2], [layout.nodes[i] for i in (0, 1, 3)]
        faults.stop(layout, frozen)  # SIGSTOP: connected but silent, like a hung host
        at_freeze = max(h or 0 for h in heights(layout)[:2])
        wait_for_heights(layout, live, at_freeze + 5, 30)
        wait_committed_more(gen, 10, 30)
        faults.cont(layout, frozen)
        wait_for(layout, lambda: (height_of(frozen) or 0) >= at_freeze + 5, 60,
                 "the resumed validator to catch up")
        old_pid = launcher.read_pid(layout, layout.nodes[1])
        new_pid = faults.restart(layout, layout.nodes[1])
        assert new_pid != old_pid
        wait_for_heights(layout, layout.nodes, (height_of(live[0]) or 0) + 3, 60)
        wait_committed_more(gen, 10, 30)


def test_all_nodes_sigterm_together_and_resume_without_fork(tmp_path: Path) -> None:
    with devnet_under_load(tmp_path, 3) as (layout, gen):
        wait_committed_more(gen, 20, 30)
        faults.terminate(layout, layout.nodes)
        stopped = [launcher.read_pid(layout, s) for s in layout.nodes]
        assert stopped == [None] * 4
        last = [height_on_disk(layout, spec) for spec in layout.nodes]
        for spec in layout.nodes:
            faults.start(layout, spec)
        # a restarted node never reports a height below the one it stopped at
        wait_for(layout, lambda: all(h is not None for h in heights(layout)), 60, "every node to answer again")
        assert all((h or 0) >= last[i] for i, h in enumerate(heights(layout))), (heights(layout), last)
        wait_for_heights(layout, layout.nodes, max(last) + 5, 60)
        wait_committed_more(gen, 20, 40)

