"""Consensus timing parameters: per-step timeouts that grow linearly with the round.

``timeout_<step>(round) = timeout_<step>_ms + round * timeout_<step>_delta_ms``. Growing timeouts
are what make Tendermint live after GST: eventually a round's timeouts exceed the message delay.
``timeout_commit_ms`` is used by the driver, not the machine: after a decision it waits this long
(collecting late precommits for a fuller commit) before starting the next height.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

STEP_PROPOSE = 1
STEP_PREVOTE = 2
STEP_PRECOMMIT = 3


@dataclass(frozen=True)
class ConsensusParams:
    timeout_propose_ms: int = 3000
    timeout_propose_delta_ms: int = 500
    timeout_prevote_ms: int = 1000
    timeout_prevote_delta_ms: int = 500
    timeout_precommit_ms: int = 1000
    timeout_precommit_delta_ms: int = 500
    timeout_commit_ms: int = 1000
    # Messages for rounds further ahead than this are rejected, bounding what one byzantine
    # validator can make a node store; honest nodes' rounds stay close because rounds only advance
    # with a quorum of messages (or f+1 messages from a higher round).
    max_round_lookahead: int = 100

    def __post_init__(self) -> None:
        for fd in fields(self):
            value = getattr(self, fd.name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{fd.name} must be a non-negative integer")
        if self.max_round_lookahead < 1:
            raise ValueError("max_round_lookahead must be at least 1")

    def timeout_propose(self, round_: int) -> int:
        return self.timeout_propose_ms + round_ * self.timeout_propose_delta_ms

    def timeout_prevote(self, round_: int) -> int:
        return self.timeout_prevote_ms + round_ * self.timeout_prevote_delta_ms

    def timeout_precommit(self, round_: int) -> int:
        return self.timeout_precommit_ms + round_ * self.timeout_precommit_delta_ms

    def timeout_for(self, step: int, round_: int) -> int:
        if step == STEP_PROPOSE:
            return self.timeout_propose(round_)
        if step == STEP_PREVOTE:
            return self.timeout_prevote(round_)
        if step == STEP_PRECOMMIT:
            return self.timeout_precommit(round_)
        raise ValueError(f"no timeout for step {step}")

