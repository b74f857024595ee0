"""infer: the fee split, matching, lineage, receipts and their queries, claims after transfer.

Expected amounts are worked out by hand in the comments (genesis defaults: validators 1000,
model 2500, adapter 1000, agent 500, data 5000 bps; matched 6000 bps of data; idf_scale 10**6).
"""

from __future__ import annotations

from typing import Any

import pytest
from attribution_kit import KEYS, World, crafted, rejected, world_fixture  # noqa: F401

from state import queries
from state.accounts import FEE_COLLECTOR, REWARD_POOL
from state.crypto import to_hex
from state.attribution.matching import MATCH_READ_BUDGET, hashes_examined
from state.attribution.postings import POSTINGS_CAP
from state.tx import (
    ClaimRewards,
    CreateDatanet,
    Infer,
    RegisterAdapter,
    RegisterAgent,
    RegisterModel,
    Review,
    TransferContribution,
)

OWNER, DEV, ALICE, BOB, USER, BOT = KEYS[0], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
OUT = b"\x0a" * 32
MISSING = b"\x99" * 32


def _accepted(world: World, d: bytes, seed: int, fp: tuple[int, ...], size: int = 100,
              owner: Any = ALICE) -> bytes:
    cid = world.ok(owner, crafted(world, d, seed, fp, size)).hash
    world.ok(OWNER, Review(cid, 1))
    return cid


def _entries(receipt: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(e["recipient"], e["role"], e["amount"]) for e in receipt["entries"]]


def _infer(world: World, key: Any, model: bytes, payment: int, fp: tuple[int, ...], adapter: bytes = b"",
           agent: bytes = b"") -> dict[str, Any]:
    tx = world.ok(key, Infer(model, adapter, agent, payment, 3, 5, OUT, world.sym(*fp)))
    receipt = queries.get_receipt(world.chain.db, tx.hash)
    assert receipt is not None and receipt["payment"] == payment
    assert sum(e["amount"] for e in receipt["entries"]) == payment
    return receipt


def test_no_adapter_no_agent_no_match_all_data_goes_to_the_pool(world: World) -> None:
    d = world.ok(OWNER, CreateDatanet("d", "", 0)).hash
    cid = _accepted(world, d, 1, (1, 2), size=100)
    model = world.ok(DEV, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    receipt = _infer(world, USER, model, 10_000, (50,))
    # validators 1000, model 2500, adapter+agent missing -> data 6500, nothing matched -> pool
    assert _entries(receipt) == [
        (to_hex(FEE_COLLECTOR), "validators", 1000),
        (to_hex(DEV.address), "model_owner", 2500),
        (to_hex(d), "datanet_pool", 6500),
    ]
    assert receipt["matched"] == []
    assert queries.pending_rewards(world.chain.db, cid)["unclaimed"] == 6500  # type: ignore[index]


def test_adapter_owner_is_paid_and_adapter_data_is_matched_not_pooled(world: World) -> None:
    d = world.ok(OWNER, CreateDatanet("base", "", 0)).hash
    da = world.ok(OWNER, CreateDatanet("adapter-data", "", 0)).hash
    _accepted(world, d, 1, (8,))
    ca = _accepted(world, da, 2, (7,), owner=BOB)
    model = world.ok(DEV, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    adapter = world.ok(BOB, RegisterAdapter("lora", model, ((da, 10_000),))).hash
    receipt = _infer(world, USER, model, 10_000, (7,), adapter=adapter)
    # data = 10000 - 1000 - 2500 - 1000 = 5500; matched 60% = 3300 to ca; pool 2200 to d only
    assert _entries(receipt) == [
        (to_hex(FEE_COLLECTOR), "validators", 1000),
        (to_hex(DEV.address), "model_owner", 2500),
        (to_hex(BOB.address), "adapter_owner", 1000),
        (to_hex(ca), "matched_contribution", 3300),
        (to_hex(d), "datanet_pool", 2200),
    ]
    assert receipt["matched"] == [
        {"contribution": to_hex(ca), "owner": to_hex(BOB.address), "score": 1_000_000, "amount": 3300}
    ]


def test_lineage_passes_lineage_bps_up_each_generation(world: World) -> None:
    d0, d1, d2 = (world.ok(k, CreateDatanet(f"d{i}", "", 0)).hash for i, k in enumerate((ALICE, BOB, OWNER)))
    m0 = world.ok(DEV, RegisterModel("m0", ((d0, 10_000),), b"", 0)).hash
    m1 = world.ok(DEV, RegisterModel("m1", ((d1, 10_000),), m0, 5000)).hash
    m2 = world.ok(DEV, RegisterModel("m2", ((d2, 10_000),), m1, 5000)).hash
    receipt = _infer(world, USER, m2, 10_000, ())
    # pool 6500: m2 keeps 3250, passes 3250; m1 keeps 1625, passes 1625; m0 (root) keeps 1625.
    # No datanet has accepted contributions, so each datanet's owner is paid (entries in id order).
    assert sorted(_entries(receipt)[2:]) == sorted([
        (to_hex(OWNER.address), "datanet_owner", 3250),
        (to_hex(BOB.address), "datanet_owner", 1625),
        (to_hex(ALICE.address), "datanet_owner", 1625),
    ])


def test_saturated_hash_counts_in_document_frequency_but_pays_nobody(world: World) -> None:
    d = world.ok(OWNER, CreateDatanet("d", "", 0)).hash
    common = [_accepted(world, d, i, (5,)) for i in range(POSTINGS_CAP + 1)]
    rare = _accepted(world, d, 100, (5, 6))
    model = world.ok(DEV, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    receipt = _infer(world, USER, model, 10_000, (5, 6))
    # hash 5 is held by 10 > POSTINGS_CAP contributions: saturated, it scores no one;
    # hash 6 is held by `rare` alone: weight 10**6 // 1
    assert [m["contribution"] for m in receipt["matched"]] == [to_hex(rare)]
    assert receipt["matched"][0]["score"] == 1_000_000
    assert all(queries.pending_rewards(world.chain.db, c)["unclaimed"] < 3900 for c in common)  # type: ignore[index]


def test_transfer_hands_over_accrued_and_future_rewards(world: World) -> None:
    d = world.ok(OWNER, CreateDatanet("d", "", 0)).hash
    cid = _accepted(world, d, 1, (1, 2), size=100)
    model = world.ok(DEV, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    _infer(world, USER, model, 10_000, (1,))  # data 6500: matched 3900 + pool 2600, all to cid
    world.ok(ALICE, TransferContribution(cid, BOB.address))
    _infer(world, USER, model, 1_000, (50,))  # data 650, no match: pool 650
    rejected(world, ALICE, ClaimRewards((cid,)), "not_owner")
    before = world.balance(BOB.address)
    world.ok(BOB, ClaimRewards((cid,)))
    assert world.balance(BOB.address) == before - 1 + 6500 + 650
    assert world.balance(REWARD_POOL) == 0
    info = queries.get_contribution(world.chain.db, cid)
    assert info is not None and info["claimed"] == "7150" and info["unclaimed"] == 0
    assert world.conserved()


def test_receipts_are_queryable_by_recipient_page_by_page(world: World) -> None:
    d = world.ok(OWNER, CreateDatanet("d", "", 0)).hash
    cid = _accepted(world, d, 1, (1,))
    model = world.ok(DEV, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    ids = [world.ok(USER, Infer(model, b"", b"", 1000 + i, 1, 1, OUT, world.sym(1))).hash for i in range(3)]
    db = world.chain.db
    newest = queries.receipts_by_recipient(db, DEV.address, page=1, per_page=2)
    assert newest["total"] == 3
    assert [r["inference"] for r in newest["receipts"]] == [to_hex(ids[2]), to_hex(ids[1])]
    last = queries.receipts_by_recipient(db, DEV.address, page=2, per_page=2)
    assert [r["inference"] for r in last["receipts"]] == [to_hex(ids[0])]
    oldest = queries.receipts_by_recipient(db, DEV.address, page=1, per_page=3, order="asc")
    assert [r["inference"] for r in oldest["receipts"]] == [to_hex(i) for i in ids]
    # a contributor finds the outputs that paid them under their address and under the contribution
    for recipient in (ALICE.address, cid, d):
        assert queries.receipts_by_recipient(db, recipient)["total"] == 3
    assert queries.receipts_by_recipient(db, BOB.address)["total"] == 0
    inference = queries.get_inference(db, ids[0])
    assert inference is not None and inference["payment"] == 1000 and inference["payer"] == to_hex(USER.address)
    assert queries.get_receipt(db, MISSING) is None and queries.get_inference(db, MISSING) is None


def test_agent_pays_for_itself_and_its_owner_earns(world: World) -> None:
    d = world.ok(OWNER, CreateDatanet("d", "", 0)).hash
    model = world.ok(DEV, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    world.ok(BOT, RegisterAgent("bot", model, b"", BOB.address, 0))
    receipt = _infer(world, BOT, model, 10_000, (), agent=BOT.address)
    # validators 1000, model 2500, agent 500, data 6000 -> owner of the empty datanet
    assert _entries(receipt) == [
        (to_hex(FEE_COLLECTOR), "validators", 1000),
        (to_hex(DEV.address), "model_owner", 2500),
        (to_hex(BOB.address), "agent_owner", 500),
        (to_hex(OWNER.address), "datanet_owner", 6000),
    ]


def test_infer_rejections(world: World) -> None:
    d = world.ok(OWNER, CreateDatanet("d", "", 0)).hash
    model = world.ok(DEV, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    other = world.ok(DEV, RegisterModel("other", ((d, 10_000),), b"", 0)).hash
    foreign = world.ok(DEV, RegisterAdapter("lora", other, ((d, 10_000),))).hash
    world.ok(BOT, RegisterAgent("bot", other, b"", BOB.address, 0))
    too_long = tuple(range(world.a.output_fingerprint_max + 1))
    cases = [
        (USER, Infer(model, b"", b"", 0, 1, 1, OUT, ()), "zero_payment"),
        (USER, Infer(model, b"", b"", 10, 1, 1, OUT, too_long), "output_fingerprint_too_long"),
        (USER, Infer(model, b"", b"", 10, 1, 1, OUT, (2, 1)), "output_fingerprint_not_sorted"),
        (USER, Infer(model, b"", b"", 10, 1, 1, OUT, (1, 1)), "output_fingerprint_not_sorted"),
        (USER, Infer(MISSING, b"", b"", 10, 1, 1, OUT, ()), "unknown_model"),
        (USER, Infer(model, MISSING, b"", 10, 1, 1, OUT, ()), "unknown_adapter"),
        (USER, Infer(model, foreign, b"", 10, 1, 1, OUT, ()), "adapter_model_mismatch"),
        (USER, Infer(model, b"", BOT.address, 10, 1, 1, OUT, ()), "agent_not_sender"),
        (USER, Infer(model, b"", USER.address, 10, 1, 1, OUT, ()), "unknown_agent"),
        (BOT, Infer(model, b"", BOT.address, 10, 1, 1, OUT, ()), "agent_model_mismatch"),
        (USER, Infer(model, b"", b"", 10**9, 1, 1, OUT, ()), "insufficient_balance"),
    ]
    for key, body, reason in cases:
        rejected(world, key, body, reason)


def test_matching_budget_bounds_reads() -> None:
    fp = tuple(range(2000))
    assert hashes_examined(fp, 1) == fp[: min(2000, MATCH_READ_BUDGET)]
    assert hashes_examined(fp, 8) == fp[: MATCH_READ_BUDGET // 8]
    assert len(hashes_examined(fp, 100)) == MATCH_READ_BUDGET // 100
    assert hashes_examined(fp, 0) == ()


def test_receipts_by_recipient_rejects_bad_paging(world: World) -> None:
    for kwargs in ({"page": 0}, {"per_page": 0}, {"per_page": queries.MAX_PER_PAGE + 1}, {"order": "new"}):
        with pytest.raises(ValueError):
            queries.receipts_by_recipient(world.chain.db, DEV.address, **kwargs)  # type: ignore[arg-type]
