"""Launch and script ``p2p._testpeer`` processes from trio tests (used by tests/test_p2p_*.py).

Each peer is a real OS process on 127.0.0.1. Its stdout events are parsed as they arrive; tests
wait on conditions over those events with a time bound (``Cluster.wait_until``), never on sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class Notifier:
    """One event that any peer's reader sets on new output; waiters re-check their condition."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def poke(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        with trio.move_on_after(timeout):
            while not predicate():
                await self._event.wait()
            return
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class PeerProcess:
    """One ``p2p._testpeer`` process and everything it printed."""

    def __init__(
        self, index: int, port: int, peers: dict[int, int], notifier: Notifier, args: list[str]
    ) -> None:
        self.index = index
        self.port = port
        self.peers = peers
        self.notifier = notifier
        self.args = args
        self.events: list[dict[str, Any]] = []
        self.received: dict[str, list[tuple[int, bytes]]] = {}
        self.stderr = bytearray()
        self.proc: trio.Process | None = None
        self.peer_id = ""

    def command_line(self) -> list[str]:
        peer_args = [f"{i}:{p}" for i, p in sorted(self.peers.items()) if i != self.index]
        return [
            sys.executable,
            "-m",
            "p2p._testpeer",
            "--seed-index",
            str(self.index),
            "--port",
            str(self.port),
            "--peers",
            *peer_args,
            *self.args,
        ]

    async def start(self, nursery: trio.Nursery) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
        self.proc = await trio.lowlevel.open_process(
            self.command_line(),
            stdin=-1,  # subprocess.PIPE
            stdout=-1,
            stderr=-1,
            cwd=str(REPO_ROOT),
            env=env,
        )
        nursery.start_soon(self._read_stdout)
        nursery.start_soon(self._read_stderr)

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        buffer = b""
        async for chunk in self.proc.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                self._on_event(json.loads(line))
            self.notifier.poke()
        self.notifier.poke()

    def _on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if event["ev"] == "recv":
            self.received.setdefault(event["topic"], []).append(
                (event["from"], bytes.fromhex(event["data"]))
            )
        elif event["ev"] == "ready":
            self.peer_id = event["peer_id"]

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for chunk in self.proc.stderr:
            self.stderr += chunk

    def payloads(self, topic: str) -> list[bytes]:
        return [data for _, data in self.received.get(topic, [])]

    def has_event(self, ev: str, **fields: Any) -> bool:
        return any(e["ev"] == ev and all(e.get(k) == v for k, v in fields.items()) for e in self.events)

    def is_ready(self) -> bool:
        return self.has_event("ready")

    async def send(self, command: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        await self.proc.stdin.send_all(json.dumps(command).encode() + b"\n")

    async def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """Ask for and return a fresh status event."""
        seen = sum(1 for e in self.events if e["ev"] == "status")
        await self.send({"cmd": "status"})
        await self.notifier.wait_until(
            lambda: sum(1 for e in self.events if e["ev"] == "status") > seen,
            timeout,
            f"status of peer {self.index}",
        )
        return [e for e in self.events if e["ev"] == "status"][-1]

    async def request(self, request_id: int, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        await self.send({"cmd": "request", "id": request_id, **fields})
        await self.notifier.wait_until(
            lambda: self.has_event("response", id=request_id),
            timeout,
            f"response {request_id} at peer {self.index}",
        )
        return next(e for e in self.events if e["ev"] == "response" and e["id"] == request_id)

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        with trio.fail_after(timeout):
            return await self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)


class Cluster:
    """A set of test peers on loopback that all list each other as static peers."""

    def __init__(
        self, nursery: trio.Nursery, size: int, args: list[str], extra: dict[int, int]
    ) -> None:
        self.nursery = nursery
        self.notifier = Notifier()
        self.ports = dict(enumerate(free_ports(size)))
        # Peers outside the cluster (e.g. a service inside the test process) every peer lists.
        self.extra = extra
        self.args = args
        self.started: list[PeerProcess] = []
        self.peers: list[PeerProcess] = [self._make(i) for i in range(size)]

    def _make(self, index: int) -> PeerProcess:
        peer = PeerProcess(
            index, self.ports[index], {**self.ports, **self.extra}, self.notifier, self.args
        )
        self.started.append(peer)
        return peer

    async def start_all(self, timeout: float = 40.0) -> None:
        for peer in self.peers:
            await peer.start(self.nursery)
        await self.wait_until(lambda: all(p.is_ready() for p in self.peers), timeout, "all ready")

    async def restart(self, index: int, timeout: float = 40.0) -> PeerProcess:
        """Start a fresh process with the same identity and port as peer ``index``."""
        peer = self._make(index)
        self.peers[index] = peer
        await peer.start(self.nursery)
        await self.wait_until(peer.is_ready, timeout, f"restarted peer {index} ready")
        return peer

    async def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        await self.notifier.wait_until(predicate, timeout, what)

    async def wait_status(
        self, index: int, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        """Poll peer ``index``'s status until ``predicate`` holds; fail after ``timeout``."""
        with trio.move_on_after(timeout):
            while True:
                status = await self.peers[index].status()
                if predicate(status):
                    return status
                # Connection and subscription changes inside the process have no event visible
                # from here, so re-ask after a short pause (bounded by the timeout above).
                await trio.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for peer {index}: {what}")

    async def wait_meshed(self, topic: str, timeout: float = 30.0) -> None:
        """Wait until every peer sees every other peer subscribed to ``topic``."""
        everyone = set(range(len(self.peers)))
        for peer in self.peers:
            others = everyone - {peer.index}
            await self.wait_status(
                peer.index,
                lambda s: set(s["topic_peers"][topic]) == others,
                timeout,
                f"all peers subscribed to {topic}",
            )

    def kill_all(self) -> None:
        for peer in self.started:
            peer.kill()


@asynccontextmanager
async def cluster(
    size: int, args: list[str] | None = None, extra: dict[int, int] | None = None
) -> AsyncIterator[Cluster]:
    """Start peers ``0..size-1``, yield the cluster, kill whatever still runs on exit.

    ``extra`` maps more peer indices to ports: peers every process lists but that the cluster
    does not start (a ``P2PService`` run by the test itself, with ``_testpeer.seed_for(index)``).
    """
    async with trio.open_nursery() as nursery:
        group = Cluster(nursery, size, args or [], extra or {})
        try:
            await group.start_all()
            yield group
        finally:
            group.kill_all()
            # Reaping the killed processes ends their pipe readers, and with them the nursery.
            with trio.move_on_after(10):
                for peer in group.started:
                    if peer.proc is not None:
                        await peer.proc.wait()
