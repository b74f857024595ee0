"""JSON bodies of JSON-RPC 2.0: strict parsing, compact encoding, the id rule. No method table:
the RPC front process (node/rpc/front.py) uses it without importing the dispatcher."""

from __future__ import annotations

import json
from typing import Any

from node.rpc.errors import ParseError

MISSING = object()  # a request object without an id member (a notification)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes | str) -> Any:
    """Strict JSON: no NaN/Infinity, integers of at most 4300 digits, bounded nesting."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise ParseError("JSON nests too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ParseError(f"invalid JSON: {str(exc)[:120]}") from None


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def is_valid_id(rid: Any) -> bool:
    return rid is None or type(rid) is str or type(rid) is int
