"""Vote sets, commits, evidence and BFT time."""

from __future__ import annotations

import pytest

from consensus.bft_time import InvalidBlockTime, bft_time, is_valid_block_time, next_block_time
from consensus.evidence import InvalidEvidence, make_duplicate_vote_evidence, verify_duplicate_vote_evidence
from consensus.testkit import CHAIN_ID, block_hash, keys_by_address, precommit, prevote, signed_vote, validator_set
from consensus.votes import MAX_VALUES_PER_VALIDATOR, InvalidCommit, InvalidVote, VoteSet, verify_commit
from state.block import PRECOMMIT, PREVOTE, Commit, CommitSig, DuplicateVoteEvidence, SignedVote
from state.codec import CodecError

K = keys_by_address(4, offset=700)
X = block_hash("X")
Y = block_hash("Y")


def vals(powers: list[int] = [1, 1, 1, 1]):  # type: ignore[no-untyped-def]
    return validator_set(K[: len(powers)], powers)


def commit_for(value: bytes, signers: list[int], times: list[int] | None = None, height: int = 5) -> Commit:
    vs = VoteSet(CHAIN_ID, height, 0, PRECOMMIT, vals())
    for n, i in enumerate(signers):
        vs.add_vote(precommit(K[i], height, 0, value, times[n] if times else 0))
    return vs.make_commit()


# ---- vote sets ----------------------------------------------------------------------------------
def test_tally_and_two_thirds_majority() -> None:
    vs = VoteSet(CHAIN_ID, 5, 0, PREVOTE, vals())
    assert vs.add_vote(prevote(K[0], 5, 0, X)).added
    assert vs.add_vote(prevote(K[1], 5, 0, X)).added
    assert vs.add_vote(prevote(K[2], 5, 0, b"")).added
    assert (vs.power_for(X), vs.power_for(b""), vs.sum_power) == (2, 1, 3)
    assert vs.two_thirds_majority() is None and vs.has_two_thirds_any()
    vs.add_vote(prevote(K[3], 5, 0, X))
    assert vs.two_thirds_majority() == X


def test_duplicates_and_re_timestamped_votes_do_not_count_twice() -> None:
    vs = VoteSet(CHAIN_ID, 5, 0, PREVOTE, vals())
    sv = prevote(K[0], 5, 0, X, time_ms=1)
    assert vs.add_vote(sv).added
    assert not vs.add_vote(sv).added
    result = vs.add_vote(prevote(K[0], 5, 0, X, time_ms=2))
    assert not result.added and result.evidence is None
    assert vs.power_for(X) == 1


def test_conflicting_vote_gives_canonical_evidence_and_counts_for_its_value() -> None:
    vs = VoteSet(CHAIN_ID, 5, 0, PREVOTE, vals())
    vs.add_vote(prevote(K[1], 5, 0, Y))
    result = vs.add_vote(prevote(K[1], 5, 0, X))
    assert result.added and result.evidence is not None
    ev = result.evidence
    assert ev.vote_a.vote.block_hash == min(X, Y) and ev.vote_b.vote.block_hash == max(X, Y)
    assert (vs.power_for(X), vs.power_for(Y), vs.sum_power) == (1, 1, 1)


def test_values_per_validator_are_bounded() -> None:
    vs = VoteSet(CHAIN_ID, 5, 0, PREVOTE, vals())
    values = [block_hash(str(i)) for i in range(MAX_VALUES_PER_VALIDATOR + 1)]
    results = [vs.add_vote(prevote(K[0], 5, 0, v)) for v in values]
    assert [r.added for r in results] == [True] * MAX_VALUES_PER_VALIDATOR + [False]
    assert results[-1].evidence is not None  # still reported


def test_votes_that_cannot_count_are_refused() -> None:
    vs = VoteSet(CHAIN_ID, 5, 0, PREVOTE, vals([1, 1, 1]))
    with pytest.raises(InvalidVote):
        vs.add_vote(prevote(K[3], 5, 0, X))  # not in the set
    with pytest.raises(InvalidVote):
        vs.add_vote(prevote(K[0], 5, 1, X))  # other round
    with pytest.raises(InvalidVote):
        vs.add_vote(precommit(K[0], 5, 0, X))  # other type
    with pytest.raises(InvalidVote):
        vs.add_vote(signed_vote(K[0], PREVOTE, 5, 0, X, chain_id="other-chain"))
    sv = prevote(K[0], 5, 0, X)
    with pytest.raises(InvalidVote):
        vs.add_vote(SignedVote(sv.vote, bytes(64)))
    assert vs.sum_power == 0


def test_copy_is_independent() -> None:
    vs = VoteSet(CHAIN_ID, 5, 0, PREVOTE, vals())
    vs.add_vote(prevote(K[0], 5, 0, X))
    other = vs.copy()
    other.add_vote(prevote(K[1], 5, 0, X))
    other.add_vote(prevote(K[0], 5, 0, Y))
    assert (vs.power_for(X), vs.power_for(Y), vs.sum_power) == (1, 0, 1)
    assert (other.power_for(X), other.power_for(Y), other.sum_power) == (2, 1, 2)


# ---- commits ------------------------------------------------------------------------------------
def test_commit_lists_block_votes_in_set_order_and_verifies() -> None:
    c = commit_for(X, [2, 0, 1], [30, 10, 20])
    assert [s.validator for s in c.signatures] == [K[0].address, K[1].address, K[2].address]
    assert verify_commit(CHAIN_ID, vals(), c, 5, X) == 3


def test_commit_without_a_majority_cannot_be_made() -> None:
    vs = VoteSet(CHAIN_ID, 5, 0, PRECOMMIT, vals())
    vs.add_vote(precommit(K[0], 5, 0, X))
    with pytest.raises(ValueError):
        vs.make_commit()


def test_verify_commit_rejections() -> None:
    good = commit_for(X, [0, 1, 2])
    v = vals()
    with pytest.raises(InvalidCommit):
        verify_commit(CHAIN_ID, v, good, 6, X)  # other height
    with pytest.raises(InvalidCommit):
        verify_commit(CHAIN_ID, v, good, 5, Y)  # other block
    with pytest.raises(InvalidCommit):
        verify_commit("other-chain", v, good, 5, X)  # signatures bound to the chain id
    sigs = good.signatures
    with pytest.raises(InvalidCommit):
        verify_commit(CHAIN_ID, v, Commit(5, 0, X, sigs[:2]), 5, X)  # 2 of 4
    with pytest.raises(InvalidCommit):
        verify_commit(CHAIN_ID, v, Commit(5, 0, X, (sigs[1], sigs[0], sigs[2])), 5, X)  # order
    with pytest.raises(InvalidCommit):
        verify_commit(CHAIN_ID, v, Commit(5, 0, X, (sigs[0], sigs[0], sigs[1], sigs[2])), 5, X)  # duplicate
    forged = CommitSig(sigs[2].validator, sigs[2].time_ms + 1, sigs[2].signature)
    with pytest.raises(InvalidCommit):
        verify_commit(CHAIN_ID, v, Commit(5, 0, X, (sigs[0], sigs[1], forged)), 5, X)
    with pytest.raises(InvalidCommit):
        verify_commit(CHAIN_ID, vals([1, 1, 1]), commit_for(X, [0, 1, 3]), 5, X)  # unknown signer


def test_exactly_two_thirds_is_not_a_commit() -> None:
    powers = [2, 1, 3]
    keys = K[:3]
    v = validator_set(keys, powers)
    vs = VoteSet(CHAIN_ID, 5, 0, PRECOMMIT, v)
    for i in (0, 1, 2):
        vs.add_vote(precommit(keys[i], 5, 0, X))
    full = vs.make_commit()
    dropped = keys[0].address  # power 2: the rest hold 3 + 1 = 4 of 6, exactly 2/3
    two_thirds = tuple(s for s in full.signatures if s.validator != dropped)
    with pytest.raises(InvalidCommit):
        verify_commit(CHAIN_ID, v, Commit(5, 0, X, two_thirds), 5, X)
    assert verify_commit(CHAIN_ID, v, full, 5, X) == 6


# ---- evidence -----------------------------------------------------------------------------------
def test_evidence_verifies_and_is_canonical() -> None:
    a, b = prevote(K[1], 5, 0, X), prevote(K[1], 5, 0, Y)
    ev = make_duplicate_vote_evidence(b, a)
    assert ev == make_duplicate_vote_evidence(a, b)
    verify_duplicate_vote_evidence(CHAIN_ID, vals(), ev)
    with pytest.raises(InvalidEvidence):
        verify_duplicate_vote_evidence(CHAIN_ID, vals([1]), ev)  # accused outside the set
    with pytest.raises(InvalidEvidence):
        verify_duplicate_vote_evidence("other-chain", vals(), ev)
    with pytest.raises(InvalidEvidence):
        make_duplicate_vote_evidence(a, prevote(K[1], 5, 0, X, time_ms=9))  # same value
    with pytest.raises(InvalidEvidence):
        make_duplicate_vote_evidence(a, prevote(K[2], 5, 0, Y))  # other validator
    forged = DuplicateVoteEvidence(ev.vote_a, SignedVote(ev.vote_b.vote, bytes(64)))
    with pytest.raises(InvalidEvidence):
        verify_duplicate_vote_evidence(CHAIN_ID, vals(), forged)
    with pytest.raises(CodecError):
        DuplicateVoteEvidence(ev.vote_b, ev.vote_a)  # out of canonical order


# ---- BFT time -----------------------------------------------------------------------------------
def test_bft_time_is_the_power_weighted_median() -> None:
    # Equal powers, times 10, 20, 30: cumulative 1, 2 of 3 -> 2 * 2 > 3 at 20.
    assert bft_time(commit_for(X, [0, 1, 2], [10, 20, 30]), vals()) == 20
    # Four equal signers: 2 * 2 > 4 fails at 20, 2 * 3 > 4 holds at 30 (the upper median).
    assert bft_time(commit_for(X, [0, 1, 2, 3], [10, 20, 30, 40]), vals()) == 30
    # Weights 33/40/27 at t1 < t2 < t3: cumulative 33, 73 of 100 -> t2.
    powers = [33, 40, 27]
    keys = K[:3]
    v = validator_set(keys, powers)
    vs = VoteSet(CHAIN_ID, 5, 0, PRECOMMIT, v)
    for key, t in zip(keys, (100, 200, 300)):
        vs.add_vote(precommit(key, 5, 0, X, t))
    assert bft_time(vs.make_commit(), v) == 200


def test_bft_time_ignores_a_byzantine_outlier() -> None:
    c = commit_for(X, [0, 1, 2, 3], [100, 101, 102, 10**12])
    assert bft_time(c, vals()) == 102  # cumulative 3 of 4 first exceeds half


def test_block_time_strictly_increases() -> None:
    c = commit_for(X, [0, 1, 2], [10, 20, 30])
    assert next_block_time(5, c, vals()) == 20
    assert next_block_time(20, c, vals()) == 21  # median not greater than the previous time
    assert next_block_time(99, c, vals()) == 100
    assert is_valid_block_time(21, 20, c, vals()) and not is_valid_block_time(20, 20, c, vals())


def test_bft_time_needs_known_signers() -> None:
    with pytest.raises(InvalidBlockTime):
        bft_time(Commit(5, 0, X, ()), vals())
    with pytest.raises(InvalidBlockTime):
        bft_time(commit_for(X, [0, 1, 3]), vals([1, 1, 1]))
