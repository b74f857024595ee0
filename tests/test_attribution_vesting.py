"""Stake at risk until the challenge window closes (issue 13 point 5).

An accepted contribution's bond stays escrowed and its rewards vest until
``challenge_window_blocks`` after acceptance; within the window a curator may reverse the
acceptance (bond slashed, unvested rewards back to the datanet's pool) and an earlier-committed
original voids it (bond and rewards to the author). Each test plays the attacker who would cash
out before being caught: every assertion fails if taking the money early worked.
"""

from __future__ import annotations

import pytest
from attribution_kit import KEYS, World, make_text, rejected

from state import keys, queries
from state.accounts import BOND_ESCROW, REWARD_POOL, get_chain_meta
from state.attribution.commitments import contribution_commitment
from state.attribution.records import ACCEPTED, PENDING, REJECTED, VOIDED, Contribution
from state.crypto import sha256
from state.params import DEFAULT, DEVNET
from state.tx import ClaimRewards, CommitContribution, CreateDatanet, Infer, RegisterModel, Review

OWNER, ALICE, MALLORY, USER, DEV = KEYS[0], KEYS[1], KEYS[2], KEYS[3], KEYS[4]
BOND = 900


WINDOW = 30


@pytest.fixture(name="world")
def world_fixture(new_chain, chain_id):  # type: ignore[no-untyped-def]
    """Devnet parameters with a 30-block challenge window (the devnet's is 2)."""
    return World(new_chain({k.address: 10**9 for k in KEYS},
                           overrides={"attribution": {"challenge_window_blocks": WINDOW}}), chain_id)


def _contribution(world: World, cid: bytes) -> Contribution:
    c = world.view().get_obj(keys.contribution_key(cid), Contribution)
    assert c is not None
    return c


def _owed(world: World, cid: bytes) -> int:
    return queries.pending_rewards(world.chain.db, cid)["unclaimed"]  # type: ignore[index,no-any-return]


def _pay_datanet(world: World, d: bytes, amount: int = 10_000) -> None:
    """An inference whose data share goes to the datanet's pool (no output matched)."""
    model = world.ok(DEV, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    world.ok(USER, Infer(model, b"", b"", amount, 1, 1, b"\x01" * 32, ()))


def _commit(world: World, key, body, fee: int = 1) -> None:  # type: ignore[no-untyped-def]
    (r,) = world.block(world.sign(key, CommitContribution(
        contribution_commitment(key.address, body.datanet, sha256(body.content), body.salt)), fee))
    assert r.ok, r


def _accepted_and_earning(world: World, key, seed: int) -> tuple[bytes, bytes, int]:  # type: ignore[no-untyped-def]
    """(datanet, contribution, rewards owed): one accepted contribution paid through its pool."""
    d = world.ok(OWNER, CreateDatanet("d", "", BOND)).hash
    cid = world.ok(key, world.contribute_body(d, make_text(seed), BOND)).hash
    world.ok(OWNER, Review(cid, 1))
    _pay_datanet(world, d)
    return d, cid, _owed(world, cid)


def test_bond_and_rewards_are_paid_only_once_the_window_has_closed(world: World) -> None:
    _, cid, owed = _accepted_and_earning(world, ALICE, 1)
    assert owed > 0 and world.balance(BOND_ESCROW) == BOND
    result = rejected(world, ALICE, ClaimRewards((cid,)), "vesting")
    vests_at = _contribution(world, cid).accepted_height + world.a.challenge_window_blocks
    assert f"vests at height {vests_at}" in result.message
    world.vest(cid)
    before = world.balance(ALICE.address)
    world.ok(ALICE, ClaimRewards((cid,)))
    assert world.balance(ALICE.address) == before - 1 + owed + BOND
    assert world.balance(BOND_ESCROW) == 0 and _contribution(world, cid).bond == 0
    rejected(world, ALICE, ClaimRewards((cid,)), "nothing_to_claim")  # the bond comes back once
    rejected(world, OWNER, Review(cid, 2), "window_closed")  # vested: no reversal any more
    assert world.conserved()


def test_a_curator_reversal_slashes_the_bond_and_returns_unvested_rewards_to_the_pool(world: World) -> None:
    d = world.ok(OWNER, CreateDatanet("d", "", BOND)).hash
    honest = world.ok(ALICE, world.contribute_body(d, make_text(1), BOND)).hash
    spam = world.ok(MALLORY, world.contribute_body(d, make_text(2), BOND)).hash
    world.ok(OWNER, Review(honest, 1))
    world.ok(OWNER, Review(spam, 1))
    _pay_datanet(world, d)
    honest_owed, spam_owed = _owed(world, honest), _owed(world, spam)
    assert spam_owed > 0
    rejected(world, MALLORY, ClaimRewards((spam,)), "vesting")  # Mallory cannot cash out first
    burned, pool = get_chain_meta(world.view()).burned, world.balance(REWARD_POOL)
    mallory = world.balance(MALLORY.address)

    world.ok(OWNER, Review(spam, 2))
    slashed = BOND * world.a.reversal_slash_bps // 10_000
    assert slashed == BOND  # the default burns the whole bond
    assert get_chain_meta(world.view()).burned == burned + slashed
    assert world.balance(MALLORY.address) == mallory + BOND - slashed
    c = _contribution(world, spam)
    assert (c.status, c.bond, c.unclaimed) == (REJECTED, 0, 0)
    assert world.balance(REWARD_POOL) == pool  # the reclaimed rewards stay in the pool ...
    assert _owed(world, honest) + 1 >= honest_owed + spam_owed >= _owed(world, honest)  # ... for Alice
    assert world.view().get(keys.contribution_sketch_key(spam)) is None  # its content is free again
    rejected(world, MALLORY, ClaimRewards((spam,)), "nothing_to_claim")
    rejected(world, OWNER, Review(spam, 2), "not_accepted")
    world.vest(honest)
    world.ok(ALICE, ClaimRewards((honest,)))
    assert world.conserved()


def test_a_reversal_with_nobody_left_in_the_pool_pays_the_datanet_owner(world: World) -> None:
    _, spam, owed = _accepted_and_earning(world, MALLORY, 3)
    before = world.balance(OWNER.address)
    world.ok(OWNER, Review(spam, 2))
    assert world.balance(OWNER.address) == before - 1 + owed
    assert world.conserved()


def test_with_the_default_window_a_copy_cannot_cash_out_before_the_original_voids_it(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    """Production parameters: the window outlasts the reveal window, so whatever a copy earned
    before the earlier-committed original is revealed is still there to go to the author."""
    assert DEFAULT.attribution.challenge_window_blocks >= DEFAULT.attribution.reveal_window_blocks
    assert DEVNET.attribution.challenge_window_blocks < DEVNET.attribution.reveal_window_blocks  # demos only
    world = World(new_chain({k.address: 10**9 for k in KEYS}, preset="default"), chain_id, auto_commit=False)
    d = world.ok(OWNER, CreateDatanet("d", "", BOND)).hash
    text = make_text(4, words=300)
    author = world.contribute_body(d, text, BOND, salt=b"\x01" * 32)
    _commit(world, ALICE, author)
    copy = world.contribute_body(d, text.replace(b" ", b"  "), BOND, salt=b"\x02" * 32)
    _commit(world, MALLORY, copy, fee=50)
    copy_id = world.ok(MALLORY, copy).hash
    world.ok(OWNER, Review(copy_id, 1))
    _pay_datanet(world, d)
    owed = _owed(world, copy_id)
    assert owed > 0
    rejected(world, MALLORY, ClaimRewards((copy_id,)), "vesting")
    before = world.balance(ALICE.address)
    author_id = world.ok(ALICE, author).hash
    assert _contribution(world, copy_id).status == VOIDED
    assert _contribution(world, author_id).status == PENDING
    assert world.balance(ALICE.address) == before - 1 - BOND + BOND + owed  # her bond in, Mallory's bond and rewards out
    assert world.balance(BOND_ESCROW) == BOND  # only Alice's
    rejected(world, MALLORY, ClaimRewards((copy_id,)), "nothing_to_claim")
    world.ok(OWNER, Review(author_id, 1))
    assert _contribution(world, author_id).status == ACCEPTED
    assert world.conserved()
