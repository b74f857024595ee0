"""Measurements the devnet benchmarks share: this machine's Ed25519 ceiling (the same-run reference
every figure is printed next to; OpenSSL's verify, `state.crypto.verify_openssl`, as in every
figure before the node's libsodium fast path, so ceilings of all sessions compare), a process's and the machine's CPU seconds from /proc, and a
py-spy profile summarised by activity. (Its own module: bench/devnet_load.py and bench/load_sweep.py
import each other's callers, and bench/consensus_paths.py imports both.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
VERIFY_SECONDS = 3.0
VERIFY_CODE = """
import os, sys, time
sys.path[0] = {root!r}
from state.crypto import PrivateKey, verify_openssl as verify
key = PrivateKey.from_int(1)
msg = os.urandom(160)
sig = key.sign(msg)
pub = key.public_key
n = 0
end = time.perf_counter() + {seconds}
while time.perf_counter() < end:
    for _ in range(200):
        verify(pub, sig, msg)
    n += 200
print(n / {seconds})
"""


def ed25519_verify_rate(processes: int = 2) -> float:
    """Verifies per second of this machine with ``processes`` processes verifying at once."""
    root = str(Path(__file__).resolve().parent.parent)
    code = VERIFY_CODE.format(root=root, seconds=VERIFY_SECONDS)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(processes)]
    rates = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        rates.append(float(out.strip()))
    return sum(rates)


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (everything but idle and iowait)."""
    with open("/proc/stat") as fh:
        parts = [int(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return (sum(parts[:8]) - idle) / CLOCK_TICKS


def start_profiler(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy recording process ``pid`` for ``seconds`` into ``out`` (raw format). Only samples of
    a thread holding the GIL count (``--gil``): a thread waiting in fsync or a socket send is not
    using the CPU, and without the flag py-spy reports it as busy."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid), "-d", str(int(seconds)),
         "-r", "100", "--gil", "-f", "raw", "-o", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# What a sample was doing: the first rule whose marker appears anywhere in its stack wins, so a
# transaction's signature check counts as such whether the RPC or a gossip batch asked for it.
# libp2p's own message signatures (PyNaCl) count as libp2p.
ACTIVITIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tx signature verify", ("verify (state/crypto.py", "verify_openssl (state/crypto.py")),
    ("mempool (admission, recheck)", ("Mempool.",)),
    ("block execution + commit", ("validate_and_execute", "build_block", "Chain.commit", "apply_block",
                                  "commit_block", "sync_from_peers")),
    ("consensus (machine, WAL, signer)", ("ConsensusDriver.", "consensus/")),
    ("JSON-RPC / HTTP", ("RPCApp.", "hypercorn/", "h11/", "node/rpc/")),
    ("libp2p (gossip, yamux, noise)", ("libp2p/", "noise/", "multiaddr/", "Pubsub")),
    ("logging", ("logging/",)),
)


def _activity(stack: str) -> str:
    for name, markers in ACTIVITIES:
        if any(m in stack for m in markers):
            return name
    return "other (trio scheduler, sockets, ...)"


def summarise_profile(raw: Path, top: int = 10) -> list[str]:
    """py-spy raw output -> the node's CPU by activity, then the functions with the largest
    inclusive share."""
    total = 0
    by_activity: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        by_activity[_activity(stack)] += n
        for f in {f.split(":")[0] for f in stack.split(";")}:
            incl[f] += n
    if not total:
        return ["(no samples)"]
    lines = [f"{100 * n / total:5.1f}%  {a}" for a, n in by_activity.most_common()]
    skip = ("run (trio", "unrolled_run", "_run_module", "_run_code", "<module>", "main (node/cli",
            "cmd_run", "run_node", "_handle (hypercorn", "TrioManager", "FunctionTask", "BasicHost",
            "SwarmConn", "ASGIWrapper", "RPCApp.__call__", "RPCApp.http")
    rows = [(f, n) for f, n in incl.most_common(300) if not f.startswith(skip)]
    lines += ["heaviest functions (inclusive):"]
    lines += [f"{100 * n / total:5.1f}%  {f})" for f, n in rows[:top]]
    return lines


TASK_CPU_LINE = re.compile(r'^attrchain_task_cpu_seconds_total\{task="(.*)"\} (\S+)$')
DROP_LINE = re.compile(r'^attrchain_dropped_total\{reason="(.*)",where="(.*)"\} (\S+)$')


def node_readings(rpc_url: str) -> tuple[Counter[str], Counter[str]]:
    """A node's counters so far, from one /metrics scrape and ``net_info``: its event-loop CPU
    seconds by task (``rpc.task_cpu``; empty when off), and its counts of what it received per
    topic, directly or by gossip, and dropped by where and reason, and of the rounds its committed
    blocks took beyond the first."""
    base = rpc_url.rstrip("/")
    tasks: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    body = {"jsonrpc": "2.0", "id": 1, "method": "net_info", "params": {}}
    report = httpx.post(base, json=body, timeout=10.0).json()["result"]["direct_consensus"]
    for topic, row in report.get("received", {}).items():
        for path, n in row.items():
            counts[f"received {topic.split('/')[-2]} {path}"] += n
    for line in httpx.get(f"{base}/metrics", timeout=10.0).text.splitlines():
        if m := TASK_CPU_LINE.match(line):
            tasks[_short_task(m.group(1))] += float(m.group(2))  # type: ignore[assignment]
        elif m := DROP_LINE.match(line):
            counts[f"dropped {m.group(2)} {m.group(1)}"] += int(float(m.group(3)))
        elif line.startswith("attrchain_consensus_rounds_total "):
            counts["rounds beyond the first (blocks)"] += int(float(line.split()[1]))
    return tasks, counts


def change(before: list[Counter[str]], after: list[Counter[str]]) -> Counter[str]:
    """What the nodes' counters moved between two readings, summed over the nodes."""
    total: Counter[str] = Counter()
    for b, a in zip(before, after):
        for name, value in a.items():
            total[name] += value - b.get(name, 0)
    return total


def summarise_task_cpu(total: Counter[str], per: int, top: int = 15) -> list[str]:
    """Event-loop CPU by task (``change`` of the task readings): the largest ``top`` as
    milliseconds per ``per`` (e.g. per committed transaction) and share of the total."""
    whole = sum(total.values()) or 1.0
    lines = [f"{1000 * whole / max(per, 1):8.3f} ms  100.0%  every task (all nodes' loops)"]
    for name, seconds in total.most_common(top):
        lines.append(f"{1000 * seconds / max(per, 1):8.3f} ms  {100 * seconds / whole:5.1f}%  {name}")
    return lines


def summarise_counts(total: Counter[str]) -> list[str]:
    """The counts that moved (``change`` of the count readings), by name."""
    return [f"{n:9,d}  {name}" for name, n in sorted(total.items()) if n]


def _short_task(name: str) -> str:
    """``libp2p.stream_muxer.yamux.yamux.Yamux.handle_incoming`` -> ``yamux.Yamux.handle_incoming``."""
    parts = name.split(".")
    return ".".join(parts[-3:]) if len(parts) > 3 else name
