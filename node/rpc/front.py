"""The RPC front process (``rpc.front_process``, the default): HTTP, WebSocket, static files and
the door's refusals in a process of the node's own, so a client turned away at the door is
answered without the node's event loop and without its GIL (issue 15: within 50 ms while the node
is saturated; on the RPC thread the answer waited for the GIL, 60-190 ms at 7 and 16 validators
on 2 cores).

The node (``serve_front``, on its event loop) binds the RPC port, creates the door board and a
socket pair, and starts ``python -m node.rpc.front`` with the three file descriptors. The front
process runs hypercorn with the same ``RPCApp`` as the RPC thread (limits, connection cap, static
files, node/rpc/door.py), over a ``NodeLink`` backend instead of a Portal:

* **The door board**: a page of shared memory (memfd) the node's ``TxIntake.publish_door``
  writes after each admission and committed block (``DoorBoard``, a sequence lock around six
  numbers: the intake budget's tokens and their time, the backlog bound, the pool's size). The
  front reads it for each POST and refuses with the loop's own answer (``DoorSnapshot.refusal``).
* **The link**: msgpack frames on the socket pair (4-byte big-endian length, then
  ``[kind, ...]``, kinds below). Everything the door does not refuse is a CALL answered with a
  RESULT: ``MainSide.post`` / ``get`` run on the node's loop as they do for the thread. A
  WebSocket session runs on the node's loop too: WS_IN carries the client's ASGI messages there,
  WS_OUT the session's messages back, WS_END closes it. The front's counts (requests, errors and
  refusals at the door, connections over the cap) reach the node's /metrics in a COUNTS frame
  every COUNT_EVERY_S.
* **Scheduling**: the front runs in a session of its own (``setsid``). Linux's scheduler shares
  the CPU between sessions first (autogroups), then between the processes of a session; in the
  node's session the front waited for the node's busy share on every wake: at 16 validators on 2
  cores, a refusal spent p50 0.5 / p95 0.7 ms from its bytes' arrival to the app and p95 19 ms in
  the app, for 0.5 ms of CPU; in its own session, p95 4.7 ms in the app, and the bench's probe
  (in a session of its own too) got its answers in p50 11.5 / p95 28.6 ms instead of 31-37 /
  135-143 ms. A hostile client gains nothing from it: the front's own work per request is small
  and bounded by the connection cap, and everything else still runs on the node's loop.
* **Lifetime**: the front exits when the link closes (the node stopped or died: the socket pair's
  other end is closed by the kernel); the node ends the front when serve_rpc is cancelled (the
  link closed, then SIGKILL if it is still there after STOP_TIMEOUT_S). A front that exits on its
  own ends serve_rpc with an error, as a dead RPC thread does.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import signal
import socket
import struct
import sys
import time
from collections import Counter
from typing import Any

import msgpack
import trio
from hypercorn.trio import serve

from node.config import RPCConfig
from node.metrics import Metrics
from node.rpc.door import Door
from node.rpc.http import PortalClosed, RPCApp, hypercorn_config
from node.tx_intake import FRONT_ADMITTED, DoorSnapshot, IntakeSettings, TxIntake

log = logging.getLogger(__name__)

CALL, RESULT, FAIL, CANCEL, WS_OPEN, WS_IN, WS_OUT, WS_END, COUNTS, READY = range(10)
MAX_FRAME = 256 * 1024 * 1024  # a larger frame is a broken link
COUNT_EVERY_S = 0.1
START_TIMEOUT_S = 120.0  # the front's imports on a machine busy starting 16 nodes
STOP_TIMEOUT_S = 5.0
WS_QUEUE = 256  # messages waiting for one WebSocket session, either way; more: the session ends

# seq (odd while written), tokens, tokens_at, bound (-1: none), size, blocks_seen, share (-1: none), local
_SEQ = struct.Struct("<Q")
_FIELDS = struct.Struct("<ddqqqqq")
BOARD_SIZE = _SEQ.size + _FIELDS.size
READ_TRIES = 100


class DoorBoard:
    """The door snapshot in shared memory: written by the node's loop, read by the front process."""

    def __init__(self, fd: int | None = None) -> None:
        if fd is None:
            fd = os.memfd_create("attrchain-door", 0)
            os.ftruncate(fd, BOARD_SIZE)
        self.fd = fd
        self.mem = mmap.mmap(fd, BOARD_SIZE)

    def write(self, door: DoorSnapshot) -> None:
        seq = _SEQ.unpack_from(self.mem, 0)[0]
        _SEQ.pack_into(self.mem, 0, seq + 1)
        _FIELDS.pack_into(self.mem, _SEQ.size, door.tokens, door.tokens_at,
                          -1 if door.bound is None else door.bound, door.size, door.blocks_seen,
                          -1 if door.share is None else door.share, door.local)
        _SEQ.pack_into(self.mem, 0, seq + 2)

    def read(self) -> DoorSnapshot | None:
        """The last snapshot written whole; None before the first (the node decides then)."""
        for _ in range(READ_TRIES):
            before = _SEQ.unpack_from(self.mem, 0)[0]
            if before == 0:
                return None
            tokens, tokens_at, bound, size, blocks_seen, share, local = _FIELDS.unpack_from(self.mem, _SEQ.size)
            if before % 2 == 0 and _SEQ.unpack_from(self.mem, 0)[0] == before:
                return DoorSnapshot(tokens, tokens_at, None if bound < 0 else bound, size, blocks_seen,
                                    None if share < 0 else share, local)
        return None  # a writer that keeps writing: let the node decide

    def close(self) -> None:
        self.mem.close()
        os.close(self.fd)


class BoardIntake:
    """The intake as the front's Door sees it: refusals read from the board."""

    def __init__(self, board: DoorBoard, settings: IntakeSettings) -> None:
        self.board = board
        self.settings = settings

    def door_refusal(self) -> Any:
        door = self.board.read()
        return None if door is None else door.refusal(self.settings, time.monotonic())

    def door_room(self) -> int | None:
        door = self.board.read()
        return None if door is None else door.room()

    def over_room(self, held: int) -> Any:
        door = self.board.read()
        return None if door is None else door.over_room(held, self.settings)


class Frames:
    """Length-prefixed msgpack frames on a stream; sends are serialised by a lock."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._buf = bytearray()
        self._lock = trio.Lock()

    async def send(self, frame: list[Any]) -> None:
        data = msgpack.packb(frame, use_bin_type=True)
        async with self._lock:
            await self.stream.send_all(len(data).to_bytes(4, "big") + data)

    async def receive(self) -> list[Any] | None:
        """The next frame; None at the end of the stream."""
        while True:
            if len(self._buf) >= 4:
                n = int.from_bytes(self._buf[:4], "big")
                if n > MAX_FRAME:
                    raise ValueError(f"a link frame of {n} bytes")
                if len(self._buf) >= 4 + n:
                    frame = msgpack.unpackb(bytes(self._buf[4:4 + n]), raw=False)
                    del self._buf[:4 + n]
                    return frame  # type: ignore[no-any-return]
            chunk = await self.stream.receive_some(1 << 16)
            if not chunk:
                return None
            self._buf += chunk


def _headers(raw: list[Any]) -> list[tuple[bytes, bytes]]:
    return [(bytes(k), bytes(v)) for k, v in raw]


# ---- the node's side ------------------------------------------------------------------------
class FrontServer:
    """On the node's loop: answers the front's CALLs with ``MainSide`` and runs its WebSocket
    sessions (``MainSide``, node/rpc/server.py)."""

    def __init__(self, side: Any, frames: Frames, metrics: Metrics) -> None:
        self.side = side
        self.frames = frames
        self.metrics = metrics
        self.ready = trio.Event()
        self.cap_refused = 0
        self._calls: dict[int, trio.CancelScope] = {}
        self._sessions: dict[int, tuple[trio.MemorySendChannel[dict[str, Any]], trio.CancelScope]] = {}

    async def run(self, nursery: trio.Nursery) -> None:
        """Until the link ends (returns)."""
        while True:
            frame = await self.frames.receive()
            if frame is None:
                return
            kind = frame[0]
            if kind == CALL:
                scope = trio.CancelScope()
                self._calls[frame[1]] = scope
                nursery.start_soon(self._call, scope, frame[1], frame[2], frame[3:])
            elif kind == CANCEL:
                scope = self._calls.get(frame[1])
                if scope is not None:
                    scope.cancel()
            elif kind == WS_OPEN:
                send, receive = trio.open_memory_channel[dict[str, Any]](WS_QUEUE)
                scope = trio.CancelScope()
                self._sessions[frame[1]] = (send, scope)
                nursery.start_soon(self._session, scope, frame[1], receive)
            elif kind == WS_IN:
                session = self._sessions.get(frame[1])
                if session is not None:
                    try:
                        session[0].send_nowait(frame[2])
                    except (trio.WouldBlock, trio.ClosedResourceError):
                        session[1].cancel()  # a client sending faster than its session answers
            elif kind == COUNTS:
                self._count(frame[1])
            elif kind == READY:
                self.ready.set()

    def _count(self, rows: list[list[Any]]) -> None:
        m = self.metrics
        for row in rows:
            what, n = row[0], int(row[-1])
            if what == "request":
                for _ in range(n):
                    m.rpc_request(row[1])
            elif what == "error":
                for _ in range(n):
                    m.rpc_error(int(row[1]))
            elif what == "drop":
                m.drop(row[1], row[2], n)
            elif what == "cap":
                self.cap_refused = n

    async def _call(self, scope: trio.CancelScope, cid: int, name: str, args: list[Any]) -> None:
        try:
            with scope:
                if name == "post":
                    if args[1]:  # held against the door's room by the front (node/rpc/door.py)
                        FRONT_ADMITTED.set(True)
                    status, headers, body = await self.side.post(args[0])
                else:
                    status, headers, body = await self.side.get(args[0], args[1])
                await self.frames.send([RESULT, cid, status, headers, body])
                return
            await self.frames.send([FAIL, cid, "cancelled"])
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception as exc:  # noqa: BLE001 - the front answers 500, the node stays up
            log.exception("rpc call %s failed", name)
            try:
                await self.frames.send([FAIL, cid, repr(exc)])
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        finally:
            self._calls.pop(cid, None)

    async def _session(self, scope: trio.CancelScope, sid: int,
                       inbox: trio.MemoryReceiveChannel[dict[str, Any]]) -> None:
        async def send(msg: dict[str, Any]) -> None:
            await self.frames.send([WS_OUT, sid, msg])

        try:
            with scope:
                await self.side.websocket(inbox.receive, send)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.EndOfChannel):
            pass
        finally:
            self._sessions.pop(sid, None)
            try:
                await self.frames.send([WS_END, sid])
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


async def serve_front(side: Any, intake: TxIntake, metrics: Metrics, config: RPCConfig, host: str, port: int,
                      *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Bind the RPC port, start the front process on it and serve its link until cancelled."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    bound_port = listener.getsockname()[1]
    url = f"http://[{host}]:{bound_port}" if ":" in host else f"http://{host}:{bound_port}"
    board = DoorBoard()
    here, there = socket.socketpair()
    settings = intake.settings
    params = {"config": {k: getattr(config, k) for k in config.__dataclass_fields__},
              "intake": {k: getattr(settings, k) for k in settings.__dataclass_fields__},
              "link": there.fileno(), "board": board.fd, "listen": listener.fileno(),
              "log_level": logging.getLevelName(logging.getLogger().getEffectiveLevel())}
    try:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "node.rpc.front", json.dumps(params)],
            pass_fds=(there.fileno(), board.fd, listener.fileno()),
            start_new_session=True)  # its own scheduling group (module docstring: "Scheduling")
    finally:
        there.close()
        listener.close()
    intake.board = board
    intake.publish_door()
    frames = Frames(trio.SocketStream(trio.socket.from_stdlib_socket(here)))
    server = FrontServer(side, frames, metrics)
    metrics.drops.pull(lambda: [("rpc_connections", "cap", server.cap_refused)])
    try:
        async with trio.open_nursery() as nursery:
            async def link() -> None:
                await server.run(nursery)
                nursery.cancel_scope.cancel()
                raise RuntimeError(f"the RPC front process (pid {proc.pid}) closed its link")

            nursery.start_soon(link)
            with trio.move_on_after(START_TIMEOUT_S):
                await server.ready.wait()
            if not server.ready.is_set():
                raise RuntimeError(f"the RPC front process did not start within {START_TIMEOUT_S:.0f} s")
            log.info("rpc front process pid %d", proc.pid)
            task_status.started(url)
            await trio.sleep_forever()
    finally:
        intake.board = None
        with trio.CancelScope(shield=True):
            await frames.stream.aclose()
            with trio.move_on_after(STOP_TIMEOUT_S):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        board.close()


# ---- the front process's side ---------------------------------------------------------------
class FrontCounts:
    """The Metrics calls the front's RPCApp and Door make, counted here and sent to the node."""

    def __init__(self) -> None:
        self.rows: Counter[tuple[Any, ...]] = Counter()

    def rpc_request(self, method: str) -> None:
        self.rows[("request", method)] += 1

    def rpc_error(self, code: int) -> None:
        self.rows[("error", code)] += 1

    def drop(self, where: str, reason: str, n: int = 1) -> None:
        self.rows[("drop", where, reason)] += n

    def take(self) -> list[list[Any]]:
        rows, self.rows = self.rows, Counter()
        return [[*k, n] for k, n in rows.items()]


class NodeLink:
    """RPCApp's backend in the front process: calls and WebSocket sessions over the link."""

    def __init__(self, frames: Frames) -> None:
        self.frames = frames
        self._next = 0
        self._waiting: dict[int, tuple[trio.Event, list[Any]]] = {}
        self._sessions: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}

    def _id(self) -> int:
        self._next += 1
        return self._next

    async def run(self) -> None:
        """Deliver the node's frames until the link ends (returns)."""
        while True:
            frame = await self.frames.receive()
            if frame is None:
                return
            kind = frame[0]
            if kind in (RESULT, FAIL):
                waiting = self._waiting.pop(frame[1], None)
                if waiting is not None:
                    waiting[1].append(frame)
                    waiting[0].set()
            elif kind == WS_OUT:
                out = self._sessions.get(frame[1])
                if out is not None:
                    try:
                        out.send_nowait(frame[2])
                    except trio.WouldBlock:  # the client reads slower than its session writes
                        self._sessions.pop(frame[1], None)
                        out.close()
            elif kind == WS_END:
                out = self._sessions.pop(frame[1], None)
                if out is not None:
                    out.close()

    async def _call(self, *frame: Any) -> Any:
        cid = self._id()
        done, box = trio.Event(), []
        self._waiting[cid] = (done, box)
        try:
            await self.frames.send([CALL, cid, *frame])
            await done.wait()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise PortalClosed("the node has stopped") from None
        except BaseException:
            self._waiting.pop(cid, None)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                try:
                    await self.frames.send([CANCEL, cid])
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
            raise
        answer = box[0]
        if answer[0] == FAIL:
            return 500, [(b"content-type", b"application/json")], b'{"error":"internal error"}'
        return answer[2], _headers(answer[3]), answer[4]

    async def post(self, body: bytes, held: bool = False) -> Any:
        return await self._call("post", body, held)

    async def get(self, path: str, query: bytes) -> Any:
        return await self._call("get", path, query)

    async def websocket(self, receive: Any, send: Any) -> None:
        sid = self._id()
        out, inbox = trio.open_memory_channel[dict[str, Any]](WS_QUEUE)
        self._sessions[sid] = out
        disconnected = False
        try:
            await self.frames.send([WS_OPEN, sid])
            async with trio.open_nursery() as nursery:
                async def pump_in() -> None:
                    nonlocal disconnected
                    while True:
                        msg = await receive()
                        await self.frames.send([WS_IN, sid, msg])
                        if msg["type"] == "websocket.disconnect":
                            disconnected = True
                            return

                nursery.start_soon(pump_in)
                async for msg in inbox:
                    await send(msg)
                nursery.cancel_scope.cancel()
        finally:
            self._sessions.pop(sid, None)
            if not disconnected:
                with trio.CancelScope(shield=True), trio.move_on_after(1):
                    try:
                        await self.frames.send([WS_IN, sid, {"type": "websocket.disconnect", "code": 1006}])
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass


async def front_main(params: dict[str, Any]) -> None:
    config = RPCConfig(**params["config"])
    settings = IntakeSettings(**params["intake"])
    frames = Frames(trio.SocketStream(trio.socket.socket(fileno=params["link"])))
    counts = FrontCounts()
    link = NodeLink(frames)
    door = Door(BoardIntake(DoorBoard(params["board"]), settings), counts, config.max_batch,  # type: ignore[arg-type]
                config.max_page, reserve=True)
    app = RPCApp(config, counts, link, door)
    hc = hypercorn_config(f"fd://{params['listen']}", config)
    cap = hc.connection_cap
    assert cap is not None

    async def report_counts() -> None:
        sent_cap = 0
        while True:
            await trio.sleep(COUNT_EVERY_S)
            rows = counts.take()
            if cap.refused != sent_cap:
                sent_cap = cap.refused
                rows.append(["cap", sent_cap])
            if rows:
                try:
                    await frames.send([COUNTS, rows])
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return  # the node went away: link.run ends the process

    async with trio.open_nursery() as nursery:
        await nursery.start(serve, app, hc)  # type: ignore[arg-type]
        nursery.start_soon(report_counts)
        await frames.send([READY])
        await link.run()  # the node closed the link: stop
        nursery.cancel_scope.cancel()


def main(argv: list[str]) -> int:
    params = json.loads(argv[0])
    logging.basicConfig(level=params["log_level"], format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("hypercorn").setLevel(logging.WARNING)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the node stops us, by closing the link
    try:
        trio.run(front_main, params)
    except* (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
        pass  # the node went away in the middle of a send: nothing is left to serve
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
