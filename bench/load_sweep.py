"""The sweep of `bench/devnet_load.py --sweep` (issue 15 point 4): validators x offered load.

For each validator count a fresh devnet is started (real processes, loopback; direct consensus
streams on unless ``--gossip``), then:
  idle      ``--idle-seconds`` with no load: CPU-ms per node per committed height
  capacity  given (``--capacity 1200`` or ``--capacity 4:1200,16:300``) or measured: offered
            ``--probe-rate`` tx/s for ``--probe-seconds``; capacity = committed tx/s over the probe
            (submission to last commit, by the load's tracker or by the chain's headers: every
            transaction in the blocks of the point, ``chain_tps``) or while submitting, whichever
            is higher
  points    for each factor of ``--loads`` (default 1,2,5): offered factor x capacity for
            ``--point-seconds``, then a bounded drain; a point never takes more than POINT_BUDGET_S
Per point: offered (and achieved) tx/s, committed tx/s overall and while submitting, p50/p95
submit-to-commit latency of accepted transactions, block interval p50/max (BFT times), CPU-ms per
node per committed height (node process + its signature workers), refusals by reason, and the
answer time of refusals: a probe sends one lone transaction every 50 ms to the nodes in turn and
times the answer (the 50 ms rule of issue 15 point 1 is about this time).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from bench.measure import (change, machine_busy_s, node_readings, start_profiler, summarise_counts,
                           summarise_profile, summarise_task_cpu)
from devnet import launcher
from devnet.launcher import Layout
from devnet.load import DOOR_REFUSALS, LoadConfig, LoadGenerator, percentile, rpc
from node.config import Home
from state.crypto import PrivateKey, to_hex
from state.tx import Transfer, sign_tx

POINT_BUDGET_S = 60.0
PROBE_EVERY_S = 0.05
START_TIMEOUT_S = 180.0
SETTLE_TIMEOUT_S = 60.0
PRESIGN_MAX = 60_000  # transfers signed ahead per point (~5 s on one core); more are signed when sent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_with_children(pids: list[int]) -> list[float]:
    """utime + stime (s) of each pid plus its live children (the signature worker processes)."""
    total = {p: 0.0 for p in pids}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        if int(entry) in total:
            total[int(entry)] += cpu
        elif int(fields[1]) in total:
            total[int(fields[1])] += cpu
    return [total[p] for p in pids]


def chain_tps(metas: list[tuple[int, int, int]], start_wall_s: float) -> float:
    """Committed tx/s from the chain's own headers: ``metas`` are (height, time_ms, num_txs) of the
    heights after the load began; the span runs from ``start_wall_s`` to the commit time of the
    last block holding transactions (the BFT time of the header after it, else its own). The load's
    tracker reads every block over RPC and can be far behind a flooded node (16 validators under the
    capacity probe: 20 s, so the probe counted nothing); headers are cheap and counted afterwards."""
    metas = sorted(metas)
    full = [i for i, (_, _, n) in enumerate(metas) if n > 0]
    if not full:
        return 0.0
    last = full[-1]
    end_ms = metas[last + 1][1] if last + 1 < len(metas) else metas[last][1]
    span = end_ms / 1000 - start_wall_s
    return sum(n for _, _, n in metas) / span if span > 0 else 0.0


def parse_capacity(text: str) -> dict[int, float]:
    """"1200" -> {0: 1200} (every validator count); "4:1200,16:300" -> per count."""
    out: dict[int, float] = {}
    for part in filter(None, text.split(",")):
        n, _, rate = part.rpartition(":")
        out[int(n) if n else 0] = float(rate)
    return out


def _probe_main(urls: list[str], chain_id: str, seeds: list[bytes], stop: Any, out: Any) -> None:
    """The probe's own process: its answer times are the node's, not this bench's GIL (the load
    generator's threads would otherwise delay the probe's thread by tens of ms at 5x)."""
    # a session of its own, like a client on another machine: Linux shares the CPU between sessions
    # first (autogroups), and in the bench's session the probe waited for the load generator's busy
    # share on every wake (16 validators, 5x: p50 31-37 ms for answers the front gave in ~1 ms)
    os.setsid()
    keys = [PrivateKey(seed) for seed in seeds]
    nonces = [0] * len(keys)  # fresh keys: nonce 0
    turn = 0
    out.put(("ready", 0.0))  # imports done: on a loaded machine a fresh process takes seconds
    with httpx.Client(timeout=30) as http:
        while not stop.wait(PROBE_EVERY_S):
            i = turn % len(keys)
            turn += 1
            url, key = urls[i], keys[i]
            raw = sign_tx(key, chain_id, nonces[i], Transfer(key.address, 1), 1).raw
            t0 = time.perf_counter()
            try:
                a = http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "broadcast_tx_sync",
                                         "params": {"tx": to_hex(raw)}}).json()
                dt = time.perf_counter() - t0
                if "error" in a:
                    reason = (a["error"].get("data") or {}).get("reason") or str(a["error"].get("code"))
                    if reason in DOOR_REFUSALS:
                        outcome = f"refused {reason}"
                    else:
                        outcome = f"error {reason}"
                        nonces[i] = int(rpc(http, url, "account", {"address": to_hex(key.address)})["next_nonce"])
                else:
                    outcome = "accepted"
                    nonces[i] += 1
            except Exception:  # noqa: BLE001 - a probe that got no answer is counted, never fatal
                out.put(("no_answer", time.perf_counter() - t0))
                continue
            out.put((outcome, dt))  # each answer at once: a late or killed probe loses nothing sent
    out.put(None)



def configure_nodes(layout: launcher.Layout, args: argparse.Namespace, task_cpu: bool = False) -> None:
    """The node options the benchmark arguments set, in every node's config."""
    for spec in layout.nodes:
        home = Home(layout.dir / spec.home)
        cfg = home.load_config()
        cfg.p2p.direct_consensus = not args.gossip
        cfg.p2p.validator_link = not args.no_validator_link
        if args.verify_in is not None:
            cfg.mempool.verify_processes = args.verify_in == "processes"
        cfg.rpc.task_cpu = task_cpu
        if args.tx_batch_ms:
            cfg.p2p.tx_batch_interval_ms = args.tx_batch_ms
        cfg.consensus.max_block_txs = args.max_block_txs
        if args.fill_ms is not None:
            cfg.consensus.fill_wait_ms = args.fill_ms
        home.write_config(cfg)

class Probe:
    """One lone broadcast_tx_sync every PROBE_EVERY_S, to the nodes in turn (one funded key per
    node, so its nonces stay in one pool); answer times by outcome. Runs in its own process, like
    a separate client would."""

    def __init__(self, layout: Layout, keys: list[PrivateKey]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.stop = ctx.Event()
        self._out = ctx.Queue()
        self.times: dict[str, list[float]] = {}
        self.process = ctx.Process(target=_probe_main, name="load-probe", daemon=True, args=(
            [spec.rpc for spec in layout.nodes[:len(keys)]], layout.chain_id, [k.seed for k in keys],
            self.stop, self._out))

    def start(self, timeout: float = 60.0) -> None:
        """Start the probe's process and wait (bounded) until it is ready to send: started with
        the load, it was still importing when a 16-validator point ended, and timed nothing."""
        self.process.start()
        try:
            item = self._out.get(timeout=timeout)
        except queue.Empty:
            return
        if item is None:  # it stopped already
            self._out.put(None)

    def finish(self, timeout: float) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self._out.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                break
            self.times.setdefault(item[0], []).append(item[1])
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()

    def summary(self) -> dict[str, Any]:
        refusals = [t for k, v in self.times.items() if k.startswith("refused") for t in v]
        return {
            "answers": {k: len(v) for k, v in self.times.items()},
            "refusal_p50_ms": round(1000 * percentile(refusals, 0.5), 1),
            "refusal_p95_ms": round(1000 * percentile(refusals, 0.95), 1),
            "refusal_max_ms": round(1000 * max(refusals), 1) if refusals else float("nan"),
            "accepted_p95_ms": round(1000 * percentile(self.times.get("accepted", []), 0.95), 1),
        }


class Devnet:
    """One running devnet of the sweep."""

    def __init__(self, work: Path, n: int, args: argparse.Namespace) -> None:
        self.n = n
        params = {"timeouts": {"commit_ms": args.commit_ms, "propose_ms": args.propose_ms}}
        self.layout = launcher.create(work / f"devnet-{n}", n, launcher.free_base_port(n), (), params)
        configure_nodes(self.layout, args, args.task_cpu)
        self.pids: list[int] = []

    def start(self, direct: bool) -> str | None:
        """Start every node, wait for height 2 (and the direct streams); an error text or None."""
        for spec in self.layout.nodes:
            launcher.start_node(self.layout, spec)
        try:
            launcher.wait_for_height(self.layout, 2, START_TIMEOUT_S, progress=False)
        except launcher.DevnetError as exc:
            return str(exc)[:300]
        self.pids = [launcher.read_pid(self.layout, s) or 0 for s in self.layout.nodes]
        if not all(self.pids):
            return f"a node exited: {self.pids}"
        if direct and not launcher.wait_for_direct_links(self.layout, SETTLE_TIMEOUT_S):
            return "direct streams not all up within 60 s (measuring anyway)"
        return None

    def stop(self) -> None:
        for spec in self.layout.nodes:
            launcher.stop_node(self.layout, spec, timeout=15.0)

    def height(self) -> int:
        return int(launcher.rpc_call(self.layout.nodes[0].rpc, "status", timeout=10.0)["sync_info"]
                   ["latest_block_height"])

    def headers(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """(height, time_ms, num_txs) of heights lo..hi from node0's `blockchain` (20 per call)."""
        out: list[tuple[int, int, int]] = []
        while hi >= lo:
            r = launcher.rpc_call(self.layout.nodes[0].rpc, "blockchain", {"min_height": max(lo, hi - 19),
                                                                            "max_height": hi}, timeout=30.0)
            for m in r["block_metas"]:
                out.append((int(m["header"]["height"]), int(m["header"]["time_ms"]), int(m["num_txs"])))
            hi -= 20
        return out

    def readings(self) -> list[Any]:
        """Each node's event-loop CPU seconds by task so far (``rpc.task_cpu``, ``--task-cpu``) and
        its counts of what it received and dropped (``bench.measure.node_readings``)."""
        return [node_readings(spec.rpc) for spec in self.layout.nodes]

    def profile_start(self, node: int, seconds: float, name: str) -> tuple[subprocess.Popen[bytes], Path] | None:
        """py-spy recording node ``node`` for ``seconds`` (none for an index out of range)."""
        if not 0 <= node < self.n:
            return None
        raw = self.layout.dir / f"profile-{name}.pyspy.txt"
        return start_profiler(self.pids[node], seconds, raw), raw

    @staticmethod
    def profile_end(profiler: tuple[subprocess.Popen[bytes], Path] | None) -> list[str]:
        if profiler is None:
            return []
        proc, raw = profiler
        proc.wait(timeout=60)
        return summarise_profile(raw) if raw.exists() else ["(py-spy wrote nothing)"]

    def idle(self, seconds: float, profile_node: int = -1, task_cpu: bool = False) -> dict[str, Any]:
        readings0 = self.readings() if task_cpu else []
        h0, cpu0, t0 = self.height(), cpu_with_children(self.pids), time.monotonic()
        profiler = self.profile_start(profile_node, seconds, "idle")
        time.sleep(seconds)  # the measurement window itself, not a synchronisation
        profile = self.profile_end(profiler)
        h1, cpu1, t1 = self.height(), cpu_with_children(self.pids), time.monotonic()
        heights = max(1, h1 - h0)
        if readings0:  # where the loops' CPU went per node per height (--task-cpu)
            readings1 = self.readings()
            profile = profile + [
                "event-loop CPU by task, per node per height:",
                *summarise_task_cpu(change([t for t, _ in readings0], [t for t, _ in readings1]), heights * self.n),
                "received and dropped, summed over the nodes:",
                *summarise_counts(change([c for _, c in readings0], [c for _, c in readings1]))]
        used = [b - a for a, b in zip(cpu0, cpu1)]
        return {"validators": self.n, "heights": h1 - h0, "blocks_per_s": round((h1 - h0) / (t1 - t0), 2),
                "cpu_ms_per_node_per_height": round(sum(used) * 1000 / self.n / heights, 1),
                "cpu_ms_max_node": round(max(used) * 1000 / heights, 1),
                "cores_per_node": round(sum(used) / self.n / (t1 - t0), 3), "profile": profile}

    def load(self, rate: float, seconds: float, args: argparse.Namespace) -> dict[str, Any]:
        """Offer ``rate`` tx/s for ``seconds``, drain (bounded), measure; at most POINT_BUDGET_S."""
        t_begin = time.monotonic()
        gen = LoadGenerator(self.layout, LoadConfig(rate=rate, duration_s=seconds, max_txs=int(rate * seconds) + 1,
                                                    senders=args.senders + self.n, batch=args.batch, drain_s=0.0,
                                                    nice=args.client_nice,
                                                    presign=min(int(rate * seconds), PRESIGN_MAX) // args.senders + 1))
        gen.fund()
        probe = Probe(self.layout, [gen.senders.pop().key for _ in range(self.n)])  # the last funded senders
        gen.presign()
        probe.start()
        readings0 = self.readings() if args.task_cpu else []
        h0, cpu0, busy0, t0 = self.height(), cpu_with_children(self.pids), machine_busy_s(), time.monotonic()
        profiler = self.profile_start(args.profile_node, seconds, f"load-{round(rate)}")
        start_wall = time.time()
        gen.start()
        gen.wait_submitted(seconds + 20)
        probe.stop.set()  # refusals are timed while the load is offered
        profile = self.profile_end(profiler)
        report = gen.stop(drain_s=max(2.0, POINT_BUDGET_S - (time.monotonic() - t_begin) - 3))  # the budget left
        probe.finish(35)
        h1, cpu1, busy1, t1 = self.height(), cpu_with_children(self.pids), machine_busy_s(), time.monotonic()
        used = [b - a for a, b in zip(cpu0, cpu1)]
        heights = max(1, h1 - h0)
        if readings0:  # where the loops' CPU went, per committed transaction, and the counts (--task-cpu)
            readings1 = self.readings()
            profile = profile + [
                "event-loop CPU by task, summed over the nodes, per committed transaction:",
                *summarise_task_cpu(change([t for t, _ in readings0], [t for t, _ in readings1]), len(report.committed)),
                "received and dropped, summed over the nodes:",
                *summarise_counts(change([c for _, c in readings0], [c for _, c in readings1]))]
        chain = chain_tps(self.headers(h0 + 1, h1), start_wall) if h1 > h0 else 0.0
        blocks = [b for b in report.blocks if b.height > h0]
        gaps = sorted((b.time_ms - a.time_ms) / 1000 for a, b in zip(blocks, blocks[1:]))
        span = report.last_submit - report.first_submit
        refused = sum(n for reason, n in report.rejected.items() if reason in DOOR_REFUSALS)
        return {
            "validators": self.n, "offered_tx_s": round(rate), "achieved_offer_tx_s": round(report.submitted / span)
            if span > 0 else 0, "submitted": report.submitted, "accepted": report.accepted,
            "committed": len(report.committed), "tps": round(report.tps, 1), "chain_tps": round(chain, 1),
            "tps_while_submitting": round(report.tps_while_submitting, 1),
            "p50_latency_s": round(report.latency_percentile(0.5), 2),
            "p95_latency_s": round(report.latency_percentile(0.95), 2),
            "p95_seen_latency_s": round(report.seen_latency_percentile(0.95), 2),
            "tracker_lag_p50_s": round(report.tracker_lag_s(0.5), 2),
            "tracker_lag_max_s": round(report.tracker_lag_s(1.0), 2),
            "block_interval_p50_s": round(gaps[len(gaps) // 2], 2) if gaps else None,
            "block_interval_max_s": round(gaps[-1], 2) if gaps else None,
            "heights": h1 - h0,
            "cpu_ms_per_node_per_height": round(sum(used) * 1000 / self.n / heights, 1),
            "cores_per_node": round(sum(used) / self.n / (t1 - t0), 2),
            "other_cores": round(max(0.0, (busy1 - busy0) - sum(used)) / (t1 - t0), 2),
            "refused": refused, "rejected": dict(report.rejected), "unreachable": report.unreachable,
            "point_s": round(time.monotonic() - t_begin, 1), "profile": profile,
            **probe.summary(),
        }




def print_point(r: dict[str, Any]) -> None:
    print(f"  {r['validators']:>2} validators, offered {r['offered_tx_s']:,} tx/s (achieved "
          f"{r['achieved_offer_tx_s']:,}): committed {r['tps']:,} tx/s (by the chain's headers "
          f"{r['chain_tps']:,}), while submitting "
          f"{r['tps_while_submitting']:,}; latency p50 {r['p50_latency_s']} / p95 {r['p95_latency_s']} s (until the "
          f"tracker read the block: p95 {r['p95_seen_latency_s']} s; blocks read p50 {r['tracker_lag_p50_s']} / max "
          f"{r['tracker_lag_max_s']} s after their time); "
          f"blocks p50 {r['block_interval_p50_s']} / max {r['block_interval_max_s']} s; "
          f"CPU {r['cpu_ms_per_node_per_height']} ms/node/height ({r['cores_per_node']} cores/node, others "
          f"{r['other_cores']}); refused {r['refused']:,} {r['rejected']}; refusal answer p50 "
          f"{r['refusal_p50_ms']} / p95 {r['refusal_p95_ms']} ms (probe {r['answers']}); {r['point_s']} s",
          flush=True)
    for line in r.get("profile") or []:
        print(f"      {line}", flush=True)


def sweep(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    counts = [int(v) for v in str(args.validators).split(",")]
    loads = [float(v) for v in args.loads.split(",") if v.strip() and float(v) > 0] if args.loads else []
    given = parse_capacity(args.capacity or "")
    out: dict[str, Any] = {"idle": [], "capacity": {}, "points": [], "errors": []}
    for n in counts:
        net = Devnet(work, n, args)
        try:
            print(f"{n} validators: starting ({'gossip' if args.gossip else 'direct streams'}, "
                  f"commit timeout {args.commit_ms} ms) ...", flush=True)
            err = net.start(not args.gossip)
            if err:
                print(f"  {n} validators: {err}", flush=True)
                out["errors"].append({"validators": n, "error": err})
                if not net.pids or not all(net.pids):
                    continue
            if args.idle_seconds > 0 and (args.idle_validators is None or n in args.idle_validators):
                idle = net.idle(args.idle_seconds, args.profile_node, args.task_cpu)
                out["idle"].append(idle)
                print(f"  {n} validators idle {args.idle_seconds:.0f} s: {idle['heights']} heights "
                      f"({idle['blocks_per_s']} blocks/s), CPU {idle['cpu_ms_per_node_per_height']} ms per node "
                      f"per height (max node {idle['cpu_ms_max_node']}, {idle['cores_per_node']} cores/node)",
                      flush=True)
                for line in idle["profile"]:
                    print(f"      {line}", flush=True)
            if not loads:
                continue
            capacity = given.get(n, given.get(0, 0.0))
            if not capacity:
                r = net.load(args.probe_rate, args.probe_seconds, args)
                # what the chain committed per second over the probe (submission to last commit),
                # or while submitting if more: at 16 validators the first blocks after the burst
                # took the whole probe (13 tx/s "while submitting", 190 tx/s committed overall)
                # (and from the chain's headers: the tracker can be far behind a flooded node)
                capacity = max(10.0, r["tps_while_submitting"], r["tps"], r["chain_tps"])
                print(f"  capacity probe: offered {args.probe_rate:,.0f} tx/s for {args.probe_seconds:.0f} s -> "
                      f"capacity {capacity:,.0f} tx/s", flush=True)
                print_point(r)
            out["capacity"][n] = capacity
            for f in loads:
                r = net.load(f * capacity, args.point_seconds, args)
                r["load_factor"] = f
                out["points"].append(r)
                print_point(r)
        finally:
            net.stop()
    return out


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--sweep", action="store_true",
                    help="validators (comma list, default 4,7,16) x --loads, plus the idle figure; see bench/load_sweep.py")
    ap.add_argument("--loads", default="1,2,5", help="sweep: offered load as multiples of capacity (empty: idle only)")
    ap.add_argument("--capacity", default="", help="sweep: capacity tx/s, one figure or per count (4:1200,16:300); "
                                                   "default: measured by a probe run")
    ap.add_argument("--probe-rate", type=float, default=4000.0, help="sweep: offered tx/s of the capacity probe")
    ap.add_argument("--probe-seconds", type=float, default=15.0)
    ap.add_argument("--point-seconds", type=float, default=20.0, help="sweep: seconds of submission per point")
    ap.add_argument("--idle-seconds", type=float, default=20.0, help="sweep: idle measurement (0: none)")
    ap.add_argument("--idle-validators", type=lambda s: [int(v) for v in s.split(",")], default=None,
                    help="sweep: measure idle only for these counts (default: every count)")
    ap.add_argument("--client-nice", type=int, default=0,
                    help="sweep: nice value of the load generator's submitting threads (they stand for clients on "
                         "other machines; the probe and the commit tracker keep normal priority)")
    ap.add_argument("--gossip", action="store_true", help="consensus over gossip only (default: direct streams)")
    ap.add_argument("--no-validator-link", action="store_true",
                    help="p2p.validator_link off: direct consensus batches stay on the libp2p streams (A/B)")
    ap.add_argument("--verify-in", choices=("processes", "thread"), default=None,
                    help="mempool.verify_processes: batch signatures in worker processes or a thread "
                         "(default: the devnet's, launcher.devnet_verify_processes)")
