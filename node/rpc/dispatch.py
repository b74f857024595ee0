"""JSON-RPC 2.0 processing: parse a body, run single requests, batches and notifications.

Rules (https://www.jsonrpc.org/specification): a request without an ``id`` member is a
notification and gets no response (not even an error); a batch answers only its non-notifications,
and nothing at all if they are all notifications; a malformed request gets -32600 with id null
unless its id could be read; unparseable JSON gets -32700.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from node.rpc.env import RPCEnv
from node.rpc.errors import (
    INTERNAL_ERROR,
    InternalError,
    InvalidRequest,
    LimitExceeded,
    MethodNotFound,
    ParseError,
    RPCError,
    error_response,
)
from node.rpc.jsonrpc import MISSING, dumps, is_valid_id, parse_json
from node.rpc.methods import METHODS, Method

log = logging.getLogger(__name__)

MAX_METHOD_NAME = 64


class Session(Protocol):
    """A WebSocket connection, which serves the subscription methods itself."""

    async def call(self, method: Method, args: dict[str, Any]) -> Any: ...


def _broadcast_tx(item: Any) -> bytes | None:
    """The transaction of a broadcast_tx_* request object in a batch, if it is well formed."""
    if type(item) is not dict or type(item.get("method")) is not str or not item["method"].startswith("broadcast_tx"):
        return None
    params = item.get("params")
    tx = params.get("tx") if type(params) is dict else params[0] if type(params) is list and params else None
    if type(tx) is not str or not tx.startswith("0x"):
        return None
    try:
        return bytes.fromhex(tx[2:])
    except ValueError:
        return None


class Dispatcher:
    def __init__(self, env: RPCEnv) -> None:
        self.env = env
        self.metrics = env.metrics

    async def handle_body(self, body: bytes | str, session: Session | None = None) -> bytes | None:
        """The response body for a request body, or None when nothing must be sent back."""
        try:
            doc = parse_json(body)
        except ParseError as err:
            self.metrics.rpc_error(err.code)
            return dumps(error_response(None, err))
        if type(doc) is list:
            if not doc:
                return self._error(None, InvalidRequest("empty batch"))
            cap = self.env.config.max_batch
            if len(doc) > cap:
                return self._error(None, LimitExceeded(f"batch of {len(doc)} requests exceeds the limit of {cap}"))
            raws = [raw for raw in map(_broadcast_tx, doc) if raw is not None]
            if raws:  # their signatures checked together (node/tx_intake.py)
                self.env.intake.prefetch(raws)
            responses = []
            for item in doc:
                r = await self.handle_one(item, session)
                if r is not None:
                    responses.append(r)
            return dumps(responses) if responses else None
        r = await self.handle_one(doc, session)
        return dumps(r) if r is not None else None

    def _error(self, rid: Any, err: RPCError) -> bytes:
        self.metrics.rpc_error(err.code)
        return dumps(error_response(rid, err))

    async def handle_one(self, req: Any, session: Session | None = None) -> dict[str, Any] | None:
        """One request object -> its response object, or None for a notification."""
        if type(req) is not dict:
            self.metrics.rpc_error(InvalidRequest.code)
            return error_response(None, InvalidRequest("a request must be a JSON object"))
        rid = req.get("id", MISSING)
        is_notification = rid is MISSING
        if not is_notification and not is_valid_id(rid):
            self.metrics.rpc_error(InvalidRequest.code)
            return error_response(None, InvalidRequest("id must be a string, an integer or null"))
        answer_id = None if is_notification else rid
        try:
            if req.get("jsonrpc") != "2.0":
                raise InvalidRequest('"jsonrpc" must be exactly "2.0"')
            name = req.get("method")
            if type(name) is not str:
                raise InvalidRequest('"method" must be a string')
            params = req.get("params")
            if params is not None and type(params) not in (list, dict):
                raise InvalidRequest('"params" must be an object or an array')
            method = METHODS.get(name)
            self.metrics.rpc_request(name if method is not None else "unknown")
            if method is None:
                raise MethodNotFound(f"method {name[:MAX_METHOD_NAME]!r} not found")
            args = method.schema.bind(params, self.env.config.max_page)
            if method.ws_only:
                if session is None:
                    raise MethodNotFound(f"{name} is only available over the WebSocket at /websocket")
                result = await session.call(method, args)
            elif method.is_async:
                result = await method.handler(self.env, args)  # type: ignore[misc]
            else:
                result = method.handler(self.env, args)  # type: ignore[misc]
        except RPCError as err:
            self.metrics.rpc_error(err.code)
            if is_notification and not isinstance(err, InvalidRequest):
                return None
            return error_response(answer_id, err)
        except Exception:  # a handler bug must answer -32603 and leave the node running
            log.exception("internal error in %r", req.get("method"))
            self.metrics.rpc_error(INTERNAL_ERROR)
            if is_notification:
                return None
            return error_response(answer_id, InternalError("internal error (see the node's log)"))
        if is_notification:
            return None
        return {"jsonrpc": "2.0", "id": rid, "result": result}
