"""The SDK's WebSocket side: the subscription methods (subscribe, unsubscribe, unsubscribe_all)
and the events they deliver, over one blocking connection to ``/websocket`` (wsproto, no thread).

    with client.websocket() as ws:
        sub = ws.subscribe("new_block")["subscription"]
        event = ws.next_event(timeout=10)      # {"subscription", "event", "data"}
"""

from __future__ import annotations

import json
import socket
import time
from collections import deque
from typing import Any
from urllib.parse import urlparse

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Ping, RejectConnection, Request, TextMessage

from sdk.methods import WSMethods


class WebSocketError(Exception):
    pass


class WebSocket(WSMethods):
    def __init__(self, url: str, timeout: float = 15.0) -> None:
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 80), timeout=timeout)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.timeout = timeout
        self._id = 0
        self._text = ""
        self.events: deque[dict[str, Any]] = deque()
        self.answers: dict[int, dict[str, Any]] = {}
        self._send(Request(host=u.netloc or "127.0.0.1", target="/websocket"))
        deadline = time.monotonic() + timeout
        while True:
            for ev in self._read(deadline):
                if isinstance(ev, AcceptConnection):
                    return
                if isinstance(ev, RejectConnection):
                    raise WebSocketError(f"the node refused the WebSocket (HTTP {ev.status_code})")

    def _send(self, event: Any) -> None:
        self.sock.sendall(self.ws.send(event))

    def _read(self, deadline: float) -> list[Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from the node's WebSocket in time")
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            raise WebSocketError("the node closed the WebSocket")
        self.ws.receive_data(data)
        out = []
        for ev in self.ws.events():
            if isinstance(ev, Ping):
                self._send(ev.response())
            elif isinstance(ev, CloseConnection):
                raise WebSocketError(f"the node closed the WebSocket ({ev.code})")
            elif isinstance(ev, TextMessage):
                self._text += ev.data
                if ev.message_finished:
                    self._dispatch(json.loads(self._text))
                    self._text = ""
            elif not isinstance(ev, Message):
                out.append(ev)
        return out

    def _dispatch(self, msg: Any) -> None:
        if isinstance(msg, dict) and "id" in msg:
            self.answers[msg["id"]] = msg
        elif isinstance(msg, dict):
            self.events.append(msg)

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        from sdk.client import RPCError

        self._id += 1
        rid = self._id
        req = {"jsonrpc": "2.0", "id": rid, "method": method,
               "params": {k: v for k, v in (params or {}).items() if v is not None}}
        self._send(TextMessage(data=json.dumps(req)))
        deadline = time.monotonic() + self.timeout
        while rid not in self.answers:
            self._read(deadline)
        ans = self.answers.pop(rid)
        if "error" in ans:
            raise RPCError(ans["error"])
        return ans.get("result")

    def next_event(self, timeout: float = 30.0) -> dict[str, Any]:
        """The next notification's params ({subscription, event, data}); TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.events:
            self._read(deadline)
        return dict(self.events.popleft().get("params") or {})

    def close(self) -> None:
        try:
            self._send(CloseConnection(code=1000))
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> "WebSocket":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
