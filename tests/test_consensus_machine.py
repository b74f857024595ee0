"""Scripted event traces through the pure Tendermint machine (Algorithm 1 of arXiv 1807.04938).

Each test builds a height, feeds events, and asserts the exact effects. Line numbers refer to
Algorithm 1. Validators are sorted by address, so with equal powers the proposer of round r is
validator r mod n (worked out by hand in test_proposer.py's rules).
"""

from __future__ import annotations

from typing import Sequence

import pytest

from consensus.events import (
    STEP_COMMIT,
    STEP_PRECOMMIT,
    STEP_PREVOTE,
    STEP_PROPOSE,
    Decide,
    Effect,
    Event,
    EvidenceFound,
    MessageRejected,
    NewHeight,
    ProposalReceived,
    ProposeBlockReady,
    RequestBlock,
    ScheduleTimeout,
    SignAndBroadcastProposal,
    SignAndBroadcastVote,
    TimeoutElapsed,
    VoteReceived,
)
from consensus.evidence import verify_duplicate_vote_evidence
from consensus.machine import InvalidEvent, MachineConfig, MachineState, current_commit, initial_state, proposer_of, step
from consensus.params import ConsensusParams
from consensus.testkit import CHAIN_ID, block_hash, keys_by_address, precommit, prevote, signed_proposal, validator_set
from state.staking.validator_set import has_two_thirds
from consensus.votes import verify_commit
from state.block import PRECOMMIT, PREVOTE, Proposal, SignedProposal, Vote

PARAMS = ConsensusParams(
    timeout_propose_ms=1000,
    timeout_propose_delta_ms=100,
    timeout_prevote_ms=500,
    timeout_prevote_delta_ms=50,
    timeout_precommit_ms=700,
    timeout_precommit_delta_ms=70,
    timeout_commit_ms=0,
)
X = block_hash("X")
Y = block_hash("Y")
NIL = b""


class Trace:
    """One node (validator ``me``) at height 1, driven by hand."""

    def __init__(self, me: int = 3, powers: Sequence[int] = (1, 1, 1, 1), address: bytes | None = None) -> None:
        self.keys = keys_by_address(len(powers))
        self.vals = validator_set(self.keys, list(powers))
        self.me = self.keys[me]
        self.address = self.me.address if address is None else address
        self.state: MachineState = initial_state(MachineConfig(CHAIN_ID, self.address, PARAMS))
        self.now = 1000
        self.start = self.feed(NewHeight(1, self.vals, self.now))

    def feed(self, event: Event) -> list[Effect]:
        self.state, effects = step(self.state, event)
        return effects

    def at(self, now: int) -> "Trace":
        self.now = now
        return self

    def proposal(self, round_: int, value: bytes, pol: int = -1, valid: bool = True) -> list[Effect]:
        address = proposer_of(self.state, round_)
        proposer = next(k for k in self.keys if k.address == address)
        sp = signed_proposal(proposer, 1, round_, value, pol, self.now)
        return self.feed(ProposalReceived(sp, valid, self.now))

    def votes(self, kind: int, round_: int, value: bytes, who: Sequence[int]) -> list[Effect]:
        out: list[Effect] = []
        make = prevote if kind == PREVOTE else precommit
        for i in who:
            out += self.feed(VoteReceived(make(self.keys[i], 1, round_, value, self.now), self.now))
        return out

    def timeout(self, round_: int, step_: int) -> list[Effect]:
        return self.feed(TimeoutElapsed(1, round_, step_, self.now))

    def my_vote(self, kind: int, round_: int, value: bytes) -> SignAndBroadcastVote:
        return SignAndBroadcastVote(Vote(kind, 1, round_, value, self.now, self.address))

    def echo(self, effects: list[Effect]) -> list[Effect]:
        """The driver signs the machine's votes and feeds them back."""
        out: list[Effect] = []
        for e in effects:
            if isinstance(e, SignAndBroadcastVote):
                v = e.vote
                make = prevote if v.type == PREVOTE else precommit
                out += self.feed(VoteReceived(make(self.me, v.height, v.round, v.block_hash, v.time_ms), self.now))
        return out


def timeout(round_: int, step_: int) -> ScheduleTimeout:
    base = {STEP_PROPOSE: (1000, 100), STEP_PREVOTE: (500, 50), STEP_PRECOMMIT: (700, 70)}[step_]
    return ScheduleTimeout(1, round_, step_, base[0] + round_ * base[1])


def lock_on_x_in_round_0(t: Trace) -> None:
    t.proposal(0, X)
    t.votes(PREVOTE, 0, X, [0, 1, 2])
    assert (t.state.locked_value, t.state.locked_round) == (X, 0)


# ---- StartRound and the propose step ------------------------------------------------------------
def test_non_proposer_only_schedules_the_propose_timeout() -> None:
    t = Trace(me=3)
    assert t.start == [timeout(0, STEP_PROPOSE)]
    assert (t.state.height, t.state.round, t.state.step) == (1, 0, STEP_PROPOSE)


def test_proposer_requests_a_block_then_proposes_it() -> None:
    t = Trace(me=0)
    assert t.start == [RequestBlock(1, 0), timeout(0, STEP_PROPOSE)]
    effects = t.at(1005).feed(ProposeBlockReady(1, 0, X, 1005))
    assert effects == [SignAndBroadcastProposal(Proposal(1, 0, -1, X, 1005, t.me.address))]
    # A late answer for a round that is over is ignored.
    assert t.feed(ProposeBlockReady(1, 0, Y, 1006)) == []


def test_prevote_for_a_valid_proposal() -> None:  # line 22
    t = Trace()
    assert t.at(1010).proposal(0, X) == [t.my_vote(PREVOTE, 0, X)]
    assert t.state.step == STEP_PREVOTE


def test_prevote_nil_for_an_invalid_proposal() -> None:  # line 22, valid(v) false
    t = Trace()
    assert t.proposal(0, X, valid=False) == [t.my_vote(PREVOTE, 0, NIL)]


def test_prevote_nil_when_the_propose_timeout_fires() -> None:  # line 57
    t = Trace()
    assert t.at(2000).timeout(0, STEP_PROPOSE) == [t.my_vote(PREVOTE, 0, NIL)]
    # A proposal that arrives after the prevote changes nothing.
    assert t.proposal(0, X) == []


def test_proposal_from_a_non_proposer_is_rejected() -> None:
    t = Trace()
    sp = signed_proposal(t.keys[2], 1, 0, X)  # round 0 belongs to validator 0
    effects = t.feed(ProposalReceived(sp, True))
    assert len(effects) == 1 and isinstance(effects[0], MessageRejected)
    assert t.state.step == STEP_PROPOSE


def test_proposal_with_a_bad_signature_is_rejected() -> None:
    t = Trace()
    sp = signed_proposal(t.keys[0], 1, 0, X)
    forged = SignedProposal(sp.proposal, bytes(64))
    effects = t.feed(ProposalReceived(forged, True))
    assert len(effects) == 1 and isinstance(effects[0], MessageRejected)


def test_proposal_pol_round_must_be_below_its_round() -> None:
    t = Trace()
    effects = t.proposal(0, X, pol=0)
    assert len(effects) == 1 and isinstance(effects[0], MessageRejected)


# ---- quorums are strictly more than two thirds, in integers -------------------------------------
def test_has_two_thirds_is_strict() -> None:
    assert not has_two_thirds(2, 3)
    assert has_two_thirds(3, 4)
    assert not has_two_thirds(200, 300)
    assert has_two_thirds(201, 300)
    assert not has_two_thirds(0, 0)


def test_exactly_two_thirds_of_prevotes_is_not_a_polka() -> None:
    t = Trace(me=2, powers=(1, 1, 1))  # total 3: 2 votes are exactly 2/3
    t.proposal(0, X)
    assert t.votes(PREVOTE, 0, X, [0, 1]) == []  # no lock, and no "2f+1 any" timeout either
    assert t.state.locked_round == -1
    t.echo([t.my_vote(PREVOTE, 0, X)])
    assert t.state.locked_value == X


def test_exactly_two_thirds_of_precommits_decides_nothing() -> None:
    t = Trace(me=2, powers=(2, 1, 3))  # total 6; sorted keys 0,1,2 have powers 2,1,3
    t.proposal(0, X)
    assert t.votes(PRECOMMIT, 0, X, [2, 1]) == []  # 4 of 6 is exactly 2/3
    effects = t.votes(PRECOMMIT, 0, X, [0])  # 6 of 6
    assert [type(e) for e in effects] == [Decide]


# ---- locking (lines 36-43) -----------------------------------------------------------------------
def test_polka_for_the_proposal_locks_and_precommits() -> None:
    t = Trace()
    t.at(1100).proposal(0, X)
    effects = t.at(1200).votes(PREVOTE, 0, X, [0, 1, 2])
    assert effects == [t.my_vote(PRECOMMIT, 0, X)]
    s = t.state
    assert (s.locked_value, s.locked_round, s.valid_value, s.valid_round, s.step) == (X, 0, X, 0, STEP_PRECOMMIT)


def test_polka_after_precommitting_nil_updates_only_the_valid_value() -> None:
    t = Trace()
    t.timeout(0, STEP_PROPOSE)  # prevote nil
    assert t.votes(PREVOTE, 0, X, [0, 1]) == []
    assert t.echo([t.my_vote(PREVOTE, 0, NIL)]) == [timeout(0, STEP_PREVOTE)]
    assert t.timeout(0, STEP_PREVOTE) == [t.my_vote(PRECOMMIT, 0, NIL)]
    assert t.proposal(0, X) == []  # the proposal arrives late
    assert t.votes(PREVOTE, 0, X, [2]) == []  # and then the polka: no precommit, no lock
    s = t.state
    assert (s.locked_value, s.locked_round, s.valid_value, s.valid_round) == (None, -1, X, 0)


def test_locked_node_prevotes_nil_for_another_fresh_value() -> None:  # line 23
    t = Trace()
    lock_on_x_in_round_0(t)
    t.votes(PRECOMMIT, 0, NIL, [0, 1, 2])
    t.timeout(0, STEP_PRECOMMIT)
    assert t.proposal(1, Y) == [t.my_vote(PREVOTE, 1, NIL)]


def test_locked_node_prevotes_its_locked_value_when_reproposed() -> None:  # lines 23 and 29
    for pol in (-1, 0):
        t = Trace()
        lock_on_x_in_round_0(t)
        t.votes(PRECOMMIT, 0, NIL, [0, 1, 2])
        t.timeout(0, STEP_PRECOMMIT)
        assert t.proposal(1, X, pol=pol) == [t.my_vote(PREVOTE, 1, X)]


def test_polka_in_a_higher_round_releases_the_lock() -> None:  # line 29: lockedRound <= vr
    t = Trace()
    lock_on_x_in_round_0(t)
    t.votes(PRECOMMIT, 0, NIL, [0, 1, 2])
    t.timeout(0, STEP_PRECOMMIT)
    # Round 1: this node never sees round 1's proposal, but sees a polka for Y in round 1.
    t.timeout(1, STEP_PROPOSE)  # prevote nil
    t.votes(PREVOTE, 1, Y, [0, 1, 2])
    t.timeout(1, STEP_PREVOTE)  # no proposal for Y here, so precommit nil
    t.votes(PRECOMMIT, 1, NIL, [0, 1, 2])
    t.timeout(1, STEP_PRECOMMIT)
    assert t.state.locked_value == X
    # Round 2 re-proposes Y with the proof of lock from round 1 (1 >= lockedRound 0): prevote Y.
    assert t.proposal(2, Y, pol=1) == [t.my_vote(PREVOTE, 2, Y)]


def test_proof_of_lock_must_be_present() -> None:  # line 28 needs 2f+1 prevotes at vr
    t = Trace()
    lock_on_x_in_round_0(t)
    t.votes(PRECOMMIT, 0, NIL, [0, 1, 2])
    t.timeout(0, STEP_PRECOMMIT)
    t.timeout(1, STEP_PROPOSE)
    t.votes(PREVOTE, 1, Y, [0, 1])  # only 2 of 4: no polka for Y in round 1
    t.votes(PREVOTE, 1, NIL, [2])
    t.timeout(1, STEP_PREVOTE)
    t.votes(PRECOMMIT, 1, NIL, [0, 1, 2])
    t.timeout(1, STEP_PRECOMMIT)
    assert t.proposal(2, Y, pol=1) == []  # waits for the proof of lock ...
    assert t.timeout(2, STEP_PROPOSE) == [t.my_vote(PREVOTE, 2, NIL)]  # ... then times out


def test_proof_of_lock_for_a_lower_round_than_the_lock_is_refused() -> None:  # lockedRound > vr
    t = Trace()
    t.proposal(0, Y)
    t.votes(PREVOTE, 0, Y, [0, 1])
    t.votes(PREVOTE, 0, NIL, [2])
    t.timeout(0, STEP_PREVOTE)
    t.votes(PRECOMMIT, 0, NIL, [0, 1, 2])
    t.timeout(0, STEP_PRECOMMIT)
    t.proposal(1, X)
    t.votes(PREVOTE, 1, X, [0, 1, 2])  # locks on X in round 1
    assert (t.state.locked_value, t.state.locked_round) == (X, 1)
    t.votes(PREVOTE, 0, Y, [3])  # a late round-0 vote completes a polka for Y in round 0
    t.votes(PRECOMMIT, 1, NIL, [0, 1, 2])
    t.timeout(1, STEP_PRECOMMIT)
    assert t.proposal(2, Y, pol=0) == [t.my_vote(PREVOTE, 2, NIL)]


# ---- the valid value is re-proposed (lines 14-15) ------------------------------------------------
def test_proposer_reproposes_its_valid_value_with_its_round() -> None:
    t = Trace(me=1)  # proposer of round 1
    t.proposal(0, X)
    t.votes(PREVOTE, 0, X, [0, 2, 3])  # lock and valid value X in round 0
    t.votes(PRECOMMIT, 0, NIL, [0, 2, 3])
    effects = t.at(3000).timeout(0, STEP_PRECOMMIT)
    assert effects == [
        SignAndBroadcastProposal(Proposal(1, 1, 0, X, 3000, t.me.address)),
        timeout(1, STEP_PROPOSE),
    ]


# ---- nil quorums and timeouts (lines 34, 44, 47, 61, 65) -----------------------------------------
def test_polka_for_nil_precommits_nil() -> None:
    t = Trace()
    t.timeout(0, STEP_PROPOSE)
    assert t.votes(PREVOTE, 0, NIL, [0, 1, 2]) == [t.my_vote(PRECOMMIT, 0, NIL)]


def test_prevote_timeout_is_scheduled_once_on_two_thirds_of_any_prevotes() -> None:
    t = Trace()
    t.proposal(0, X)
    assert t.votes(PREVOTE, 0, X, [0]) == []
    assert t.votes(PREVOTE, 0, Y, [1]) == []
    assert t.votes(PREVOTE, 0, NIL, [2]) == [timeout(0, STEP_PREVOTE)]
    assert t.echo([t.my_vote(PREVOTE, 0, X)]) == []  # not scheduled twice
    assert t.timeout(0, STEP_PREVOTE) == [t.my_vote(PRECOMMIT, 0, NIL)]


def test_precommit_timeout_starts_the_next_round() -> None:
    t = Trace()
    t.timeout(0, STEP_PROPOSE)
    t.votes(PREVOTE, 0, NIL, [0, 1, 2])
    assert t.votes(PRECOMMIT, 0, NIL, [0, 1]) == []
    assert t.votes(PRECOMMIT, 0, X, [2]) == [timeout(0, STEP_PRECOMMIT)]
    assert t.timeout(0, STEP_PRECOMMIT) == [timeout(1, STEP_PROPOSE)]
    assert (t.state.round, t.state.step) == (1, STEP_PROPOSE)


def test_timeouts_grow_with_the_round() -> None:
    t = Trace()
    seen: list[ScheduleTimeout] = [e for e in t.start if isinstance(e, ScheduleTimeout)]
    for r in range(3):
        effects = t.timeout(r, STEP_PROPOSE)
        for i, value in ((0, X), (1, Y), (2, NIL)):  # 2f+1 prevotes, no polka
            effects += t.votes(PREVOTE, r, value, [i])
        effects += t.timeout(r, STEP_PREVOTE)
        effects += t.votes(PRECOMMIT, r, NIL, [0, 1, 2])
        effects += t.timeout(r, STEP_PRECOMMIT)
        seen += [e for e in effects if isinstance(e, ScheduleTimeout)]
    durations = [(e.round, e.step, e.duration_ms) for e in seen]
    assert durations == [
        (0, STEP_PROPOSE, 1000),
        (0, STEP_PREVOTE, 500),
        (0, STEP_PRECOMMIT, 700),
        (1, STEP_PROPOSE, 1100),
        (1, STEP_PREVOTE, 550),
        (1, STEP_PRECOMMIT, 770),
        (2, STEP_PROPOSE, 1200),
        (2, STEP_PREVOTE, 600),
        (2, STEP_PRECOMMIT, 840),
        (3, STEP_PROPOSE, 1300),
    ]


def test_stale_timeouts_are_ignored() -> None:
    t = Trace()
    t.timeout(0, STEP_PROPOSE)
    t.votes(PREVOTE, 0, NIL, [0, 1, 2])
    t.votes(PRECOMMIT, 0, NIL, [0, 1, 2])
    t.timeout(0, STEP_PRECOMMIT)
    before = (t.state.round, t.state.step)
    assert t.timeout(0, STEP_PROPOSE) == []
    assert t.timeout(0, STEP_PRECOMMIT) == []
    assert t.feed(TimeoutElapsed(2, 1, STEP_PROPOSE)) == []
    assert (t.state.round, t.state.step) == before


# ---- round skip (line 55) ------------------------------------------------------------------------
def test_f_plus_one_messages_from_a_higher_round_skip_to_it() -> None:
    t = Trace(me=2)
    assert t.votes(PREVOTE, 3, NIL, [0]) == []  # 1 of 4 is not more than 1/3
    assert t.votes(PRECOMMIT, 3, NIL, [1]) == [timeout(3, STEP_PROPOSE)]  # 2 of 4 is
    assert (t.state.round, t.state.step) == (3, STEP_PROPOSE)


def test_round_skip_makes_the_new_proposer_propose() -> None:
    t = Trace(me=3)
    assert t.votes(PREVOTE, 3, NIL, [0, 1]) == [RequestBlock(1, 3), timeout(3, STEP_PROPOSE)]


def test_one_third_exactly_does_not_skip() -> None:
    t = Trace(me=0, powers=(1, 1, 1))  # 1 of 3 is exactly 1/3
    assert t.votes(PREVOTE, 2, NIL, [1]) == []
    assert t.state.round == 0


# ---- deciding (line 49) --------------------------------------------------------------------------
def test_precommit_quorum_for_a_valid_proposal_decides() -> None:
    t = Trace()
    t.proposal(0, X)
    effects = t.votes(PRECOMMIT, 0, X, [0, 1, 2])
    assert len(effects) == 1 and isinstance(effects[0], Decide)
    d = effects[0]
    assert (d.height, d.round, d.block_hash) == (1, 0, X)
    assert [s.validator for s in d.commit.signatures] == [k.address for k in t.keys[:3]]
    assert verify_commit(CHAIN_ID, t.vals, d.commit, 1, X) == 3
    assert t.state.step == STEP_COMMIT
    # Decided: nothing more is signed, even on timeouts or new rounds' messages.
    assert t.timeout(0, STEP_PRECOMMIT) == []
    assert t.votes(PREVOTE, 5, NIL, [0, 1, 2]) == []


def test_decision_in_an_earlier_round() -> None:
    t = Trace()
    t.proposal(0, X)
    t.votes(PRECOMMIT, 0, X, [0, 1])
    t.votes(PREVOTE, 1, NIL, [0, 1])  # f+1 in round 1: skip there
    assert t.state.round == 1
    effects = t.votes(PRECOMMIT, 0, X, [2])  # a late round-0 precommit completes the quorum
    assert len(effects) == 1 and isinstance(effects[0], Decide)
    assert (effects[0].round, effects[0].block_hash) == (0, X)


def test_conflicting_votes_count_for_each_value() -> None:
    """The paper counts senders per value: a double-signer's second vote still counts for its value
    (other nodes may have counted it first), besides yielding evidence."""
    t = Trace()
    t.proposal(0, X)
    t.votes(PRECOMMIT, 0, NIL, [0])
    t.votes(PRECOMMIT, 0, X, [1, 2])
    effects = t.votes(PRECOMMIT, 0, X, [0])
    assert [type(e) for e in effects] == [EvidenceFound, Decide]


def test_no_decision_without_a_valid_proposal() -> None:
    t = Trace()
    assert t.votes(PRECOMMIT, 0, X, [0, 1, 2]) == [timeout(0, STEP_PRECOMMIT)]
    assert t.state.decision is None
    effects = t.proposal(0, X)  # the block arrives: decide now
    assert [type(e) for e in effects] == [Decide]

    t2 = Trace()
    t2.votes(PRECOMMIT, 0, X, [0, 1, 2])
    assert t2.proposal(0, X, valid=False) == [t2.my_vote(PREVOTE, 0, NIL)]
    assert t2.state.decision is None


def test_late_precommits_extend_the_commit() -> None:
    t = Trace()
    t.proposal(0, X)
    t.votes(PRECOMMIT, 0, X, [0, 1, 2])
    first = current_commit(t.state)
    assert first is not None and len(first.signatures) == 3
    t.votes(PRECOMMIT, 0, X, [3])
    fuller = current_commit(t.state)
    assert fuller is not None and len(fuller.signatures) == 4
    assert verify_commit(CHAIN_ID, t.vals, fuller, 1, X) == 4


# ---- evidence, observers, heights ----------------------------------------------------------------
def test_conflicting_votes_yield_evidence_once() -> None:
    t = Trace()
    t.votes(PREVOTE, 0, X, [1])
    effects = t.votes(PREVOTE, 0, Y, [1])
    assert [type(e) for e in effects] == [EvidenceFound]
    ev = effects[0].evidence  # type: ignore[union-attr]
    assert ev.vote_a.vote.block_hash < ev.vote_b.vote.block_hash
    verify_duplicate_vote_evidence(CHAIN_ID, t.vals, ev)
    assert t.votes(PREVOTE, 0, Y, [1]) == []  # the same pair again: nothing new


def test_a_vote_with_a_bad_signature_is_rejected_and_does_not_count() -> None:
    t = Trace()
    sv = prevote(t.keys[0], 1, 0, X)
    forged = type(sv)(sv.vote, bytes(64))
    effects = t.feed(VoteReceived(forged))
    assert len(effects) == 1 and isinstance(effects[0], MessageRejected)
    assert 0 not in t.state.prevotes or t.state.prevotes[0].sum_power == 0


def test_votes_for_other_heights_are_ignored() -> None:
    t = Trace()
    assert t.feed(VoteReceived(prevote(t.keys[0], 2, 0, X))) == []
    assert t.state.prevotes == {}


def test_a_non_validator_follows_but_never_signs() -> None:
    t = Trace(address=b"")
    assert t.proposal(0, X) == []
    assert t.state.step == STEP_PREVOTE
    assert t.votes(PREVOTE, 0, X, [0, 1, 2]) == []
    assert (t.state.step, t.state.locked_value) == (STEP_PRECOMMIT, X)
    effects = t.votes(PRECOMMIT, 0, X, [0, 1, 2])
    assert [type(e) for e in effects] == [Decide]


def test_new_height_must_increase() -> None:
    t = Trace()
    with pytest.raises(InvalidEvent):
        t.feed(NewHeight(1, t.vals))


# ---- purity ----------------------------------------------------------------------------------------
def _fingerprint(s: MachineState) -> tuple[object, ...]:
    votes = tuple(
        (kind, r, tuple(sorted((v.vote.validator, v.vote.block_hash) for v in vs.votes_for(h))))
        for kind, sets in (("pv", s.prevotes), ("pc", s.precommits))
        for r, vs in sorted(sets.items())
        for h in sorted(vs._power)
    )
    return (
        s.height,
        s.round,
        s.step,
        s.locked_value,
        s.locked_round,
        s.valid_value,
        s.valid_round,
        tuple(sorted((r, tuple(sorted(d))) for r, d in s.proposals.items())),
        tuple(sorted(s.block_valid.items())),
        votes,
        tuple(sorted(s.fired)),
        s.decision,
    )


def test_step_never_mutates_its_input_and_is_deterministic() -> None:
    t = Trace()
    events: list[Event] = [
        ProposalReceived(signed_proposal(t.keys[0], 1, 0, X), True, 1001),
        VoteReceived(prevote(t.keys[0], 1, 0, X), 1002),
        VoteReceived(prevote(t.keys[1], 1, 0, X), 1003),
        VoteReceived(prevote(t.keys[1], 1, 0, Y), 1004),
        VoteReceived(prevote(t.keys[2], 1, 0, X), 1005),
        VoteReceived(precommit(t.keys[0], 1, 0, X), 1006),
        VoteReceived(precommit(t.keys[1], 1, 0, X), 1007),
        VoteReceived(precommit(t.keys[2], 1, 0, X), 1008),
    ]
    states = [t.state]
    outputs = []
    for ev in events:
        before = _fingerprint(states[-1])
        s, effects = step(states[-1], ev)
        assert _fingerprint(states[-1]) == before
        states.append(s)
        outputs.append(effects)
    # Stepping any old state again gives the same result.
    for i, ev in enumerate(events):
        s, effects = step(states[i], ev)
        assert effects == outputs[i]
        assert _fingerprint(s) == _fingerprint(states[i + 1])
    assert isinstance(outputs[-1][-1], Decide)
