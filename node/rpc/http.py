"""The HTTP side of the RPC: the ASGI app hypercorn serves, its connection cap and limits, in the
RPC front process (node/rpc/front.py) or on the RPC thread (node/rpc/server.py).

``RPCApp`` accepts and caps connections, parses HTTP, reads whole bodies, enforces the limits,
serves the explorer's static files and answers refusals at the transaction door
(node/rpc/door.py). Everything that reads the node goes to its ``Backend``. This module imports
neither the dispatcher nor the method table: the front process starts without them (a node start
of the devnet and of every multi-process test pays the front's imports once more).

Connection limits (docs/security.md): at most ``rpc.max_open_connections`` connections are served
at once; one more is answered ``503`` and closed at once. ``rpc.read_timeout_s`` bounds a
half-sent request: its headers must be complete that long after the connection opened (or after
the previous response: hypercorn's keep-alive timeout, a total deadline, so dripping one byte at a
time does not extend it), and its body may not pause longer than that (408, connection closed).
Waiting for a response (``broadcast_tx_commit``) and WebSocket subscriptions are not cut by it.
hypercorn (0.17/0.18) has no connection cap, so the cap wraps hypercorn's per-connection
``TCPServer``: the wrapper is installed once and acts only for a config carrying a ``ConnectionCap``.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Protocol

import trio
import hypercorn.trio.run as hypercorn_run
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.tcp_server import TCPServer

from node.config import RPCConfig
from node.rpc.door import FORWARD, Door
from node.rpc.errors import LimitExceeded, error_response
from node.rpc.jsonrpc import dumps

log = logging.getLogger(__name__)

ASGISend = Callable[[dict[str, Any]], Awaitable[None]]
ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]

JSON_HEADERS = [(b"content-type", b"application/json")]
KEEP_ALIVE_REQUESTS = 1_000_000  # hypercorn's default (1,000) would drop busy clients' connections
REFUSE_TIMEOUT_S = 1.0
BACKLOG = 1024
MAX_QUERY = 8192


class PortalClosed(Exception):
    pass


class Backend(Protocol):
    """Where RPCApp sends what needs the node: ``ThreadBackend`` (the node's loop through a
    Portal, this process) or ``front.NodeLink`` (the node process, from the RPC front process).
    Each raises PortalClosed when the node is gone."""

    async def post(self, body: bytes, held: bool = False) -> "Answer":
        """``held``: the door held these transactions against its room (node/rpc/door.py)."""

    async def get(self, path: str, query: bytes) -> "Answer": ...

    async def websocket(self, receive: ASGIReceive, send: ASGISend) -> None: ...


class RPCApp:
    """The ASGI application, on the RPC thread's loop (or the RPC front process's). What needs the
    node (JSON-RPC calls, URI calls, /metrics, WebSocket sessions) goes to ``backend``."""

    def __init__(self, config: RPCConfig, metrics: Any, backend: Backend, door: Door) -> None:
        self.config = config
        self.metrics = metrics
        self.backend = backend
        self.door = door
        self.max_body = config.max_body_bytes
        self.static: dict[str, tuple[bytes, str]] = {}
        if config.explorer:
            from explorer import load_static

            self.static = load_static()

    async def __call__(self, scope: dict[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "websocket":
            if scope["path"] != "/websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.websocket(receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)

    async def websocket(self, receive: ASGIReceive, send: ASGISend) -> None:
        try:
            await self.backend.websocket(receive, send)
        except PortalClosed:
            pass

    async def lifespan(self, receive: ASGIReceive, send: ASGISend) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope: dict[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        method = scope["method"]
        path = scope["path"]
        if method == "POST" and path == "/":
            await self.post(scope, receive, send)
        elif method == "GET" and path in self.static:
            body, kind = self.static[path]
            await _respond(send, 200, body, [(b"content-type", kind.encode()), (b"cache-control", b"no-cache"),
                                             (b"x-content-type-options", b"nosniff")])
        elif method == "GET" and path == "/metrics" or (
                method == "GET" and path.startswith("/") and path != "/" and "/" not in path[1:]):
            query = scope.get("query_string", b"")
            if path != "/metrics" and len(query) > MAX_QUERY:
                await self.too_large(send, len(query))
                return
            await self.forward(send, self.backend.get, path, query)
        elif path == "/":
            await _respond(send, 405, b'{"error":"use POST for JSON-RPC"}', JSON_HEADERS + [(b"allow", b"POST")])
        else:
            await _respond(send, 404, b'{"error":"not found"}', JSON_HEADERS)

    async def forward(self, send: ASGISend, afn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        try:
            status, headers, body = await afn(*args)
        except PortalClosed:
            status, headers, body = 503, JSON_HEADERS + [(b"connection", b"close")], b'{"error":"node stopping"}'
        await _respond(send, status, body, headers)

    async def post(self, scope: dict[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await self.too_large(send, declared)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            with trio.move_on_after(self.config.read_timeout_s) as waited:
                msg = await receive()
            if waited.cancelled_caught:
                await _respond(send, 408, b'{"error":"request body stalled"}',
                               JSON_HEADERS + [(b"connection", b"close")])
                return
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self.too_large(send, size)
                return
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        answer, held = self.door.admit(body)
        if answer is FORWARD:
            try:
                await self.forward(send, self.backend.post, body, held > 0)
            finally:
                self.door.release(held)
        elif answer is None:
            await _respond(send, 204, b"", [])
        else:
            await _respond(send, 200, answer, JSON_HEADERS)

    async def too_large(self, send: ASGISend, size: int) -> None:
        err = LimitExceeded(f"request body of {size}+ bytes exceeds the limit of {self.max_body}")
        self.metrics.rpc_error(err.code)
        await _respond(send, 413, dumps(error_response(None, err)), JSON_HEADERS + [(b"connection", b"close")])


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def _content_length(scope: dict[str, Any]) -> int | None:
    for k, v in scope["headers"]:
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


async def _respond(send: ASGISend, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": headers + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class ConnectionCap:
    """How many RPC connections are open, against ``rpc.max_open_connections``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.refused = 0

    def try_acquire(self) -> bool:
        if self.open >= self.limit:
            self.refused += 1
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1


class CappedHypercornConfig(HypercornConfig):
    connection_cap: ConnectionCap | None = None


def _refusal_bytes() -> bytes:
    body = b'{"error":"too many open connections, retry later"}'
    head = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n")
    return head + body


class CappedTCPServer(TCPServer):
    """hypercorn's per-connection server, refusing connections over the config's cap."""

    async def run(self) -> None:
        cap = getattr(self.config, "connection_cap", None)
        if cap is None:
            await super().run()
            return
        if not cap.try_acquire():
            with trio.move_on_after(REFUSE_TIMEOUT_S):
                try:
                    await self.stream.send_all(_refusal_bytes())
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
            with trio.CancelScope(shield=True):
                await self.stream.aclose()
            if cap.refused == 1 or cap.refused % 1000 == 0:
                log.warning("rpc: %d connection(s) refused: %d open, the cap (rpc.max_open_connections)",
                            cap.refused, cap.open)
            return
        try:
            await super().run()
        finally:
            cap.release()


# hypercorn looks the class up in this module when a connection arrives (see the module docstring)
hypercorn_run.TCPServer = CappedTCPServer  # type: ignore[misc]


def hypercorn_config(bind: str, config: RPCConfig) -> HypercornConfig:
    """``bind``: "host:port", "[v6]:port" or "fd://N" (a bound socket handed over)."""
    hc = CappedHypercornConfig()
    hc.connection_cap = ConnectionCap(config.max_open_connections)
    hc.bind = [bind]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    # the deadline for a request's headers, counted from the connection's start or last response
    hc.keep_alive_timeout = config.read_timeout_s
    hc.keep_alive_max_requests = KEEP_ALIVE_REQUESTS
    hc.read_timeout = None  # a per-read timeout would also cut requests waiting for their answer
    hc.backlog = BACKLOG
    hc.graceful_timeout = 1.0
    hc.websocket_max_message_size = config.max_body_bytes
    hc.include_server_header = False
    return hc
