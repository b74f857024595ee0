"""A minimal ASGI toolkit for the OpenAI-compatible HTTP servers (the gateway and `model serve`),
served by hypercorn's trio worker like the node's RPC."""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any, Awaitable, Callable

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
MAX_BODY = 4 * 1024 * 1024


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int = MAX_BODY) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body over {limit} bytes")
        parts.append(chunk)
        if not msg.get("more_body"):
            break
    return b"".join(parts)


def header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers", ()):
        if k.lower() == name:
            return v  # type: ignore[no-any-return]
    return None


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None,
                  content_type: bytes = b"application/json") -> None:
    hs = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())] + list(headers or [])
    await send({"type": "http.response.start", "status": status, "headers": hs})
    await send({"type": "http.response.body", "body": body})


def openai_error(message: str, kind: str = "invalid_request_error", code: str | None = None) -> bytes:
    """The OpenAI API's error body."""
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()


async def serve_app(app: Any, host: str, port: int,
                    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` until cancelled; ``task_status.started`` gets the base URL."""
    hc = Config()
    hc.bind = [f"{host}:{port}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.keep_alive_timeout = 75
    hc.keep_alive_max_requests = 1_000_000
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app, hc))  # type: ignore[arg-type]
        task_status.started(binds[0] if binds else f"http://{host}:{port}")


class SSEText:
    """Accumulates the text and usage of an OpenAI server-sent event stream as it passes by."""

    def __init__(self) -> None:
        self.buf = b""
        self.texts: dict[int, list[str]] = {}
        self.usage: dict[str, Any] | None = None

    def feed(self, chunk: bytes) -> None:
        self.buf += chunk
        while b"\n\n" in self.buf:
            event, self.buf = self.buf.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    self._data(line[5:].strip())

    def _data(self, data: bytes) -> None:
        if data == b"[DONE]":
            return
        try:
            obj = json.loads(data)
        except ValueError:
            return
        if not isinstance(obj, dict):
            return
        if isinstance(obj.get("usage"), dict):
            self.usage = obj["usage"]
        for ch in obj.get("choices") or ():
            if not isinstance(ch, dict):
                continue
            piece = ch.get("text")
            delta = ch.get("delta")
            if piece is None and isinstance(delta, dict):
                piece = delta.get("content")
            if isinstance(piece, str):
                self.texts.setdefault(int(ch.get("index", 0) or 0), []).append(piece)

    def text(self) -> str:
        return "\n".join("".join(self.texts[i]) for i in sorted(self.texts))


def completion_text(obj: Any) -> str:
    """The output text of a (chat) completion response: every choice's text, in index order."""
    out = []
    for ch in sorted((c for c in (obj.get("choices") or ()) if isinstance(c, dict)),
                     key=lambda c: c.get("index", 0) or 0):
        msg = ch.get("message")
        text = msg.get("content") if isinstance(msg, dict) else ch.get("text")
        if isinstance(text, str):
            out.append(text)
    return "\n".join(out)
