"""The round state of the consensus machine, its configuration, and read-only queries on it.

``MachineState`` is treated as immutable: ``consensus.machine.step`` clones it (containers one level
deep, inner vote sets and per-round dicts copy-on-write) and returns the clone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from consensus.events import STEP_NONE, STEP_PROPOSE, Decide
from consensus.params import ConsensusParams
from state.staking.validator_set import ValidatorSet
from consensus.votes import VoteSet
from state.block import Commit, SignedProposal
from state.crypto import verify as ed25519_verify

__all__ = [
    "MachineConfig",
    "MachineState",
    "current_commit",
    "initial_state",
    "is_validator",
    "proposer_of",
    "reset_height",
]

Verifier = Callable[[bytes, bytes, bytes], bool]


@dataclass(frozen=True)
class MachineConfig:
    chain_id: str
    address: bytes  # this node's validator address; b"" for a node that never signs
    params: ConsensusParams = field(default_factory=ConsensusParams)
    verify: Verifier = ed25519_verify  # a caching verifier may be passed; results must be identical


class MachineState:
    """The round state of one node. Treat as immutable: ``step`` returns a new one."""

    __slots__ = (
        "config",
        "height",
        "round",
        "step",
        "validators",
        "now_ms",
        "locked_value",
        "locked_round",
        "valid_value",
        "valid_round",
        "proposals",
        "block_valid",
        "prevotes",
        "precommits",
        "senders",
        "proposers",
        "fired",
        "awaiting_block",
        "decision",
        "evidence_seen",
    )

    config: MachineConfig
    height: int
    round: int
    step: int
    validators: ValidatorSet | None
    now_ms: int
    locked_value: bytes | None
    locked_round: int
    valid_value: bytes | None
    valid_round: int
    proposals: dict[int, dict[bytes, SignedProposal]]
    block_valid: dict[bytes, bool]
    prevotes: dict[int, VoteSet]
    precommits: dict[int, VoteSet]
    senders: dict[int, tuple[frozenset[bytes], int]]
    proposers: dict[int, bytes]
    fired: frozenset[tuple[int, int]]
    awaiting_block: int
    decision: Decide | None
    evidence_seen: frozenset[bytes]

    def _clone(self) -> "MachineState":
        s = object.__new__(MachineState)
        s.config = self.config
        s.height = self.height
        s.round = self.round
        s.step = self.step
        s.validators = self.validators
        s.now_ms = self.now_ms
        s.locked_value = self.locked_value
        s.locked_round = self.locked_round
        s.valid_value = self.valid_value
        s.valid_round = self.valid_round
        # Containers are copied one level deep; inner VoteSets and per-round dicts are replaced
        # (copy-on-write), never mutated, so older states stay intact.
        s.proposals = dict(self.proposals)
        s.block_valid = dict(self.block_valid)
        s.prevotes = dict(self.prevotes)
        s.precommits = dict(self.precommits)
        s.senders = dict(self.senders)
        s.proposers = dict(self.proposers)
        s.fired = self.fired
        s.awaiting_block = self.awaiting_block
        s.decision = self.decision
        s.evidence_seen = self.evidence_seen
        return s

    def __repr__(self) -> str:
        return f"MachineState(height={self.height}, round={self.round}, step={self.step})"


def initial_state(config: MachineConfig) -> MachineState:
    """The state before the first ``NewHeight``."""
    s = object.__new__(MachineState)
    s.config = config
    s.validators = None
    s.height = 0
    s.now_ms = 0
    reset_height(s)
    s.step = STEP_NONE
    return s


def reset_height(s: MachineState) -> None:
    """Clear everything that belongs to one height (lines 2-8: locks, valid value, message log)."""
    s.round = 0
    s.step = STEP_PROPOSE
    s.locked_value = None
    s.locked_round = -1
    s.valid_value = None
    s.valid_round = -1
    s.proposals = {}
    s.block_valid = {}
    s.prevotes = {}
    s.precommits = {}
    s.senders = {}
    s.proposers = {}
    s.fired = frozenset()
    s.awaiting_block = -1
    s.decision = None
    s.evidence_seen = frozenset()


# ---- public queries ------------------------------------------------------------------------------
def is_validator(state: MachineState) -> bool:
    """This node signs at the current height."""
    return bool(state.config.address) and state.validators is not None and state.validators.has_address(
        state.config.address
    )


def proposer_of(state: MachineState, round_: int) -> bytes:
    """proposer(h, r): the current height's set incremented ``r`` times (r = 0: as given)."""
    cached = state.proposers.get(round_)
    if cached is not None:
        return cached
    assert state.validators is not None, "no height started"
    if round_ == 0:
        return state.validators.get_proposer().address
    return state.validators.proposer_after(round_).address


def current_commit(state: MachineState) -> Commit | None:
    """After a decision, the commit with every precommit for the block received so far.

    The driver calls this when its commit wait ends, so the next block's ``last_commit`` carries
    late precommits too (they feed BFT time and liveness accounting).
    """
    if state.decision is None:
        return None
    return state.precommits[state.decision.round].make_commit()
