"""Handlers of the governance methods: proposals, votes, tallies, params in force, the community
pool and the upgrade plan. They read the committed state through state/governance/queries.py; a
missing proposal is -32001."""

from __future__ import annotations

from typing import Any

from node.rpc.env import RPCEnv
from node.rpc.errors import NotFound
from state.governance import queries as q


def _found(value: Any, proposal_id: int) -> Any:
    if value is None:
        raise NotFound(f"proposal {proposal_id} not found")
    return value


def _with_height(env: RPCEnv, out: dict[str, Any]) -> dict[str, Any]:
    return {"height": env.chain.height, **out}


def proposals(env: RPCEnv, p: dict[str, Any]) -> Any:
    view = env.chain.db.view()
    return _with_height(env, q.list_proposals(view, p["status"], p["proposer"], p["page"], p["per_page"]))


def proposal(env: RPCEnv, p: dict[str, Any]) -> Any:
    return _found(q.get_proposal(env.chain.db.view(), p["id"]), p["id"])


def votes(env: RPCEnv, p: dict[str, Any]) -> Any:
    return _found(q.list_votes(env.chain.db.view(), p["proposal"], p["page"], p["per_page"]), p["proposal"])


def tally(env: RPCEnv, p: dict[str, Any]) -> Any:
    return _with_height(env, _found(q.get_tally(env.chain.db.view(), p["proposal"]), p["proposal"]))


def params(env: RPCEnv, p: dict[str, Any]) -> Any:
    """The params in force for the next block (genesis params as changed by governance)."""
    return {"height": env.chain.height, "params": q.params_json(env.chain.db.view())}


def community_pool(env: RPCEnv, p: dict[str, Any]) -> Any:
    return _with_height(env, q.community_pool(env.chain.db.view()))


def upgrade_plan(env: RPCEnv, p: dict[str, Any]) -> Any:
    return _with_height(env, q.upgrade_plan(env.chain.db.view(), p["name"]))
