"""JSON-RPC throughput and latency of one node: `status` and `account` under 16 keep-alive clients.

    python bench/rpc.py [--clients 16] [--duration 5] [--url http://127.0.0.1:26657 --address 0x..]

Without --url it starts a real node (`attrchain node run --dev` in a temporary home, free ports) and
stops it afterwards. The load generator is deliberately thin (raw HTTP/1.1 over blocking sockets,
one thread per client, in its own process) so that it measures the server, not the client.
The LAST line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
MAX_DURATION_S = 60
STARTUP_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request_bytes(host: str, method: str, params: dict[str, object]) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    head = (f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


def read_response(sock: socket.socket, buf: bytearray) -> bytes:
    """One HTTP/1.1 response with Content-Length; leftover bytes stay in ``buf``."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end]).lower()
            i = head.find(b"content-length:")
            if i < 0:
                raise RuntimeError("response without content-length")
            j = head.find(b"\r\n", i)
            length = int(head[i + 15: j if j >= 0 else len(head)])
            total = end + 4 + length
            while len(buf) < total:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                buf += chunk
            body = bytes(buf[end + 4: total])
            del buf[:total]
            return body
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk


def run_load(host: str, port: int, payload: bytes, clients: int, duration: float) -> dict[str, float]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start_barrier = threading.Barrier(clients + 1)
    deadline = [0.0]

    def connect() -> socket.socket:
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def worker(i: int) -> None:
        sock = connect()
        buf = bytearray()
        lat = latencies[i]
        start_barrier.wait()
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= deadline[0]:
                    break
                try:
                    sock.sendall(payload)
                    body = read_response(sock, buf)
                except OSError:  # the server closed the connection: count it, reconnect
                    errors[i] += 1
                    sock.close()
                    sock, buf = connect(), bytearray()
                    continue
                lat.append(time.perf_counter() - t0)
                if b'"result"' not in body:
                    errors[i] += 1
        finally:
            sock.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + duration
    t_start = time.perf_counter()
    start_barrier.wait()
    for t in threads:
        t.join(duration + 30)
    elapsed = time.perf_counter() - t_start
    all_lat = sorted(x for lat in latencies for x in lat)
    n = len(all_lat)
    if n == 0:
        raise RuntimeError("no request completed")
    return {
        "requests": n,
        "errors": sum(errors),
        "rps": n / elapsed,
        "p50_ms": all_lat[n // 2] * 1000,
        "p99_ms": all_lat[min(n - 1, (n * 99) // 100)] * 1000,
        "mean_ms": statistics.fmean(all_lat) * 1000,
    }


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (Linux /proc), to report server cost per request."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int | None, host: str, port: int, payload: bytes, clients: int, duration: float) -> dict[str, float]:
    before = cpu_seconds(pid)
    res = run_load(host, port, payload, clients, duration)
    after = cpu_seconds(pid)
    if before is not None and after is not None:
        res["server_cpu_us"] = (after - before) * 1e6 / res["requests"]
    return res


def rpc_call(host: str, port: int, method: str, params: dict[str, object]) -> dict[str, object]:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(request_bytes(host, method, params))
        return json.loads(read_response(sock, bytearray()))  # type: ignore[no-any-return]


def wait_ready(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"node exited with code {proc.returncode} before serving RPC")
        try:
            if "result" in rpc_call(host, port, "health", {}):
                return
        except OSError:
            pass
        time.sleep(0.1)  # polling a starting process: there is no event to wait on across processes
    raise RuntimeError("node did not answer within the startup timeout")


def start_node(home: Path) -> tuple[subprocess.Popen[bytes], int]:
    rpc_port, p2p_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "node.cli", "--log-level", "WARNING", "node", "run", "--dev",
           "--home", str(home), "--rpc-port", str(rpc_port), "--p2p-port", str(p2p_port)]
    log = open(home.parent / "node.log", "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return proc, rpc_port


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per method (max 60)")
    ap.add_argument("--url", help="bench a running node instead of starting one")
    ap.add_argument("--address", help="account to query (default: the dev account of the started node)")
    ap.add_argument("--pid", type=int, help="with --url: the node's pid, to report its CPU time per request")
    args = ap.parse_args()
    duration = min(args.duration, MAX_DURATION_S)
    proc = None
    tmp = tempfile.TemporaryDirectory(prefix="attrchain-bench-rpc-")
    try:
        if args.url:
            u = urlparse(args.url)
            host, port = u.hostname or "127.0.0.1", u.port or 26657
            address = args.address
        else:
            home = Path(tmp.name) / "home"
            proc, port = start_node(home)
            host = "127.0.0.1"
            wait_ready(host, port, proc, STARTUP_TIMEOUT_S)
            address = json.loads((home / "dev.key").read_text())["address"]
        if not address:
            address = "0x" + "00" * 20
        status = rpc_call(host, port, "status", {})
        height = status.get("result", {}).get("sync_info", {}).get("latest_block_height")  # type: ignore[attr-defined]
        print(f"node at {host}:{port}, height {height}; {args.clients} clients, {duration:.0f} s per method")
        run_load(host, port, request_bytes(host, "status", {}), args.clients, min(1.0, duration))  # warm-up
        pid = proc.pid if proc is not None else args.pid
        st = measured(pid, host, port, request_bytes(host, "status", {}), args.clients, duration)
        print(f"status : {st['rps']:8.0f} req/s  p50 {st['p50_ms']:.2f} ms  p99 {st['p99_ms']:.2f} ms"
              f"  ({st['requests']} requests, {st['errors']} errors)"
              f"  server CPU {st.get('server_cpu_us', -1):.0f} us/request")
        ac = measured(pid, host, port, request_bytes(host, "account", {"address": address}), args.clients, duration)
        print(f"account: {ac['rps']:8.0f} req/s  p50 {ac['p50_ms']:.2f} ms  p99 {ac['p99_ms']:.2f} ms"
              f"  ({ac['requests']} requests, {ac['errors']} errors)"
              f"  server CPU {ac.get('server_cpu_us', -1):.0f} us/request")
        print(json.dumps({
            "status_rps": round(st["rps"], 1), "account_rps": round(ac["rps"], 1),
            "status_p50_ms": round(st["p50_ms"], 3), "status_p99_ms": round(st["p99_ms"], 3),
            "account_p50_ms": round(ac["p50_ms"], 3), "account_p99_ms": round(ac["p99_ms"], 3),
            "status_server_cpu_us": round(st.get("server_cpu_us", -1), 1),
            "account_server_cpu_us": round(ac.get("server_cpu_us", -1), 1),
            "clients": args.clients, "duration_s": duration, "errors": st["errors"] + ac["errors"],
            "cpus": os.cpu_count(),
        }))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
