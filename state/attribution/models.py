"""Models, adapters and agents: register_model, register_adapter, register_agent, agent_action.

A model's training mix names existing datanets with weights summing to 10,000 bps. A fine-tune
names an existing ``parent``; since the parent must exist before the child, lineage can never form
a cycle, and ``depth`` (number of ancestors) is capped by ``lineage_max_depth``.
"""

from __future__ import annotations

from dataclasses import replace

from state import keys
from state.accounts import AGENT_STAKE_POOL, get_account, move
from state.attribution.records import Adapter, Agent, AgentActionRecord, Model
from state.crypto import to_hex
from state.attribution.datanets import get_datanet
from state.errors import require
from state.params import BPS
from state.store import StateView
from state.context import BlockContext
from state.tx import AgentAction, RegisterAdapter, RegisterAgent, RegisterModel, Tx


def get_model(view: StateView, model_id: bytes) -> Model | None:
    return view.get_obj(keys.model_key(model_id), Model)


def get_adapter(view: StateView, adapter_id: bytes) -> Adapter | None:
    return view.get_obj(keys.adapter_key(adapter_id), Adapter)


def get_agent(view: StateView, address: bytes) -> Agent | None:
    return view.get_obj(keys.agent_key(address), Agent)


def require_model(view: StateView, model_id: bytes) -> Model:
    m = get_model(view, model_id)
    require(m is not None, "unknown_model", f"model {to_hex(model_id)} does not exist")
    assert m is not None
    return m


def require_adapter_for(view: StateView, adapter_id: bytes, model_id: bytes) -> Adapter:
    ad = get_adapter(view, adapter_id)
    require(ad is not None, "unknown_adapter", f"adapter {to_hex(adapter_id)} does not exist")
    assert ad is not None
    require(ad.base_model == model_id, "adapter_model_mismatch",
            f"adapter {to_hex(adapter_id)} is for model {to_hex(ad.base_model)}")
    return ad


def lineage(view: StateView, model_id: bytes, max_depth: int) -> list[tuple[bytes, Model]]:
    """The model then its ancestors, nearest first, at most ``max_depth`` ancestors."""
    chain = [(model_id, require_model(view, model_id))]
    while chain[-1][1].parent and len(chain) <= max_depth:
        parent = chain[-1][1].parent
        chain.append((parent, require_model(view, parent)))
    return chain


def require_valid_mix(view: StateView, mix: tuple[tuple[bytes, int], ...]) -> None:
    """A training mix: distinct existing datanets, positive weights summing to 10,000 bps."""
    require(len(mix) > 0, "empty_mix", "name at least one datanet")
    ids = [d for d, _ in mix]
    require(len(set(ids)) == len(ids), "duplicate_datanet", "a datanet appears twice in the mix")
    require(all(w > 0 for _, w in mix), "zero_weight", "every datanet weight must be positive")
    total = sum(w for _, w in mix)
    require(total == BPS, "weights_not_10000", f"datanet weights sum to {total}, not {BPS}")
    for d in ids:
        require(get_datanet(view, d) is not None, "unknown_datanet", f"datanet {to_hex(d)} does not exist")


def process_register_model(view: StateView, tx: Tx, ctx: BlockContext) -> None:
    """register_model: a model trained on a mix of datanets, optionally fine-tuned from a parent."""
    body: RegisterModel = tx.body
    a = ctx.params.attribution
    require(body.name != "", "empty_name", "a model needs a name")
    require_valid_mix(view, body.datanets)
    require(body.lineage_bps <= BPS, "lineage_bps_too_high", f"lineage_bps exceeds {BPS}")
    depth = 0
    if body.parent:
        parent = get_model(view, body.parent)
        require(parent is not None, "unknown_parent", f"parent model {to_hex(body.parent)} does not exist")
        assert parent is not None
        depth = parent.depth + 1
        require(depth <= a.lineage_max_depth, "lineage_too_deep",
                f"a model may have at most {a.lineage_max_depth} ancestors")
    else:
        require(body.lineage_bps == 0, "lineage_without_parent", "lineage_bps needs a parent model")
    view.put_obj(keys.model_key(tx.hash), Model(
        owner=tx.sender,
        name=body.name,
        datanets=body.datanets,
        parent=body.parent,
        lineage_bps=body.lineage_bps,
        depth=depth,
        created_height=ctx.height,
    ))


def process_register_adapter(view: StateView, tx: Tx, ctx: BlockContext) -> None:
    """register_adapter: a LoRA-style adapter of an existing base model with its own data mix."""
    body: RegisterAdapter = tx.body
    require(body.name != "", "empty_name", "an adapter needs a name")
    require_model(view, body.base_model)
    require_valid_mix(view, body.datanets)
    view.put_obj(keys.adapter_key(tx.hash), Adapter(
        owner=tx.sender,
        name=body.name,
        base_model=body.base_model,
        datanets=body.datanets,
        created_height=ctx.height,
    ))


def process_register_agent(view: StateView, tx: Tx, ctx: BlockContext) -> None:
    """register_agent: the sender's account becomes an agent of a model, staking into escrow."""
    body: RegisterAgent = tx.body
    a = ctx.params.attribution
    require(body.name != "", "empty_name", "an agent needs a name")
    require(get_agent(view, tx.sender) is None, "agent_exists", "the sender is already an agent")
    require_model(view, body.model)
    if body.adapter:
        require_adapter_for(view, body.adapter, body.model)
    require(body.stake >= a.min_agent_stake, "stake_too_low",
            f"stake {body.stake} is below min_agent_stake {a.min_agent_stake}")
    require(get_account(view, tx.sender).balance >= body.stake, "insufficient_balance",
            f"balance cannot pay the stake {body.stake}")
    move(view, tx.sender, AGENT_STAKE_POOL, body.stake)
    view.put_obj(keys.agent_key(tx.sender), Agent(
        owner=body.owner,
        name=body.name,
        model=body.model,
        adapter=body.adapter,
        stake=body.stake,
        actions=0,
        created_height=ctx.height,
    ))


def process_agent_action(view: StateView, tx: Tx, ctx: BlockContext) -> None:
    """agent_action: a registered agent records (action, outcome) under its next sequence number."""
    body: AgentAction = tx.body
    agent = get_agent(view, tx.sender)
    require(agent is not None, "not_an_agent", "the sender is not a registered agent")
    assert agent is not None
    view.put_obj(keys.agent_action_key(tx.sender, agent.actions),
                 AgentActionRecord(body.action_hash, body.outcome_hash, ctx.height, tx.hash))
    view.put_obj(keys.agent_key(tx.sender), replace(agent, actions=agent.actions + 1))
