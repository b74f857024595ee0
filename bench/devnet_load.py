"""Benchmark: sustained signed-transfer load against a local N-validator devnet (real processes).

Usage: .venv/bin/python bench/devnet_load.py [--rate 1200] [--duration 60] [--validators 4]
                                              [--profile-node 1] [--keep DIR]
       .venv/bin/python bench/devnet_load.py --sweep [--validators 4,7,16] [--loads 1,2,5]
                                              [--capacity 4:1200,16:300] [--idle-validators 16]

``--sweep`` (issue 15 point 4): see bench/load_sweep.py; one devnet per validator count, the idle
figure, the capacity (given or measured), then each offered load; prints one line per point and
the same JSON last line with every point.

Creates a fresh devnet in a temporary folder (loopback ports), submits transfers through every
node for ``--duration`` seconds at up to ``--rate`` tx/s (bounded by ``--max-txs`` too; it stops by
itself), waits a bounded time for what was accepted to commit, stops the devnet and prints:
committed tx/s, p50/p95 submit-to-commit latency (commit time: the BFT time of the next block's
header; also until the load's tracker could read the block over RPC, devnet/load.py), mean block interval, CPU per node (from
/proc/<pid>/stat), the CPU other processes on this machine used meanwhile, and this machine's
Ed25519 verify rate on both cores (two processes, measured in this run before the devnet starts).
With ``--profile-node I`` it records node I with py-spy during the load and prints where its CPU
went. The LAST line is one JSON object: {"tps", "p50_latency_s", "p95_latency_s",
"ed25519_verify_per_s", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bench/devnet_load.py must not shadow the packages: put the repository root first.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import load_sweep  # noqa: E402
from bench.measure import (  # noqa: E402
    VERIFY_SECONDS, ed25519_verify_rate, machine_busy_s, process_cpu_s, start_profiler, summarise_profile,
    change, node_readings, summarise_counts, summarise_task_cpu)
from devnet import launcher  # noqa: E402
from devnet.load import LoadConfig, LoadGenerator, LoadReport  # noqa: E402
from node.config import Home  # noqa: E402

def run_sweep(args: argparse.Namespace) -> int:
    args.validators = args.validators or "4,7,16"
    print(f"measuring Ed25519 verify on 2 cores ({VERIFY_SECONDS:.0f} s, two processes) ...", flush=True)
    verify_rate = ed25519_verify_rate(2)
    print(f"ed25519 verify/s, 2 processes: {verify_rate:,.0f}", flush=True)
    work = args.keep or Path(tempfile.mkdtemp(prefix="attrchain-sweep-"))
    try:
        result = load_sweep.sweep(args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"ed25519_verify_per_s": round(verify_rate), **result}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--validators", default="", help="validator count (sweep: a comma list, default 4,7,16)")
    ap.add_argument("--rate", type=float, default=1200.0, help="target submitted tx/s (all nodes)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of submission")
    ap.add_argument("--max-txs", type=int, default=0, help="cap on submitted txs (default rate*duration)")
    ap.add_argument("--senders", type=int, default=64)
    ap.add_argument("--batch", type=int, default=100, help="transactions per JSON-RPC batch")
    ap.add_argument("--commit-ms", type=int, default=50, help="genesis timeouts.commit_ms")
    # 2,000 (CometBFT's default is 3,000): at 16 validators on 2 cores a proposal of a few hundred
    # transactions sometimes reached the others (and was executed) after 1,000 ms, and the height
    # took a second round: blocks 2.6-2.9 s apart in two of three 16 x 5x runs, none with 2,000
    ap.add_argument("--propose-ms", type=int, default=2000, help="genesis timeouts.propose_ms")
    ap.add_argument("--tx-batch-ms", type=int, default=0,
                    help="node config p2p.tx_batch_interval_ms (default: the devnet's, launcher.devnet_tx_batch_ms)")
    ap.add_argument("--fill-ms", type=int, default=None,
                    help="node config consensus.fill_wait_ms (default: the devnet's)")
    ap.add_argument("--max-block-txs", type=int, default=5000, help="node config consensus.max_block_txs")
    ap.add_argument("--drain", type=float, default=60.0, help="max seconds to wait for commits after submitting")
    ap.add_argument("--profile-node", type=int, default=-1, help="py-spy record this node index during the load")
    ap.add_argument("--keep", type=Path, default=None, help="create the devnet here and keep it (logs)")
    ap.add_argument("--task-cpu", action="store_true",
                    help="nodes count their event-loop CPU by task (rpc.task_cpu); print where it went")
    load_sweep.add_arguments(ap)
    args = ap.parse_args()
    # SIGTERM (timeout, kill) unwinds like an exception: the finally blocks stop the nodes this
    # run started (without it they kept running after the benchmark was gone)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.sweep:
        return run_sweep(args)
    args.validators = int(args.validators or 4)
    max_txs = args.max_txs or int(args.rate * args.duration)

    print(f"measuring Ed25519 verify on 2 cores ({VERIFY_SECONDS:.0f} s, two processes) ...", flush=True)
    verify_rate = ed25519_verify_rate(2)
    print(f"ed25519 verify/s, 2 processes: {verify_rate:,.0f}", flush=True)

    work = args.keep or Path(tempfile.mkdtemp(prefix="attrchain-load-"))
    directory = work / "devnet"
    params = {"timeouts": {"commit_ms": args.commit_ms, "propose_ms": args.propose_ms}}
    layout = launcher.create(directory, args.validators, launcher.free_base_port(args.validators), (), params)
    load_sweep.configure_nodes(layout, args, args.task_cpu)
    tx_batch_ms = Home(layout.dir / layout.nodes[0].home).load_config().p2p.tx_batch_interval_ms
    profiler: subprocess.Popen[bytes] | None = None
    profile_lines: list[str] = []
    try:
        for spec in layout.nodes:
            launcher.start_node(layout, spec)
        launcher.wait_for_height(layout, 2, 90, progress=False)
        pids = [launcher.read_pid(layout, s) for s in layout.nodes]
        assert all(pids), f"a node exited: {pids}"
        settled = launcher.wait_for_direct_links(layout, 60.0)
        print(f"devnet of {args.validators} validators up in {directory}"
              f"{'' if settled else ' (direct streams not all up within 60 s; measuring anyway)'}", flush=True)

        config = LoadConfig(rate=args.rate, duration_s=args.duration, max_txs=max_txs, senders=args.senders,
                            batch=args.batch, drain_s=args.drain)
        gen = LoadGenerator(layout, config)
        gen.fund()
        print(f"load: {args.rate:.0f} tx/s for {args.duration:.0f} s (at most {max_txs} txs) through "
              f"{len(layout.nodes)} nodes, {args.senders} senders; tx gossip every {tx_batch_ms} ms, "
              f"commit timeout {args.commit_ms} ms", flush=True)
        if 0 <= args.profile_node < len(pids):
            profiler = start_profiler(pids[args.profile_node], args.duration,
                                      work / f"node{args.profile_node}.pyspy.txt")
        readings0 = [node_readings(s.rpc) for s in layout.nodes]
        cpu0 = [process_cpu_s(p) for p in pids]  # type: ignore[arg-type]
        busy0, own0, t0 = machine_busy_s(), sum(os.times()[:2]), time.monotonic()
        gen.start()
        progress_until = time.monotonic() + args.duration
        while time.monotonic() < progress_until and gen.is_submitting():
            time.sleep(5)
            print(f"  t={time.monotonic() - t0:5.1f}s accepted {gen.accepted} committed {len(gen.committed)} "
                  f"height {gen.tracked_height}", flush=True)
        report: LoadReport = gen.stop()
        readings1 = [node_readings(s.rpc) for s in layout.nodes]
        wall = time.monotonic() - t0
        cpu = [(process_cpu_s(p) - c) / wall for p, c in zip(pids, cpu0)]  # type: ignore[arg-type]
        busy = (machine_busy_s() - busy0) / wall
        own = (sum(os.times()[:2]) - own0) / wall
        if profiler is not None:
            profiler.wait(timeout=args.duration + 30)
            profile_lines = summarise_profile(work / f"node{args.profile_node}.pyspy.txt")
    finally:
        if profiler is not None and profiler.poll() is None:
            profiler.terminate()
        for spec in layout.nodes:
            launcher.stop_node(layout, spec, timeout=15.0)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    start_height = min((b.height for b in report.blocks), default=0)
    sizes = [b.n_txs for b in report.blocks]
    other = busy - sum(cpu) - own
    print(f"submitted {report.submitted}, accepted {report.accepted}, rejected {dict(report.rejected)}, "
          f"unreachable {report.unreachable}")
    print(f"committed {len(report.committed)} in {report.last_commit - report.first_submit:.1f} s: "
          f"{report.tps:.1f} tx/s; while submitting ({report.last_submit - report.first_submit:.1f} s): "
          f"{report.committed_while_submitting} = {report.tps_while_submitting:.1f} tx/s")
    print(f"submit-to-commit latency p50 {report.latency_percentile(0.5):.2f} s, "
          f"p95 {report.latency_percentile(0.95):.2f} s (commit: the next header's BFT time; of it until the node "
          f"answered the submission: p50 {report.answer_percentile(0.5):.2f} s, p95 {report.answer_percentile(0.95):.2f} s); "
          f"until the tracker read the block p50 {report.seen_latency_percentile(0.5):.2f} s, "
          f"p95 {report.seen_latency_percentile(0.95):.2f} s")
    print(f"blocks {len(sizes)} from height {start_height}, mean interval "
          f"{report.mean_block_interval_s():.3f} s, mean {sum(sizes) / max(1, len(sizes)):.0f} txs, max {max(sizes, default=0)}; "
          f"the tracker read them p50 {report.tracker_lag_s(0.5):.2f} / max {report.tracker_lag_s(1.0):.2f} s "
          "after their header time")
    print("cpu per node (cores): " + ", ".join(f"node{i} {c:.2f}" for i, c in enumerate(cpu)))
    print(f"this load generator {own:.2f} cores; other processes on the machine {max(0.0, other):.2f} cores "
          f"(machine busy {busy:.2f} of {os.cpu_count()})")
    print("received and dropped during the load, summed over the nodes:")
    for line in summarise_counts(change([c for _, c in readings0], [c for _, c in readings1])):
        print("  " + line)
    task_cpu = change([t for t, _ in readings0], [t for t, _ in readings1])
    if task_cpu:
        print("event-loop CPU by task, summed over the nodes, per committed transaction (rpc.task_cpu):")
        for line in summarise_task_cpu(task_cpu, len(report.committed)):
            print("  " + line)
    if profiler is not None:
        print(f"py-spy profile of node{args.profile_node}, CPU by activity (share of its GIL-holding samples):")
        for line in profile_lines:
            print("  " + line)
    print(json.dumps({
        "tps": round(report.tps, 1),
        "p50_latency_s": round(report.latency_percentile(0.5), 3),
        "p95_latency_s": round(report.latency_percentile(0.95), 3),
        "p95_seen_latency_s": round(report.seen_latency_percentile(0.95), 3),
        "ed25519_verify_per_s": round(verify_rate),
        "committed": len(report.committed),
        "tps_while_submitting": round(report.tps_while_submitting, 1),
        "target_rate": args.rate,
        "duration_s": args.duration,
        "tx_batch_interval_ms": tx_batch_ms,
        "mean_block_interval_s": round(report.mean_block_interval_s(), 3),
        "tracker_lag_p50_s": round(report.tracker_lag_s(0.5), 2),
        "cpu_per_node": [round(c, 2) for c in cpu],
        "other_processes_cores": round(max(0.0, other), 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
