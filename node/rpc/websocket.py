"""JSON-RPC over WebSocket at /websocket, with subscriptions to new_block and tx events.

One connection is one task tree: a reader (requests, answered in order), a writer (the only task
that sends on the socket) and one forwarder per subscription. Events reach the client as
notifications {"jsonrpc": "2.0", "method": "event", "params": {"subscription", "event", "data"}}.
A client too slow to keep up is dropped by the event bus; it then gets one notification
{"method": "subscription_dropped", "params": {"subscription", "reason"}} for that subscription.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import trio

from node.events import Subscription
from node.rpc.dispatch import Dispatcher
from node.rpc.jsonrpc import dumps
from node.rpc.env import RPCEnv
from node.rpc.errors import InvalidParams, LimitExceeded, error_response
from node.rpc.methods import Method

log = logging.getLogger(__name__)

OUTBOX = 256  # messages queued for one client's socket

ASGISend = Callable[[dict[str, Any]], Awaitable[None]]
ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class _Sub:
    sub: Subscription
    scope: trio.CancelScope


class WebSocketSession:
    def __init__(self, env: RPCEnv, dispatcher: Dispatcher) -> None:
        self.env = env
        self.dispatcher = dispatcher
        self.subs: dict[int, _Sub] = {}
        self.next_id = 1
        self.out_send, self.out_receive = trio.open_memory_channel[bytes](OUTBOX)
        self.nursery: trio.Nursery | None = None

    async def run(self, receive: ASGIReceive, send: ASGISend) -> None:
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        cap = self.env.config.max_body_bytes
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                nursery.start_soon(self._writer, send)
                while True:
                    msg = await receive()
                    if msg["type"] != "websocket.receive":
                        break  # websocket.disconnect
                    data = msg.get("text")
                    if data is None:
                        data = msg.get("bytes") or b""
                    if len(data) > cap:
                        err = LimitExceeded(f"message of {len(data)} bytes exceeds the limit of {cap}")
                        await self.out_send.send(dumps(error_response(None, err)))
                        continue
                    answer = await self.dispatcher.handle_body(data, session=self)
                    if answer is not None:
                        await self.out_send.send(answer)
                nursery.cancel_scope.cancel()
        finally:
            self._close_all()

    async def _writer(self, send: ASGISend) -> None:
        async for data in self.out_receive:
            await send({"type": "websocket.send", "text": data.decode()})

    # ---- the WebSocket-only methods ------------------------------------------------------
    async def call(self, method: Method, args: dict[str, Any]) -> Any:
        if method.name == "subscribe":
            return self._subscribe(args["event"])
        if method.name == "unsubscribe":
            sid = args["subscription"]
            if sid not in self.subs:
                raise InvalidParams(f"subscription: no subscription {sid} on this connection")
            self._close(sid)
            return {"unsubscribed": True}
        n = len(self.subs)
        self._close_all()
        return {"unsubscribed": n}

    def _subscribe(self, event: str) -> dict[str, Any]:
        cap = self.env.config.max_subscriptions_per_client
        if len(self.subs) >= cap:
            raise LimitExceeded(f"at most {cap} subscriptions per connection")
        assert self.nursery is not None
        sid = self.next_id
        self.next_id += 1
        sub = self.env.ctx.events.subscribe({event})
        scope = trio.CancelScope()
        self.subs[sid] = _Sub(sub, scope)
        self.env.metrics.ws_subscriptions.inc()
        self.nursery.start_soon(self._forward, sid, sub, scope)
        return {"subscription": sid}

    async def _forward(self, sid: int, sub: Subscription, scope: trio.CancelScope) -> None:
        with scope:
            async for kind, payload in sub.receive:
                note = {"jsonrpc": "2.0", "method": "event",
                        "params": {"subscription": sid, "event": kind, "data": payload}}
                await self.out_send.send(dumps(note))
            if sub.overflowed:
                log.info("websocket subscription %d dropped: client fell behind", sid)
                self._forget(sid)
                note = {"jsonrpc": "2.0", "method": "subscription_dropped",
                        "params": {"subscription": sid, "reason": "client fell behind the event stream"}}
                await self.out_send.send(dumps(note))

    def _forget(self, sid: int) -> None:
        if self.subs.pop(sid, None) is not None:
            self.env.metrics.ws_subscriptions.dec()

    def _close(self, sid: int) -> None:
        s = self.subs.get(sid)
        if s is None:
            return
        s.scope.cancel()
        self.env.ctx.events.unsubscribe(s.sub)
        self._forget(sid)

    def _close_all(self) -> None:
        for sid in list(self.subs):
            self._close(sid)
