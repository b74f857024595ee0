"""Build the body of any transaction kind from plain values, driven by the tx kind table.

``make_body("transfer", to="0xab..", amount=5)`` works for every kind in state/tx.py's ``TX_KINDS``:
each field is converted by its wire type (ints, strings, bytes from ``bytes`` or 0x hex, lists and
(id, weight) pairs), optional fields take ``DEFAULTS``, and content-derived fields are computed by
``DERIVERS`` from a friendlier input (``contribute``: ``text``; ``infer``: ``output``). A new kind or
field in the table needs no change here unless it is content-derived.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

from state.codec import Bytes, CodecError, List, Nested, Str, Tuple, UInt
from state.tx import KIND_BY_NAME, TX_KINDS

# Optional fields and their defaults; every other field is required.
DEFAULTS: dict[str, Any] = {"metadata_uri": "", "moniker": "", "lineage_bps": 0, "bond_required": 0,
                            "input_tokens": 0, "output_tokens": 0, "stake": 0, "summary": "", "parent": b"",
                            "adapter": b"", "agent": b""}


class TxBuildError(ValueError):
    """A value that does not fit its field, a missing field, or an unknown kind."""


def kinds() -> list[str]:
    """Every transaction kind name, in kind-number order."""
    return [name for _, (name, _) in sorted(TX_KINDS.items())]


def body_class(kind: str) -> Any:
    try:
        return TX_KINDS[KIND_BY_NAME[kind]][1]
    except KeyError:
        raise TxBuildError(f"unknown transaction kind {kind!r} (known: {', '.join(kinds())})") from None


def fields(kind: str) -> list[tuple[str, Any]]:
    """(name, wire type) of each body field of ``kind``, in wire order."""
    return list(body_class(kind).WIRE_FIELDS)


def to_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        text = value[2:] if value.startswith("0x") else value
        if value in ("", "0x", "none"):
            return b""
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise TxBuildError(f"{what}: invalid hex") from None
    raise TxBuildError(f"{what}: expected bytes or a 0x hex string, got {type(value).__name__}")


def coerce(wt: Any, value: Any, what: str) -> Any:
    """A plain value (JSON-like) -> the Python value the wire type ``wt`` holds."""
    t = type(wt)
    if t is UInt:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TxBuildError(f"{what}: expected an integer")
        return value
    if t is Str:
        if isinstance(value, (bytes, bytearray)):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise TxBuildError(f"{what}: not UTF-8 text") from None
        if not isinstance(value, str):
            raise TxBuildError(f"{what}: expected a string")
        return value
    if t is Bytes:
        return to_bytes(value, what)
    if t is List:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise TxBuildError(f"{what}: expected a list")
        return tuple(coerce(wt.item, v, f"{what}[{i}]") for i, v in enumerate(value))
    if t is Tuple:
        items = list(value)
        if len(items) != len(wt.items):
            raise TxBuildError(f"{what}: expected {len(wt.items)} items")
        return tuple(coerce(w, v, f"{what}[{i}]") for i, (w, v) in enumerate(zip(wt.items, items)))
    if t is Nested:
        return value
    raise TxBuildError(f"{what}: no SDK form for wire type {wt.describe()}")  # pragma: no cover


# ---- content-derived fields -----------------------------------------------------------------------


def _text_bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _derive_contribute(values: dict[str, Any], fp_params: Any) -> None:
    from state.attribution.fingerprint import fingerprint_text

    text = values.pop("text", None)
    if text is None:
        return
    data = _text_bytes(text)
    names = {name for name, _ in fields("contribute")}
    for name in ("content", "text_content"):
        if name in names and name not in values:  # contributions that carry their text on chain
            values[name] = data
    if "salt" in names and "salt" not in values:  # the reveal's salt: fresh, so the commitment hides the text
        values["salt"] = os.urandom(32)
    fp = fingerprint_text(data, fp_params())
    candidates = {"content_hash": fp.content_hash, "size": fp.size, "fingerprint": fp.fingerprint,
                  "minhash": fp.minhash}
    for name, v in candidates.items():
        if name in names:
            values.setdefault(name, v)


def _derive_infer(values: dict[str, Any], fp_params: Any) -> None:
    output = values.pop("output", None)
    if output is None:
        return
    data = _text_bytes(output)
    names = {name for name, _ in fields("infer")}
    if "output" in names:  # the output text itself on chain; too long for the chain: unattributed
        values["output"] = data if len(data) <= fp_params().max_output_bytes else b""
    if "output_hash" in names:
        values.setdefault("output_hash", hashlib.sha256(data).digest())


# kind -> fills content-derived fields from a friendlier input; fp_params() gives the chain's
# FingerprintParams (asked only when needed).
DERIVERS: dict[str, Callable[[dict[str, Any], Callable[[], Any]], None]] = {
    "contribute": _derive_contribute,
    "infer": _derive_infer,
}


def make_body(kind: str, fp_params: Callable[[], Any] | None = None, /, **values: Any) -> Any:
    """The body structure of ``kind`` from plain values (see the module docstring)."""
    cls = body_class(kind)
    values = dict(values)
    derive = DERIVERS.get(kind)
    if derive is not None:
        from state.attribution.fingerprint import DEFAULT_FINGERPRINT_PARAMS

        derive(values, fp_params or (lambda: DEFAULT_FINGERPRINT_PARAMS))
    out: dict[str, Any] = {}
    for name, wt in cls.WIRE_FIELDS:
        if name in values:
            out[name] = coerce(wt, values.pop(name), name)
        elif name in DEFAULTS:
            out[name] = coerce(wt, DEFAULTS[name], name)
        else:
            raise TxBuildError(f"{kind}: missing field {name!r}")
    if values:
        raise TxBuildError(f"{kind}: unknown field(s) {', '.join(sorted(values))}")
    try:
        return cls(**out)
    except (CodecError, ValueError, TypeError) as exc:
        raise TxBuildError(f"invalid {kind} transaction: {exc}") from None
