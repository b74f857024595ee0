"""Read-only governance queries for the JSON-RPC: plain JSON-able dicts, byte strings as 0x hex.

Every function takes a StateView; a missing proposal is None. The tally of a proposal still in
its voting period is computed live from the current state (what it would be if the period ended
now); an ended proposal shows the tally stored when it ended.
"""

from __future__ import annotations

from typing import Any

from state.accounts import get_account
from state.codec import CodecError
from state.crypto import to_hex
from state.governance import records as R
from state.governance.handlers import circulating_supply, current_params
from state.governance.tally import decide, tally_votes
from state.params import to_dict
from state.store import StateView


def content_json(kind: int, content: bytes) -> dict[str, Any]:
    try:
        c = R.decode_content(kind, content)
    except (CodecError, KeyError):
        return {"raw": to_hex(content)}
    if kind == R.PARAM_CHANGE:
        return {"changes": [{"path": path, "value": value} for path, value in c.changes]}
    if kind == R.COMMUNITY_POOL_SPEND:
        return {"recipient": to_hex(c.recipient), "amount": c.amount}
    if kind == R.SOFTWARE_UPGRADE:
        return {"name": c.name, "height": c.height, "info": c.info}
    return {}


def tally_json(t: R.Tally) -> dict[str, int]:
    return {"yes": t.yes, "abstain": t.abstain, "no": t.no, "no_with_veto": t.no_with_veto,
            "voted": t.voted, "bonded": t.bonded}


def proposal_json(p: R.Proposal) -> dict[str, Any]:
    ended = p.status in (R.PASSED, R.REJECTED, R.FAILED)
    return {
        "id": p.id,
        "kind": R.KIND_NAMES.get(p.kind, str(p.kind)),
        "title": p.title,
        "summary": p.summary,
        "content": content_json(p.kind, p.content),
        "proposer": to_hex(p.proposer),
        "tx_hash": to_hex(p.tx_hash),
        "status": R.STATUS_NAMES[p.status],
        "submit_height": p.submit_height,
        "deposit_end_height": p.deposit_end_height,
        "voting_start_height": p.voting_start_height or None,
        "voting_end_height": p.voting_end_height or None,
        "total_deposit": p.total_deposit,
        "deposits": R.DEPOSIT_FATE_NAMES[p.deposit_fate],
        "final_tally": tally_json(p.final_tally) if ended else None,
        "result": p.result,
    }


def get_proposal(view: StateView, proposal_id: int, max_deposits: int = 100) -> dict[str, Any] | None:
    p = R.get_proposal(view, proposal_id)
    if p is None:
        return None
    out = proposal_json(p)
    deposits = R.deposits_of(view, proposal_id)
    out["deposit_count"] = len(deposits)
    out["escrowed_deposits"] = [{"depositor": to_hex(d), "amount": a} for d, a in deposits[:max_deposits]]
    return out


def list_proposals(view: StateView, status: str | None = None, proposer: bytes | None = None,
                   page: int = 1, per_page: int = 30) -> dict[str, Any]:
    """Proposals by id (oldest first), optionally one status or one proposer."""
    wanted = R.STATUS_BY_NAME[status] if status is not None else None
    start = (page - 1) * per_page
    total = 0
    out = []
    for p in R.iter_proposals(view):
        if (wanted is not None and p.status != wanted) or (proposer is not None and p.proposer != proposer):
            continue
        if start <= total < start + per_page:
            out.append(proposal_json(p))
        total += 1
    return {"total": total, "page": page, "per_page": per_page, "proposals": out}


def list_votes(view: StateView, proposal_id: int, page: int = 1, per_page: int = 30) -> dict[str, Any] | None:
    if R.get_proposal(view, proposal_id) is None:
        return None
    votes = R.votes_of(view, proposal_id)
    start = (page - 1) * per_page
    return {
        "proposal": proposal_id,
        "total": len(votes),
        "page": page,
        "per_page": per_page,
        "votes": [{"voter": to_hex(v), "option": R.OPTION_NAMES[r.option], "height": r.height}
                  for v, r in votes[start:start + per_page]],
    }


def get_tally(view: StateView, proposal_id: int) -> dict[str, Any] | None:
    """The final tally of an ended proposal, or the live one of a proposal being voted on."""
    p = R.get_proposal(view, proposal_id)
    if p is None:
        return None
    params = current_params(view)
    if p.status in (R.PASSED, R.REJECTED, R.FAILED):
        return {"proposal": p.id, "status": R.STATUS_NAMES[p.status], "final": True,
                "tally": tally_json(p.final_tally), "result": p.result}
    if p.status == R.DEPOSIT_PERIOD:
        return {"proposal": p.id, "status": R.STATUS_NAMES[p.status], "final": False, "tally": None,
                "result": "in its deposit period: nobody can vote yet"}
    t = tally_votes(view, p.id, params.staking)
    d = decide(t, params.governance)
    return {"proposal": p.id, "status": R.STATUS_NAMES[p.status], "final": False, "tally": tally_json(t),
            "result": f"if the voting period ended now: {d.reason}"
                      + ("; deposits would be burned" if d.burn_deposits else "")}


def params_json(view: StateView) -> dict[str, Any]:
    return to_dict(current_params(view))


def community_pool(view: StateView) -> dict[str, Any]:
    return {"address": to_hex(R.COMMUNITY_POOL), "balance": get_account(view, R.COMMUNITY_POOL).balance,
            "escrow_address": to_hex(R.GOVERNANCE_ESCROW),
            "escrowed_deposits": get_account(view, R.GOVERNANCE_ESCROW).balance,
            "circulating_supply": circulating_supply(view)}


def upgrade_plan(view: StateView, name: str | None = None) -> dict[str, Any]:
    plan = R.get_upgrade_plan(view)
    out: dict[str, Any] = {"plan": None if plan is None else
                           {"name": plan.name, "height": plan.height, "info": plan.info, "proposal": plan.proposal}}
    if name is not None:
        done = R.get_upgrade_done(view, name)
        out["applied"] = {"name": name, "height": done.height if done else None}
    return out
