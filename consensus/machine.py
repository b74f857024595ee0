"""Tendermint's round state machine (Buchman, Kwon, Milosevic 2018, Algorithm 1) as a pure function.

``step(state, event) -> (state, effects)`` never mutates its input, reads no clock, does no IO and
draws no randomness: the same state and event always give the same result. The driver (node/ or
the simulator) owns timers, network, signing and disk and turns effects into events.

Line numbers below are Algorithm 1's. Deviations, all liveness-neutral:
- Every node, the proposer included, schedules the propose timeout when a round starts (CometBFT
  does the same); the proposer's own proposal reaches it as an ordinary ``ProposalReceived``.
- A node's own votes count only once the driver feeds the signed vote back (``VoteReceived``).
- "valid(v)" is the driver's ``block_valid`` verdict on the proposal's block. The decision rule
  (line 49) accepts the value if a valid proposal of this height carried that block hash in any
  round: the hash identifies the value, and the driver then holds its body.
- Round skip (line 55) jumps straight to the highest round that has f+1 senders.
- Messages for rounds beyond ``round + max_round_lookahead`` are rejected, and at most two
  proposals per round are kept (an equivocating proposer gains nothing from more).
"""

from __future__ import annotations

from consensus.events import (
    STEP_COMMIT,
    STEP_NONE,
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
from consensus.round_state import (
    MachineConfig,
    MachineState,
    current_commit,
    initial_state,
    is_validator,
    proposer_of,
    reset_height,
)
from state.staking.validator_set import has_one_third_plus
from consensus.votes import NIL, InvalidVote, VoteSet
from state.block import PRECOMMIT, PREVOTE, Proposal, Vote

__all__ = [
    "InvalidEvent",
    "MachineConfig",
    "MachineState",
    "current_commit",
    "initial_state",
    "is_validator",
    "proposer_of",
    "step",
]

MAX_PROPOSALS_PER_ROUND = 2

# "for the first time" rules, remembered per round
_RULE_TIMEOUT_PREVOTE = 34
_RULE_LOCK = 36
_RULE_TIMEOUT_PRECOMMIT = 47


class InvalidEvent(ValueError):
    """An event that breaks the driver contract (e.g. a NewHeight that does not increase height)."""


# ---- the transition ------------------------------------------------------------------------------
def step(state: MachineState, event: Event) -> tuple[MachineState, list[Effect]]:
    """Apply one event; returns the new state and the effects the driver must carry out, in order."""
    s = state._clone()
    out: list[Effect] = []
    if event.now_ms > s.now_ms:
        s.now_ms = event.now_ms
    if isinstance(event, NewHeight):
        _on_new_height(s, event, out)
    elif s.step == STEP_NONE:
        return s, out  # nothing to do before the first height
    elif isinstance(event, VoteReceived):
        _on_vote(s, event, out)
    elif isinstance(event, ProposalReceived):
        _on_proposal(s, event, out)
    elif isinstance(event, TimeoutElapsed):
        _on_timeout(s, event, out)
    elif isinstance(event, ProposeBlockReady):
        _on_block_ready(s, event, out)
    else:
        raise InvalidEvent(f"unknown event {type(event).__name__}")
    if s.step != STEP_COMMIT:
        _apply_rules(s, out)
    return s, out


# ---- event handlers: record the input, then the rules decide ------------------------------------
def _on_new_height(s: MachineState, ev: NewHeight, out: list[Effect]) -> None:
    if ev.height <= s.height:
        raise InvalidEvent(f"NewHeight({ev.height}) does not follow height {s.height}")
    s.height = ev.height
    s.validators = ev.validators
    reset_height(s)
    _start_round(s, 0, out)


def _on_vote(s: MachineState, ev: VoteReceived, out: list[Effect]) -> None:
    vote = ev.vote.vote
    if vote.height != s.height:
        return  # the driver buffers future heights; past heights are of no use here
    if vote.round > s.round + s.config.params.max_round_lookahead:
        out.append(MessageRejected("vote round too far ahead"))
        return
    sets = s.prevotes if vote.type == PREVOTE else s.precommits
    vs = sets.get(vote.round)
    if vs is None:
        assert s.validators is not None
        vs = VoteSet(s.config.chain_id, s.height, vote.round, vote.type, s.validators, s.config.verify)
    elif vs.has_vote(ev.vote):
        return  # a gossip duplicate
    else:
        vs = vs.copy()
    try:
        result = vs.add_vote(ev.vote)
    except InvalidVote as exc:
        out.append(MessageRejected(str(exc)))
        return
    sets[vote.round] = vs
    if result.evidence is not None:
        key = result.evidence.hash()
        if key not in s.evidence_seen:
            s.evidence_seen = s.evidence_seen | {key}
            out.append(EvidenceFound(result.evidence))
    if result.added:
        _note_sender(s, vote.round, vote.validator)


def _on_proposal(s: MachineState, ev: ProposalReceived, out: list[Effect]) -> None:
    p = ev.proposal.proposal
    if p.height != s.height:
        return
    if p.round > s.round + s.config.params.max_round_lookahead:
        out.append(MessageRejected("proposal round too far ahead"))
        return
    if not -1 <= p.pol_round < p.round:
        out.append(MessageRejected("proposal pol_round must be -1 or below its round"))
        return
    if p.proposer != _proposer(s, p.round):
        out.append(MessageRejected("proposal from a validator that is not the round's proposer"))
        return
    round_proposals = s.proposals.get(p.round, {})
    if p.block_hash in round_proposals:
        return
    if len(round_proposals) >= MAX_PROPOSALS_PER_ROUND:
        out.append(MessageRejected("too many proposals for one round"))
        return
    assert s.validators is not None
    val = s.validators.get_by_address(p.proposer)
    assert val is not None
    if not s.config.verify(val.public_key, ev.proposal.signature, p.sign_bytes(s.config.chain_id)):
        out.append(MessageRejected("invalid proposal signature"))
        return
    updated = dict(round_proposals)
    updated[p.block_hash] = ev.proposal
    s.proposals[p.round] = updated
    if p.block_hash not in s.block_valid:
        s.block_valid[p.block_hash] = bool(ev.block_valid)
    _note_sender(s, p.round, p.proposer)


def _on_timeout(s: MachineState, ev: TimeoutElapsed, out: list[Effect]) -> None:
    if ev.height != s.height or ev.round != s.round or s.step == STEP_COMMIT:
        return
    if ev.step == STEP_PROPOSE:
        on_timeout_propose(s, out)
    elif ev.step == STEP_PREVOTE:
        on_timeout_prevote(s, out)
    elif ev.step == STEP_PRECOMMIT:
        on_timeout_precommit(s, out)


def _on_block_ready(s: MachineState, ev: ProposeBlockReady, out: list[Effect]) -> None:
    if (ev.height, ev.round) != (s.height, s.round) or s.step != STEP_PROPOSE or s.awaiting_block != ev.round:
        return  # the round moved on while the driver built the block
    s.awaiting_block = -1
    out.append(SignAndBroadcastProposal(Proposal(s.height, s.round, -1, ev.block_hash, s.now_ms, s.config.address)))


def _note_sender(s: MachineState, round_: int, address: bytes) -> None:
    addrs, power = s.senders.get(round_, (frozenset(), 0))
    if address in addrs:
        return
    assert s.validators is not None
    val = s.validators.get_by_address(address)
    assert val is not None
    s.senders[round_] = (addrs | {address}, power + val.power)


def _proposer(s: MachineState, round_: int) -> bytes:
    addr = proposer_of(s, round_)
    s.proposers[round_] = addr
    return addr


# ---- Algorithm 1 ---------------------------------------------------------------------------------
def _start_round(s: MachineState, round_: int, out: list[Effect]) -> None:
    """StartRound (lines 11-21)."""
    s.round = round_
    s.step = STEP_PROPOSE
    s.awaiting_block = -1
    if _is_me(s, _proposer(s, round_)):
        if s.valid_value is not None:
            out.append(
                SignAndBroadcastProposal(
                    Proposal(s.height, round_, s.valid_round, s.valid_value, s.now_ms, s.config.address)
                )
            )
        else:
            s.awaiting_block = round_
            out.append(RequestBlock(s.height, round_))
    out.append(ScheduleTimeout(s.height, round_, STEP_PROPOSE, s.config.params.timeout_propose(round_)))


def _is_me(s: MachineState, address: bytes) -> bool:
    return bool(s.config.address) and address == s.config.address


def _broadcast_vote(s: MachineState, vote_type: int, block_hash: bytes, out: list[Effect]) -> None:
    if is_validator(s):
        out.append(SignAndBroadcastVote(Vote(vote_type, s.height, s.round, block_hash, s.now_ms, s.config.address)))


def _prevote(s: MachineState, block_hash: bytes, out: list[Effect]) -> None:
    _broadcast_vote(s, PREVOTE, block_hash, out)
    s.step = STEP_PREVOTE


def _precommit(s: MachineState, block_hash: bytes, out: list[Effect]) -> None:
    _broadcast_vote(s, PRECOMMIT, block_hash, out)
    s.step = STEP_PRECOMMIT


def _apply_rules(s: MachineState, out: list[Effect]) -> None:
    """Fire every enabled "upon" rule until none is; the state only moves forward, so this ends."""
    while True:
        if upon_precommit_quorum_decide(s, out):
            return
        if upon_f_plus_one_higher_round(s, out):
            continue
        if s.step == STEP_PROPOSE and upon_proposal_in_propose(s, out):
            continue
        if upon_polka_for_proposal(s, out):
            continue
        if s.step == STEP_PREVOTE and upon_polka_for_nil(s, out):
            continue
        # Timeouts last: a polka handled above makes the prevote timeout pointless.
        if s.step == STEP_PREVOTE:
            upon_two_thirds_prevotes_any(s, out)
        upon_two_thirds_precommits_any(s, out)
        return


def upon_precommit_quorum_decide(s: MachineState, out: list[Effect]) -> bool:
    """Line 49: a proposal of v and 2f+1 precommits for id(v) in any round, v valid -> decide."""
    for r in sorted(s.precommits):
        vs = s.precommits[r]
        value = vs.two_thirds_majority()
        if value and s.block_valid.get(value, False):
            decision = Decide(s.height, r, value, vs.make_commit())
            s.decision = decision
            s.step = STEP_COMMIT
            out.append(decision)
            return True
    return False


def upon_f_plus_one_higher_round(s: MachineState, out: list[Effect]) -> bool:
    """Line 55: f+1 (more than 1/3 of the power) sent messages in a round above ours -> go there."""
    assert s.validators is not None
    total = s.validators.total_power
    target = -1
    for r, (_, power) in s.senders.items():
        if r > s.round and r > target and has_one_third_plus(power, total):
            target = r
    if target < 0:
        return False
    _start_round(s, target, out)
    return True


def upon_proposal_in_propose(s: MachineState, out: list[Effect]) -> bool:
    """Lines 22-33: prevote on the round's proposal (fresh, or re-proposed with a proof of lock)."""
    for block_hash, sp in s.proposals.get(s.round, {}).items():
        p = sp.proposal
        valid = s.block_valid.get(block_hash, False)
        if p.pol_round == -1:
            acceptable = valid and (s.locked_round == -1 or s.locked_value == block_hash)
            _prevote(s, block_hash if acceptable else NIL, out)
            return True
        pol_votes = s.prevotes.get(p.pol_round)
        if pol_votes is not None and pol_votes.two_thirds_majority() == block_hash:
            acceptable = valid and (s.locked_round <= p.pol_round or s.locked_value == block_hash)
            _prevote(s, block_hash if acceptable else NIL, out)
            return True
    return False


def upon_two_thirds_prevotes_any(s: MachineState, out: list[Effect]) -> None:
    """Line 34: 2f+1 prevotes of any kind while in prevote, first time -> schedule timeoutPrevote."""
    key = (_RULE_TIMEOUT_PREVOTE, s.round)
    vs = s.prevotes.get(s.round)
    if key in s.fired or vs is None or not vs.has_two_thirds_any():
        return
    s.fired = s.fired | {key}
    out.append(ScheduleTimeout(s.height, s.round, STEP_PREVOTE, s.config.params.timeout_prevote(s.round)))


def upon_polka_for_proposal(s: MachineState, out: list[Effect]) -> bool:
    """Lines 36-43: proposal of valid v and 2f+1 prevotes for id(v) in this round, step >= prevote,
    first time -> lock on v and precommit it (if still in prevote); v becomes the valid value."""
    if s.step not in (STEP_PREVOTE, STEP_PRECOMMIT):
        return False
    key = (_RULE_LOCK, s.round)
    vs = s.prevotes.get(s.round)
    if key in s.fired or vs is None:
        return False
    value = vs.two_thirds_majority()
    if not value or value not in s.proposals.get(s.round, {}) or not s.block_valid.get(value, False):
        return False
    s.fired = s.fired | {key}
    if s.step == STEP_PREVOTE:
        s.locked_value = value
        s.locked_round = s.round
        _precommit(s, value, out)
    s.valid_value = value
    s.valid_round = s.round
    return True


def upon_polka_for_nil(s: MachineState, out: list[Effect]) -> bool:
    """Line 44: 2f+1 prevotes for nil while in prevote -> precommit nil."""
    vs = s.prevotes.get(s.round)
    if vs is None or vs.two_thirds_majority() != NIL:
        return False
    _precommit(s, NIL, out)
    return True


def upon_two_thirds_precommits_any(s: MachineState, out: list[Effect]) -> None:
    """Line 47: 2f+1 precommits of any kind in this round, first time -> schedule timeoutPrecommit."""
    key = (_RULE_TIMEOUT_PRECOMMIT, s.round)
    vs = s.precommits.get(s.round)
    if key in s.fired or vs is None or not vs.has_two_thirds_any():
        return
    s.fired = s.fired | {key}
    out.append(ScheduleTimeout(s.height, s.round, STEP_PRECOMMIT, s.config.params.timeout_precommit(s.round)))


def on_timeout_propose(s: MachineState, out: list[Effect]) -> None:
    """Line 57: still proposing when the timeout fires -> prevote nil."""
    if s.step == STEP_PROPOSE:
        _prevote(s, NIL, out)


def on_timeout_prevote(s: MachineState, out: list[Effect]) -> None:
    """Line 61: still in prevote when the timeout fires -> precommit nil."""
    if s.step == STEP_PREVOTE:
        _precommit(s, NIL, out)


def on_timeout_precommit(s: MachineState, out: list[Effect]) -> None:
    """Line 65: the round ends -> next round."""
    _start_round(s, s.round + 1, out)
