"""register_model, register_adapter, register_agent, agent_action: one rule per test."""

from __future__ import annotations

from attribution_kit import KEYS, World, rejected, world_fixture  # noqa: F401

from state import keys, queries
from state.accounts import AGENT_STAKE_POOL
from state.attribution.records import AgentActionRecord, Model
from state.tx import (
    AgentAction,
    CreateDatanet,
    RegisterAdapter,
    RegisterAgent,
    RegisterModel,
)

OWNER, DEV, AGENT, OTHER = KEYS[0], KEYS[1], KEYS[2], KEYS[3]
MISSING = b"\x99" * 32


def _datanets(world: World, n: int = 2) -> list[bytes]:
    return [world.ok(OWNER, CreateDatanet(f"d{i}", "", 0)).hash for i in range(n)]


def test_register_model_and_fine_tune(world: World) -> None:
    d1, d2 = _datanets(world)
    base = world.ok(DEV, RegisterModel("base", ((d1, 6000), (d2, 4000)), b"", 0)).hash
    tune = world.ok(OTHER, RegisterModel("tune", ((d2, 10_000),), base, 2500)).hash
    m = world.view().get_obj(keys.model_key(tune), Model)
    assert m is not None and (m.owner, m.parent, m.lineage_bps, m.depth) == (OTHER.address, base, 2500, 1)
    info = queries.get_model(world.chain.db, base)
    assert info is not None and info["datanets"] == [
        {"datanet": "0x" + d1.hex(), "weight_bps": 6000},
        {"datanet": "0x" + d2.hex(), "weight_bps": 4000},
    ]
    assert info["parent"] is None and info["owner"] == "0x" + DEV.address.hex()


def test_register_model_rejections(world: World) -> None:
    d1, d2 = _datanets(world)
    base = world.ok(DEV, RegisterModel("base", ((d1, 10_000),), b"", 0)).hash
    cases = [
        (RegisterModel("", ((d1, 10_000),), b"", 0), "empty_name"),
        (RegisterModel("m", (), b"", 0), "empty_mix"),
        (RegisterModel("m", ((d1, 5000), (d1, 5000)), b"", 0), "duplicate_datanet"),
        (RegisterModel("m", ((d1, 10_000), (d2, 0)), b"", 0), "zero_weight"),
        (RegisterModel("m", ((d1, 5000), (d2, 4999)), b"", 0), "weights_not_10000"),
        (RegisterModel("m", ((d1, 5000), (MISSING, 5000)), b"", 0), "unknown_datanet"),
        (RegisterModel("m", ((d1, 10_000),), MISSING, 100), "unknown_parent"),
        (RegisterModel("m", ((d1, 10_000),), base, 10_001), "lineage_bps_too_high"),
        (RegisterModel("m", ((d1, 10_000),), b"", 100), "lineage_without_parent"),
    ]
    for body, reason in cases:
        rejected(world, DEV, body, reason)


def test_lineage_depth_is_capped(world: World) -> None:
    (d,) = _datanets(world, 1)
    cap = world.a.lineage_max_depth
    parent = world.ok(DEV, RegisterModel("gen0", ((d, 10_000),), b"", 0)).hash
    for depth in range(1, cap + 1):
        parent = world.ok(DEV, RegisterModel(f"gen{depth}", ((d, 10_000),), parent, 1000)).hash
    m = world.view().get_obj(keys.model_key(parent), Model)
    assert m is not None and m.depth == cap
    rejected(world, DEV, RegisterModel("too-deep", ((d, 10_000),), parent, 1000), "lineage_too_deep")


def test_register_adapter_and_its_rejections(world: World) -> None:
    d1, d2 = _datanets(world)
    base = world.ok(DEV, RegisterModel("base", ((d1, 10_000),), b"", 0)).hash
    adapter = world.ok(OTHER, RegisterAdapter("lora", base, ((d2, 10_000),))).hash
    info = queries.get_adapter(world.chain.db, adapter)
    assert info is not None and info["base_model"] == "0x" + base.hex() and info["owner"] == "0x" + OTHER.address.hex()
    rejected(world, OTHER, RegisterAdapter("", base, ((d2, 10_000),)), "empty_name")
    rejected(world, OTHER, RegisterAdapter("x", MISSING, ((d2, 10_000),)), "unknown_model")
    rejected(world, OTHER, RegisterAdapter("x", base, ((d2, 9_000),)), "weights_not_10000")
    rejected(world, OTHER, RegisterAdapter("x", base, ((MISSING, 10_000),)), "unknown_datanet")


def test_register_agent_escrows_stake(world: World) -> None:
    (d,) = _datanets(world, 1)
    base = world.ok(DEV, RegisterModel("base", ((d, 10_000),), b"", 0)).hash
    adapter = world.ok(DEV, RegisterAdapter("lora", base, ((d, 10_000),))).hash
    before = world.balance(AGENT.address)
    world.ok(AGENT, RegisterAgent("bot", base, adapter, OWNER.address, 777))
    assert world.balance(AGENT.address) == before - 777 - 1
    assert world.balance(AGENT_STAKE_POOL) == 777
    info = queries.get_agent(world.chain.db, AGENT.address)
    assert info is not None and info["owner"] == "0x" + OWNER.address.hex() and info["stake"] == 777
    assert world.conserved()


def test_register_agent_rejections(world: World, new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    (d,) = _datanets(world, 1)
    base = world.ok(DEV, RegisterModel("base", ((d, 10_000),), b"", 0)).hash
    other = world.ok(DEV, RegisterModel("other", ((d, 10_000),), b"", 0)).hash
    foreign = world.ok(DEV, RegisterAdapter("lora", other, ((d, 10_000),))).hash
    rejected(world, AGENT, RegisterAgent("", base, b"", OWNER.address, 0), "empty_name")
    rejected(world, AGENT, RegisterAgent("bot", MISSING, b"", OWNER.address, 0), "unknown_model")
    rejected(world, AGENT, RegisterAgent("bot", base, MISSING, OWNER.address, 0), "unknown_adapter")
    rejected(world, AGENT, RegisterAgent("bot", base, foreign, OWNER.address, 0), "adapter_model_mismatch")
    rejected(world, AGENT, RegisterAgent("bot", base, b"", OWNER.address, 10**9), "insufficient_balance")
    world.ok(AGENT, RegisterAgent("bot", base, b"", OWNER.address, 0))
    rejected(world, AGENT, RegisterAgent("bot2", base, b"", OWNER.address, 0), "agent_exists")
    # a chain whose genesis demands a minimum stake
    strict = World(new_chain({AGENT.address: 10**6, OWNER.address: 10**6},
                             overrides={"attribution": {"min_agent_stake": 500}}), chain_id)
    (d2,) = _datanets(strict, 1)
    m = strict.ok(OWNER, RegisterModel("m", ((d2, 10_000),), b"", 0)).hash
    rejected(strict, AGENT, RegisterAgent("bot", m, b"", OWNER.address, 499), "stake_too_low")
    strict.ok(AGENT, RegisterAgent("bot", m, b"", OWNER.address, 500))


def test_agent_actions_are_recorded_in_sequence(world: World) -> None:
    (d,) = _datanets(world, 1)
    base = world.ok(DEV, RegisterModel("base", ((d, 10_000),), b"", 0)).hash
    rejected(world, AGENT, AgentAction(b"\x01" * 32, b"\x02" * 32), "not_an_agent")
    world.ok(AGENT, RegisterAgent("bot", base, b"", OWNER.address, 0))
    a1 = world.ok(AGENT, AgentAction(b"\x01" * 32, b"\x02" * 32))
    world.ok(AGENT, AgentAction(b"\x03" * 32, b"\x04" * 32))
    first = world.view().get_obj(keys.agent_action_key(AGENT.address, 0), AgentActionRecord)
    assert first is not None and first.action_hash == b"\x01" * 32 and first.tx_hash == a1.hash
    info = queries.get_agent(world.chain.db, AGENT.address)
    assert info is not None and info["actions"] == 2
    assert [r["seq"] for r in info["recent_actions"]] == [1, 0]
    assert info["recent_actions"][0]["outcome_hash"] == "0x" + "04" * 32
