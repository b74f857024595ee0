"""The gateway's cost: added latency per completion against calling the upstream directly, and
sustained completions/s through it with every completion submitted on chain.

    python bench/gateway.py [--clients 32] [--duration 10] [--keys 4] [--latency-n 300]

Starts real processes in a temporary folder: a dev node, the reference model server (`model serve`,
built from three contributions) as the upstream, and the gateway with --keys payer keys. Then:

1. latency: --latency-n sequential chat completions, alternately direct and through the gateway;
   p50/p99 of each and the added p50/p99;
2. throughput: --clients keep-alive clients for --duration seconds, first straight at the upstream
   (the ceiling for any proxy of it on this machine, same run), then through the gateway; then the
   time until the chain has committed every recorded infer (on-chain completions/s);
3. this machine's Ed25519 verify rate (one core), the reference every bench prints.

The load generator is thin (raw HTTP/1.1 over blocking sockets, one thread per client). The LAST line
is one JSON object. Targets (issue 18): added p50 <= 5 ms, >= 200 completions/s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sdk  # noqa: E402
from bench.node import ed25519_verify_per_s, free_port  # noqa: E402
from node.config import Home  # noqa: E402
from state.crypto import PrivateKey  # noqa: E402

TEXTS = ["Knead the dough for ten minutes then let it rise in a warm place for one hour before baking",
         "The lighthouse keeper climbed the spiral stairs every evening to light the great lamp above the sea",
         "Water the tomato plants early in the morning so the leaves dry before the midday sun arrives"]
MAX_DURATION_S = 60


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def request_bytes(port: int, i: int) -> bytes:
    words = TEXTS[i % 3].split()
    body = json.dumps({"model": "ref", "max_tokens": 16,
                       "messages": [{"role": "user", "content": " ".join(words[:4])}]}).encode()
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class Conn:
    """One keep-alive HTTP/1.1 connection; ``post`` returns (status, headers text)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def post(self, i: int) -> tuple[int, str]:
        self.sock.sendall(request_bytes(self.port, i))
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        text = head.decode("latin-1")
        length = 0
        for line in text.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v)
        while len(self.buf) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        self.buf = self.buf[length:]
        return int(text.split(" ", 2)[1]), text

    def close(self) -> None:
        self.sock.close()


def throughput(port: int, clients: int, duration: float) -> tuple[float, int, int]:
    """(completions/s, ok, errors) of ``clients`` threads for ``duration`` seconds."""
    ok = [0] * clients
    bad = [0] * clients
    stop = time.monotonic() + duration

    def run(k: int) -> None:
        conn = Conn(port)
        i = k
        while time.monotonic() < stop:
            status, _ = conn.post(i)
            if status == 200:
                ok[k] += 1
            else:
                bad[k] += 1
            i += clients
        conn.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(ok) / (time.monotonic() - start), sum(ok), sum(bad)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "node.cli", "--log-level", "WARNING", *args], cwd=ROOT,
                                stdout=fh, stderr=fh, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def wait(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cond():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def http_ok(url: str) -> bool:
    import httpx

    return httpx.get(url, timeout=2).status_code == 200


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--keys", type=int, default=4)
    ap.add_argument("--latency-n", type=int, default=300)
    args = ap.parse_args()
    args.duration = min(args.duration, MAX_DURATION_S)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp_s:
        tmp = Path(tmp_s)
        try:
            rpc_port, p2p_port, model_port, gw_port = (free_port() for _ in range(4))
            rpc = f"http://127.0.0.1:{rpc_port}"
            home = tmp / "node"
            subprocess.run([sys.executable, "-m", "node.cli", "node", "init", "--home", str(home), "--rpc-port",
                            str(rpc_port), "--p2p-port", str(p2p_port)], cwd=ROOT, check=True, capture_output=True)
            procs.append(spawn(["node", "run", "--home", str(home)], tmp / "node.log"))
            c = sdk.Client(rpc)
            wait(lambda: c.status()["sync_info"]["latest_block_height"] >= 1, 60, "the dev node")
            progress("dev node up; setting up a datanet, three contributions and a model")
            dev = sdk.load_key(Home(home).dev_key_file)
            owner = PrivateKey.generate()
            payers = [PrivateKey.generate() for _ in range(args.keys)]
            for k in (owner, *payers):
                c.submit(dev, "transfer", to=k.address, amount=10**13)
            datanet = c.submit(owner, "create_datanet", name="bench")["datanet_id"]
            for text in TEXTS:
                cid = c.submit(owner, "contribute", datanet=datanet, text=text, bond=0)["contribution_id"]
                c.submit(owner, "review", contribution=cid, accept=1)
            mdir = tmp / "model"
            subprocess.run([sys.executable, "-m", "node.cli", "model", "build", "--datanet", datanet, "--out",
                            str(mdir), "--rpc", rpc], cwd=ROOT, check=True, capture_output=True)
            model_id = c.submit(owner, "register_model", name="bench", datanets=[(datanet, 10_000)])["model_id"]
            key_args = []
            for i, k in enumerate(payers):
                k.save(tmp / f"payer{i}.json")
                key_args += ["--key", str(tmp / f"payer{i}.json")]
            procs.append(spawn(["model", "serve", str(mdir), "--port", str(model_port)], tmp / "model.log"))
            procs.append(spawn(["gateway", "--upstream", f"http://127.0.0.1:{model_port}/v1", "--model", model_id,
                                *key_args, "--port", str(gw_port), "--rpc", rpc, "--data", str(tmp / "gw"),
                                "--max-queue", "100000"], tmp / "gw.log"))
            wait(lambda: http_ok(f"http://127.0.0.1:{model_port}/v1/models"), 60, "the model server")
            wait(lambda: http_ok(f"http://127.0.0.1:{gw_port}/healthz"), 60, "the gateway")

            progress(f"latency: {args.latency_n} sequential completions each way")
            direct_c, gw_c = Conn(model_port), Conn(gw_port)
            direct: list[float] = []
            through: list[float] = []
            for i in range(args.latency_n):
                for conn, out in ((direct_c, direct), (gw_c, through)):
                    t = time.perf_counter()
                    status, head = conn.post(i)
                    out.append((time.perf_counter() - t) * 1000)
                    assert status == 200, head
                    if conn is gw_c:
                        assert "x-attrchain-inference" in head.lower()
            direct_c.close()
            gw_c.close()
            lat = {"direct_p50_ms": pct(direct, 0.5), "direct_p99_ms": pct(direct, 0.99),
                   "gateway_p50_ms": pct(through, 0.5), "gateway_p99_ms": pct(through, 0.99)}
            lat["added_p50_ms"] = lat["gateway_p50_ms"] - lat["direct_p50_ms"]
            lat["added_p99_ms"] = lat["gateway_p99_ms"] - lat["direct_p99_ms"]
            progress("latency: " + ", ".join(f"{k} {v:.2f}" for k, v in lat.items()))

            progress(f"throughput: {args.clients} clients x {args.duration:.0f} s, direct (ceiling)")
            ceiling, _, _ = throughput(model_port, args.clients, args.duration)
            progress(f"  upstream direct: {ceiling:.0f} completions/s")
            gw = f"http://127.0.0.1:{gw_port}/healthz"
            import httpx

            before = httpx.get(gw).json()["recorded"]
            start = time.monotonic()
            rate, ok, bad = throughput(gw_port, args.clients, args.duration)
            progress(f"  through the gateway: {rate:.0f} completions/s ({ok} ok, {bad} refused)")
            wait(lambda: httpx.get(gw).json()["queued"] == 0, 300, "the chain to take every infer")
            drained = time.monotonic() - start
            recorded = httpx.get(gw).json()["recorded"] - before
            committed = sum(c.account(k.address)["nonce"] for k in payers)
            chain_rate = recorded / drained
            progress(f"  on chain: {recorded} infers committed {drained:.1f} s after the start: {chain_rate:.0f}/s")
            verify = ed25519_verify_per_s()
            result = {
                "gateway_completions_per_s": round(rate, 1),
                "upstream_direct_completions_per_s": round(ceiling, 1),
                "on_chain_infers_per_s": round(chain_rate, 1),
                "infers_committed_total": committed,
                **{k: round(v, 2) for k, v in lat.items()},
                "clients": args.clients, "keys": args.keys, "duration_s": args.duration,
                "ed25519_verify_per_s": round(verify),
            }
            print(json.dumps(result))
            return 0
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    sys.exit(main())
