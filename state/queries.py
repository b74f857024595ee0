"""Read-only attribution queries for the JSON-RPC: plain JSON-able dicts, byte strings as 0x hex.

Every function takes a StateView or a StateDB (then it reads the committed state) and returns
None when the object does not exist. Integers that can exceed 64 bits (accumulators) are decimal
strings so that JavaScript clients do not lose precision.

`receipts_by_recipient` pages through the LOCAL recipient index (state/attribution/receipts.py), newest first
by default (``order="asc"`` for oldest first); pages start at 1.
"""

from __future__ import annotations

import re

from typing import Any

from state import history, keys
from state.attribution.records import (
    ACCEPTED,
    ID_SIZE,
    ROLE_DATANET_POOL,
    ROLE_NAMES,
    STATUS_NAMES,
    AgentActionRecord,
    Inference,
    Receipt,
    Contribution,
    Sketch,
    unpack_u64s,
)
from state.attribution.contributions import get_contribution as _contribution
from state.attribution.contributions import vested_at
from state.crypto import to_hex
from state.attribution.datanets import get_datanet as _datanet
from state.attribution.models import get_adapter as _adapter
from state.attribution.models import get_agent as _agent
from state.attribution.models import get_model as _model
from state.attribution.pools import settle
from state.store import StateDB, StateView
from state.transition import load_params

MAX_PER_PAGE = 100
_INDEX_TAIL = 8 + 4 + ID_SIZE  # height, tx index, inference id after the recipient


def _view(source: StateView | StateDB) -> StateView:
    return source.view() if isinstance(source, StateDB) else source


def _mix(mix: tuple[tuple[bytes, int], ...]) -> list[dict[str, Any]]:
    return [{"datanet": to_hex(d), "weight_bps": w} for d, w in mix]


def get_datanet(source: StateView | StateDB, datanet_id: bytes) -> dict[str, Any] | None:
    view = _view(source)
    dn = _datanet(view, datanet_id)
    if dn is None:
        return None
    curators = [to_hex(k[-20:]) for k, _ in view.iter_prefix(keys.curator_key(datanet_id, b""))]
    return {
        "id": to_hex(datanet_id),
        "owner": to_hex(dn.owner),
        "name": dn.name,
        "metadata_uri": dn.metadata_uri,
        "bond_required": dn.bond_required,
        "created_height": dn.created_height,
        "curators": curators,
        "submitted": dn.submitted,
        "accepted": dn.accepted,
        "total_units": dn.total_units,
        "reward_per_unit": str(dn.reward_per_unit),
        "carry": str(dn.carry),
        "rewards_in": str(dn.rewards_in),
    }


def get_contribution(source: StateView | StateDB, contribution_id: bytes) -> dict[str, Any] | None:
    view = _view(source)
    c = _contribution(view, contribution_id)
    if c is None:
        return None
    return {
        "id": to_hex(contribution_id),
        "datanet": to_hex(c.datanet),
        "owner": to_hex(c.owner),
        "content_hash": to_hex(c.content_hash),
        "size": c.size,
        "bond": c.bond,
        "status": STATUS_NAMES[c.status],
        "created_height": c.created_height,
        "fingerprint_len": c.fingerprint_len,
        "commit_height": c.commit_height,  # the commitment's place orders holders (earliest first)
        "commit_index": c.commit_index,
        "unclaimed": _owed(view, contribution_id),
        "claimed": str(c.claimed),
    }


def pending_rewards(source: StateView | StateDB, contribution_id: bytes) -> dict[str, Any] | None:
    """What claim_rewards would pay for this contribution now, and to whom."""
    view = _view(source)
    c = _contribution(view, contribution_id)
    if c is None:
        return None
    return {
        "contribution": to_hex(contribution_id),
        "owner": to_hex(c.owner),
        "status": STATUS_NAMES[c.status],
        "unclaimed": _owed(view, contribution_id),
        "claimed": str(c.claimed),
        "bond": c.bond,  # escrowed: returned by the first claim once vested (accepted) or by review
        "vests_at": _vests_at(view, c),
    }


def _vests_at(view: StateView, c: Contribution) -> int | None:
    """Height from which claim_rewards pays an accepted contribution (None unless accepted)."""
    if c.status != ACCEPTED:
        return None
    return vested_at(c, load_params(view).attribution)


def _owed(view: StateView, contribution_id: bytes) -> int:
    c = _contribution(view, contribution_id)
    assert c is not None
    dn = _datanet(view, c.datanet)
    return settle(c, dn, _pool_unit_cap(view)).unclaimed if dn is not None else c.unclaimed


def get_model(source: StateView | StateDB, model_id: bytes) -> dict[str, Any] | None:
    m = _model(_view(source), model_id)
    if m is None:
        return None
    return {
        "id": to_hex(model_id),
        "owner": to_hex(m.owner),
        "name": m.name,
        "datanets": _mix(m.datanets),
        "parent": to_hex(m.parent) if m.parent else None,
        "lineage_bps": m.lineage_bps,
        "depth": m.depth,
        "created_height": m.created_height,
    }


def get_adapter(source: StateView | StateDB, adapter_id: bytes) -> dict[str, Any] | None:
    ad = _adapter(_view(source), adapter_id)
    if ad is None:
        return None
    return {
        "id": to_hex(adapter_id),
        "owner": to_hex(ad.owner),
        "name": ad.name,
        "base_model": to_hex(ad.base_model),
        "datanets": _mix(ad.datanets),
        "created_height": ad.created_height,
    }


def get_agent(source: StateView | StateDB, address: bytes, actions: int = 10) -> dict[str, Any] | None:
    """An agent with its ``actions`` most recent recorded actions (newest first)."""
    view = _view(source)
    ag = _agent(view, address)
    if ag is None:
        return None
    recent = []
    for seq in range(ag.actions - 1, max(ag.actions - actions, 0) - 1, -1):
        rec = view.get_obj(keys.agent_action_key(address, seq), AgentActionRecord)
        if rec is not None:
            recent.append({
                "seq": seq,
                "action_hash": to_hex(rec.action_hash),
                "outcome_hash": to_hex(rec.outcome_hash),
                "height": rec.height,
                "tx_hash": to_hex(rec.tx_hash),
            })
    return {
        "address": to_hex(address),
        "owner": to_hex(ag.owner),
        "name": ag.name,
        "model": to_hex(ag.model),
        "adapter": to_hex(ag.adapter) if ag.adapter else None,
        "stake": ag.stake,
        "actions": ag.actions,
        "recent_actions": recent,
        "created_height": ag.created_height,
    }


def get_inference(source: StateView | StateDB, inference_id: bytes) -> dict[str, Any] | None:
    inf = _view(source).get_obj(keys.inference_key(inference_id), Inference)
    if inf is None:
        return None
    return {
        "id": to_hex(inference_id),
        "payer": to_hex(inf.payer),
        "model": to_hex(inf.model),
        "adapter": to_hex(inf.adapter) if inf.adapter else None,
        "agent": to_hex(inf.agent) if inf.agent else None,
        "payment": inf.payment,
        "input_tokens": inf.input_tokens,
        "output_tokens": inf.output_tokens,
        "output_hash": to_hex(inf.output_hash),
        "output_bytes": inf.output_bytes,
        "attributed": inf.output_bytes > 0,
        "output_shingles": inf.output_shingles,
        "covered_shingles": inf.covered_shingles,
        "height": inf.height,
        "tx_index": inf.tx_index,
    }


POOL_RULE = ("each datanet_pool amount is shared by that datanet's accepted contributions in proportion to "
             "units = min(size, pool_unit_cap), size being the byte length the validators measured (nobody "
             "declares a weight): a contribution earned units * reward_per_unit_added / 10**18 of it "
             "(the fraction waits in its reward_frac); datanet_owner: the datanet had no accepted "
             "contribution, its owner was paid")


def receipt_json(inference_id: bytes, r: Receipt, pool_unit_cap: int) -> dict[str, Any]:
    amounts = {recipient: amount for recipient, role, amount in r.entries if role == ROLE_DATANET_POOL}
    return {
        "inference": to_hex(inference_id),
        "height": r.height,
        "payment": r.payment,
        "entries": [
            {"recipient": to_hex(recipient), "role": ROLE_NAMES[role], "amount": amount}
            for recipient, role, amount in r.entries
        ],
        # the pool part, datanet by datanet, and how it reaches contributions (docs/attribution.md "Receipts")
        "pool_rule": POOL_RULE,
        "pool_unit_cap": pool_unit_cap,
        "pools": [
            {"datanet": to_hex(d), "amount": amounts[d], "total_units": total, "accepted": accepted,
             "reward_per_unit_added": str(added)}
            for d, total, accepted, added in r.pools
        ],
        "matched": [
            {"contribution": to_hex(cid), "owner": to_hex(owner), "score": score, "amount": amount,
             "spans": [{"output_shingle": o, "contribution_shingle": c, "shingles": n, "credited": cr,
                        "weight": wt} for o, c, n, cr, wt in spans]}
            for cid, owner, score, amount, spans in r.matched
        ],
    }


def get_receipt(source: StateView | StateDB, inference_id: bytes) -> dict[str, Any] | None:
    view = _view(source)
    r = view.get_obj(keys.receipt_key(inference_id), Receipt)
    if r is None:
        return None
    out = receipt_json(inference_id, r, _pool_unit_cap(view))
    inf = view.get_obj(keys.inference_key(inference_id), Inference)
    if inf is not None:
        out["data_share"] = data_share_json(r, inf)
    return out


OWNER_ROLES = ("validators", "model_owner", "adapter_owner", "agent_owner")


def data_share_json(r: Receipt, inf: Inference) -> dict[str, Any]:
    """Where the data share came from and why it split as it did, from the receipt and the inference
    alone (params may have changed since): the shares of the parties the inference did not name
    (adapter, agent) stay in it; the matched part scales with the output shingles credited to paid
    spans; the pool part is the rest (docs/attribution.md "Inference")."""
    owners = sum(amount for _, role, amount in r.entries if ROLE_NAMES[role] in OWNER_ROLES)
    data = r.payment - owners
    matched = sum(m[3] for m in r.matched)
    absent = [name for name, given in (("adapter", inf.adapter), ("agent", inf.agent)) if not given]
    if inf.output_bytes == 0:
        why = "unattributed (no output text): nothing can be matched, the pool part is the whole data share"
    elif inf.covered_shingles == 0:
        why = ("no span of at least min_span_shingles shingles of the output is held by an accepted "
               "contribution: the pool part is the whole data share")
    else:
        why = (f"{inf.covered_shingles} of {inf.output_shingles} output shingles are credited to paid spans: "
               "the matched part is matched_bps of the data share times that fraction")
    return {
        "amount": data,
        "absent_parties": absent,
        "absent_note": ("the share of each absent party stays in the data share (it is not paid to anyone "
                        "else)") if absent else "",
        "matched_part": matched,
        "pool_part": data - matched,
        "covered_shingles": inf.covered_shingles,
        "output_shingles": inf.output_shingles,
        "why": why,
    }


def _pool_unit_cap(view: StateView) -> int:
    """Genesis ``pool_unit_cap`` (immutable, so today's value is the value of every block)."""
    return load_params(view).attribution.pool_unit_cap


def receipts_by_recipient(
    db: StateDB, recipient: bytes, page: int = 1, per_page: int = 20, order: str = "desc"
) -> dict[str, Any]:
    """One page of the receipts that paid ``recipient`` (an address, contribution or datanet id).

    Raises ValueError for a page below 1, a page size outside 1..MAX_PER_PAGE or an unknown order.
    """
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise ValueError(f"page must be >= 1 and per_page in 1..{MAX_PER_PAGE}")
    if order not in ("desc", "asc"):
        raise ValueError("order must be 'desc' (newest first) or 'asc' (oldest first)")
    prefix = keys.recipient_prefix(recipient)
    # A 20-byte address prefix could also prefix a 32-byte id's keys: keep only exact-length keys.
    exact = len(prefix) + _INDEX_TAIL
    start = (page - 1) * per_page
    # the count the explorer history keeps (state/history.py); counted here only on a store whose
    # history predates it (until `attrchain node reindex-history`)
    counted = history.counts(db, history.RECEIPTS_PAID, recipient).get(0)
    total = 0
    page_ids: list[bytes] = []
    for k in db.raw.iterator(prefix=prefix, include_value=False, reverse=(order == "desc")):
        if len(k) != exact:
            continue
        if start <= total < start + per_page:
            page_ids.append(k[-ID_SIZE:])
        total += 1
        if counted is not None and total >= start + per_page:
            total = counted
            break
    view = db.view()
    receipts = [r for r in (get_receipt(view, i) for i in page_ids) if r is not None]
    return {
        "recipient": to_hex(recipient),
        "total": total,
        "page": page,
        "per_page": per_page,
        "order": order,
        "receipts": receipts,
    }


def get_sketch(source: StateView | StateDB, contribution_id: bytes) -> dict[str, Any] | None:
    """The registered fingerprint and MinHash of a pending or accepted contribution."""
    sk = _view(source).get_obj(keys.contribution_sketch_key(contribution_id), Sketch)
    if sk is None:
        return None
    return {"fingerprint": list(unpack_u64s(sk.fingerprint)), "minhash": list(unpack_u64s(sk.minhash))}


# ---- inference evidence (issue 14; docs/attribution.md "Inference") ----------------------------------

PENDING_SCAN = 50  # newest pending contributions per relevant datanet checked for unpaid matches


def word_offsets(text: str) -> list[tuple[int, int]]:
    """For each word of ``text`` as the chain counts them, the character range of the
    whitespace-delimited piece of the raw text holding it (for display: normalisation can merge
    or split characters, but never across whitespace)."""
    from state.attribution.fingerprint import words_of

    out: list[tuple[int, int]] = []
    for piece in re.finditer(r"\S+", text):
        out.extend([(piece.start(), piece.end())] * len(words_of(piece.group())))
    return out


def inference_evidence(db: StateDB, inference_id: bytes, output: bytes) -> dict[str, Any] | None:
    """What an inference's receipt rests on: character ranges of its paid spans in the output text,
    and the pending contributions (of the relevant datanets, newest PENDING_SCAN each) the output
    also quotes, which were paid nothing because no curator had accepted them."""
    from state import history
    from state.attribution.contributions import fingerprint_params, get_positions, get_sketch
    from state.attribution.fingerprint import shingle_hashes, words_of
    from state.attribution.inference import relevant_datanets
    from state.attribution.matching import chains_with
    from state.attribution.models import lineage, require_adapter_for
    from state.attribution.records import PENDING
    from state.transition import load_params

    view = db.view()
    inf = view.get_obj(keys.inference_key(inference_id), Inference)
    receipt = view.get_obj(keys.receipt_key(inference_id), Receipt)
    if inf is None or receipt is None:
        return None
    a = load_params(view).attribution
    k = a.shingle_k
    text = output.decode("utf-8")
    offsets = word_offsets(text)
    hashes = shingle_hashes(words_of(text), fingerprint_params(a))

    def chars(first_word: int, shingles: int) -> tuple[int, int]:
        last = min(first_word + shingles + k - 2, len(offsets) - 1)
        return offsets[first_word][0], offsets[last][1]

    spans = []
    for cid, _owner, _score, _amount, paid in receipt.matched:
        for o, _c, n, _cr, _w in paid:
            start, end = chars(o, n)
            spans.append({"contribution": to_hex(cid), "start": start, "end": end})
    pending = []
    chain = lineage(view, inf.model, a.lineage_max_depth)
    adapter = require_adapter_for(view, inf.adapter, inf.model) if inf.adapter else None
    paid = {m[0] for m in receipt.matched}
    for d in relevant_datanets(chain, adapter):
        # pending now, or accepted only after this inference: quoted, but not accepted when it ran
        for status in (PENDING, ACCEPTED):
            children, _ = history.members(db, history.DATANET_CONTRIBUTIONS, d, 0, PENDING_SCAN, sub=bytes([status]))
            for child in children:
                cid = child[-32:]
                c = _contribution(view, cid)
                if c is None or c.status != status or cid in paid:
                    continue
                if status == ACCEPTED and c.accepted_height <= inf.height:
                    continue  # accepted when the inference ran: the matching rules decided
                fp, _ = get_sketch(view, cid)
                found = chains_with(hashes, fp, get_positions(view, cid), a.min_span_shingles, a.winnow_window)
                if found:
                    note = ("quoted but not accepted yet: paid nothing; later inferences pay it once a curator "
                            "accepts it") if status == PENDING else (
                            f"quoted but accepted only at height {c.accepted_height}, after this inference "
                            f"(height {inf.height}): paid nothing by it")
                    pending.append({"contribution": to_hex(cid), "datanet": to_hex(d),
                                    "status": "pending" if status == PENDING else "accepted_later",
                                    "shingles": sum(n for _, _, n in found),
                                    "spans": [{"output_shingle": o, "contribution_shingle": cs, "shingles": n,
                                               **dict(zip(("start", "end"), chars(o, n)))} for o, cs, n in found],
                                    "note": note})
    return {"output_spans": spans, "pending_matches": pending}
