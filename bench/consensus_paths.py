"""Benchmark: what consensus costs each validator with gossip only and with direct streams.

Usage: .venv/bin/python bench/consensus_paths.py [--validators 4,7,10,16] [--modes gossip,direct]
                                                 [--seconds 20]

For each validator count and mode it starts a fresh devnet (real processes, loopback), lets it run
idle (empty blocks: consensus traffic only) for ``--seconds`` once every validator is at height 2
(and, for ``direct``, once the direct streams are up), and prints per point: heights committed and
the mean block interval, CPU-ms per node per committed height, and per node per height the
consensus messages (proposals + votes) delivered directly, delivered by gossip, and the gossip
copies received (duplicates from mesh forwarding included: each costs py-libp2p ~2.5 ms). The same
run measures this machine's Ed25519 verify rate on 2 cores first. The LAST line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.devnet_load import ed25519_verify_rate, process_cpu_s  # noqa: E402
from devnet import launcher  # noqa: E402
from devnet.launcher import Layout  # noqa: E402
from node.config import Home  # noqa: E402

CONSENSUS = ("proposals", "votes")


def configure(layout: Layout, direct: bool) -> None:
    for spec in layout.nodes:
        home = Home(layout.dir / spec.home)
        cfg = home.load_config()
        cfg.p2p.direct_consensus = direct
        home.write_config(cfg)


def counts(layout: Layout) -> list[dict[str, int]]:
    out = []
    for spec in layout.nodes:
        received = launcher.rpc_call(spec.rpc, "net_info", timeout=10.0)["direct_consensus"]["received"]
        row = {"direct": 0, "gossip": 0, "gossip_copies": 0}
        for topic, c in received.items():
            if topic.split("/")[2] in CONSENSUS:
                for k in row:
                    row[k] += c.get(k, 0)
        out.append(row)
    return out


def heights(layout: Layout) -> list[int]:
    return [launcher.node_status(layout, s)["height"] or 0 for s in layout.nodes]


def run_point(n: int, direct: bool, seconds: float, work: Path) -> dict[str, object]:
    directory = work / f"devnet-{n}-{'direct' if direct else 'gossip'}"
    layout = launcher.create(directory, n, launcher.free_base_port(n))
    configure(layout, direct)
    try:
        for spec in layout.nodes:
            launcher.start_node(layout, spec)
        launcher.wait_for_height(layout, 2, 180, progress=False)
        settled = True
        if direct:  # wait (bounded) for every validator to leave the consensus topics
            deadline = time.monotonic() + 60
            while True:
                reports = [launcher.rpc_call(s.rpc, "net_info", timeout=10.0)["direct_consensus"] for s in layout.nodes]
                if all(not any(r["subscribed"].values()) for r in reports):
                    break
                if time.monotonic() > deadline:
                    settled = False
                    break
                time.sleep(0.5)
        pids = [launcher.read_pid(layout, s) for s in layout.nodes]
        assert all(pids), f"a node exited: {pids}"
        h0, c0, cpu0, t0 = heights(layout), counts(layout), [process_cpu_s(p) for p in pids], time.monotonic()  # type: ignore[arg-type]
        time.sleep(seconds)
        h1, c1, cpu1, t1 = heights(layout), counts(layout), [process_cpu_s(p) for p in pids], time.monotonic()  # type: ignore[arg-type]
    finally:
        for spec in layout.nodes:
            launcher.stop_node(layout, spec, timeout=15.0)
    committed = min(h1) - max(h0)
    per_h = max(1, committed)
    cpu_ms = [(b - a) * 1000 / per_h for a, b in zip(cpu0, cpu1)]
    msgs = {k: sum(b[k] - a[k] for a, b in zip(c0, c1)) / n / per_h for k in ("direct", "gossip", "gossip_copies")}
    return {
        "validators": n, "mode": "direct" if direct else "gossip", "streams_settled": settled,
        "heights": committed, "block_interval_s": round((t1 - t0) / per_h, 3) if committed > 0 else None,
        "cpu_ms_per_node_per_height": round(sum(cpu_ms) / n, 1), "cpu_ms_max_node": round(max(cpu_ms), 1),
        "cores_per_node": round(sum((b - a) for a, b in zip(cpu0, cpu1)) / n / (t1 - t0), 2),
        "direct_per_node_per_height": round(msgs["direct"], 1),
        "gossip_delivered_per_node_per_height": round(msgs["gossip"], 1),
        "gossip_copies_per_node_per_height": round(msgs["gossip_copies"], 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--validators", default="4,7,10,16")
    ap.add_argument("--modes", default="gossip,direct")
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    print("measuring Ed25519 verify on 2 cores (two processes) ...", flush=True)
    verify_rate = ed25519_verify_rate(2)
    print(f"ed25519 verify/s, 2 processes: {verify_rate:,.0f}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="attrchain-paths-"))
    rows = []
    try:
        for n in (int(v) for v in args.validators.split(",")):
            for mode in args.modes.split(","):
                row = run_point(n, mode == "direct", args.seconds, work)
                rows.append(row)
                print(f"{n:>2} validators {mode:>6}: {row['heights']} heights, {row['block_interval_s']} s/block, "
                      f"CPU {row['cpu_ms_per_node_per_height']} ms/node/height (max {row['cpu_ms_max_node']}, "
                      f"{row['cores_per_node']} cores/node); consensus msgs/node/height: direct "
                      f"{row['direct_per_node_per_height']}, gossip {row['gossip_delivered_per_node_per_height']} "
                      f"(copies received {row['gossip_copies_per_node_per_height']})"
                      + ("" if row["streams_settled"] else " [direct streams never all up]"), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"ed25519_verify_per_s": round(verify_rate), "points": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
