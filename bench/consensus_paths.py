"""Benchmark: what consensus costs each validator with gossip only and with direct streams.

Usage: .venv/bin/python bench/consensus_paths.py [--validators 4,7,10,16] [--modes gossip,direct]
                                                 [--seconds 20] [--observer] [--profile-node 1]

For each validator count and mode it starts a fresh devnet (real processes, loopback), lets it run
idle (empty blocks: consensus traffic only) for ``--seconds`` once every validator is at height 2
(and, for ``direct``, once the direct streams are up), and prints per point: heights committed and
blocks/s with the block interval (p50 and max, polled on node0), CPU-ms per node per committed
height (and how many cores everything else on the machine used meanwhile), and per node per height the
consensus messages (proposals + votes) delivered directly, delivered by gossip, and the gossip
copies received (duplicates from mesh forwarding included: each costs py-libp2p ~2.5 ms). The same
run measures this machine's Ed25519 verify rate on 2 cores first. The LAST line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import httpx  # noqa: E402

from bench.measure import (  # noqa: E402
    ed25519_verify_rate, machine_busy_s, process_cpu_s, start_profiler, summarise_profile)
from devnet import launcher  # noqa: E402
from devnet.launcher import DevnetError, Layout, NodeSpec  # noqa: E402
from node.config import Home  # noqa: E402

CONSENSUS = ("proposals", "votes")
START_TIMEOUT_S = 180.0


def configure(layout: Layout, direct: bool) -> None:
    for spec in layout.nodes:
        home = Home(layout.dir / spec.home)
        cfg = home.load_config()
        cfg.p2p.direct_consensus = direct
        home.write_config(cfg)


def counts(specs: list[NodeSpec]) -> list[dict[str, int]]:
    out = []
    for spec in specs:
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


def sample_heights(specs: list[NodeSpec], seconds: float) -> list[dict[int, float]]:
    """Per node, when (monotonic s) each new height was first seen, polling status every 0.2 s."""
    seen: list[dict[int, float]] = [{} for _ in specs]
    last: list[int | None] = [None] * len(specs)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for i, spec in enumerate(specs):
            try:
                h = int(launcher.rpc_call(spec.rpc, "status", timeout=5.0)["sync_info"]["latest_block_height"])
            except (DevnetError, httpx.HTTPError, KeyError, ValueError):
                continue
            if last[i] is not None and h > last[i]:  # type: ignore[operator]
                seen[i][h] = time.monotonic()
            last[i] = h
        time.sleep(0.2)
    return seen


def run_point(n: int, direct: bool, seconds: float, work: Path, profile_node: int = -1,
              observer: bool = False) -> dict[str, object]:
    directory = work / f"devnet-{n}-{'direct' if direct else 'gossip'}"
    layout = launcher.create(directory, n, launcher.free_base_port(n + 1))
    configure(layout, direct)
    watcher = None
    if observer:  # a full node following from what validators publish on the topics
        watcher = launcher.add_full_node(layout)
        layout.nodes.pop()
    row: dict[str, object] = {"validators": n, "mode": "direct" if direct else "gossip", "streams_settled": None,
                              "heights": 0, "block_interval_s": None, "error": None}
    try:
        for spec in layout.nodes + ([watcher] if watcher else []):
            launcher.start_node(layout, spec)
        try:
            launcher.wait_for_height(layout, 2, START_TIMEOUT_S, progress=False)
        except DevnetError as exc:  # e.g. 16 gossip-only validators on a loaded 2-core machine
            row["error"] = str(exc)[:300]
            return row
        if direct:  # wait (bounded) for every validator to leave the consensus topics
            row["streams_settled"] = False
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                reports = [launcher.rpc_call(s.rpc, "net_info", timeout=10.0)["direct_consensus"] for s in layout.nodes]
                if all(not any(r["subscribed"].values()) for r in reports):
                    row["streams_settled"] = True
                    break
                time.sleep(0.5)
        pids = [launcher.read_pid(layout, s) for s in layout.nodes]
        assert all(pids), f"a node exited: {pids}"
        watched = [watcher] if watcher else []
        watcher_pid = launcher.read_pid(layout, watcher) if watcher else None
        w0 = (counts(watched), process_cpu_s(watcher_pid)) if watcher_pid else None
        h0, c0, cpu0, t0 = heights(layout), counts(layout.nodes), [process_cpu_s(p) for p in pids], time.monotonic()  # type: ignore[arg-type]
        busy0 = machine_busy_s()
        profiler, raw = None, directory / "profile.pyspy.txt"
        if 0 <= profile_node < n:
            profiler = start_profiler(pids[profile_node], seconds, raw)
        seen = sample_heights([layout.nodes[0]] + ([watcher] if watcher else []), seconds)
        times = sorted(seen[0].values())
        gaps = [b - a for a, b in zip(times, times[1:])]
        lags = sorted(seen[1][h] - t for h, t in seen[0].items() if h in seen[1]) if watcher else []
        h1, c1, cpu1, t1 = heights(layout), counts(layout.nodes), [process_cpu_s(p) for p in pids], time.monotonic()  # type: ignore[arg-type]
        w1 = (counts(watched), process_cpu_s(watcher_pid)) if watcher_pid else None
        busy1 = machine_busy_s()
        if profiler is not None:
            profiler.wait(timeout=60)
            row["profile"] = summarise_profile(raw) if raw.exists() else ["(py-spy wrote nothing)"]
    finally:
        for spec in layout.nodes + ([watcher] if watcher else []):
            launcher.stop_node(layout, spec, timeout=15.0)
    committed = min(h1) - max(h0)
    per_h = max(1, committed)
    cpu_ms = [(b - a) * 1000 / per_h for a, b in zip(cpu0, cpu1)]
    nodes_cpu_s = sum(b - a for a, b in zip(cpu0, cpu1))
    msgs = {k: sum(b[k] - a[k] for a, b in zip(c0, c1)) / n / per_h for k in ("direct", "gossip", "gossip_copies")}
    gaps.sort()
    row.update({
        "heights": committed, "blocks_per_s": round(committed / (t1 - t0), 2),
        "block_interval_s": round((t1 - t0) / per_h, 3) if committed > 0 else None,
        "interval_p50_s": round(gaps[len(gaps) // 2], 2) if gaps else None,
        "interval_max_s": round(gaps[-1], 2) if gaps else None,
        # how long after node0 the full node had each height (0.2 s polling: +-0.2 s)
        "observer_lag_p50_s": round(lags[len(lags) // 2], 2) if lags else None,
        "observer_lag_max_s": round(lags[-1], 2) if lags else None,
        "cpu_ms_per_node_per_height": round(sum(cpu_ms) / n, 1), "cpu_ms_max_node": round(max(cpu_ms), 1),
        "cores_per_node": round(nodes_cpu_s / n / (t1 - t0), 2),
        # what everything else on the machine used meanwhile (other helpers' work competes for the cores)
        "other_cores": round(max(0.0, (busy1 - busy0) - nodes_cpu_s) / (t1 - t0), 2),
        "direct_per_node_per_height": round(msgs["direct"], 1),
        "gossip_delivered_per_node_per_height": round(msgs["gossip"], 1),
        "gossip_copies_per_node_per_height": round(msgs["gossip_copies"], 1),
    })
    if w0 is not None and w1 is not None:  # the full node: what following cost it
        row.update({
            "observer_cpu_ms_per_height": round((w1[1] - w0[1]) * 1000 / per_h, 1),
            "observer_gossip_per_height": round((w1[0][0]["gossip"] - w0[0][0]["gossip"]) / per_h, 1),
            "observer_copies_per_height": round((w1[0][0]["gossip_copies"] - w0[0][0]["gossip_copies"]) / per_h, 1),
        })
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--validators", default="4,7,10,16")
    ap.add_argument("--modes", default="gossip,direct")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--observer", action="store_true",
                    help="also run a full node (no validator key) and print how far behind node0 it sees each height")
    ap.add_argument("--profile-node", type=int, default=-1,
                    help="py-spy record this node index during each point and print where its CPU went")
    args = ap.parse_args()
    print("measuring Ed25519 verify on 2 cores (two processes) ...", flush=True)
    verify_rate = ed25519_verify_rate(2)
    print(f"ed25519 verify/s, 2 processes: {verify_rate:,.0f}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="attrchain-paths-"))
    rows = []
    try:
        for n in (int(v) for v in args.validators.split(",")):
            for mode in args.modes.split(","):
                row = run_point(n, mode == "direct", args.seconds, work, args.profile_node, args.observer)
                rows.append(row)
                if row["error"]:
                    print(f"{n:>2} validators {mode:>6}: no commit: {row['error']}", flush=True)
                    continue
                print(f"{n:>2} validators {mode:>6}: {row['heights']} heights, {row['blocks_per_s']} blocks/s "
                      f"(interval p50 {row['interval_p50_s']} s, max {row['interval_max_s']} s); "
                      f"CPU {row['cpu_ms_per_node_per_height']} ms/node/height (max {row['cpu_ms_max_node']}, "
                      f"{row['cores_per_node']} cores/node, other processes {row['other_cores']} cores); "
                      f"consensus msgs/node/height: direct {row['direct_per_node_per_height']}, gossip "
                      f"{row['gossip_delivered_per_node_per_height']} (copies received "
                      f"{row['gossip_copies_per_node_per_height']})"
                      + (f"; full node behind node0 p50 {row['observer_lag_p50_s']} s, max {row['observer_lag_max_s']} s"
                         f", its CPU {row.get('observer_cpu_ms_per_height')} ms/height, consensus msgs/height "
                         f"{row.get('observer_gossip_per_height')} (copies received "
                         f"{row.get('observer_copies_per_height')})"
                         if args.observer else "")
                      + ("" if row["streams_settled"] is not False else " [direct streams never all up]"), flush=True)
                for line in row.get("profile", []):  # type: ignore[union-attr]
                    print(f"    {line}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"ed25519_verify_per_s": round(verify_rate), "points": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
