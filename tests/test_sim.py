"""Deterministic simulations of the pure machine under faults, judged by the checker.

Signatures are real Ed25519; the simulator verifies each distinct (key, message, signature) once
and shares the result between its simulated nodes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import consensus.machine as machine
from consensus.sim import Partition, Scenario, Sim, random_scenario, sim_key
from consensus.sim_check import check_run, reported_double_signers
from consensus.sim_node import Message
from state.staking.validator_set import ValidatorSet
from consensus.votes import NIL
from state.block import PRECOMMIT

SEEDS_PER_SIZE = 100
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("n", [4, 7, 10])
def test_random_scenarios_pass_the_checker(n: int) -> None:
    failures: list[str] = []
    seen: Counter[str] = Counter()
    for seed in range(SEEDS_PER_SIZE):
        scenario = random_scenario(seed, n)
        total = sum(scenario.powers)
        byzantine = sum(scenario.powers[i] for i in scenario.behaviours)
        assert 3 * byzantine < total
        sim = Sim(scenario).run()
        failures += [f"n={n} seed={seed}: {v}" for v in check_run(sim)]
        active, reported = reported_double_signers(sim)
        seen["double_signers"] += len(active)
        seen["double_signers_reported"] += len(reported)
        seen.update(scenario.behaviours.values())
        seen.update({k: sim.stats[k] for k in ("crashes", "replays", "synced", "lost", "blacked_out", "duplicated")})
        seen["unequal"] += len(set(scenario.powers)) > 1
    assert failures == []
    # Evidence is produced for every validator that double-signed.
    assert seen["double_signers_reported"] == seen["double_signers"] > 0
    # The scenarios really exercised what they claim to.
    for what in ("double_sign", "equivocate", "bad_proposer", "silent", "split_brain"):
        assert seen[what] > 0, what
    for what in ("crashes", "replays", "synced", "lost", "blacked_out", "duplicated"):
        assert seen[what] > 0, what
    assert seen["unequal"] > SEEDS_PER_SIZE // 2


def _trace(sim: Sim) -> tuple[object, ...]:
    chains = tuple(tuple(sim.nodes[i].storage.chain_hashes()) for i in sim.honest)
    return chains, tuple(sorted(sim.stats.items())), sim.now


def test_same_seed_same_run() -> None:
    scenario = random_scenario(11, 7)
    assert _trace(Sim(scenario).run()) == _trace(Sim(scenario).run())


def test_runs_do_not_depend_on_hash_randomisation() -> None:
    """Nothing in the machine or the simulator iterates a set or dict in hash order."""
    code = (
        "import hashlib\n"
        "from consensus.sim import Sim, random_scenario\n"
        "sim = Sim(random_scenario(5, 7)).run()\n"
        "print(hashlib.sha256(repr((sorted(sim.stats.items()), sim.now, "
        "[sim.nodes[i].storage.chain_hashes() for i in sim.honest])).encode()).hexdigest())\n"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.add(done.stdout)
    assert len(outputs) == 1


def test_the_checker_catches_a_fork_when_byzantine_power_reaches_one_third() -> None:
    # Two split-brain validators hold half the power; the honest two cannot hear each other.
    # Each side (one honest node + one brain of each byzantine node) holds 3 of 4 > 2/3.
    scenario = Scenario(
        seed=7,
        powers=(1, 1, 1, 1),
        behaviours={2: "split_brain", 3: "split_brain"},
        partitions=(Partition(0, 10_000, ((0,), (1,))),),
        relay_delay_ms=-1,
        gst_ms=2000,
    )
    violations = check_run(Sim(scenario).run())
    assert any(v.startswith("fork at height 1") for v in violations)


def _lost_commit_scenario() -> Scenario:
    """Round 0 of height 1: the round-1 proposer D never gets the proposal; validator A's precommit
    is lost to everyone, so only A sees the precommit quorum for the round-0 value X and decides.
    The others are locked on X, time out, and D proposes a fresh value in round 1: only their locks
    keep them from deciding it (A cannot help: it has moved on, and its block-sync answers are lost
    until GST)."""
    keys = [sim_key(i) for i in range(4)]
    vals = ValidatorSet.new([(k.public_key, 1) for k in keys])
    index = {k.address: i for i, k in enumerate(keys)}
    d = index[vals.proposer_after(1).address]
    a = next(i for i in range(4) if i != d)

    def drop(sim: Sim, frm: int, to: int, msg: Message) -> bool:
        if msg[0] == "proposal":
            p = msg[1].proposal
            return (p.height, p.round, to) == (1, 0, d)
        if msg[0] == "vote":
            v = msg[1].vote
            return (v.height, v.round, v.type, frm) == (1, 0, PRECOMMIT, a)
        return msg[0] == "sync_resp" and frm == a

    return Scenario(seed=1, powers=(1, 1, 1, 1), gst_ms=3000, drop=drop)


def test_locks_prevent_a_fork_when_a_commit_is_seen_by_one_node() -> None:
    assert check_run(Sim(_lost_commit_scenario()).run()) == []


def test_the_checker_catches_a_machine_that_ignores_its_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    def prevote_ignoring_lock(s: machine.MachineState, out: list[machine.Effect]) -> bool:
        for block_hash in s.proposals.get(s.round, {}):
            machine._prevote(s, block_hash if s.block_valid.get(block_hash, False) else NIL, out)
            return True
        return False

    monkeypatch.setattr(machine, "upon_proposal_in_propose", prevote_ignoring_lock)
    violations = check_run(Sim(_lost_commit_scenario()).run())
    assert any(v.startswith("fork at height 1") for v in violations)


def test_honest_validators_progress_with_silent_and_crashed_peers() -> None:
    # Silent validator with 3 of 10 power; an honest one crashes with power loss and comes back.
    from consensus.sim import Crash

    scenario = Scenario(
        seed=3,
        powers=(3, 2, 2, 2, 1),
        behaviours={0: "silent"},
        crashes=(Crash(4, 300, 900, True),),
        gst_ms=1500,
        post_gst_heights=3,
    )
    sim = Sim(scenario).run()
    assert check_run(sim) == []
    assert sim.stats["replays"] >= 1
    assert min(sim.honest_heights()) >= sim.gst_height + 3
