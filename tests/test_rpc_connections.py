"""A real node process against 500 slow RPC sockets (issue 12, A6).

Half of the sockets send half a request line and headers, half send complete headers and a few
bytes of a longer body; 100 of them are then closed by the client early. While they are open the
node holds at most ``rpc.max_open_connections`` of them (the others are answered 503 and closed);
after ``rpc.read_timeout_s`` the node closes every half-sent request itself. Afterwards the node
process has no more file descriptors than before and no socket of its RPC port in CLOSE-WAIT
(read from /proc/<pid>/fd and /proc/net/tcp), and it still answers and commits."""

from __future__ import annotations

import os
import select
import socket
import time
from pathlib import Path

import pytest

from devnet import launcher
from e2e_kit import FAST
from netkit import free_base_port, height_of, rpc, stop_all, wait_until

pytestmark = pytest.mark.multinode

SOCKETS = 500
CAP = 64
READ_TIMEOUT_S = 2
CLOSE_WAIT = "08"  # the st column of /proc/net/tcp


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def close_wait_on(port: int) -> int:
    """Sockets in CLOSE-WAIT whose local port is ``port`` (IPv4, this network namespace)."""
    count = 0
    with open("/proc/net/tcp") as fh:
        next(fh)
        for line in fh:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == CLOSE_WAIT:
                count += 1
    return count


def open_slow(port: int, index: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if index % 2:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    else:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"jsonrpc\":")
    sock.setblocking(False)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed its side (EOF or reset; a 503/408 answer may come first)."""
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_500_slow_sockets_leave_nothing_behind(tmp_path: Path) -> None:
    layout = launcher.create(tmp_path / "devnet", 1, free_base_port(), params=FAST)
    spec = layout.nodes[0]
    home = layout.home(spec)
    cfg = home.load_config()
    cfg.rpc.max_open_connections = CAP
    cfg.rpc.read_timeout_s = READ_TIMEOUT_S
    home.write_config(cfg)
    sockets: list[socket.socket] = []
    try:
        launcher.start_node(layout, spec)
        wait_until(lambda: (height_of(spec) or 0) >= 2, 60, "the node to commit height 2")
        pid = launcher.read_pid(layout, spec)
        assert pid is not None
        # let keep-alive connections of the status polls above expire first
        wait_until(lambda: close_wait_on(spec.rpc_port) == 0, 10, "no CLOSE-WAIT before the test")
        baseline = fd_count(pid)

        peak = 0
        for i in range(SOCKETS):
            sockets.append(open_slow(spec.rpc_port, i))
            if i % 50 == 49:
                peak = max(peak, fd_count(pid))
        opened = time.monotonic()
        for sock in sockets[:100]:  # clients that give up first: the server must close its side
            sock.close()
        live = sockets[100:]
        while time.monotonic() - opened < READ_TIMEOUT_S / 2:
            peak = max(peak, fd_count(pid))
            select.select([], [], [], 0.05)  # sample the fd count for a short while
        assert peak <= baseline + CAP + 8, f"node held {peak - baseline} extra fds for {SOCKETS} sockets, cap {CAP}"

        # every half-sent request is closed by the server after the read timeout
        deadline = time.monotonic() + READ_TIMEOUT_S + 15
        pending = list(live)
        while pending and time.monotonic() < deadline:
            select.select(pending, [], [], 0.5)
            pending = [s for s in pending if not closed_by_server(s)]
        assert not pending, f"{len(pending)} slow sockets still open {READ_TIMEOUT_S + 15} s after the read timeout"
        for sock in live:
            sock.close()
        wait_until(lambda: fd_count(pid) <= baseline + 2 and close_wait_on(spec.rpc_port) == 0, 15,
                   "the node's fds back to the baseline and no CLOSE-WAIT on its RPC port")

        # the node still serves RPC and commits
        height = height_of(spec) or 0
        wait_until(lambda: (height_of(spec) or 0) > height, 30, "the node to commit again")
        assert rpc(spec, "health") == {}
    finally:
        for sock in sockets:
            sock.close()
        stop_all(layout)
