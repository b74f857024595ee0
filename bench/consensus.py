"""Benchmark: committed heights per second of the pure consensus machine.

    python bench/consensus.py [--seconds 3]

N validators of equal power run in the deterministic simulator with no network delay, no faults
and empty (opaque) blocks, so the figure is the cost of consensus itself: every proposal and vote
is signed with real Ed25519 through the last-signed guard (in memory), and every node verifies
every proposal and vote it receives from another node (each node has its own verification cache,
seeded only with its own signatures). Reported for 4, 10 and 50 validators, each measured for
about --seconds of CPU time (at least 3 heights): committed heights per second of the process's
CPU time (it is single-threaded, so this is the rate on one dedicated core, and it does not move
when other processes share the machine) in the JSON, and per second of wall-clock time on the
line before.

The LAST stdout line is JSON: {"heights_per_s_4": .., "heights_per_s_10": .., "heights_per_s_50": ..}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from consensus.params import ConsensusParams  # noqa: E402
from consensus.sim import Scenario, Sim  # noqa: E402

PARAMS = ConsensusParams(timeout_commit_ms=0)


def run(n: int, heights: int) -> tuple[float, float, Sim]:
    scenario = Scenario(
        seed=n,
        powers=(1,) * n,
        params=PARAMS,
        delay_ms=(0, 0),
        post_gst_delay_ms=(0, 0),
        gst_ms=0,
        post_gst_heights=heights,
    )
    sim = Sim(scenario, verify_mode="per_node")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    sim.run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    assert min(sim.honest_heights()) >= heights, sim.honest_heights()
    return cpu, wall, sim


def measure(n: int, seconds: float) -> float:
    """Heights per CPU second, scaling the run so it takes about ``seconds`` of CPU time."""
    heights = 3
    while True:
        cpu, wall, sim = run(n, heights)
        if cpu >= seconds or heights >= 100_000:
            break
        heights = max(heights * 2, int(heights * seconds / max(cpu, 1e-3) * 1.1))
    per_height = sim.stats["verifications"] / heights
    print(
        f"{n:>3} validators: {heights} heights, {heights / cpu:.1f} heights per CPU second, "
        f"{heights / wall:.1f} per wall-clock second ({per_height:.0f} signature verifications per height)"
    )
    return heights / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    result = {f"heights_per_s_{n}": round(measure(n, args.seconds), 2) for n in (4, 10, 50)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
