"""A scriptable p2p peer for multi-process tests: ``python -m p2p._testpeer --seed-index i ...``.

It runs one ``P2PService`` on 127.0.0.1 and speaks JSON lines: commands on stdin, events on
stdout (``ready``, ``recv``, ``published``, ``response``, ``status``). It exits with status 0 on
SIGTERM, SIGINT or end of stdin. Test-only behaviour:
- every topic's validator rejects payloads starting with ``BAD`` and raises on ``RAISE``;
- the ``/attrchain/<chain>/sync/1`` handler answers ``echo:<x>`` with ``x``, ``bytes:<k>`` with
  ``pattern_bytes(k)``, ``sleep:<s>`` after ``s`` seconds, ``fail`` with a rejection and
  ``crash`` with an internal error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import sys
from typing import Any

import trio

from p2p.errors import P2PError, RequestRejected
from p2p.identity import PeerSpec, loopback_addr, peer_id_from_seed
from p2p.reqresp import ReqRespLimits
from p2p.service import P2PService
from p2p.topics import evidence_topic, proposals_topic, sync_protocol, txs_topic, votes_topic

CHAIN_ID = "p2ptest"
TOPICS = {
    "txs": txs_topic(CHAIN_ID),
    "proposals": proposals_topic(CHAIN_ID),
    "votes": votes_topic(CHAIN_ID),
    "evidence": evidence_topic(CHAIN_ID),
}
SYNC = sync_protocol(CHAIN_ID)


def seed_for(index: int) -> bytes:
    """The deterministic 32-byte identity seed of test peer ``index``."""
    return hashlib.sha256(b"attrchain-p2p-testpeer" + index.to_bytes(8, "big")).digest()


def peer_id_for(index: int) -> str:
    return peer_id_from_seed(seed_for(index))


def spec_for(index: int, port: int) -> PeerSpec:
    return PeerSpec(peer_id_for(index), loopback_addr(port, peer_id_for(index)))


def pattern_bytes(size: int) -> bytes:
    """``size`` bytes of sha256(0) || sha256(1) || ... (counters as 8-byte big-endian)."""
    blocks = (size + 31) // 32
    return b"".join(hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(blocks))[:size]


def validate(data: bytes) -> bool:
    if data.startswith(b"RAISE"):
        raise RuntimeError("test validator raising on purpose")
    return not data.startswith(b"BAD")


async def handle_sync(peer_id: str, request: bytes) -> bytes:
    if request.startswith(b"echo:"):
        return request[5:]
    if request.startswith(b"bytes:"):
        return pattern_bytes(int(request[6:]))
    if request.startswith(b"sleep:"):
        await trio.sleep(float(request[6:]))
        return b"slept"
    if request == b"fail":
        raise RequestRejected("asked to fail")
    if request == b"crash":
        raise ValueError("handler crashing on purpose")
    raise RequestRejected(f"unknown test request {request[:20]!r}")


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class TestPeer:
    def __init__(self, args: argparse.Namespace) -> None:
        peers = [spec_for(int(i), int(p)) for i, p in (item.split(":") for item in args.peers)]
        self.index = args.seed_index
        self.service = P2PService(
            seed=seed_for(args.seed_index),
            listen_port=args.port,
            peers=peers,
            topics=list(TOPICS.values()),
            validators={topic: validate for topic in TOPICS.values()},
            request_handlers={SYNC: handle_sync},
            inbox_size=args.inbox,
            limits=ReqRespLimits(max_response_bytes=args.max_response),
        )
        self.index_of = {peer_id_for(int(i)): int(i) for i, _ in (x.split(":") for x in args.peers)}

    async def print_inbox(self, short: str) -> None:
        async for received in self.service.subscribe(TOPICS[short]):
            emit(
                {
                    "ev": "recv",
                    "topic": short,
                    "from": self.index_of.get(received.sender, -1),
                    "data": received.data.hex(),
                }
            )

    async def publish_series(self, cmd: dict[str, Any]) -> None:
        topic = TOPICS[cmd["topic"]]
        count, size, burst = int(cmd["count"]), int(cmd.get("size", 64)), int(cmd.get("burst", 1))
        interval = burst / float(cmd.get("rate", 50))
        for i in range(count):
            head = f"{cmd['prefix']}-{i:06d}-".encode()
            try:
                await self.service.publish(topic, head + b"x" * max(0, size - len(head)))
            except P2PError as error:
                emit({"ev": "publish_error", "error": type(error).__name__, "message": str(error)})
                return
            if (i + 1) % burst == 0:
                await trio.sleep(interval)  # pacing the load, not synchronisation
        emit({"ev": "published", "prefix": cmd["prefix"], "count": count})

    async def request(self, cmd: dict[str, Any]) -> None:
        event: dict[str, Any] = {"ev": "response", "id": cmd["id"]}
        try:
            response = await self.service.request(
                peer_id_for(int(cmd["peer"])),
                cmd.get("protocol", SYNC),
                bytes.fromhex(cmd["hex"]),
                timeout=float(cmd.get("timeout", 10)),
                max_response_bytes=cmd.get("max_response"),
            )
        except P2PError as error:
            event.update(ok=False, error=type(error).__name__, message=str(error))
        else:
            event.update(ok=True, len=len(response), sha256=hashlib.sha256(response).hexdigest())
        emit(event)

    async def execute(self, cmd: dict[str, Any], nursery: trio.Nursery) -> None:
        kind = cmd["cmd"]
        if kind == "publish":
            nursery.start_soon(self.publish_series, cmd)
        elif kind == "publish_raw":
            try:
                await self.service.publish(TOPICS[cmd["topic"]], bytes.fromhex(cmd["hex"]))
            except P2PError as error:
                emit({"ev": "publish_error", "error": type(error).__name__, "message": str(error)})
            else:
                emit({"ev": "published", "prefix": cmd.get("tag", "raw"), "count": 1})
        elif kind == "request":
            nursery.start_soon(self.request, cmd)
        elif kind == "status":
            indices = self.index_of.get
            connected = sorted(indices(p, -1) for p in self.service.connected_peers())
            topic_peers = {
                short: sorted(indices(p, -1) for p in self.service.topic_peers(topic))
                for short, topic in TOPICS.items()
            }
            emit(
                {
                    "ev": "status",
                    "connected": connected,
                    "topic_peers": topic_peers,
                    "stats": self.service.stats(),
                }
            )
        else:
            emit({"ev": "error", "message": f"unknown command {kind!r}"})

    async def read_commands(self, nursery: trio.Nursery, done: trio.CancelScope) -> None:
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        buffer = b""
        async with stdin:
            while True:
                chunk = await stdin.receive_some(65536)
                if not chunk:
                    done.cancel()  # the test harness went away: exit cleanly
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        await self.execute(json.loads(line), nursery)

    async def main(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.service.run)
                for short in TOPICS:
                    nursery.start_soon(self.print_inbox, short)
                nursery.start_soon(self.read_commands, nursery, nursery.cancel_scope)
                emit({"ev": "ready", "index": self.index, "peer_id": self.service.peer_id})
                async for signum in signals:
                    logging.getLogger(__name__).info("signal %d: shutting down", signum)
                    nursery.cancel_scope.cancel()
                    break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m p2p._testpeer")
    parser.add_argument("--seed-index", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--peers", nargs="*", default=[], help="index:port of every static peer")
    parser.add_argument("--inbox", type=int, default=4096)
    parser.add_argument("--max-response", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    trio.run(TestPeer(args).main)
    return 0


if __name__ == "__main__":
    sys.exit(main())
