"""The gateway's HTTP side: the OpenAI API in front of any OpenAI-compatible upstream.

POST /v1/chat/completions and /v1/completions are forwarded; a successful answer comes back byte
for byte with an ``x-attrchain-inference`` header (streamed: a final SSE comment
``: x-attrchain-inference 0x..``) naming the signed `infer` recorded for it. Upstream errors pass
through and record nothing. GET /v1/models is the upstream's list. docs/gateway.md.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from gateway.asgi import BodyTooLarge, Receive, Scope, Send, SSEText, completion_text, openai_error, read_body, \
    respond
from gateway.chain import ChainSide
from gateway.journal import JournalFull

log = logging.getLogger(__name__)

HEADER = b"x-attrchain-inference"
COMPLETION_PATHS = ("/v1/chat/completions", "/v1/completions")
# request headers worth passing upstream (auth, content negotiation); hop-by-hop ones are not
FORWARD = (b"authorization", b"openai-organization", b"openai-project", b"accept")


def _usage(usage: Any, text: str) -> tuple[int, int]:
    """Token counts from the upstream's `usage`; without one, the output's word count (docs/gateway.md)."""
    if isinstance(usage, dict):
        pin, pout = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(pin, int) and isinstance(pout, int) and pin >= 0 and pout >= 0:
            return pin, pout
    return 0, len(text.split())


class Gateway:
    def __init__(self, upstream: str, chain: ChainSide, timeout: float = 600.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.chain = chain
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        self.http = httpx.AsyncClient(timeout=timeout, limits=limits)
        self.upstream_errors = 0

    async def aclose(self) -> None:
        await self.http.aclose()

    def _upstream_url(self, path: str) -> str:
        # --upstream may be given with or without its /v1
        if self.upstream.endswith("/v1") and path.startswith("/v1/"):
            return self.upstream + path[3:]
        return self.upstream + path

    def _headers(self, scope: Scope) -> dict[str, str]:
        out = {"content-type": "application/json"}
        for k, v in scope.get("headers", ()):
            if k.lower() in FORWARD:
                out[k.decode()] = v.decode("latin-1")
        return out

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        try:
            if method == "GET" and path in ("/v1/models", "/models"):
                await self._models(scope, send)
            elif method == "POST" and path in COMPLETION_PATHS:
                await self._completion(scope, receive, send)
            elif method == "GET" and path == "/healthz":
                body = json.dumps({"chain_up": self.chain.chain_up, "queued": self.chain.journal.size,
                                   "recorded": self.chain.recorded}).encode()
                await respond(send, 200, body)
            else:
                await respond(send, 404, openai_error(f"no route {method} {path}", code="not_found"))
        except BodyTooLarge as exc:
            await respond(send, 413, openai_error(str(exc)))
        except httpx.HTTPError as exc:
            self.upstream_errors += 1
            log.warning("upstream %s unreachable: %s", self.upstream, exc)
            await respond(send, 502, openai_error(f"upstream unreachable: {exc}", "upstream_error"))

    async def _models(self, scope: Scope, send: Send) -> None:
        r = await self.http.get(self._upstream_url("/v1/models"), headers=self._headers(scope))
        await respond(send, r.status_code, r.content,
                      content_type=r.headers.get("content-type", "application/json").encode())

    async def _completion(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        if self.chain.journal.is_full():  # refuse rather than serve a completion nobody pays for
            await respond(send, 503, openai_error(
                f"{self.chain.journal.size} completions wait for the chain; try again later", "server_error",
                "chain_backlog"), [(b"retry-after", b"5")])
            return
        try:
            req = json.loads(body)
        except ValueError:
            req = None
        url = self._upstream_url(scope["path"])
        if isinstance(req, dict) and req.get("stream") is True:
            await self._stream(scope, req, url, send)
            return
        r = await self.http.post(url, content=body, headers=self._headers(scope))
        ctype = r.headers.get("content-type", "application/json").encode()
        if r.status_code != 200:
            await respond(send, r.status_code, r.content, content_type=ctype)
            return
        try:
            obj = r.json()
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            await respond(send, r.status_code, r.content, content_type=ctype)  # nothing we can attribute
            return
        text = completion_text(obj)
        inference = self._record(text, obj.get("usage"))
        extra = [(HEADER, inference.encode())] if inference else []
        await respond(send, 200, r.content, extra, content_type=ctype)

    def _record(self, text: str, usage: Any) -> str | None:
        tin, tout = _usage(usage, text)
        try:
            return self.chain.record(text.encode(), tin, tout)
        except JournalFull as exc:
            log.warning("completion served but not recorded: %s", exc)
        except OSError as exc:
            log.error("completion served but not recorded: journal write failed: %s", exc)
        return None

    async def _stream(self, scope: Scope, req: dict[str, Any], url: str, send: Send) -> None:
        # ask the upstream for usage, and hide that extra chunk when the client did not ask for it
        added_usage = "stream_options" not in req
        if added_usage:
            req = dict(req, stream_options={"include_usage": True})
        sse = SSEText()
        async with self.http.stream("POST", url, json=req, headers=self._headers(scope)) as r:
            ctype = r.headers.get("content-type", "text/event-stream").encode()
            if r.status_code != 200:
                await respond(send, r.status_code, await r.aread(), content_type=ctype)
                return
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", ctype), (b"cache-control", b"no-cache")]})
            pending = b""
            async for chunk in r.aiter_raw():
                sse.feed(chunk)
                if not added_usage:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    continue
                pending += chunk
                out = b""
                while b"\n\n" in pending:
                    event, pending = pending.split(b"\n\n", 1)
                    if not _is_usage_only(event):
                        out += event + b"\n\n"
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            tail = pending
        text = sse.text()
        inference = self._record(text, sse.usage)
        if inference:
            tail += b": x-attrchain-inference " + inference.encode() + b"\n\n"
        await send({"type": "http.response.body", "body": tail, "more_body": False})


def _is_usage_only(event: bytes) -> bool:
    """A `data:` event with usage and no choices: the chunk include_usage adds."""
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            try:
                obj = json.loads(line[5:].strip())
            except ValueError:
                return False
            return isinstance(obj, dict) and bool(obj.get("usage")) and not obj.get("choices")
    return False
