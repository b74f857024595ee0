"""Handlers of the attribution domain: accounts, datanets, contributions, models, adapters, agents,
inferences, attribution receipts and rewards. They read the committed state through
state/queries.py (and state/accounts.py); a missing record is -32001."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from node.rpc.env import RPCEnv
from node.rpc.errors import InvalidParams, LimitExceeded, NotAvailable, NotFound
from state.accounts import get_account
from state.attribution.content_proof import content_proof
from state.crypto import sha256, to_hex
from state.tx import decode_tx


def _query(name: str) -> Callable[..., Any]:
    """A function of state/queries.py, or a clear "not available yet" while it does not exist."""
    try:
        module = importlib.import_module("state.queries")
    except ImportError:
        raise NotAvailable("attribution queries (state.queries)") from None
    fn = getattr(module, name, None)
    if fn is None:
        raise NotAvailable(f"state.queries.{name}")
    return fn  # type: ignore[no-any-return]


def _found(value: Any, what: str, ident: bytes) -> Any:
    if value is None:
        raise NotFound(f"{what} {to_hex(ident)} not found")
    return value


def account(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    address = p["address"]
    chain = env.chain
    acct = get_account(chain.db.view(), address)
    out = {"address": to_hex(address), "balance": acct.balance, "nonce": acct.nonce, "height": chain.height}
    next_nonce = getattr(env.ctx.mempool, "next_nonce", None)
    # the nonce a new transaction should carry, counting this node's queued ones
    out["next_nonce"] = next_nonce(address) if next_nonce is not None else acct.nonce
    return out


def datanet(env: RPCEnv, p: dict[str, Any]) -> Any:
    return _found(_query("get_datanet")(env.chain.db, p["id"]), "datanet", p["id"])


def contribution(env: RPCEnv, p: dict[str, Any]) -> Any:
    out = _found(_query("get_contribution")(env.chain.db, p["id"]), "contribution", p["id"])
    if p["sketch"]:
        out = dict(out)
        out["sketch"] = _query("get_sketch")(env.chain.db, p["id"])
    return out


def contribution_content(env: RPCEnv, p: dict[str, Any]) -> Any:
    """The text of a contribution from the block that carried it, with its proof."""
    cid = p["id"]
    _found(_query("get_contribution")(env.chain.db, cid), "contribution", cid)
    loc = env.chain.get_tx_location(cid)
    if loc is None:
        raise NotFound(f"the block carrying contribution {to_hex(cid)} is not indexed on this node")
    block = env.block(loc.height)
    text = decode_tx(block.txs[loc.index]).body.content
    return {"content": text.decode("utf-8"), "content_hash": to_hex(sha256(text)),
            "proof": content_proof(block, loc.index)}


def model(env: RPCEnv, p: dict[str, Any]) -> Any:
    return _found(_query("get_model")(env.chain.db, p["id"]), "model", p["id"])


def adapter(env: RPCEnv, p: dict[str, Any]) -> Any:
    return _found(_query("get_adapter")(env.chain.db, p["id"]), "adapter", p["id"])


def agent(env: RPCEnv, p: dict[str, Any]) -> Any:
    return _found(_query("get_agent")(env.chain.db, p["address"], p["actions"]), "agent", p["address"])


def inference(env: RPCEnv, p: dict[str, Any]) -> Any:
    out = dict(_found(_query("get_inference")(env.chain.db, p["id"]), "inference", p["id"]))
    out.update(_evidence(env, p["id"], out["attributed"]))
    return out


def _evidence(env: RPCEnv, inference_id: bytes, attributed: bool) -> dict[str, Any]:
    """The output text (from the block that carried the infer), the character ranges of its paid
    spans and the quoted contributions that were not accepted yet (paid nothing)."""
    out: dict[str, Any] = {"output": None, "output_spans": [], "pending_matches": []}
    loc = env.chain.get_tx_location(inference_id) if attributed else None
    if loc is not None:
        text = decode_tx(env.block(loc.height).txs[loc.index]).body.output
        out["output"] = text.decode("utf-8")
        out.update(_query("inference_evidence")(env.chain.db, inference_id, text) or {})
    return out


def attribution(env: RPCEnv, p: dict[str, Any]) -> Any:
    """Receipts: the one of an inference, or a page of those that paid a recipient."""
    by_inference, recipient = p["inference"], p["recipient"]
    if (by_inference is None) == (recipient is None):
        raise InvalidParams("give exactly one of inference or recipient")
    if by_inference is not None:
        receipt = _found(_query("get_receipt")(env.chain.db, by_inference), "receipt of inference", by_inference)
        inf = _query("get_inference")(env.chain.db, by_inference) or {"attributed": False}
        # beside the receipt: the contributions the output quotes that no curator had accepted (paid nothing)
        pending = _evidence(env, by_inference, inf["attributed"])["pending_matches"]
        return {"inference": to_hex(by_inference), "receipts": [receipt], "total": 1, "pending_matches": pending}
    per_page = p["per_page"]
    fn = _query("receipts_by_recipient")
    cap = getattr(importlib.import_module("state.queries"), "MAX_PER_PAGE", per_page)
    if per_page > cap:
        raise LimitExceeded(f"per_page {per_page} exceeds the receipt index's page limit {cap}")
    try:
        return fn(env.chain.db, recipient, page=p["page"], per_page=per_page, order=p["order"])
    except ValueError as exc:
        raise InvalidParams(str(exc)) from None


def rewards(env: RPCEnv, p: dict[str, Any]) -> Any:
    """What claim_rewards would pay now for a contribution, and to whom."""
    return _found(_query("pending_rewards")(env.chain.db, p["contribution"]), "contribution", p["contribution"])
