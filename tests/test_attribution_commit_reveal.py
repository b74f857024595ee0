"""Commit–reveal: the earliest commitment wins among duplicates, whatever the fees and reveal order.

Each test plays the attacker of issue 13: a mempool copier (front-runner) who pays a higher fee.
Every assertion would fail if copying a text seen in the mempool paid.
"""

from __future__ import annotations

from attribution_kit import KEYS, World, make_text, rejected, world_fixture  # noqa: F401

from state import keys, queries
from state.accounts import BOND_ESCROW
from state.attribution.commitments import contribution_commitment
from state.attribution.records import ACCEPTED, PENDING, VOIDED, Contribution
from state.crypto import sha256, to_hex
from state.tx import ClaimRewards, CommitContribution, CreateDatanet, Infer, RegisterModel, Review, Transfer

OWNER, ALICE, MALLORY, USER, DEV = KEYS[0], KEYS[1], KEYS[2], KEYS[3], KEYS[4]
BOND = 700


def _contribution(world: World, cid: bytes) -> Contribution:
    c = world.view().get_obj(keys.contribution_key(cid), Contribution)
    assert c is not None
    return c


def _commit(world: World, key, body, fee: int = 1):  # type: ignore[no-untyped-def]
    return world.sign(key, CommitContribution(
        contribution_commitment(key.address, body.datanet, sha256(body.content), body.salt)), fee)


def test_mempool_front_runner_with_a_higher_fee_loses(world: World) -> None:
    world.auto_commit = False
    d = world.ok(OWNER, CreateDatanet("d", "", BOND)).hash
    text = make_text(1, words=300)
    author = world.contribute_body(d, text, BOND, salt=b"\x01" * 32)
    (r,) = world.block(_commit(world, ALICE, author))
    assert r.ok
    # Alice's reveal sits in the mempool; Mallory reads it and commits to the same text with a
    # higher fee, ahead of Alice's reveal in the very same block.
    copy = world.contribute_body(d, text, BOND, salt=b"\x02" * 32)
    reveal = world.sign(ALICE, author)
    mallory_commit = _commit(world, MALLORY, copy, fee=50)
    results = world.block(mallory_commit, reveal)
    assert all(x.ok for x in results)
    # Mallory's reveal (any fee) is refused, naming Alice's contribution: committed earlier
    result = rejected(world, MALLORY, copy, "duplicate_content")
    assert f"{to_hex(reveal.hash)} (datanet {to_hex(d)})" in result.message and "committed earlier" in result.message
    # an edited copy fares no better
    words = text.split()
    words[150] = b"edited"
    edited = world.contribute_body(d, b" ".join(words), BOND, salt=b"\x03" * 32)
    world.block(_commit(world, MALLORY, edited, fee=50))
    rejected(world, MALLORY, edited, "near_duplicate")
    assert _contribution(world, reveal.hash).owner == ALICE.address


def test_an_earlier_commitment_revealed_late_voids_the_accepted_copy_and_pays_the_author(world: World) -> None:
    """Alice commits first; Mallory (who got the text off-chain) commits later but reveals first,
    is accepted and earns. Alice's reveal voids the copy: its bond and unclaimed rewards go to her."""
    world.auto_commit = False
    d = world.ok(OWNER, CreateDatanet("d", "", BOND)).hash
    text = make_text(2, words=300)
    author = world.contribute_body(d, text, BOND, salt=b"\x01" * 32)
    world.block(_commit(world, ALICE, author))
    copy = world.contribute_body(d, text.replace(b" ", b"  "), BOND, salt=b"\x02" * 32)  # near copy
    world.block(_commit(world, MALLORY, copy, fee=50))
    copy_id = world.ok(MALLORY, copy).hash
    world.ok(OWNER, Review(copy_id, 1))
    model = world.ok(DEV, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    world.ok(USER, Infer(model, b"", b"", 10_000, 1, 1, b"\x01" * 32, ()))  # pool share to the copy
    owed = queries.pending_rewards(world.chain.db, copy_id)["unclaimed"]  # type: ignore[index]
    assert owed > 0

    before = world.balance(ALICE.address)
    author_id = world.ok(ALICE, author).hash
    assert _contribution(world, copy_id).status == VOIDED
    assert _contribution(world, author_id).status == PENDING
    # Mallory's bond, still escrowed (challenge window), and her unvested rewards, earned on
    # Alice's text, are Alice's now
    assert world.balance(ALICE.address) == before - 1 - BOND + owed + BOND
    rejected(world, MALLORY, ClaimRewards((copy_id,)), "nothing_to_claim")
    # the author's contribution replaces the copy everywhere
    world.ok(OWNER, Review(author_id, 1))
    assert _contribution(world, author_id).status == ACCEPTED
    assert world.conserved()


def test_a_pending_copy_loses_its_bond_to_the_author(world: World) -> None:
    world.auto_commit = False
    d = world.ok(OWNER, CreateDatanet("d", "", BOND)).hash
    text = make_text(3, words=200)
    author = world.contribute_body(d, text, BOND, salt=b"\x01" * 32)
    world.block(_commit(world, ALICE, author))
    copy = world.contribute_body(d, text, BOND, salt=b"\x02" * 32)
    world.block(_commit(world, MALLORY, copy, fee=50))
    copy_id = world.ok(MALLORY, copy).hash
    assert world.balance(BOND_ESCROW) == BOND
    before = world.balance(ALICE.address)
    world.ok(ALICE, author)
    assert world.balance(ALICE.address) == before - 1 - BOND + BOND  # paid her bond, got the copy's
    assert world.balance(BOND_ESCROW) == BOND  # only Alice's own bond is escrowed now
    assert _contribution(world, copy_id).status == VOIDED
    assert world.conserved()


def test_reveal_rules(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    world = World(new_chain({k.address: 10**9 for k in KEYS}, overrides={"attribution": {"reveal_window_blocks": 2}}),
                  chain_id, auto_commit=False)
    d = world.ok(OWNER, CreateDatanet("d", "", 0)).hash
    body = world.contribute_body(d, make_text(4), 0, salt=b"\x01" * 32)
    rejected(world, ALICE, body, "no_commitment")
    commit = _commit(world, ALICE, body)
    # commitment and reveal in one block: the reveal comes too early
    first, second = world.block(commit, world.sign(ALICE, body))
    assert first.ok and not second.ok and second.reason == "reveal_too_early"
    rejected(world, ALICE, CommitContribution(commit.body.commitment), "commitment_exists")
    # another sender, another salt or another datanet do not reveal this commitment
    rejected(world, MALLORY, body, "no_commitment")
    rejected(world, ALICE, world.contribute_body(d, make_text(4), 0, salt=b"\x02" * 32), "no_commitment")
    world.ok(OWNER, Transfer(ALICE.address, 1))  # a block passes: height = commit + 2, still in time
    assert world.try_alone(ALICE, body)[0].ok
    world.ok(OWNER, Transfer(ALICE.address, 1))  # commit + 3: expired
    rejected(world, ALICE, body, "commitment_expired")
