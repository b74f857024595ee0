"""Explorer history: LOCAL indexes (not in the state root, no consensus meaning) that `Chain.commit`
writes in the SAME atomic batch as the block they describe, derived only from that block's state
writes. A node that commits a block therefore always has the history up to that block, and a
crash never leaves the two apart.

What is kept (key functions in state/keys.py, read by node/rpc/explorer_methods.py):
- earnings per recipient per block (``history_earning_key``): for every account address,
  contribution id and datanet id, the amounts a block's receipts paid it, by role, and the
  block time. An account is credited its direct payouts and the matched payouts of the
  contributions it owned at the time; a datanet its pool deposits and the matched payouts of its
  contributions.
- lists (``history_member_key``), kinds in ``KINDS``: a datanet's contributions by status, an
  owner's contributions, the models and adapters trained on a datanet, a model's fine-tunes,
  adapters, agents and inferences, an agent's inferences.
- counters (``history_count_key``): a datanet's contributions by status, and the length of every
  list (kind ``LIST_SIZE`` + list kind), so a page of a list of 100,000 reads only its page; the
  number of receipts that paid each recipient (``RECEIPTS_PAID``).
- the transactions each address sent (``SENDER_TXS``), from the block's transactions.
- events (``history_event_key``): every block in which a contribution was created or its status
  or owner changed, with the new status and owner; every block in which a validator was jailed or
  tombstoned, with its tokens before and after (a slash).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

from state import keys
from state.attribution.records import (
    ROLE_DATANET_POOL,
    ROLE_MATCHED,
    Adapter,
    Agent,
    Contribution,
    Inference,
    Model,
    Receipt,
)
from state.attribution.receipts import receipt_recipients
from state.staking.records import Validator
from state.codec import pack, unpack, unpack_stored
from state.crypto import address_of
from state.store import StateDB, StateView

# list kinds: (parent -> child)
DATANET_CONTRIBUTIONS = b"dc"  # datanet -> status byte + u64 created height + contribution id
OWNER_CONTRIBUTIONS = b"oc"  # owner address -> u64 created height + contribution id
DATANET_MODELS = b"dm"  # datanet -> model id
DATANET_ADAPTERS = b"da"  # datanet -> adapter id
MODEL_CHILDREN = b"mc"  # parent model -> fine-tuned model id
MODEL_ADAPTERS = b"ma"  # base model -> adapter id
MODEL_AGENTS = b"mg"  # model -> agent address
MODEL_INFERENCES = b"mi"  # model -> u64 height + u32 tx index + inference id
ADAPTER_INFERENCES = b"ai"  # adapter -> as MODEL_INFERENCES
AGENT_INFERENCES = b"gi"  # agent address -> as MODEL_INFERENCES
PAYER_INFERENCES = b"pi"  # payer address -> as MODEL_INFERENCES
SENDER_TXS = b"st"  # sender address -> u64 height + u32 tx index + tx hash (every committed tx)
KINDS = (DATANET_CONTRIBUTIONS, OWNER_CONTRIBUTIONS, DATANET_MODELS, DATANET_ADAPTERS, MODEL_CHILDREN,
         MODEL_ADAPTERS, MODEL_AGENTS, MODEL_INFERENCES, ADAPTER_INFERENCES, AGENT_INFERENCES, PAYER_INFERENCES,
         SENDER_TXS)
STATUS_COUNTS = b"ds"  # datanet -> {status: count}
RECEIPTS_PAID = b"rp"  # recipient -> {0: receipts listed under it in the recipient index (state/queries.py)}
LIST_SIZE = b"n"  # counter kind prefix: LIST_SIZE + list kind, parent -> {0: length of the list}

_RECEIPTS = keys.receipt_key(b"")
_CONTRIBUTIONS = keys.contribution_key(b"")
_MODELS = keys.model_key(b"")
_ADAPTERS = keys.adapter_key(b"")
_AGENTS = keys.agent_key(b"")
_INFERENCES = keys.inference_key(b"")
_VALIDATORS = keys.validator_key(b"")
_PRESENT = b""


class _Writes:
    """The history writes of one block, reading earlier history through the committed store."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        self.out: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.out:
            return self.out[key]
        return self.db.raw.get(key)  # type: ignore[no-any-return]

    def member(self, kind: bytes, parent: bytes, child: bytes) -> None:
        key = keys.history_member_key(kind, parent, child)
        if self.get(key) is None:
            self.out[key] = _PRESENT
            self.count(LIST_SIZE + kind, parent, 0, 1)

    def unmember(self, kind: bytes, parent: bytes, child: bytes) -> None:
        key = keys.history_member_key(kind, parent, child)
        if self.get(key) is not None:
            self.out[key] = None
            self.count(LIST_SIZE + kind, parent, 0, -1)

    def count(self, kind: bytes, parent: bytes, field: int, delta: int) -> None:
        key = keys.history_count_key(kind, parent)
        raw = self.get(key)
        counts: dict[int, int] = {k: v for k, v in unpack(raw)} if raw else {}
        counts[field] = counts.get(field, 0) + delta
        self.out[key] = pack([[k, v] for k, v in sorted(counts.items()) if v])


def _committed(db: StateDB, key: bytes, cls: Any) -> Any:
    raw = db.raw.get(key)
    return cls.from_wire(unpack_stored(raw)) if raw is not None else None


def _new(value: bytes, cls: Any) -> Any:
    return cls.from_wire(unpack_stored(value))


def block_index(db: StateDB, view: StateView, height: int, time_ms: int,
                txs: Sequence[tuple[bytes, bytes]] = ()) -> dict[bytes, bytes | None]:
    """The history writes (None: delete) for the block whose state writes are ``view``'s and whose
    transactions are ``txs`` ((hash, bytes) in block order)."""
    w = _Writes(db)
    for index, (tx_hash, raw) in enumerate(txs):
        sender = sender_of(raw)
        if sender is not None:
            w.member(SENDER_TXS, sender, keys.u64(height) + index.to_bytes(4, "big") + tx_hash)
    earned: dict[bytes, dict[int, int]] = {}
    event_seq = 0
    contributions_seen: dict[bytes, Contribution] = {}
    for key, value in view.block_writes.items():
        if value is None:
            continue
        if key.startswith(_RECEIPTS):
            receipt = Receipt.from_wire(unpack_stored(value))
            _receipt(view, receipt, earned, contributions_seen)
            if db.raw.get(key) is None:
                for recipient in receipt_recipients(receipt):
                    w.count(RECEIPTS_PAID, recipient, 0, 1)
        elif key.startswith(_CONTRIBUTIONS):
            cid = key[len(_CONTRIBUTIONS):]
            new = _new(value, Contribution)
            contributions_seen[cid] = new
            old = _committed(db, key, Contribution)
            if old is not None and old.status == new.status and old.owner == new.owner:
                continue
            _contribution(w, cid, old, new, height, event_seq)
            event_seq += 1
        elif key.startswith(_INFERENCES):
            if db.raw.get(key) is not None:
                continue
            inf = _new(value, Inference)
            child = keys.u64(inf.height) + inf.tx_index.to_bytes(4, "big") + key[len(_INFERENCES):]
            w.member(MODEL_INFERENCES, inf.model, child)
            w.member(PAYER_INFERENCES, inf.payer, child)
            if inf.adapter:
                w.member(ADAPTER_INFERENCES, inf.adapter, child)
            if inf.agent:
                w.member(AGENT_INFERENCES, inf.agent, child)
        elif key.startswith(_MODELS):
            if db.raw.get(key) is not None:
                continue
            m = _new(value, Model)
            mid = key[len(_MODELS):]
            for datanet_id, _ in m.datanets:
                w.member(DATANET_MODELS, datanet_id, mid)
            if m.parent:
                w.member(MODEL_CHILDREN, m.parent, mid)
        elif key.startswith(_ADAPTERS):
            if db.raw.get(key) is not None:
                continue
            ad = _new(value, Adapter)
            aid = key[len(_ADAPTERS):]
            for datanet_id, _ in ad.datanets:
                w.member(DATANET_ADAPTERS, datanet_id, aid)
            w.member(MODEL_ADAPTERS, ad.base_model, aid)
        elif key.startswith(_VALIDATORS):
            old_v = _committed(db, key, Validator)
            new_v = _new(value, Validator)
            if old_v is not None and (new_v.jailed > old_v.jailed or new_v.tombstoned > old_v.tombstoned):
                w.out[keys.history_event_key(new_v.operator, height, event_seq)] = pack(
                    [new_v.jailed, new_v.tombstoned, old_v.tokens, new_v.tokens])
                event_seq += 1
        elif key.startswith(_AGENTS):
            if db.raw.get(key) is not None:
                continue
            ag = _new(value, Agent)
            w.member(MODEL_AGENTS, ag.model, key[len(_AGENTS):])
    for recipient, by_role in earned.items():
        w.out[keys.history_earning_key(recipient, height)] = pack([time_ms, sorted(by_role.items())])
    return w.out


def _contribution(w: _Writes, cid: bytes, old: Contribution | None, new: Contribution, height: int,
                  seq: int) -> None:
    tail = keys.u64(new.created_height) + cid
    if old is not None:
        w.unmember(DATANET_CONTRIBUTIONS, old.datanet, bytes([old.status]) + tail)
        w.count(STATUS_COUNTS, old.datanet, old.status, -1)
        if old.owner != new.owner:
            w.unmember(OWNER_CONTRIBUTIONS, old.owner, tail)
    w.member(DATANET_CONTRIBUTIONS, new.datanet, bytes([new.status]) + tail)
    w.count(STATUS_COUNTS, new.datanet, new.status, 1)
    w.member(OWNER_CONTRIBUTIONS, new.owner, tail)
    w.out[keys.history_event_key(cid, height, seq)] = pack([new.status, new.owner])


def _receipt(view: StateView, r: Receipt, earned: dict[bytes, dict[int, int]],
             seen: dict[bytes, Contribution]) -> None:
    def credit(recipient: bytes, role: int, amount: int) -> None:
        by_role = earned.setdefault(recipient, {})
        by_role[role] = by_role.get(role, 0) + amount

    for recipient, role, amount in r.entries:
        credit(recipient, role, amount)
    for cid, owner, _score, amount in r.matched:
        if not amount:
            continue
        credit(owner, ROLE_MATCHED, amount)
        c = seen.get(cid) or view.get_obj(keys.contribution_key(cid), Contribution)
        if c is not None:
            credit(c.datanet, ROLE_MATCHED, amount)


def sender_of(raw: bytes) -> bytes | None:
    """The sender address of stored transaction bytes (``[[chain_id, nonce, public_key, ..], ..]``),
    without full validation; None when malformed."""
    try:
        pub = unpack_stored(raw)[0][2]
    except (ValueError, TypeError, IndexError, KeyError, msgpack.UnpackException):
        return None
    return address_of(pub) if type(pub) is bytes and len(pub) == 32 else None


# ---- reads (node/rpc/explorer_methods.py) ---------------------------------------------------


def earnings(db: StateDB, recipient: bytes, min_height: int, max_height: int,
             max_scan: int) -> tuple[list[tuple[int, int, list[tuple[int, int]]]], bool]:
    """[(height, time_ms, [(role, amount)])] of the blocks in [min_height, max_height] that paid
    ``recipient``, oldest first, and whether ``max_scan`` cut the scan short."""
    prefix = keys.history_earning_prefix(recipient)
    out = []
    it = db.raw.iterator(start=prefix + keys.u64(min_height), stop=prefix + keys.u64(max_height + 1))
    for k, v in it:
        if len(out) >= max_scan:
            return out, True
        time_ms, by_role = unpack(v)
        out.append((int.from_bytes(k[-8:], "big"), time_ms, [(r, a) for r, a in by_role]))
    return out, False


def members(db: StateDB, kind: bytes, parent: bytes, start: int, limit: int, reverse: bool = True,
            sub: bytes = b"") -> tuple[list[bytes], int]:
    """One page of a list (children ``start`` .. ``start+limit``) and the list's length (from its
    counter; ``sub``, a status byte, only filters a datanet's contributions)."""
    prefix = keys.history_member_prefix(kind, parent) + sub
    page: list[bytes] = []
    for n, k in enumerate(db.raw.iterator(prefix=prefix, include_value=False, reverse=reverse)):
        if n >= start + limit:
            break
        if n >= start:
            page.append(k[len(prefix):])
    if sub:
        if kind != DATANET_CONTRIBUTIONS:
            raise ValueError("only a datanet's contributions are filtered by status")
        return page, counts(db, STATUS_COUNTS, parent).get(sub[0], 0)
    return page, counts(db, LIST_SIZE + kind, parent).get(0, 0)


def counts(db: StateDB, kind: bytes, parent: bytes) -> dict[int, int]:
    raw = db.raw.get(keys.history_count_key(kind, parent))
    return {int(k): int(v) for k, v in unpack(raw)} if raw else {}


def events(db: StateDB, subject: bytes, limit: int) -> list[tuple[int, list[Any]]]:
    """[(height, fields)] of a subject's events, oldest first (at most ``limit``): for a contribution
    [status, owner], for a validator operator [jailed, tombstoned, tokens before, tokens after]."""
    out: list[tuple[int, list[Any]]] = []
    prefix = keys.history_event_prefix(subject)
    for k, v in db.raw.iterator(prefix=prefix):
        if len(out) >= limit:
            break
        out.append((int.from_bytes(k[len(prefix):len(prefix) + 8], "big"), unpack(v)))
    return out
