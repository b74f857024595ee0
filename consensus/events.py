"""Inputs (events) and outputs (effects) of the pure consensus machine.

Every event carries ``now_ms``, the driver's clock when it fed the event; the machine never reads
a clock. Votes and proposals it asks to sign are stamped with the largest ``now_ms`` seen, so a
replayed WAL reproduces byte-identical messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from consensus.params import STEP_PRECOMMIT, STEP_PREVOTE, STEP_PROPOSE
from state.staking.validator_set import ValidatorSet
from state.block import Commit, DuplicateVoteEvidence, Proposal, SignedProposal, SignedVote, Vote

__all__ = [
    "STEP_NONE",
    "STEP_PROPOSE",
    "STEP_PREVOTE",
    "STEP_PRECOMMIT",
    "STEP_COMMIT",
    "NewHeight",
    "ProposalReceived",
    "ProposeBlockReady",
    "VoteReceived",
    "TimeoutElapsed",
    "Event",
    "RequestBlock",
    "SignAndBroadcastProposal",
    "SignAndBroadcastVote",
    "ScheduleTimeout",
    "Decide",
    "EvidenceFound",
    "MessageRejected",
    "Effect",
]

STEP_NONE = 0  # before the first NewHeight
STEP_COMMIT = 4  # decided; waiting for the driver's NewHeight


# ---- events (driver -> machine) ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NewHeight:
    """Start ``height`` at round 0. ``validators`` is the set for this height, already incremented
    for it, so ``validators.get_proposer()`` is the round-0 proposer."""

    height: int
    validators: ValidatorSet
    now_ms: int = 0


@dataclass(frozen=True, slots=True)
class ProposalReceived:
    """A signed proposal whose block the driver holds (its hash is ``proposal.block_hash``);
    ``block_valid`` is the driver's verdict on the block body against the application state."""

    proposal: SignedProposal
    block_valid: bool
    now_ms: int = 0


@dataclass(frozen=True, slots=True)
class ProposeBlockReady:
    """The driver built the block requested by ``RequestBlock(height, round)``."""

    height: int
    round: int
    block_hash: bytes
    now_ms: int = 0


@dataclass(frozen=True, slots=True)
class VoteReceived:
    vote: SignedVote
    now_ms: int = 0


@dataclass(frozen=True, slots=True)
class TimeoutElapsed:
    height: int
    round: int
    step: int  # STEP_PROPOSE, STEP_PREVOTE or STEP_PRECOMMIT
    now_ms: int = 0


Event = Union[NewHeight, ProposalReceived, ProposeBlockReady, VoteReceived, TimeoutElapsed]


# ---- effects (machine -> driver) ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RequestBlock:
    """Build a block for (height, round) and answer with ``ProposeBlockReady``."""

    height: int
    round: int


@dataclass(frozen=True, slots=True)
class SignAndBroadcastProposal:
    """Check the last-signed guard, sign, broadcast with the block body, feed back as ProposalReceived."""

    proposal: Proposal


@dataclass(frozen=True, slots=True)
class SignAndBroadcastVote:
    """Check the last-signed guard, sign, broadcast, feed back as VoteReceived."""

    vote: Vote


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Feed ``TimeoutElapsed(height, round, step)`` after ``duration_ms``."""

    height: int
    round: int
    step: int
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Decide:
    """``block_hash`` is decided at ``height`` with the (quorum) ``commit`` of ``round``."""

    height: int
    round: int
    block_hash: bytes
    commit: Commit


@dataclass(frozen=True, slots=True)
class EvidenceFound:
    evidence: DuplicateVoteEvidence


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """The last event held a message that cannot count (bad signature, wrong proposer, ...)."""

    reason: str


Effect = Union[
    RequestBlock,
    SignAndBroadcastProposal,
    SignAndBroadcastVote,
    ScheduleTimeout,
    Decide,
    EvidenceFound,
    MessageRejected,
]
