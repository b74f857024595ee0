"""Serving the RPC: ``serve_rpc``, called on the node's event loop, runs the HTTP side
(node/rpc/http.py: hypercorn, ``RPCApp``, the door) in the RPC front process (``rpc.front_process``,
node/rpc/front.py) or on the RPC's own thread (``RPCThread``, here).

Everything that reads the node (the JSON-RPC dispatcher and its handlers, URI calls, /metrics,
WebSocket sessions) runs on the node's loop in ``MainSide``, reached through RPCApp's backend:
``front.NodeLink`` from the front process (a socket pair), or ``ThreadBackend`` from the RPC thread
(docs/rpc.md).

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
HTTP 413 before they are read; connection limits: node/rpc/http.py.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl

import outcome
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from node.config import RPCConfig
from node.context import NodeContext
from node.metrics import METRICS_CONTENT_TYPE, Metrics
from node.rpc.dispatch import Dispatcher
from node.rpc.env import RPCEnv
from node.rpc.errors import ParseError
from node.rpc.http import (JSON_HEADERS, Answer, ASGIReceive, ASGISend, PortalClosed, RPCApp,
                           hypercorn_config)
from node.rpc.door import Door
from node.rpc.jsonrpc import dumps, parse_json
from node.rpc.tx_methods import AsyncSubmitter
from node.rpc.websocket import WebSocketSession
from node.tx_intake import TxIntake

log = logging.getLogger(__name__)

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
