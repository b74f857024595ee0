"""`attrchain model serve DIR`: the reference model behind the OpenAI API (chat, completions,
models; `stream: true` as server-sent events), with `usage` counted in words."""

from __future__ import annotations

import json
import time
from typing import Any

from gateway.asgi import BodyTooLarge, Receive, Scope, Send, openai_error, read_body, respond
from refmodel.infinigram import Model

DEFAULT_MAX_TOKENS = 64
MAX_TOKENS = 1024


def prompt_of(req: dict[str, Any], chat: bool) -> str:
    if chat:
        msgs = req.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise ValueError("messages: a non-empty list is required")
        parts = []
        for m in msgs:
            c = m.get("content") if isinstance(m, dict) else None
            if isinstance(c, list):  # content parts
                c = " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            if isinstance(c, str):
                parts.append(c)
        return "\n".join(parts)
    p = req.get("prompt")
    if isinstance(p, list):
        p = "\n".join(x for x in p if isinstance(x, str))
    if not isinstance(p, str):
        raise ValueError("prompt: a string is required")
    return p


class ModelServer:
    def __init__(self, model: Model, name: str) -> None:
        self.model = model
        self.name = name
        self.created = int(time.time())
        self._n = 0

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
        if method == "GET" and path == "/v1/models":
            body = {"object": "list", "data": [{"id": self.name, "object": "model", "created": self.created,
                                                "owned_by": "attrchain"}]}
            await respond(send, 200, json.dumps(body).encode())
            return
        if method != "POST" or path not in ("/v1/chat/completions", "/v1/completions"):
            await respond(send, 404, openai_error(f"no route {method} {path}", code="not_found"))
            return
        chat = path == "/v1/chat/completions"
        try:
            req = json.loads(await read_body(receive))
            if not isinstance(req, dict):
                raise ValueError("the body must be a JSON object")
            prompt = prompt_of(req, chat)
            max_tokens = req.get("max_completion_tokens", req.get("max_tokens")) or DEFAULT_MAX_TOKENS
            if not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_TOKENS:
                raise ValueError(f"max_tokens: an integer in 1..{MAX_TOKENS}")
        except (ValueError, BodyTooLarge) as exc:
            await respond(send, 400, openai_error(str(exc)))
            return
        words = self.model.generate(prompt, max_tokens)
        self._n += 1
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{self._n}"
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(words),
                 "total_tokens": len(prompt.split()) + len(words)}
        finish = "length" if len(words) >= max_tokens else "stop"
        base = {"id": rid, "created": int(time.time()), "model": req.get("model") or self.name}
        if req.get("stream") is True:
            await self._stream(send, base, words, chat, finish, usage, req)
            return
        text = " ".join(words)
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        body = dict(base, object="chat.completion" if chat else "text_completion", choices=[choice], usage=usage)
        await respond(send, 200, json.dumps(body).encode())

    async def _stream(self, send: Send, base: dict[str, Any], words: list[str], chat: bool, finish: str,
                      usage: dict[str, int], req: dict[str, Any]) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        obj = "chat.completion.chunk" if chat else "text_completion"

        def event(choice: dict[str, Any] | None, extra: dict[str, Any] | None = None) -> bytes:
            doc = dict(base, object=obj, choices=[choice] if choice else [], **(extra or {}))
            return b"data: " + json.dumps(doc).encode() + b"\n\n"

        def piece(text: str, fin: str | None, role: bool = False) -> dict[str, Any]:
            if chat:
                delta: dict[str, Any] = {"content": text} if not role else {"role": "assistant", "content": ""}
                return {"index": 0, "delta": delta if fin is None else {}, "finish_reason": fin, "logprobs": None}
            return {"index": 0, "text": text, "finish_reason": fin, "logprobs": None}

        out = [event(piece("", None, role=True))] if chat else []
        out += [event(piece(w if i == 0 else " " + w, None)) for i, w in enumerate(words)]
        out.append(event(piece("", finish)))
        opts = req.get("stream_options")
        if isinstance(opts, dict) and opts.get("include_usage"):
            out.append(event(None, {"usage": usage}))
        out.append(b"data: [DONE]\n\n")
        for chunk in out:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
