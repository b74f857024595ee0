"""Handlers of the explorer methods: earnings over time, lists (a datanet's contributions, a model's
inferences, lineage), contribution and validator history, and search. They read the explorer
history indexes (state/history.py), which the node writes in the same batch as each block, and the
committed state through state/queries.py. Every list is paged and every scan is bounded."""

from __future__ import annotations

from typing import Any

from node.rpc.encode import raw_tx_json
from node.rpc.env import RPCEnv
from node.rpc.errors import InvalidParams, NotFound
from state import history, queries
from state.attribution.records import ROLE_NAMES, STATUS_NAMES
from state.crypto import to_hex
from state.staking.handlers import list_validators
from state.staking.records import get_signing_info
from state.transition import load_params

MAX_EARNING_BLOCKS = 200_000  # earning blocks one `earnings` call reads
MAX_EVENTS = 1_000
MAX_LINEAGE = 100  # ancestors, children, adapters, agents listed per model
STATUS_CODES = {name: code for code, name in STATUS_NAMES.items()}


def _exactly_one(p: dict[str, Any], names: tuple[str, ...]) -> str:
    given = [n for n in names if p.get(n) is not None]
    if len(given) != 1:
        raise InvalidParams(f"give exactly one of {', '.join(names)}")
    return given[0]


def earnings(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    """What a recipient earned, by role and over time, bucketed into at most ``points`` points."""
    latest = env.latest_height()
    lo = p["min_height"] or 1
    hi = min(p["max_height"] or latest, latest)
    rows, truncated = history.earnings(env.chain.db, p["recipient"], lo, hi, MAX_EARNING_BLOCKS)
    by_role: dict[int, int] = {}
    series: list[dict[str, Any]] = []
    total = 0
    if rows:
        first, last = rows[0][0], rows[-1][0]
        width = max(1, -(-(last - first + 1) // p["points"]))  # heights per point, rounded up
        for height, time_ms, roles in rows:
            amount = sum(a for _, a in roles)
            for role, a in roles:
                by_role[role] = by_role.get(role, 0) + a
            total += amount
            bucket = (height - first) // width
            if series and series[-1]["bucket"] == bucket:
                point = series[-1]
                point["amount"] += amount
                point["height"], point["time_ms"] = height, time_ms
            else:
                series.append({"bucket": bucket, "height": height, "time_ms": time_ms, "amount": amount})
            series[-1]["cumulative"] = total
        for point in series:
            del point["bucket"]
    return {
        "recipient": to_hex(p["recipient"]),
        "min_height": lo,
        "max_height": hi,
        "total": total,
        "by_role": {ROLE_NAMES.get(r, str(r)): a for r, a in sorted(by_role.items())},
        "blocks": len(rows),
        "series": series,
        "truncated": truncated,
    }


def contributions(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    """A page of a datanet's contributions (optionally of one status) or of an owner's, newest first."""
    which = _exactly_one(p, ("datanet", "owner"))
    db = env.chain.db
    start = (p["page"] - 1) * p["per_page"]
    out: dict[str, Any] = {which: to_hex(p[which]), "page": p["page"], "per_page": p["per_page"]}
    if which == "datanet":
        if queries.get_datanet(db, p["datanet"]) is None:
            raise NotFound(f"datanet {to_hex(p['datanet'])} not found")
        counts = history.counts(db, history.STATUS_COUNTS, p["datanet"])
        out["counts"] = {name: counts.get(code, 0) for code, name in STATUS_NAMES.items()}
        sub = b"" if p["status"] is None else bytes([STATUS_CODES[p["status"]]])
        children, total = history.members(db, history.DATANET_CONTRIBUTIONS, p["datanet"], start, p["per_page"],
                                           sub=sub)
        ids = [c[-32:] for c in children]
        out["status"] = p["status"]
    else:
        if p["status"] is not None:
            raise InvalidParams("status filters a datanet's contributions only")
        children, total = history.members(db, history.OWNER_CONTRIBUTIONS, p["owner"], start, p["per_page"])
        ids = [c[-32:] for c in children]
    view = db.view()
    out["total"] = total
    out["contributions"] = [c for c in (queries.get_contribution(view, i) for i in ids) if c is not None]
    return out


_INFERENCE_LISTS = {"model": history.MODEL_INFERENCES, "adapter": history.ADAPTER_INFERENCES,
                    "agent": history.AGENT_INFERENCES, "payer": history.PAYER_INFERENCES}


def inferences(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    """A page of the inferences of a model, an adapter, an agent or a payer, newest first."""
    which = _exactly_one(p, tuple(_INFERENCE_LISTS))
    db = env.chain.db
    start = (p["page"] - 1) * p["per_page"]
    children, total = history.members(db, _INFERENCE_LISTS[which], p[which], start, p["per_page"])
    view = db.view()
    listed = []
    for child in children:
        inf = queries.get_inference(view, child[-32:])
        if inf is not None:
            listed.append(inf)
    return {which: to_hex(p[which]), "total": total, "page": p["page"], "per_page": p["per_page"],
            "inferences": listed}


def sent_txs(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    """A page of the transactions an address signed, newest first, each as `tx_search` lists it."""
    db = env.chain.db
    start = (p["page"] - 1) * p["per_page"]
    children, total = history.members(db, history.SENDER_TXS, p["address"], start, p["per_page"])
    txs = []
    blocks: dict[int, Any] = {}
    for child in children:
        height, index = int.from_bytes(child[:8], "big"), int.from_bytes(child[8:12], "big")
        if height not in blocks:
            blocks[height] = (env.block(height), env.chain.get_results(height) or [])
        blk, results = blocks[height]
        code, reason, message = results[index] if index < len(results) else (0, "", "")
        txs.append({"hash": to_hex(child[12:]), "height": height, "index": index,
                    "result": {"code": code, "reason": reason, "message": message},
                    "tx": to_hex(blk.txs[index]), "decoded": raw_tx_json(blk.txs[index])})
    return {"address": to_hex(p["address"]), "total": total, "page": p["page"], "per_page": p["per_page"],
            "txs": txs}


def lineage(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    """A model with its ancestors, fine-tunes, adapters and agents (each list at most 100)."""
    db = env.chain.db
    view = db.view()
    model = queries.get_model(view, p["id"])
    if model is None:
        raise NotFound(f"model {to_hex(p['id'])} not found")
    ancestors = []
    parent = model["parent"]
    while parent is not None and len(ancestors) < MAX_LINEAGE:
        m = queries.get_model(view, bytes.fromhex(parent[2:]))
        if m is None:
            break
        ancestors.append(m)
        parent = m["parent"]
    children, n_children = history.members(db, history.MODEL_CHILDREN, p["id"], 0, MAX_LINEAGE)
    adapters, n_adapters = history.members(db, history.MODEL_ADAPTERS, p["id"], 0, MAX_LINEAGE)
    agents, n_agents = history.members(db, history.MODEL_AGENTS, p["id"], 0, MAX_LINEAGE)
    return {
        "model": model,
        "ancestors": ancestors,
        "children": [m for m in (queries.get_model(view, c) for c in children) if m is not None],
        "children_total": n_children,
        "adapters": [a for a in (queries.get_adapter(view, c) for c in adapters) if a is not None],
        "adapters_total": n_adapters,
        "agents": [to_hex(a) for a in agents],
        "agents_total": n_agents,
    }


def datanet_models(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    """The models and adapters whose datanet mix includes a datanet (at most 100 of each)."""
    db = env.chain.db
    view = db.view()
    models, n_models = history.members(db, history.DATANET_MODELS, p["id"], 0, MAX_LINEAGE)
    adapters, n_adapters = history.members(db, history.DATANET_ADAPTERS, p["id"], 0, MAX_LINEAGE)
    return {
        "datanet": to_hex(p["id"]),
        "models": [m for m in (queries.get_model(view, i) for i in models) if m is not None],
        "models_total": n_models,
        "adapters": [a for a in (queries.get_adapter(view, i) for i in adapters) if a is not None],
        "adapters_total": n_adapters,
    }


def contribution_history(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    """Every block in which a contribution was created or changed status or owner."""
    db = env.chain.db
    if queries.get_contribution(db, p["id"]) is None:
        raise NotFound(f"contribution {to_hex(p['id'])} not found")
    events = [{"height": h, "status": STATUS_NAMES.get(f[0], str(f[0])), "owner": to_hex(f[1])}
              for h, f in history.events(db, p["id"], MAX_EVENTS)]
    return {"contribution": to_hex(p["id"]), "events": events}


def validator_stats(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    """Every validator with its power, its uptime over the liveness window and its slashing history."""
    db = env.chain.db
    view = db.view()
    height = env.latest_height()
    window = load_params(view).staking.signed_blocks_window
    out = []
    for v in list_validators(view):
        info = get_signing_info(view, bytes.fromhex(v["consensus_address"][2:]))
        if info is not None:
            counted = max(1, min(window, height - info.start_height + 1))
            v["missed_blocks"] = info.missed
            v["uptime_bps"] = max(0, (counted - info.missed) * 10_000 // counted)
        else:
            v["missed_blocks"] = None
            v["uptime_bps"] = None
        v["slashing"] = [
            {"height": h, "jailed": bool(f[0]), "tombstoned": bool(f[1]), "tokens_before": f[2], "tokens_after": f[3],
             "slashed": f[2] - f[3]}
            for h, f in history.events(db, bytes.fromhex(v["operator"][2:]), MAX_EVENTS)]
        out.append(v)
    return {"height": height, "window": window, "validators": out}


def search(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    """What a query names: a height, an address, a transaction, a datanet, contribution, model,
    adapter or inference id. Every kind that matches is listed (an id can be a tx hash too)."""
    q = p["q"].strip()
    chain = env.chain
    found: list[dict[str, Any]] = []
    if q.isdigit() and len(q) <= 19:
        h = int(q)
        if 1 <= h <= env.latest_height():
            found.append({"kind": "block", "id": h})
        return {"q": q, "results": found}
    text = q[2:] if q[:2].lower() == "0x" else q
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return {"q": q, "results": found}
    db = chain.db
    view = db.view()
    if len(raw) == 20:
        found.append({"kind": "address", "id": to_hex(raw)})
        if queries.get_agent(view, raw, 0) is not None:
            found.append({"kind": "agent", "id": to_hex(raw)})
    elif len(raw) == 32:
        checks = (("datanet", queries.get_datanet), ("contribution", queries.get_contribution),
                  ("model", queries.get_model), ("adapter", queries.get_adapter),
                  ("inference", queries.get_inference))
        for kind, fn in checks:
            if fn(view, raw) is not None:
                found.append({"kind": kind, "id": to_hex(raw)})
        if chain.get_tx_location(raw) is not None:
            found.append({"kind": "tx", "id": to_hex(raw)})
        height = chain.height_of_hash(raw)
        if height is not None:
            found.append({"kind": "block", "id": height})
    return {"q": q, "results": found}
