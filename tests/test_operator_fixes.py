"""Issue 16 point 6: what an operator meets first, each as one clear line (the real CLI, subprocesses)."""

from __future__ import annotations

import http.server
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

from devnet.launcher import free_base_port, is_alive

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "ERROR" in line or line.startswith("error:")]


def test_a_port_in_use_is_one_line_naming_it(tmp_path: Path) -> None:
    base = free_base_port(1)
    p2p, rpc = base + 6, base + 7
    assert cli("node", "init", "--home", str(tmp_path / "n"), "--p2p-port", str(p2p), "--rpc-port", str(rpc)).returncode == 0
    # another libp2p node holds the p2p port with SO_REUSEPORT, as py-libp2p listens: a second node
    # must not share it silently
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", p2p))
        other.listen()
        r = cli("node", "run", "--home", str(tmp_path / "n"))
    assert r.returncode == 1
    assert len(error_lines(r.stderr)) == 1 and f"p2p port {p2p}" in r.stderr and "already in use" in r.stderr
    assert "Traceback" not in r.stderr and "ExceptionGroup" not in r.stderr
    with socket.socket() as other:
        other.bind(("127.0.0.1", rpc))
        other.listen()
        r = cli("node", "run", "--home", str(tmp_path / "n"))
    assert r.returncode == 1
    assert len(error_lines(r.stderr)) == 1 and f"RPC port {rpc}" in r.stderr
    # a fixed validator link port (docs/p2p.md "Validator links") taken: named with its setting
    link = base + 8
    assert cli("config", "set", "p2p.validator_link_port", str(link), "--home", str(tmp_path / "n")).returncode == 0
    with socket.socket() as other:
        other.bind(("127.0.0.1", link))
        other.listen()
        r = cli("node", "run", "--home", str(tmp_path / "n"))
    assert r.returncode == 1
    assert len(error_lines(r.stderr)) == 1 and f"validator link port {link}" in r.stderr, r.stderr
    assert "[p2p] validator_link_port" in r.stderr and "Traceback" not in r.stderr


def test_log_level_is_validated() -> None:
    r = cli("--log-level", "verbose", "genesis", "hash")
    assert r.returncode == 2 and "invalid choice: 'VERBOSE'" in r.stderr
    assert len([line for line in r.stderr.splitlines() if "error" in line]) == 1


def test_third_party_loggers_stay_quiet_at_info() -> None:
    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    code = ("import sys, logging, httpx; from node.cli import setup_logging; setup_logging(sys.argv[1]); "
            f"httpx.get({url!r}); logging.getLogger('attrchain').info('own line')")
    try:
        info = subprocess.run([sys.executable, "-c", code, "INFO"], capture_output=True, text=True, cwd=ROOT, timeout=60)
        debug = subprocess.run([sys.executable, "-c", code, "DEBUG"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    finally:
        server.shutdown()
    assert "own line" in info.stderr and "HTTP Request" not in info.stderr
    assert "HTTP Request" in debug.stderr  # still there when asked for


def test_query_method_help_lists_its_parameters() -> None:
    r = cli("query", "account", "--help")
    assert r.returncode == 0
    assert re.search(r"address\s+\(.*required\)", r.stdout), r.stdout
    r = cli("query", "blockchain", "--help")
    assert "min_height" in r.stdout and "max_height" in r.stdout


def test_a_failed_devnet_up_stops_the_nodes_it_started(tmp_path: Path) -> None:
    base = free_base_port(1)
    r = cli("devnet", "up", "--validators", "1", "--dir", str(tmp_path / "dn"), "--base-port", str(base),
            "--timeout", "0")
    assert r.returncode == 1 and "error:" in r.stderr
    pids = [int(p) for p in re.findall(r"started node0 \(pid (\d+)\)", r.stderr)]
    assert pids and "stopped node0 (devnet up failed)" in r.stderr
    assert not is_alive(pids[0]) and not (tmp_path / "dn" / "node0" / "node.pid").exists()
