"""Double-sign evidence and liveness: slashing bonded and unbonding stake, tombstones, jail, unjail,
and invalid evidence making the block invalid."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from state.staking.validator_set import ValidatorUpdate
from staking_support import (
    CHAIN_ID,
    V0,
    V1,
    apply_alone,
    assert_staking_invariants,
    balance,
    commit_for,
    double_sign,
    make_genesis,
    next_block,
    open_chain,
    set_powers,
)
from state import keys
from state.staking import handlers as staking
from state.accounts import STAKING_POOL, UNBONDING_POOL, get_chain_meta
from state.block import PRECOMMIT, DuplicateVoteEvidence, SignedVote, Vote
from state.chain import Chain
from state.crypto import PrivateKey
from state.errors import InvalidBlock
from state.tx import Delegate, Transfer, Undelegate, Unjail, sign_tx

DAN = PrivateKey.from_int(31)
FRANK = PrivateKey.from_int(32)
GINA = PrivateKey.from_int(33)
STRANGER = PrivateKey.from_int(555)


@pytest.fixture
def chain(tmp_path) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    opened: list[Chain] = []

    def factory(validators: Any, **overrides: Any) -> Chain:
        balances = {k.address: 5_000_000 for k in (DAN, FRANK, GINA, V0, V1)}
        c = open_chain(tmp_path / f"db{len(opened)}", make_genesis(balances, validators, overrides or None))
        opened.append(c)
        return c

    yield factory
    for c in opened:
        c.db.close()


def burned(chain: Chain) -> int:
    return get_chain_meta(chain.db.view()).burned


def entry_amounts(chain: Chain) -> dict[tuple[str, int], int]:
    return {(u["delegator"], u["creation_height"]): u["amount"] for u in staking.unbondings(chain.db.view())}


def hx(key: PrivateKey) -> str:
    return "0x" + key.address.hex()


# ---- double sign ---------------------------------------------------------------------------
def test_double_sign_slashes_bonded_and_slashable_unbonding_stake_and_tombstones(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain([(V0, 3_000_000), (V1, 2_000_000)], staking={"unbonding_blocks": 50})
    next_block(c, [sign_tx(k, CHAIN_ID, 0, Delegate(V1.address, amt), 1)
                   for k, amt in ((DAN, 1_000_000), (FRANK, 400_000), (GINA, 600_000))])  # 1
    next_block(c, [sign_tx(FRANK, CHAIN_ID, 1, Undelegate(V1.address, 400_000), 1)])  # 2
    next_block(c)  # 3
    next_block(c)  # 4
    next_block(c, [sign_tx(GINA, CHAIN_ID, 1, Undelegate(V1.address, 600_000), 1)])  # 5
    next_block(c)  # 6: the offence height
    # GINA's stake still counted in the set that signed height 6; FRANK's no longer did
    assert set_powers(c, 6)[V1.address] == 3_600
    next_block(c, [sign_tx(DAN, CHAIN_ID, 1, Undelegate(V1.address, 200_000), 1)])  # 7
    staked, unbonding, burned_before = balance(c, STAKING_POOL), balance(c, UNBONDING_POOL), burned(c)

    ex, _ = next_block(c, evidence=(double_sign(V1, 6),))  # 8

    # 5%: V1 self 2_000_000 -> 100_000; DAN bonded 800_000 -> 40_000; GINA's entry (created at 5,
    # still in set 6) 600_000 -> 30_000; DAN's entry (created after the offence) 200_000 -> 10_000;
    # FRANK's entry (created at 2, out of the set by height 4) untouched.
    assert burned(c) - burned_before == 180_000
    assert staked - balance(c, STAKING_POOL) == 140_000
    assert unbonding - balance(c, UNBONDING_POOL) == 40_000
    assert entry_amounts(c) == {(hx(FRANK), 2): 400_000, (hx(GINA), 5): 570_000, (hx(DAN), 7): 190_000}
    view = c.db.view()
    info = staking.get_validator(view, V1.address)
    assert info is not None and info["tombstoned"] and info["jailed"]
    assert (info["tokens"], info["self_stake"]) == (2_660_000, 1_900_000)
    assert view.get(keys.evidence_seen_key(double_sign(V1, 6).hash())) is not None
    # removed from the set at 8 + 2; set 9 was already fixed
    assert V1.address in set_powers(c, 9) and V1.address not in set_powers(c, 10)
    assert ValidatorUpdate(V1.public_key, 0) in ex.result.validator_updates
    assert_staking_invariants(view)

    # an undelegation after the slash is not touched again
    next_block(c, [sign_tx(DAN, CHAIN_ID, 2, Undelegate(V1.address, 100_000), 1)])  # 9
    assert entry_amounts(c)[(hx(DAN), 9)] == 100_000
    # tombstoned: no new delegation, no unjail, ever
    for tx, reason in ((sign_tx(GINA, CHAIN_ID, 2, Delegate(V1.address, 10), 1), "validator_tombstoned"),
                       (sign_tx(V1, CHAIN_ID, 0, Unjail(), 1), "validator_tombstoned")):
        result, writes = apply_alone(c, tx)
        assert result.reason == reason and writes == {}
    # other evidence of the same validator is valid but slashes nothing more
    before = burned(c)
    next_block(c, evidence=(double_sign(V1, 6, round_=1),))  # 10
    assert burned(c) == before
    assert_staking_invariants(c.db.view())


def test_the_same_evidence_twice_makes_the_block_invalid(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain([(V0, 3_000_000), (V1, 1_000_000)])
    next_block(c)
    next_block(c)
    ev = double_sign(V1, 1)
    with pytest.raises(InvalidBlock, match="^duplicate_evidence"):
        c.build_block((), 9_000, V0.address, evidence=(ev, ev))
    next_block(c, evidence=(ev,))
    root, height = c.db.root(), c.height
    with pytest.raises(InvalidBlock, match="^duplicate_evidence"):
        c.build_block((), 9_000, V0.address, evidence=(ev,))
    assert (c.db.root(), c.height) == (root, height)


def forged_evidence(height: int) -> DuplicateVoteEvidence:
    """V1's first vote, and a second vote in V1's name signed by V0."""
    real = double_sign(V1, height)
    vote_b = real.vote_b.vote
    return DuplicateVoteEvidence(real.vote_a, SignedVote(vote_b, V0.sign(vote_b.sign_bytes(CHAIN_ID))))


@pytest.mark.parametrize("make, reason", [
    (lambda h: forged_evidence(2), "invalid_evidence_signature"),
    (lambda h: double_sign(V1, 2, chain_id="another-chain"), "invalid_evidence_signature"),
    (lambda h: double_sign(STRANGER, 2), "unknown_validator"),
    (lambda h: double_sign(V1, h), "evidence_from_future"),
    (lambda h: double_sign(V1, 1), "evidence_too_old"),
])
def test_invalid_evidence_makes_the_block_invalid_and_changes_nothing(chain, make, reason) -> None:  # type: ignore[no-untyped-def]
    c = chain([(V0, 3_000_000), (V1, 1_000_000)], staking={"evidence_max_age_blocks": 3})
    for _ in range(4):
        next_block(c)
    root, height = c.db.root(), c.height
    with pytest.raises(InvalidBlock, match=f"^{reason}"):
        c.build_block((), 9_000, V0.address, evidence=(make(height + 1),))
    assert (c.db.root(), c.height) == (root, height)
    # the boundary: an offence exactly evidence_max_age_blocks old is still punished
    next_block(c, evidence=(double_sign(V1, 2),))  # height 5, offence 2
    assert staking.get_validator(c.db.view(), V1.address)["tombstoned"]  # type: ignore[index]


# ---- liveness ------------------------------------------------------------------------------
def test_downtime_jails_slashes_skips_rewards_and_unjail_returns_at_h_plus_2(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain([(V0, 3_000_000), (V1, 1_000_000)],
              staking={"signed_blocks_window": 10, "min_signed_bps": 5000, "jail_blocks": 4,
                       "unbonding_blocks": 50})
    # window 10, 50% -> at most 5 misses
    both, only_v0 = [V0, V1], [V0]
    next_block(c, [sign_tx(DAN, CHAIN_ID, 0, Delegate(V1.address, 500_000), 1)])  # 1
    for h in range(2, 7):  # V1 misses the commits of heights 1..5
        txs = [sign_tx(DAN, CHAIN_ID, 1, Undelegate(V1.address, 100_000), 1)] if h == 5 else []
        next_block(c, txs, signers=only_v0)
    assert not staking.get_validator(c.db.view(), V1.address)["jailed"]  # type: ignore[index]
    burned_before = burned(c)
    v1_balance, dan_balance = balance(c, V1.address), balance(c, DAN.address)
    # height 7 processes the 6th miss (commit of 6): jail and 1% slash. Its fee goes to V0 alone,
    # though V1 is still in set 7.
    ex, _ = next_block(c, [sign_tx(FRANK, CHAIN_ID, 0, Transfer(FRANK.address, 1), 999)], signers=only_v0)
    assert V1.address in set_powers(c, 7)
    info = staking.get_validator(c.db.view(), V1.address)
    assert info is not None and info["jailed"] and not info["tombstoned"] and info["jailed_until"] == 11
    # 1%: self 1_000_000 -> 10_000; DAN 400_000 -> 4_000; DAN's entry (created at 5 >= 6 - 1) -> 1_000
    assert burned(c) - burned_before == 15_000
    assert entry_amounts(c) == {(hx(DAN), 5): 99_000}
    assert (balance(c, V1.address), balance(c, DAN.address)) == (v1_balance, dan_balance)
    assert V1.address in set_powers(c, 8) and V1.address not in set_powers(c, 9)
    assert ex.result.validator_updates == (ValidatorUpdate(V1.public_key, 0),)
    assert_staking_invariants(c.db.view())

    # jailed: more misses cost nothing more; unjail waits for jailed_until
    next_block(c, signers=only_v0)  # 8
    assert burned(c) - burned_before == 15_000
    result, writes = apply_alone(c, sign_tx(V1, CHAIN_ID, 0, Unjail(), 1))  # at height 9
    assert result.reason == "jail_period_not_over" and writes == {}
    next_block(c, signers=only_v0)  # 9
    next_block(c, signers=only_v0)  # 10
    _, results = next_block(c, [sign_tx(V1, CHAIN_ID, 0, Unjail(), 1)], signers=only_v0)  # 11
    assert results[0].ok
    assert V1.address not in set_powers(c, 12)
    assert set_powers(c, 13)[V1.address] == (990_000 + 396_000) // 1000
    # back in the set with a fresh window: signing keeps it in
    for _ in range(4):
        next_block(c, signers=both)
    assert not staking.get_validator(c.db.view(), V1.address)["jailed"]  # type: ignore[index]
    assert_staking_invariants(c.db.view())


def test_the_window_slides_old_misses_out(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain([(V0, 3_000_000), (V1, 1_000_000)],
              staking={"signed_blocks_window": 4, "min_signed_bps": 5000})
    # at most 2 misses in any 4 consecutive heights: m m s s m m s s never jails
    next_block(c)
    for signed in "mmssmmss":
        next_block(c, signers=[V0, V1] if signed == "s" else [V0])
    assert not staking.get_validator(c.db.view(), V1.address)["jailed"]  # type: ignore[index]
    # ... s s m m m: three misses in the last four heights jails
    for _ in range(3):
        next_block(c, signers=[V0])
    assert staking.get_validator(c.db.view(), V1.address)["jailed"]  # type: ignore[index]


def test_unjail_needs_enough_self_stake(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain([(V0, 3_000_000), (V1, 1_000)],
              staking={"signed_blocks_window": 2, "min_signed_bps": 5000, "jail_blocks": 1,
                       "downtime_slash_bps": 100})
    next_block(c)
    next_block(c, signers=[V0])
    next_block(c, signers=[V0])  # 2 misses in a window of 2 (1 allowed): jailed at height 3
    # 1% of 1000 burned: 990 left, below min_self_stake 1000
    assert staking.get_validator(c.db.view(), V1.address)["self_stake"] == 990  # type: ignore[index]
    result, writes = apply_alone(c, sign_tx(V1, CHAIN_ID, 0, Unjail(), 1))
    assert result.reason == "self_stake_too_low" and writes == {}
    _, results = next_block(c, [sign_tx(V1, CHAIN_ID, 0, Delegate(V1.address, 10), 1),
                                sign_tx(V1, CHAIN_ID, 1, Unjail(), 1)], signers=[V0])
    assert [r.ok for r in results] == [True, True]
    assert not staking.get_validator(c.db.view(), V1.address)["jailed"]  # type: ignore[index]
    assert set_powers(c, 6)[V1.address] == 1


def test_a_commit_for_the_wrong_height_makes_the_block_invalid(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain([(V0, 3_000_000), (V1, 1_000_000)])
    next_block(c)
    stale = commit_for(c, [V0, V1])  # commit of height 1
    next_block(c, signers=[V0, V1])
    with pytest.raises(InvalidBlock, match="^wrong_commit_height"):
        c.build_block((), 9_000, V0.address, last_commit=stale)


def test_votes_are_signed_for_the_precommit_of_the_block(chain) -> None:  # type: ignore[no-untyped-def]
    """The helper's commits carry real precommit signatures (so liveness input is realistic)."""
    from state.crypto import verify

    c = chain([(V0, 3_000_000), (V1, 1_000_000)])
    next_block(c)
    commit = commit_for(c, [V0, V1])
    for sig in commit.signatures:
        key = V0 if sig.validator == V0.address else V1
        vote = commit.vote_for(sig)
        assert vote.type == PRECOMMIT and isinstance(vote, Vote)
        assert verify(key.public_key, sig.signature, vote.sign_bytes(CHAIN_ID))
