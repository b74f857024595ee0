"""The HTTP/WebSocket server: an ASGI app served by hypercorn's trio worker, in the RPC front
process (``rpc.front_process``, node/rpc/front.py) or on the RPC's own thread.

``serve_rpc`` is called on the node's event loop. ``RPCApp`` accepts and caps connections, parses
HTTP, reads whole bodies, enforces the limits below, serves the explorer's static files and
answers refusals at the transaction door (node/rpc/door.py). Everything that reads the node (the
JSON-RPC dispatcher and its handlers, URI calls, /metrics, WebSocket sessions) runs on the node's
loop in ``MainSide``, reached through RPCApp's backend: ``front.NodeLink`` from the front process
(a socket pair), or ``ThreadBackend`` from the RPC thread (docs/rpc.md).

On the thread (``RPCThread``, its own trio loop), the door reads ``TxIntake.door``, a snapshot the
node's loop replaces whole, and the backend is a ``Portal``: one ``run_sync_soon`` hop to the
node's loop, the call run as a task of serve_rpc's nursery, one hop back with the outcome; a
WebSocket session's receive/send are bridged back to the RPC loop through the RPC loop's Portal.
When serve_rpc is cancelled, it cancels the RPC loop, joins the thread (the listening socket is
closed when it returns) and the calls still running on the node's loop are cancelled with its
nursery.

Routes: POST / (JSON-RPC, batches allowed), GET / and GET /explorer/<file> (the web explorer,
docs/explorer.md, unless ``rpc.explorer`` is false), GET /<method>?name=value (CometBFT-style URI calls,
each value read as JSON when it parses, else as a string), GET /websocket (JSON-RPC over
WebSocket with subscriptions), GET /metrics (Prometheus). Bodies over ``max_body_bytes`` get
HTTP 413 before they are read.

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
import threading
from functools import partial
from typing import Any, Awaitable, Callable, Protocol
from urllib.parse import parse_qsl

import outcome
import trio
import hypercorn.trio.run as hypercorn_run
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from hypercorn.trio.tcp_server import TCPServer

from node.config import RPCConfig
from node.context import NodeContext
from node.metrics import METRICS_CONTENT_TYPE, Metrics
from node.rpc.dispatch import Dispatcher, dumps, parse_json
from node.rpc.env import RPCEnv
from node.rpc.errors import LimitExceeded, ParseError, error_response
from node.rpc.tx_methods import AsyncSubmitter
from node.rpc.door import FORWARD, Door
from node.rpc.websocket import WebSocketSession
from node.tx_intake import TxIntake

log = logging.getLogger(__name__)

ASGISend = Callable[[dict[str, Any]], Awaitable[None]]
ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]

JSON_HEADERS = [(b"content-type", b"application/json")]
KEEP_ALIVE_REQUESTS = 1_000_000  # hypercorn's default (1,000) would drop busy clients' connections
REFUSE_TIMEOUT_S = 1.0
BACKLOG = 1024
MAX_QUERY = 8192
SWITCH_INTERVAL_S = 0.001  # sys.setswitchinterval of a node process (node/cli_node.py; default 0.005)


class Portal:
    """Runs async functions in another thread's trio loop, as tasks of a nursery of that loop.

    One hop each way: the call is handed over with ``run_sync_soon`` of the other loop's token and
    its outcome comes back the same way. No worker thread is involved, and the task lives in the
    other loop's nursery: it is cancelled when that nursery is (shutdown), or when the caller is
    cancelled (a closed connection, the RPC loop stopping)."""

    def __init__(self, token: trio.lowlevel.TrioToken, nursery: trio.Nursery) -> None:
        self.token = token
        self.nursery = nursery

    async def call(self, afn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        here = trio.lowlevel.current_trio_token()
        done = trio.Event()
        box: list[outcome.Outcome[Any]] = []
        there: dict[str, Any] = {}  # touched only on the other loop's thread

        def deliver(result: outcome.Outcome[Any]) -> None:  # on this loop
            if not box:
                box.append(result)
                done.set()

        def reply(result: outcome.Outcome[Any]) -> None:  # on the other loop
            try:
                here.run_sync_soon(deliver, result)
            except trio.RunFinishedError:
                pass

        async def runner() -> None:  # on the other loop
            with trio.CancelScope() as scope:
                if there.get("cancelled"):
                    scope.cancel()
                there["scope"] = scope
                try:
                    result: outcome.Outcome[Any] = outcome.Value(await afn(*args))
                except Exception as exc:
                    result = outcome.Error(exc)
                reply(result)
                return
            reply(outcome.Error(PortalClosed("the node's event loop is shutting down")))

        def start() -> None:  # on the other loop
            try:
                self.nursery.start_soon(runner)
            except RuntimeError:  # the nursery has closed
                reply(outcome.Error(PortalClosed("the node's event loop is shutting down")))

        def cancel() -> None:  # on the other loop
            there["cancelled"] = True
            scope = there.get("scope")
            if scope is not None:
                scope.cancel()

        try:
            self.token.run_sync_soon(start)
        except trio.RunFinishedError:
            raise PortalClosed("the other event loop has stopped") from None
        try:
            await done.wait()
        except BaseException:
            try:
                self.token.run_sync_soon(cancel)
            except trio.RunFinishedError:
                pass
            raise
        return box[0].unwrap()


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


class MainSide:
    """What the RPC thread forwards, run on the node's event loop: the dispatcher and every read of
    the node (handlers touch the chain, the mempool and the event bus: single-threaded)."""

    def __init__(self, env: RPCEnv) -> None:
        self.env = env
        self.dispatcher = Dispatcher(env)

    async def post(self, body: bytes) -> Answer:
        answer = await self.dispatcher.handle_body(body)
        if answer is None:
            return 204, [], b""
        return 200, JSON_HEADERS, answer

    async def get(self, path: str, query: bytes) -> Answer:
        if path == "/metrics":
            self.refresh_metrics()
            return 200, [(b"content-type", METRICS_CONTENT_TYPE.encode())], self.env.metrics.render()
        params: dict[str, Any] = {}
        for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            try:
                params[k] = parse_json(v)
            except ParseError:  # not JSON: the text itself (0x.., latest)
                params[k] = v
        req = {"jsonrpc": "2.0", "id": -1, "method": path[1:], "params": params}
        answer = await self.dispatcher.handle_one(req)
        return 200, JSON_HEADERS, dumps(answer)

    async def websocket(self, receive: ASGIReceive, send: ASGISend) -> None:
        await WebSocketSession(self.env, self.dispatcher).run(receive, send)

    def refresh_metrics(self) -> None:
        """Pull-style gauges, read from the node at scrape time."""
        ctx = self.env.ctx
        m = self.env.metrics
        m.set_height(ctx.chain.height)
        m.set_mempool(ctx.mempool.size, ctx.mempool.bytes)
        try:
            m.set_peers(int(ctx.net_info().get("n_peers", 0)))
            m.set_round(int(ctx.consensus_info().get("round", 0)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.debug("metrics refresh skipped: %s", exc)


class ThreadBackend:
    """RPCApp's backend on the RPC thread: calls run on the node's loop through ``main``; a
    WebSocket session's receive/send are bridged back to the RPC loop through ``rpc`` (set when
    the RPC loop starts)."""

    def __init__(self, main: Portal, side: MainSide) -> None:
        self.main = main
        self.side = side
        self.rpc: Portal | None = None

    async def post(self, body: bytes, held: bool = False) -> Answer:
        return await self.main.call(self.side.post, body)  # type: ignore[no-any-return]

    async def get(self, path: str, query: bytes) -> Answer:
        return await self.main.call(self.side.get, path, query)  # type: ignore[no-any-return]

    async def websocket(self, receive: ASGIReceive, send: ASGISend) -> None:
        """The session runs on the node's loop; its receive and send come back here."""
        rpc = self.rpc
        assert rpc is not None

        async def bridged_receive() -> dict[str, Any]:
            return await rpc.call(receive)  # type: ignore[no-any-return]

        async def bridged_send(msg: dict[str, Any]) -> None:
            await rpc.call(send, msg)

        await self.main.call(self.side.websocket, bridged_receive, bridged_send)


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


class RPCThread:
    """The RPC's own OS thread running its own trio loop: hypercorn, the door, static files."""

    def __init__(self, app: RPCApp, backend: ThreadBackend, hc: HypercornConfig,
                 main_token: trio.lowlevel.TrioToken) -> None:
        self.app = app
        self.backend = backend
        self.hc = hc
        self.main_token = main_token
        self.url: str | None = None
        self.error: BaseException | None = None
        self.ready = trio.Event()  # set on the main loop: started, or ended
        self.ended = trio.Event()
        self._lock = threading.Lock()
        self._stopping = False
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self.thread = threading.Thread(target=self._main, name="rpc", daemon=True)

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # delivered to the node's loop (serve_rpc raises it)
            self.error = exc
        finally:
            try:
                self.main_token.run_sync_soon(self._on_end)
            except trio.RunFinishedError:
                pass

    def _on_end(self) -> None:
        self.ended.set()
        self.ready.set()

    def _on_start(self, url: str) -> None:
        self.url = url
        self.ready.set()

    async def _serve(self) -> None:
        async with trio.open_nursery() as nursery:
            with self._lock:
                if self._stopping:
                    return
                self._token = trio.lowlevel.current_trio_token()
                self._scope = nursery.cancel_scope
            self.backend.rpc = Portal(self._token, nursery)
            binds = await nursery.start(partial(serve, self.app, self.hc))  # type: ignore[arg-type]
            url = binds[0] if binds else f"http://{self.hc.bind[0]}"
            self.main_token.run_sync_soon(self._on_start, url)

    def stop(self) -> None:
        """From any thread: cancel the RPC loop (it closes its sockets and returns)."""
        with self._lock:
            self._stopping = True
            token, scope = self._token, self._scope
        if token is not None and scope is not None:
            try:
                token.run_sync_soon(scope.cancel)
            except trio.RunFinishedError:
                pass

    async def run(self) -> None:
        """On the node's loop, until cancelled: then stop the RPC loop and join its thread, so the
        port is free when this returns. An RPC loop that ends by itself raises here."""
        try:
            await self.ended.wait()
        finally:
            self.stop()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.thread.join)
        if self.url is None:
            return  # it never started: serve_rpc raises its error
        raise RuntimeError(f"the RPC thread stopped: {self.error!r}") from self.error


async def serve_rpc(
    ctx: NodeContext,
    config: RPCConfig,
    *,
    host: str | None = None,
    port: int | None = None,
    metrics: Metrics | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve JSON-RPC, WebSocket and /metrics until cancelled; ``task_status.started`` gets the URL.

    ``host``/``port`` default to ``config.host``/``config.port`` (port 0 picks a free port: the
    URL tells which). Metrics default to ``ctx.metrics`` when the node has one. Must be called on
    the node's event loop (the one that owns ``ctx``); the HTTP server runs in the RPC front
    process (``config.front_process``, node/rpc/front.py) or on a thread of this process.
    """
    if metrics is None:
        metrics = getattr(ctx, "metrics", None) or Metrics()
    env = RPCEnv(ctx, config, metrics)
    intake = env.intake  # created here, on the node's loop: the RPC thread only reads its snapshot
    host = host if host is not None else config.host
    port = port if port is not None else config.port
    async with trio.open_nursery() as nursery:
        env.nursery = nursery
        submitter = AsyncSubmitter(env)
        env.submitter = submitter
        nursery.start_soon(submitter.run)
        side = MainSide(env)
        if config.front_process:
            from node.rpc.front import serve_front

            url = await nursery.start(serve_front, side, intake, metrics, config, host, port)
        else:
            url = await nursery.start(_serve_thread, side, intake, metrics, config, host, port)
        log.info("rpc listening on %s", url)
        task_status.started(url)


async def _serve_thread(side: MainSide, intake: TxIntake, metrics: Metrics, config: RPCConfig, host: str,
                        port: int, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """hypercorn on the RPC thread of this process, until cancelled."""
    hc = hypercorn_config(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", config)
    cap = hc.connection_cap
    assert cap is not None
    metrics.drops.pull(lambda: [("rpc_connections", "cap", cap.refused)])
    async with trio.open_nursery() as nursery:
        main = Portal(trio.lowlevel.current_trio_token(), side.env.nursery or nursery)
        backend = ThreadBackend(main, side)
        app = RPCApp(config, metrics, backend, Door(intake, metrics, config.max_batch, config.max_page))
        front = RPCThread(app, backend, hc, trio.lowlevel.current_trio_token())
        front.thread.start()
        nursery.start_soon(front.run)
        await front.ready.wait()
        if front.url is None:
            await front.ended.wait()
            if front.error is not None:
                raise front.error
            raise RuntimeError("the RPC server did not start")
        task_status.started(front.url)
