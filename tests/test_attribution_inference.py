"""infer: the fee split, matching, lineage, receipts and their queries, claims after transfer.

Expected amounts are worked out by hand in the comments (genesis defaults: validators 1000,
model 2500, adapter 1000, agent 500, data 5000 bps; matched 6000 bps of data; idf_scale 10**6).
"""

from __future__ import annotations

from typing import Any

import pytest
from attribution_kit import KEYS, World, make_text, rejected, world_fixture  # noqa: F401

from state import queries
from state.accounts import FEE_COLLECTOR, REWARD_POOL
from state.crypto import sha256, to_hex
from state.attribution.matching import MATCH_READ_BUDGET, examined_length
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
PASSAGE = make_text(7, 40)  # 40 words unique to this passage: 37 shingles


def _accepted(world: World, d: bytes, content: bytes, owner: Any = ALICE) -> bytes:
    cid = world.ok(owner, world.contribute_body(d, content)).hash
    world.ok(OWNER, Review(cid, 1))
    return cid


def _entries(receipt: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(e["recipient"], e["role"], e["amount"]) for e in receipt["entries"]]


def _infer(world: World, key: Any, model: bytes, payment: int, output: bytes, adapter: bytes = b"",
           agent: bytes = b"") -> dict[str, Any]:
    tx = world.ok(key, Infer(model, adapter, agent, payment, 3, 5, sha256(output), output))
    receipt = queries.get_receipt(world.chain.db, tx.hash)
    assert receipt is not None and receipt["payment"] == payment
    assert sum(e["amount"] for e in receipt["entries"]) == payment
    receipt["inference"] = queries.get_inference(world.chain.db, tx.hash)
    return receipt


def test_no_adapter_no_agent_no_match_all_data_goes_to_the_pool(world: World) -> None:
    d = world.ok(OWNER, CreateDatanet("d", "", 0)).hash
    cid = _accepted(world, d, make_text(1))
    model = world.ok(DEV, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    for output in (make_text(2), b""):  # unrelated text; no text at all (unattributed)
        receipt = _infer(world, USER, model, 10_000, output)
        # validators 1000, model 2500, adapter+agent missing -> data 6500, nothing matched -> pool
        assert _entries(receipt) == [
            (to_hex(FEE_COLLECTOR), "validators", 1000),
            (to_hex(DEV.address), "model_owner", 2500),
            (to_hex(d), "datanet_pool", 6500),
        ]
        assert receipt["matched"] == []
        assert receipt["inference"]["attributed"] is bool(output)
    assert queries.pending_rewards(world.chain.db, cid)["unclaimed"] in (12_999, 13_000)  # type: ignore[index]  # a sub-token rest waits in reward_frac


def test_adapter_owner_is_paid_and_adapter_data_is_matched_not_pooled(world: World) -> None:
    d = world.ok(OWNER, CreateDatanet("base", "", 0)).hash
    da = world.ok(OWNER, CreateDatanet("adapter-data", "", 0)).hash
    _accepted(world, d, make_text(1))
    ca = _accepted(world, da, make_text(2, 30) + b" " + PASSAGE, owner=BOB)
    model = world.ok(DEV, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    adapter = world.ok(BOB, RegisterAdapter("lora", model, ((da, 10_000),))).hash
    receipt = _infer(world, USER, model, 10_000, PASSAGE, adapter=adapter)
    # data = 10000 - 1000 - 2500 - 1000 = 5500; matched = 5500 * 60% * covered / 37 shingles to ca;
    # the rest to d's pool only (the adapter's datanet is matched, not pooled)
    inf = receipt["inference"]
    assert inf["output_shingles"] == 37 and 0 < inf["covered_shingles"] <= 37
    matched = 5500 * 6000 * inf["covered_shingles"] // (10_000 * 37)
    assert _entries(receipt) == [
        (to_hex(FEE_COLLECTOR), "validators", 1000),
        (to_hex(DEV.address), "model_owner", 2500),
        (to_hex(BOB.address), "adapter_owner", 1000),
        (to_hex(ca), "matched_contribution", matched),
        (to_hex(d), "datanet_pool", 5500 - matched),
    ]
    (m,) = receipt["matched"]
    assert (m["contribution"], m["owner"], m["amount"]) == (to_hex(ca), to_hex(BOB.address), matched)
    (span,) = m["spans"]  # the passage starts at word 0 of the output and word 30 of the contribution
    assert span["contribution_shingle"] - span["output_shingle"] == 30
    assert span["credited"] == span["shingles"] == inf["covered_shingles"] and span["weight"] == 1_000_000
    assert m["score"] == span["credited"] * 1_000_000


def test_lineage_passes_lineage_bps_up_each_generation(world: World) -> None:
    d0, d1, d2 = (world.ok(k, CreateDatanet(f"d{i}", "", 0)).hash for i, k in enumerate((ALICE, BOB, OWNER)))
    m0 = world.ok(DEV, RegisterModel("m0", ((d0, 10_000),), b"", 0)).hash
    m1 = world.ok(DEV, RegisterModel("m1", ((d1, 10_000),), m0, 5000)).hash
    m2 = world.ok(DEV, RegisterModel("m2", ((d2, 10_000),), m1, 5000)).hash
    receipt = _infer(world, USER, m2, 10_000, b"")
    # pool 6500: m2 keeps 3250, passes 3250; m1 keeps 1625, passes 1625; m0 (root) keeps 1625.
    # No datanet has accepted contributions, so each datanet's owner is paid (entries in id order).
    assert sorted(_entries(receipt)[2:]) == sorted([
        (to_hex(OWNER.address), "datanet_owner", 3250),
        (to_hex(BOB.address), "datanet_owner", 1625),
        (to_hex(ALICE.address), "datanet_owner", 1625),
    ])


def test_transfer_hands_over_accrued_and_future_rewards(world: World) -> None:
    d = world.ok(OWNER, CreateDatanet("d", "", 0)).hash
    cid = _accepted(world, d, PASSAGE)
    model = world.ok(DEV, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    _infer(world, USER, model, 10_000, PASSAGE)  # data 6500: matched + pool, all to cid
    world.ok(ALICE, TransferContribution(cid, BOB.address))
    _infer(world, USER, model, 1_000, make_text(50))  # data 650, no match: pool 650
    rejected(world, ALICE, ClaimRewards((cid,)), "not_owner")
    before = world.balance(BOB.address)
    world.ok(BOB, ClaimRewards((cid,)))
    got = world.balance(BOB.address) - (before - 1)
    assert 7150 - 2 <= got <= 7150  # sub-token rests of the two pool deposits wait in reward_frac
    assert world.balance(REWARD_POOL) == 7150 - got
    info = queries.get_contribution(world.chain.db, cid)
    assert info is not None and info["claimed"] == str(got) and info["unclaimed"] == 0
    assert world.conserved()


def test_receipts_are_queryable_by_recipient_page_by_page(world: World) -> None:
    d = world.ok(OWNER, CreateDatanet("d", "", 0)).hash
    cid = _accepted(world, d, PASSAGE)
    model = world.ok(DEV, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    ids = [world.ok(USER, Infer(model, b"", b"", 1000 + i, 1, 1, sha256(PASSAGE), PASSAGE)).hash for i in range(3)]
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
    receipt = _infer(world, BOT, model, 10_000, b"", agent=BOT.address)
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
    big = b"word " * (world.a.max_output_bytes // 5 + 1)
    cases = [
        (USER, Infer(model, b"", b"", 0, 1, 1, OUT, b""), "zero_payment"),
        (USER, Infer(model, b"", b"", 10, 1, 1, sha256(big), big), "output_too_large"),
        (USER, Infer(model, b"", b"", 10, 1, 1, OUT, b"caf\xe9"), "bad_output"),
        (USER, Infer(model, b"", b"", 10, 1, 1, OUT, b"some text"), "output_hash_mismatch"),
        (USER, Infer(MISSING, b"", b"", 10, 1, 1, OUT, b""), "unknown_model"),
        (USER, Infer(model, MISSING, b"", 10, 1, 1, OUT, b""), "unknown_adapter"),
        (USER, Infer(model, foreign, b"", 10, 1, 1, OUT, b""), "adapter_model_mismatch"),
        (USER, Infer(model, b"", BOT.address, 10, 1, 1, OUT, b""), "agent_not_sender"),
        (USER, Infer(model, b"", USER.address, 10, 1, 1, OUT, b""), "unknown_agent"),
        (BOT, Infer(model, b"", BOT.address, 10, 1, 1, OUT, b""), "agent_model_mismatch"),
        (USER, Infer(model, b"", b"", 10**9, 1, 1, OUT, b""), "insufficient_balance"),
    ]
    for key, body, reason in cases:
        rejected(world, key, body, reason)


def test_matching_budget_bounds_reads() -> None:
    assert examined_length(2000, 1) == 2000
    assert examined_length(20_000, 1) == MATCH_READ_BUDGET
    assert examined_length(20_000, 8) == MATCH_READ_BUDGET // 8
    assert examined_length(2000, 0) == 0


def test_receipts_by_recipient_rejects_bad_paging(world: World) -> None:
    for kwargs in ({"page": 0}, {"per_page": 0}, {"per_page": queries.MAX_PER_PAGE + 1}, {"order": "new"}):
        with pytest.raises(ValueError):
            queries.receipts_by_recipient(world.chain.db, DEV.address, **kwargs)  # type: ignore[arg-type]
