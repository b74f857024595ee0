"""JSON shapes of chain structures: byte strings as 0x hex, integers as JSON integers.

Integers are exact JSON integers (amounts may exceed 2**53: parse them as big integers).
Any canonical structure becomes an object of its wire fields in wire order.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from state.block import Block, Commit, Header
from state.codec import CodecError
from state.crypto import address_of, to_hex
from state.tx import Tx, decode_tx


def to_json(value: Any) -> Any:
    """Any value a query returns -> JSON: bytes as hex, structures as objects, tuples as arrays."""
    t = type(value)
    if t is bytes:
        return "0x" + value.hex()
    if t in (int, str, bool) or value is None:
        return value
    if t in (list, tuple):
        return [to_json(v) for v in value]
    if t is dict:
        return {str(k): to_json(v) for k, v in value.items()}
    fields = getattr(t, "WIRE_FIELDS", None)
    if fields is not None:
        return {name: to_json(getattr(value, name)) for name, _ in fields}
    if dataclasses.is_dataclass(value):
        return {fd.name: to_json(getattr(value, fd.name)) for fd in dataclasses.fields(value)}
    if isinstance(value, int):  # IntEnum and friends
        return int(value)
    raise TypeError(f"no JSON form for {t.__name__}")


def header_json(h: Header) -> dict[str, Any]:
    return {
        "version": h.version,
        "chain_id": h.chain_id,
        "height": h.height,
        "time_ms": h.time_ms,
        "last_block_hash": to_hex(h.last_block_hash),
        "last_commit_hash": to_hex(h.last_commit_hash),
        "txs_hash": to_hex(h.txs_hash),
        "evidence_hash": to_hex(h.evidence_hash),
        "validators_hash": to_hex(h.validators_hash),
        "next_validators_hash": to_hex(h.next_validators_hash),
        "state_root": to_hex(h.state_root),
        "results_hash": to_hex(h.results_hash),
        "proposer": to_hex(h.proposer),
    }


def commit_json(c: Commit) -> dict[str, Any]:
    return {
        "height": c.height,
        "round": c.round,
        "block_hash": to_hex(c.block_hash),
        "signatures": [
            {"validator": to_hex(s.validator), "time_ms": s.time_ms, "signature": to_hex(s.signature)}
            for s in c.signatures
        ],
    }


def block_json(block: Block) -> dict[str, Any]:
    return {
        "block_id": {"hash": to_hex(block.header.hash())},
        "block": {
            "header": header_json(block.header),
            "txs": [to_hex(t) for t in block.txs],
            "evidence": [to_json(e) for e in block.evidence],
            "last_commit": commit_json(block.last_commit),
        },
    }


def block_meta_json(block: Block, size: int) -> dict[str, Any]:
    return {
        "block_id": {"hash": to_hex(block.header.hash())},
        "block_size": size,
        "header": header_json(block.header),
        "num_txs": len(block.txs),
    }


def tx_json(tx: Tx) -> dict[str, Any]:
    """A decoded transaction: kind, sender, nonce, fee and its body's fields."""
    u = tx.unsigned
    return {
        "hash": to_hex(tx.hash),
        "kind": tx.kind_name,
        "sender": to_hex(address_of(u.sender)),
        "public_key": to_hex(u.sender),
        "nonce": u.nonce,
        "fee": u.fee,
        "body": to_json(u.body),
        "signature": to_hex(tx.signed.signature),
    }


def raw_tx_json(raw: bytes) -> dict[str, Any] | None:
    """Decoded form of stored transaction bytes, or None if they do not decode (kept as hex)."""
    try:
        return tx_json(decode_tx(raw))
    except CodecError:
        return None
