"""Benchmark: a node offered far more transactions than it can take (issue 15 points 1-2).

Usage: .venv/bin/python bench/tx_intake.py [--duration 15] [--clients 4] [--modes workers,inline]

For each mode (``workers``: signature checks in worker processes, the default config;
``inline``: `mempool.verify_inline = true`; ``full``: workers, with a pool of 1,000 and blocks of
200 transactions, so the pool stays full and the door answers ``mempool_full``) a fresh one-validator devnet node (a real process) is
flooded for ``--duration`` seconds by ``--clients`` threads sending JSON-RPC batches of 100
pre-signed transfers as fast as the node answers (far above what it can commit), while a probe
sends one transaction every 50 ms and times its answer. Printed per mode: accepted tx/s, refused
(by reason), the probe's answer time for refusals (p50/p95/max), committed tx/s and block interval
during the flood, and the CPU the node used in cores (its own process plus its signature workers).
First line: this machine's Ed25519 verify rate, one process and one per core, measured in this run.
The LAST line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import httpx  # noqa: E402

from bench.load_sweep import Probe, cpu_with_children, percentile  # noqa: E402
from bench.measure import ed25519_verify_rate  # noqa: E402
from devnet import launcher  # noqa: E402
from devnet.load import LoadConfig, LoadGenerator, rpc  # noqa: E402
from node.config import Home  # noqa: E402
from state.crypto import PrivateKey, from_hex, sha256, to_hex  # noqa: E402
from state.tx import Transfer, sign_tx  # noqa: E402

BATCH = 100


class Flood:
    """Client threads sending pre-signed transfers, each sender's nonces in order."""

    def __init__(self, url: str, chain_id: str, keys: list[PrivateKey], per_sender: int, clients: int) -> None:
        self.url = url
        self.stop = threading.Event()
        self.accepted = 0
        self.refused: Counter[str] = Counter()
        self.lock = threading.Lock()
        sink = PrivateKey.from_int(7).address
        print(f"  signing {len(keys) * per_sender:,} transfers ...", flush=True)
        self.queues = [[sign_tx(k, chain_id, n, Transfer(sink, 1), 1).raw for n in range(per_sender)] for k in keys]
        self.cursor = [0] * len(keys)
        self.clients = clients
        self.accepted_at: dict[bytes, float] = {}  # tx hash -> wall time its answer arrived

    def client(self, index: int) -> None:
        mine = list(range(index, len(self.queues), self.clients))
        turn = 0
        with httpx.Client(timeout=30) as http:
            while not self.stop.is_set():
                batch: list[tuple[int, bytes]] = []
                turn += 1
                start = turn * 7 % len(mine)
                for s in mine[start:] + mine[:start]:
                    if len(batch) >= BATCH:
                        break
                    take = self.queues[s][self.cursor[s]:self.cursor[s] + 5]
                    batch += [(s, raw) for raw in take]
                if not batch:
                    return
                body = [{"jsonrpc": "2.0", "id": i, "method": "broadcast_tx_sync", "params": {"tx": to_hex(raw)}}
                        for i, (_, raw) in enumerate(batch)]
                try:
                    answers = http.post(self.url, json=body).json()
                except (httpx.HTTPError, ValueError):
                    continue
                if not isinstance(answers, list):  # refused as a whole (an HTTP-level error object)
                    with self.lock:
                        self.refused["whole_batch"] += len(batch)
                    continue
                refused_at: dict[int, int] = {}
                ok = 0
                for a in answers:
                    s, _ = batch[a["id"]]
                    if "error" in a:
                        reason = (a["error"].get("data") or {}).get("reason", str(a["error"]["code"]))
                        with self.lock:
                            self.refused[reason] += 1
                        refused_at.setdefault(s, a["id"])
                    elif s not in refused_at:
                        ok += 1
                # advance each sender past what was accepted, up to its first refusal
                counted: Counter[int] = Counter()
                now = time.time()
                for i, (s, raw) in enumerate(batch):
                    if s in refused_at and i >= refused_at[s]:
                        continue
                    counted[s] += 1
                    self.accepted_at[sha256(raw)] = now
                for s, n in counted.items():
                    self.cursor[s] += n
                with self.lock:
                    self.accepted += sum(counted.values())


def run_mode(mode: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    directory = work / mode
    params = {"timeouts": {"commit_ms": args.commit_ms, "propose_ms": 1000}}
    layout = launcher.create(directory, 1, launcher.free_base_port(1), (), params)
    spec = layout.nodes[0]
    home = Home(layout.dir / spec.home)
    cfg = home.load_config()
    cfg.mempool.verify_inline = mode == "inline"
    cfg.mempool.max_txs = args.max_txs if mode != "full" else 1_000
    cfg.consensus.max_block_txs = args.max_block_txs if mode != "full" else 200
    home.write_config(cfg)
    launcher.start_node(layout, spec)
    try:
        launcher.wait_for_height(layout, 2, 90, progress=False)
        pid = launcher.read_pid(layout, spec)
        assert pid is not None
        gen = LoadGenerator(layout, LoadConfig(senders=args.senders + 1, fund_each=10**12))
        gen.fund()
        keys = [s.key for s in gen.senders]
        flood = Flood(spec.rpc, layout.chain_id, keys[1:], args.per_sender, args.clients)
        probe = Probe(layout, keys[:1])  # its own process, one lone transaction every 50 ms
        with httpx.Client(timeout=10) as http:
            h0 = int(rpc(http, spec.rpc, "status")["sync_info"]["latest_block_height"])
        cpu0, t0 = cpu_with_children([pid])[0], time.monotonic()
        threads = [threading.Thread(target=flood.client, args=(i,), daemon=True) for i in range(args.clients)]
        probe.start()
        for t in threads:
            t.start()
        time.sleep(args.duration)
        flood.stop.set()
        wall = time.monotonic() - t0
        cpu = (cpu_with_children([pid])[0] - cpu0) / wall
        probe.finish(40)
        for t in threads:
            t.join(40)
        with httpx.Client(timeout=10) as http:
            h1 = int(rpc(http, spec.rpc, "status")["sync_info"]["latest_block_height"])
            blocks = [rpc(http, spec.rpc, "block", {"height": h})["block"] for h in range(h0 + 1, h1 + 1)]
    finally:
        launcher.stop_node(layout, spec, timeout=15.0)
    times = [b["header"]["time_ms"] for b in blocks]
    committed = sum(len(b["txs"]) for b in blocks)
    # submit-to-commit of accepted transactions: block h's commit time is the BFT time of block h+1
    # (the median of the precommit times of h: this machine's clock) minus when the acceptance arrived
    latencies = [nxt["header"]["time_ms"] / 1000 - flood.accepted_at[h] for b, nxt in zip(blocks, blocks[1:])
                 for h in (sha256(from_hex(t)) for t in b["txs"]) if h in flood.accepted_at]
    gaps = [b - a for a, b in zip(times, times[1:])]
    return {
        "mode": mode,
        "accepted_per_s": round(flood.accepted / wall, 1),
        "refused": dict(flood.refused),
        "committed_per_s": round(committed / ((times[-1] - times[0]) / 1000), 1) if len(times) > 1 else 0.0,
        "blocks": len(blocks),
        "mean_block_interval_s": round(sum(gaps) / len(gaps) / 1000, 3) if gaps else float("nan"),
        "max_block_interval_s": round(max(gaps) / 1000, 3) if gaps else float("nan"),
        "probe": {k: {"n": len(v), "p50_ms": round(1000 * percentile(v, 0.5), 1),
                      "p95_ms": round(1000 * percentile(v, 0.95), 1)} for k, v in probe.times.items()},
        **{k: v for k, v in probe.summary().items() if k in ("refusal_p95_ms", "refusal_max_ms")},
        "node_cpu_cores": round(cpu, 2),
        "accepted_committed": len(latencies),
        "latency_p50_s": round(percentile(latencies, 0.5), 3),
        "latency_p95_s": round(percentile(latencies, 0.95), 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=15.0, help="seconds of flood per mode")
    ap.add_argument("--clients", type=int, default=4, help="client threads sending batches")
    ap.add_argument("--senders", type=int, default=200)
    ap.add_argument("--per-sender", type=int, default=400, help="pre-signed transfers per sender")
    ap.add_argument("--max-txs", type=int, default=5_000, help="node config mempool.max_txs")
    ap.add_argument("--max-block-txs", type=int, default=2_000, help="node config consensus.max_block_txs")
    ap.add_argument("--commit-ms", type=int, default=500, help="genesis timeouts.commit_ms (the block interval)")
    ap.add_argument("--modes", default="workers,inline,full",
                    help="workers / inline: signature checks in worker processes or on the loop; full: workers "
                         "with a 1,000-transaction pool and 200-transaction blocks, so the pool stays full "
                         "and the door answers mempool_full")
    args = ap.parse_args()

    print(f"cores: {os.cpu_count()}; measuring Ed25519 verify (3 s) ...", flush=True)
    one = ed25519_verify_rate(1)
    every = ed25519_verify_rate(os.cpu_count() or 1)
    print(f"ed25519 verify/s: one process {one:,.0f}; {os.cpu_count()} processes {every:,.0f}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="attrchain-intake-"))
    results = []
    try:
        for mode in args.modes.split(","):
            print(f"mode {mode}: one validator, flood {args.duration:.0f} s by {args.clients} clients", flush=True)
            r = run_mode(mode, args, work)
            results.append(r)
            print(f"  accepted {r['accepted_per_s']:,} tx/s; refused {r['refused']}", flush=True)
            print(f"  accepted then committed {r['accepted_committed']:,}: latency p50 {r['latency_p50_s']} s, "
                  f"p95 {r['latency_p95_s']} s (commit time - acceptance)", flush=True)
            print(f"  committed {r['committed_per_s']:,} tx/s in {r['blocks']} blocks, block interval mean "
                  f"{r['mean_block_interval_s']} s max {r['max_block_interval_s']} s (configured "
                  f"{args.commit_ms / 1000} s + block time)", flush=True)
            print(f"  probe answers: {r['probe']}; refusals p95 {r['refusal_p95_ms']} ms, max "
                  f"{r['refusal_max_ms']} ms", flush=True)
            print(f"  node CPU {r['node_cpu_cores']} cores (process + signature workers); accepted tx/s = "
                  f"{r['accepted_per_s'] / one:.2f} x one core's verify rate", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"ed25519_verify_per_s_one": round(one), "ed25519_verify_per_s_all": round(every),
                      "cores": os.cpu_count(), "duration_s": args.duration, "modes": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
