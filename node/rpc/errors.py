"""JSON-RPC 2.0 error objects: one exception class per failure class, mapped to codes here only.

Codes (DESIGN section 6): the five of the JSON-RPC 2.0 specification and three of ours.
"""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
NOT_FOUND = -32001
TX_REJECTED = -32003
LIMIT_EXCEEDED = -32005

ERROR_CODES: tuple[tuple[int, str, str], ...] = (
    (PARSE_ERROR, "Parse error", "the body is not valid JSON (or nests deeper than allowed)"),
    (INVALID_REQUEST, "Invalid Request", "not a JSON-RPC 2.0 request object, or an empty batch"),
    (METHOD_NOT_FOUND, "Method not found", "no such method (or a WebSocket-only method over HTTP)"),
    (INVALID_PARAMS, "Invalid params", "a parameter is missing, unknown, of the wrong type or out of range"),
    (INTERNAL_ERROR, "Internal error", "the node failed to answer; also: a query whose module is not available yet"),
    (NOT_FOUND, "Not found", "the block, transaction, account record or key asked for does not exist"),
    (TX_REJECTED, "Transaction rejected", "the mempool refused the transaction; `data` holds `reason` and `message`"),
    (LIMIT_EXCEEDED, "Limit exceeded", "a configured cap was hit: body size, batch size, page size, subscriptions; a transaction refused at the door (`data.reason` `mempool_full` or `intake_busy`)"),
)


class RPCError(Exception):
    """An error answer; ``code``, ``message`` and optional ``data`` become the error object."""

    code = INTERNAL_ERROR

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


class ParseError(RPCError):
    code = PARSE_ERROR


class InvalidRequest(RPCError):
    code = INVALID_REQUEST


class MethodNotFound(RPCError):
    code = METHOD_NOT_FOUND


class InvalidParams(RPCError):
    code = INVALID_PARAMS


class InternalError(RPCError):
    code = INTERNAL_ERROR


class NotAvailable(InternalError):
    """A method whose backing module has not been built yet: a clear -32603, never a crash."""

    def __init__(self, what: str) -> None:
        super().__init__(f"not available yet: {what}", {"reason": "not_available"})


class NotFound(RPCError):
    code = NOT_FOUND


class TxRejectedError(RPCError):
    code = TX_REJECTED

    def __init__(self, reason: str, message: str, tx_hash: str | None = None) -> None:
        data: dict[str, Any] = {"reason": reason, "message": message}
        if tx_hash is not None:
            data["hash"] = tx_hash
        super().__init__(f"transaction rejected: {reason}", data)


class LimitExceeded(RPCError):
    code = LIMIT_EXCEEDED


def error_response(req_id: Any, err: RPCError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "error": err.to_json()}
