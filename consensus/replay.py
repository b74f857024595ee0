"""Rebuilding the machine from the WAL after a restart.

Replaying feeds every logged event through a fresh machine. Effects whose result is already in the
log are dropped (a signing request followed by the node's own signed message, a block request
followed by ``ProposeBlockReady``, a timeout followed by its ``TimeoutElapsed``); the rest are
returned for the driver to carry out now, in order. Signing requests among them go through the
last-signed guard as usual: identical bytes get the stored signature back, conflicting ones are
refused.

A ``Decide`` in the result means the height was decided before the crash; the driver applies the
block unless its block store already holds that height, then starts the next height.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from consensus.events import (
    Effect,
    MessageRejected,
    ProposalReceived,
    ProposeBlockReady,
    RequestBlock,
    ScheduleTimeout,
    SignAndBroadcastProposal,
    SignAndBroadcastVote,
    TimeoutElapsed,
    VoteReceived,
)
from consensus.machine import MachineConfig, MachineState, initial_state, step
from consensus.wal import WALEntry


@dataclass
class ReplayResult:
    state: MachineState
    pending: list[Effect] = field(default_factory=list)
    own_messages: list[WALEntry] = field(default_factory=list)  # to re-broadcast


def replay_wal(config: MachineConfig, entries: Sequence[WALEntry]) -> ReplayResult:
    """The machine state after ``entries`` and the effects still to be carried out."""
    state = initial_state(config)
    pending: list[Effect] = []
    own: list[WALEntry] = []
    me = config.address
    for entry in entries:
        ev = entry.event
        if isinstance(ev, VoteReceived) and me and ev.vote.vote.validator == me:
            v = ev.vote.vote
            _drop_first(pending, lambda e: isinstance(e, SignAndBroadcastVote) and _same_vote_slot(e, v.type, v.height, v.round))
            own.append(entry)
        elif isinstance(ev, ProposalReceived) and me and ev.proposal.proposal.proposer == me:
            p = ev.proposal.proposal
            _drop_first(
                pending,
                lambda e: isinstance(e, SignAndBroadcastProposal) and (e.proposal.height, e.proposal.round) == (p.height, p.round),
            )
            own.append(entry)
        elif isinstance(ev, ProposeBlockReady):
            _drop_first(pending, lambda e: isinstance(e, RequestBlock) and (e.height, e.round) == (ev.height, ev.round))
        elif isinstance(ev, TimeoutElapsed):
            _drop_first(
                pending,
                lambda e: isinstance(e, ScheduleTimeout) and (e.height, e.round, e.step) == (ev.height, ev.round, ev.step),
            )
        state, effects = step(state, ev)
        pending.extend(e for e in effects if not isinstance(e, MessageRejected))
    return ReplayResult(state, pending, own)


def _same_vote_slot(e: SignAndBroadcastVote, vote_type: int, height: int, round_: int) -> bool:
    return (e.vote.type, e.vote.height, e.vote.round) == (vote_type, height, round_)


def _drop_first(pending: list[Effect], match: Callable[[Effect], bool]) -> None:
    for i, e in enumerate(pending):
        if match(e):
            del pending[i]
            return
