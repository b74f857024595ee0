"""challenge: a disproved registration is voided and slashed; an honest one cannot be touched."""

from __future__ import annotations

from dataclasses import replace

from attribution_kit import KEYS, World, make_text, rejected, world_fixture  # noqa: F401

from state import keys, queries
from state.accounts import BOND_ESCROW, REWARD_POOL, get_chain_meta
from state.attribution.records import VOIDED, Contribution, Datanet
from state.crypto import sha256
from state.attribution.postings import read_postings
from state.tx import Challenge, ClaimRewards, CreateDatanet, Infer, RegisterModel, Review

OWNER, CHEAT, CHALLENGER, USER = KEYS[0], KEYS[1], KEYS[2], KEYS[3]
BOND = 1001
MISSING = b"\x99" * 32


def _setup(world: World) -> bytes:
    return world.ok(OWNER, CreateDatanet("news", "", BOND)).hash


def _status(world: World, cid: bytes) -> Contribution:
    c = world.view().get_obj(keys.contribution_key(cid), Contribution)
    assert c is not None
    return c


def test_dishonest_pending_registration_is_voided_and_half_the_bond_paid(world: World) -> None:
    d = _setup(world)
    text = make_text(1)
    honest = world.contribute_body(d, text, BOND)
    # claims a fingerprint the content does not have (e.g. to steal matches on other texts)
    body = replace(honest, fingerprint=tuple(sorted(set(honest.fingerprint[1:]) | {1, 2, 3})))
    cid = world.ok(CHEAT, body).hash
    before = world.balance(CHALLENGER.address)
    burned_before = get_chain_meta(world.view()).burned
    world.ok(CHALLENGER, Challenge(cid, text))
    reward = BOND * 5000 // 10_000  # challenge_reward_bps = 5000: 500, the odd token is burned
    assert world.balance(CHALLENGER.address) == before - 1 + reward  # fee 1
    assert get_chain_meta(world.view()).burned == burned_before + BOND - reward
    assert world.balance(BOND_ESCROW) == 0
    c = _status(world, cid)
    assert c.status == VOIDED and c.bond == 0
    view = world.view()
    assert view.get(keys.content_hash_key(d, body.content_hash)) is None
    assert view.get(keys.contribution_sketch_key(cid)) is None
    assert world.conserved()
    # its index entries are gone: the honest registration of the same text is now accepted
    world.ok(USER, honest)
    rejected(world, OWNER, Review(cid, 1), "not_pending")


def test_lying_about_size_is_voided(world: World) -> None:
    d = _setup(world)
    text = make_text(2)
    body = world.contribute_body(d, text, BOND)
    cid = world.ok(CHEAT, replace(body, size=body.size * 10)).hash  # ten times the reward units
    world.ok(CHALLENGER, Challenge(cid, text))
    assert _status(world, cid).status == VOIDED


def test_voiding_an_accepted_contribution_slashes_its_unclaimed_rewards(world: World) -> None:
    d = _setup(world)
    text = make_text(3)
    # a made-up MinHash (and a size of 125 units, so the pool division below is exact)
    body = replace(world.contribute_body(d, text, BOND), minhash=(7,) * world.a.minhash_size, size=125)
    cid = world.ok(CHEAT, body).hash
    world.ok(OWNER, Review(cid, 1))
    model = world.ok(OWNER, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    # 10,000 paid: data share 5,000 (no adapter/agent: 6,500), matched 60% = 3,900, pool 2,600
    world.ok(USER, Infer(model, b"", b"", 10_000, 1, 1, b"\x01" * 32, body.fingerprint[:3]))
    owed = queries.pending_rewards(world.chain.db, cid)
    assert owed is not None and owed["unclaimed"] == 6_500  # sole contribution: all of the data share
    pool_before, burned_before = world.balance(REWARD_POOL), get_chain_meta(world.view()).burned
    before = world.balance(CHALLENGER.address)
    world.ok(CHALLENGER, Challenge(cid, text))
    assert world.balance(CHALLENGER.address) == before - 1 + 3_250
    assert get_chain_meta(world.view()).burned == burned_before + 3_250
    assert world.balance(REWARD_POOL) == pool_before - 6_500
    dn = world.view().get_obj(keys.datanet_key(d), Datanet)
    assert dn is not None and dn.total_units == 0 and dn.accepted == 0
    assert read_postings(world.view(), d, body.fingerprint[0]) is None
    rejected(world, CHEAT, ClaimRewards((cid,)), "nothing_to_claim")
    assert world.conserved()


def test_honest_registration_survives_a_challenge_unchanged(world: World) -> None:
    d = _setup(world)
    text = make_text(4)
    cid = world.ok(CHEAT, world.contribute_body(d, text, BOND)).hash
    rejected(world, CHALLENGER, Challenge(cid, text), "registration_matches")
    world.ok(OWNER, Review(cid, 1))
    rejected(world, CHALLENGER, Challenge(cid, text), "registration_matches")


def test_challenge_with_other_content_fails_and_changes_nothing(world: World) -> None:
    d = _setup(world)
    cid = world.ok(CHEAT, world.contribute_body(d, make_text(5), BOND)).hash
    rejected(world, CHALLENGER, Challenge(cid, make_text(6)), "content_hash_mismatch")
    rejected(world, CHALLENGER, Challenge(MISSING, make_text(6)), "unknown_contribution")


def test_rejected_or_voided_contributions_cannot_be_challenged(world: World) -> None:
    d = _setup(world)
    text = make_text(8)
    body = world.contribute_body(d, text, BOND)
    cid = world.ok(CHEAT, replace(body, size=1)).hash
    world.ok(OWNER, Review(cid, 0))
    rejected(world, CHALLENGER, Challenge(cid, text), "not_challengeable")


def test_unfingerprintable_content_voids_the_registration(world: World) -> None:
    d = _setup(world)
    content = b"\xff\xfe not utf-8"
    body = replace(world.contribute_body(d, make_text(9), BOND), content_hash=sha256(content), size=len(content))
    cid = world.ok(CHEAT, body).hash
    world.ok(CHALLENGER, Challenge(cid, content))
    assert _status(world, cid).status == VOIDED
