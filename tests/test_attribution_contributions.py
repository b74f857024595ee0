"""contribute, review, transfer_contribution and claim_rewards rejections: one rule per test."""

from __future__ import annotations

from dataclasses import replace

import pytest
from attribution_kit import FEE, KEYS, World, crafted, make_text, rejected, world_fixture  # noqa: F401

from state import keys, queries
from state.accounts import BOND_ESCROW, get_chain_meta
from state.attribution.records import ACCEPTED, PENDING, REJECTED, Contribution, Datanet
from state.crypto import sha256, to_hex
from state.attribution.postings import read_postings
from state.tx import ClaimRewards, CreateDatanet, Review, TransferContribution

OWNER, ALICE, BOB = KEYS[0], KEYS[1], KEYS[2]
MISSING = b"\x99" * 32
BOND = 1001


def _datanet(world: World, bond: int = BOND) -> bytes:
    return world.ok(OWNER, CreateDatanet("news", "", bond)).hash


def _contribution(world: World, cid: bytes) -> Contribution:
    c = world.view().get_obj(keys.contribution_key(cid), Contribution)
    assert c is not None
    return c


def _datanet_record(world: World, d: bytes) -> Datanet:
    dn = world.view().get_obj(keys.datanet_key(d), Datanet)
    assert dn is not None
    return dn


# ---- contribute ----------------------------------------------------------------------------


def test_contribute_escrows_bond_and_indexes_the_contribution(world: World) -> None:
    d = _datanet(world)
    before = world.balance(ALICE.address)
    text = make_text(1)
    body = world.contribute_body(d, text, BOND)
    cid = world.ok(ALICE, body).hash
    c = _contribution(world, cid)
    fp = world.fingerprint(text)  # what the validators computed from the content
    assert (c.status, c.owner, c.bond, c.size) == (PENDING, ALICE.address, BOND, len(text))
    assert (c.content_hash, c.fingerprint_len) == (sha256(text), len(fp.fingerprint))
    assert world.balance(ALICE.address) == before - BOND - 2 * FEE  # the commitment and the reveal
    assert world.balance(BOND_ESCROW) == BOND
    view = world.view()
    assert view.get(keys.content_hash_key(fp.content_hash)) is not None
    assert queries.get_sketch(view, cid) == {"fingerprint": list(fp.fingerprint), "minhash": list(fp.minhash)}
    assert _datanet_record(world, d).submitted == 1
    # pending contributions are not matchable yet
    assert read_postings(view, d, fp.fingerprint[0]) is None


def test_exact_duplicate_is_rejected_naming_the_original(world: World) -> None:
    d = _datanet(world)
    original = world.ok(ALICE, world.contribute_body(d, make_text(1), BOND)).hash
    result = rejected(world, BOB, world.contribute_body(d, make_text(1), BOND), "duplicate_content")
    assert to_hex(original) in result.message


def test_near_duplicate_is_rejected_naming_the_original(world: World) -> None:
    d = _datanet(world)
    text = make_text(7, words=200)
    original = world.ok(ALICE, world.contribute_body(d, text, BOND)).hash
    words = text.split()
    words[100] = b"changed"
    result = rejected(world, BOB, world.contribute_body(d, b" ".join(words), BOND), "near_duplicate")
    assert to_hex(original) in result.message


def test_same_content_in_another_datanet_is_a_duplicate_naming_both(world: World) -> None:
    d1, d2 = _datanet(world), _datanet(world)
    original = world.ok(ALICE, world.contribute_body(d1, make_text(1), BOND)).hash
    result = rejected(world, BOB, world.contribute_body(d2, make_text(1), BOND), "duplicate_content")
    assert f"{to_hex(original)} (datanet {to_hex(d1)})" in result.message
    near = make_text(7, words=200).replace(b" ", b"  ")  # same words: the same MinHash
    first = world.ok(ALICE, world.contribute_body(d1, make_text(7, words=200), BOND)).hash
    result = rejected(world, BOB, world.contribute_body(d2, near, BOND), "near_duplicate")
    assert f"{to_hex(first)} (datanet {to_hex(d1)})" in result.message


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda b, a: replace(b, datanet=MISSING), "unknown_datanet"),
        (lambda b, a: replace(b, content=b""), "bad_content"),
        (lambda b, a: replace(b, content=b" ,;. \n"), "bad_content"),  # no words
        (lambda b, a: replace(b, content=b"caf\xe9 au lait"), "bad_content"),  # not UTF-8
        (lambda b, a: replace(b, bond=BOND - 1), "bond_too_low"),
        (lambda b, a: replace(b, bond=10**9), "insufficient_balance"),
    ],
)
def test_contribute_rejections(world: World, change, reason) -> None:  # type: ignore[no-untyped-def]
    d = _datanet(world)
    body = world.contribute_body(d, make_text(3), BOND)
    rejected(world, ALICE, change(body, world.a), reason)


def test_content_over_the_genesis_maximum_is_rejected(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    world = World(new_chain({k.address: 10**9 for k in KEYS}, overrides={"attribution": {"max_content_bytes": 1000}}),
                  chain_id)
    d = _datanet(world)
    world.ok(ALICE, world.contribute_body(d, b"w " * 500, BOND))  # exactly the maximum
    rejected(world, BOB, world.contribute_body(d, b"v " * 500 + b"x", BOND), "content_too_large")


# ---- review --------------------------------------------------------------------------------


def test_accept_keeps_the_bond_escrowed_and_makes_the_contribution_matchable(world: World) -> None:
    d = _datanet(world)
    body = world.contribute_body(d, make_text(1), BOND)
    cid = world.ok(ALICE, body).hash
    before = world.balance(ALICE.address)
    world.ok(OWNER, Review(cid, 1))
    c = _contribution(world, cid)
    assert c.status == ACCEPTED and c.bond == BOND and c.accepted_height == world.chain.height
    assert world.balance(ALICE.address) == before  # the bond stays at risk until the window closes
    assert world.balance(BOND_ESCROW) == BOND
    dn = _datanet_record(world, d)
    assert (dn.accepted, dn.total_units) == (1, len(body.content))
    view = world.view()
    for h in world.fingerprint(body.content).fingerprint:
        assert read_postings(view, d, h) == (1, 0, cid)
    # still guards against duplicates once accepted
    rejected(world, BOB, world.contribute_body(d, make_text(1), BOND), "duplicate_content")


def test_reject_burns_part_of_the_bond_and_frees_the_content(world: World) -> None:
    d = _datanet(world)
    body = world.contribute_body(d, make_text(1), BOND)
    cid = world.ok(ALICE, body).hash
    before, burned_before = world.balance(ALICE.address), get_chain_meta(world.view()).burned
    world.ok(OWNER, Review(cid, 0))
    burned = BOND * world.a.reject_burn_bps // 10_000
    assert burned == 500  # 1001 * 5000 // 10000, checked by hand
    assert world.balance(ALICE.address) == before + BOND - burned
    assert get_chain_meta(world.view()).burned == burned_before + burned
    assert _contribution(world, cid).status == REJECTED
    assert world.view().get(keys.contribution_sketch_key(cid)) is None
    assert world.conserved()
    world.ok(BOB, world.contribute_body(d, make_text(1), BOND))  # the content is free again


def test_review_rejections(world: World) -> None:
    d = _datanet(world)
    cid = world.ok(ALICE, world.contribute_body(d, make_text(1), BOND)).hash
    rejected(world, OWNER, Review(MISSING, 1), "unknown_contribution")
    rejected(world, BOB, Review(cid, 1), "not_curator")
    rejected(world, OWNER, Review(cid, 3), "bad_decision")
    rejected(world, OWNER, Review(cid, 2), "not_accepted")  # reversal is for accepted ones
    world.ok(OWNER, Review(cid, 1))
    rejected(world, OWNER, Review(cid, 0), "not_pending")
    rejected(world, OWNER, Review(cid, 1), "not_pending")
    rejected(world, BOB, Review(cid, 2), "not_curator")


# ---- transfer and claim --------------------------------------------------------------------


def test_transfer_contribution_changes_owner(world: World) -> None:
    d = _datanet(world)
    cid = world.ok(ALICE, world.contribute_body(d, make_text(1), BOND)).hash
    world.ok(ALICE, TransferContribution(cid, BOB.address))
    assert _contribution(world, cid).owner == BOB.address
    rejected(world, ALICE, TransferContribution(cid, ALICE.address), "not_owner")
    rejected(world, BOB, TransferContribution(cid, BOB.address), "same_owner")
    rejected(world, BOB, TransferContribution(MISSING, ALICE.address), "unknown_contribution")


def test_claim_rejections(world: World) -> None:
    d = _datanet(world)
    cid = world.ok(ALICE, crafted(world, d, 1, (1, 2), bond=BOND)).hash
    world.ok(OWNER, Review(cid, 1))
    rejected(world, ALICE, ClaimRewards((cid,)), "vesting")  # the challenge window is open
    world.vest(cid)
    world.ok(ALICE, ClaimRewards((cid,)))  # the bond comes back
    rejected(world, ALICE, ClaimRewards(()), "empty_claim")
    rejected(world, ALICE, ClaimRewards((cid, cid)), "duplicate_contribution")
    rejected(world, ALICE, ClaimRewards((cid, MISSING)), "unknown_contribution")
    rejected(world, BOB, ClaimRewards((cid,)), "not_owner")
    rejected(world, ALICE, ClaimRewards((cid,)), "nothing_to_claim")
