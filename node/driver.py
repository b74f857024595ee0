"""The trio consensus driver: turns the pure machine's effects into timers, gossip, signing and
block commits, and network messages into the machine's events.

One task owns the machine (`_run_machine`): every event goes through the inbox channel, so the
machine is stepped strictly in order. Timers and network receivers only send events into it.
Before any vote or proposal leaves the node, the signer guard has fsynced the last signed
(height, round, step); the WAL records the inputs of the height in progress so a restarted
validator returns to the same locks.
"""

from __future__ import annotations

import dataclasses

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from consensus.bft_time import next_block_time
from consensus.events import (
    Decide,
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
from consensus.evidence import InvalidEvidence, verify_duplicate_vote_evidence
from consensus.machine import MachineConfig, current_commit, initial_state, step
from consensus.params import ConsensusParams
from consensus.replay import replay_wal
from consensus.wal import ConsensusWAL, WALCorrupt, WALEntry
from node.executor import validate_and_execute, validator_set_at
from state.governance.upgrade import pending_upgrade_at, upgrade_message
from state import keys
from state.block import (
    EMPTY_COMMIT,
    Block,
    Commit,
    DuplicateVoteEvidence,
    SignedProposal,
    SignedVote,
    Vote,
    decode_block,
)
from state.chain import Executed
from state.codec import CodecError, decode, pack, unpack
from state.crypto import sha256
from state.errors import InvalidBlock

if TYPE_CHECKING:
    from node.app import Node

log = logging.getLogger(__name__)

MAX_FUTURE_MESSAGES = 10_000
# Gossip is fire-and-forget and Tendermint waits for messages, not time, in some steps (2/3 of
# prevotes before the prevote timeout even starts): a message lost to a partition or a full queue
# would stall the height forever. So a height that takes this long re-sends this node's own votes
# of the height, like CometBFT's vote gossip routine does for its peers. (A lost proposal only
# costs a round: the propose timeout moves everyone on, and a later proposer re-sends the block.)
REBROADCAST_S = 2.0
MAX_REBROADCAST = 16
MAX_PROPOSAL_GOSSIP_BYTES = 880_000  # py-libp2p drops pubsub messages of 1 MiB or more


@dataclass
class Candidate:
    """A block seen at the current height: its bytes and, once validated, its execution."""

    block: Block
    raw: bytes
    executed: Executed | None
    valid: bool


@dataclass(frozen=True)
class _CommitWaitOver:
    height: int


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def consensus_params(node: "Node") -> ConsensusParams:
    t = node.chain.params().timeouts
    return ConsensusParams(
        timeout_propose_ms=t.propose_ms,
        timeout_propose_delta_ms=t.propose_delta_ms,
        timeout_prevote_ms=t.prevote_ms,
        timeout_prevote_delta_ms=t.prevote_delta_ms,
        timeout_precommit_ms=t.precommit_ms,
        timeout_precommit_delta_ms=t.precommit_delta_ms,
        timeout_commit_ms=t.commit_ms,
    )


class ConsensusDriver:
    def __init__(self, node: "Node") -> None:
        self.node = node
        self.chain = node.chain
        self.key = node.validator_key
        self.address = self.key.address if self.key else b""
        self.params = consensus_params(node)
        self.state = initial_state(MachineConfig(self.chain.chain_id, self.address, self.params))
        self.inbox_send, self.inbox = trio.open_memory_channel[Any](4096)
        self.candidates: dict[bytes, Candidate] = {}
        self.future: deque[tuple[int, Any]] = deque()
        self.evidence_pool: dict[bytes, DuplicateVoteEvidence] = {}
        self.last_commit: Commit | None = None
        self.nursery: trio.Nursery | None = None
        self.height_started = time.monotonic()
        self.paused = False
        self.wal = ConsensusWAL(node.home.wal_file)
        # this node's signed votes at the current height, re-sent while the height is stuck
        # (votes lost to a partition or a restart are otherwise never seen again)
        self.own_height = 0
        self.own_votes: list[bytes] = []  # this node's signed votes of own_height

    # ---- public -------------------------------------------------------------------------
    @property
    def height(self) -> int:
        return self.state.height

    def info(self) -> dict[str, Any]:
        return {"height": self.state.height, "round": self.state.round, "step": self.state.step}

    def post(self, event: Any) -> None:
        """Queue an event for the machine task; drops (with a warning) only if the inbox is full."""
        try:
            self.inbox_send.send_nowait(event)
        except trio.WouldBlock:
            log.warning("consensus inbox full; dropping %s", type(event).__name__)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            if not self._recover_from_wal():
                self._start_height()
            nursery.start_soon(self._rebroadcast_loop)
            task_status.started()
            async for event in self.inbox:
                if isinstance(event, _CommitWaitOver):
                    if event.height == self.state.height and not self.paused:
                        self._finish_height()
                    continue
                if self.paused:
                    continue
                self._feed(event)

    def restart_after_sync(self) -> None:
        """Called after block sync moved the chain forward: start the next height afresh."""
        self.paused = False
        self.last_commit = None
        self._start_height()

    # ---- network input ------------------------------------------------------------------
    def on_proposal_message(self, data: bytes) -> None:
        try:
            wire = unpack(data)
            if not (isinstance(wire, list) and len(wire) == 2 and type(wire[1]) is bytes):
                raise CodecError("expected [signed proposal, block]")
            sp = SignedProposal.from_wire(wire[0])  # type: ignore[attr-defined]
        except CodecError as exc:
            log.debug("dropping malformed proposal: %s", exc)
            return
        h = sp.proposal.height
        if h > self.state.height:
            self._buffer(h, ("proposal", data))
            return
        if h < self.state.height:
            return
        self._handle_proposal(sp, wire[1])

    def on_vote_message(self, data: bytes) -> None:
        try:
            sv = decode(SignedVote, data)
        except CodecError as exc:
            log.debug("dropping malformed vote: %s", exc)
            return
        h = sv.vote.height
        if h > self.state.height:
            self._buffer(h, ("vote", data))
        elif h == self.state.height:
            self.post(VoteReceived(sv, now_ms()))

    def on_evidence_message(self, data: bytes) -> None:
        try:
            ev = decode(DuplicateVoteEvidence, data)
        except CodecError as exc:
            log.debug("dropping malformed evidence: %s", exc)
            return
        self._add_evidence(ev, gossip=False)

    # ---- machine --------------------------------------------------------------------------
    def _feed(self, event: Any) -> None:
        """Log the event (fsynced when it is this node's own message), then step the machine."""
        attachment = b""
        own = False
        if isinstance(event, ProposalReceived):
            cand = self.candidates.get(event.proposal.proposal.block_hash)
            attachment = cand.raw if cand else b""
            own = event.proposal.proposal.proposer == self.address
        elif isinstance(event, ProposeBlockReady):
            cand = self.candidates.get(event.block_hash)
            attachment = cand.raw if cand else b""
            own = True
        elif isinstance(event, VoteReceived):
            own = event.vote.vote.validator == self.address
        if isinstance(event, NewHeight):
            self.wal.start_height(WALEntry(event))
        else:
            self.wal.append(WALEntry(event, attachment), sync=own)
        before = (self.state.height, self.state.round)
        self.state, effects = step(self.state, event)
        if (self.state.height, self.state.round) != before:
            self.node.metrics.set_round(self.state.round)
            if self.state.round > 0:
                log.info("height %d: round %d", self.state.height, self.state.round)
        for eff in effects:
            self._effect(eff)

    def _recover_from_wal(self) -> bool:
        """Resume the height in progress from the WAL; False when there is nothing to resume."""
        replay = self.wal.recovered
        if replay.height != self.chain.height + 1 or not replay.entries:
            return False
        for entry in replay.entries:
            if entry.attachment:
                self._remember_block(entry.attachment)
        try:
            result = replay_wal(self.state.config, replay.entries)
        except (WALCorrupt, ValueError) as exc:
            log.error("cannot replay the consensus WAL (%s); starting the height afresh", exc)
            return False
        self.state = result.state
        log.info("resumed height %d round %d from the WAL (%d entries)", self.state.height,
                 self.state.round, len(replay.entries))
        self.height_started = time.monotonic()
        for entry in result.own_messages:
            ev = entry.event
            if isinstance(ev, VoteReceived):
                self._gossip_own_vote(ev.vote.encode())  # type: ignore[attr-defined]
            elif isinstance(ev, ProposalReceived) and entry.attachment:
                self.node.gossip("proposals", pack([ev.proposal.to_wire(), entry.attachment]))  # type: ignore[attr-defined]
        for eff in result.pending:
            self._effect(eff)
        self._replay_future(self.state.height)  # what arrived during the initial block sync
        return True

    def _remember_block(self, raw: bytes) -> Candidate | None:
        try:
            block = decode_block(raw)
        except CodecError:
            return None
        h = block.hash()
        if h in self.candidates:
            return self.candidates[h]
        try:
            cand = Candidate(block, raw, validate_and_execute(self.chain, block, len(raw)), True)
        except InvalidBlock:
            cand = Candidate(block, raw, None, False)
        self.candidates[h] = cand
        return cand

    def _effect(self, eff: Any) -> None:
        if isinstance(eff, ScheduleTimeout):
            assert self.nursery is not None
            self.nursery.start_soon(self._timer, eff)
        elif isinstance(eff, RequestBlock):
            self._build_proposal_block(eff)
        elif isinstance(eff, SignAndBroadcastProposal):
            self._sign_proposal(eff)
        elif isinstance(eff, SignAndBroadcastVote):
            self._sign_vote(eff.vote)
        elif isinstance(eff, Decide):
            self._decide(eff)
        elif isinstance(eff, EvidenceFound):
            self._add_evidence(eff.evidence, gossip=True)
        elif isinstance(eff, MessageRejected):
            log.debug("consensus rejected a message: %s", eff.reason)

    async def _timer(self, eff: ScheduleTimeout) -> None:
        await trio.sleep(eff.duration_ms / 1000)
        self.post(TimeoutElapsed(eff.height, eff.round, eff.step, now_ms()))

    def _start_height(self) -> None:
        height = self.chain.height + 1
        if height <= self.state.height:
            return
        if self.chain.upgrades is not None:  # a software upgrade this node lacks: stop before the block
            plan = pending_upgrade_at(self.chain.db.view(), height, self.chain.upgrades)
            if plan is not None:
                self.node.halt(upgrade_message(plan, self.chain.upgrades))
                return
        params = consensus_params(self.node)  # governance may have changed the timeouts
        if params != self.params:
            log.info("consensus timeouts changed by governance from height %d", height)
            self.params = params
            self.state.config = dataclasses.replace(self.state.config, params=params)
        valset = validator_set_at(self.chain.db.view(), height)
        self.candidates.clear()
        self.height_started = time.monotonic()
        self._feed(NewHeight(height, valset, now_ms()))
        self.node.metrics_height(self.chain.height)
        self._replay_future(height)

    def _replay_future(self, height: int) -> None:
        """Feed the buffered messages of ``height`` to the machine; keep later ones."""
        keep: deque[tuple[int, Any]] = deque()
        replay = []
        for h, msg in self.future:
            if h == height:
                replay.append(msg)
            elif h > height:
                keep.append((h, msg))
        self.future = keep
        for kind, data in replay:
            if kind == "vote":
                self.on_vote_message(data)
            else:
                self.on_proposal_message(data)

    def _buffer(self, height: int, msg: tuple[str, bytes]) -> None:
        # Measured from the height consensus will start at: before the driver runs (initial sync
        # after a restart) state.height is still 0, and a vote for chain.height + 1 dropped here
        # is lost for good (the p2p layer drops re-sent copies as duplicates): two validators
        # restarted together then waited for each other's first votes forever.
        if height > max(self.state.height, self.chain.height + 1) + 2:
            self.node.request_sync()  # far ahead: we are behind
            return
        if len(self.future) >= MAX_FUTURE_MESSAGES:
            self.future.popleft()
        self.future.append((height, msg))

    # ---- proposals and blocks ----------------------------------------------------------
    def _last_commit_for(self, height: int) -> Commit:
        if height == 1:
            return EMPTY_COMMIT
        if self.last_commit is not None and self.last_commit.height == height - 1:
            return self.last_commit
        commit = self.chain.get_commit(height - 1)
        if commit is None:
            raise RuntimeError(f"no commit known for height {height - 1}")
        return commit

    def _build_proposal_block(self, eff: RequestBlock) -> None:
        height = eff.height
        view = self.chain.db.view()
        last_commit = self._last_commit_for(height)
        prev = self.chain.get_header(height - 1)
        if prev is None:
            time_ms = max(self.chain.genesis_time_ms + 1, now_ms())
        else:
            time_ms = next_block_time(prev.time_ms, last_commit, validator_set_at(view, height - 1))
        limit = min(self.node.config.consensus.max_block_txs, self.chain.params().fees.max_block_txs)
        txs = tuple(self.node.mempool.pending(limit, max_bytes=MAX_PROPOSAL_GOSSIP_BYTES - 64_000))
        evidence = tuple(sorted(
            (ev for ev in self.evidence_pool.values()
             if view.get(keys.evidence_seen_key(ev.hash())) is None),
            key=lambda ev: ev.hash(),
        ))[:16]
        executed = self.chain.build_block(
            txs,
            time_ms,
            self.address,
            last_commit=last_commit,
            validators_hash=validator_set_at(view, height).hash(),
            next_validators_hash=validator_set_at(view, height + 1).hash(),
            evidence=evidence,
            txs_verified=self.node.mempool.verified_hashes(),
        )
        assert executed.block is not None
        raw = executed.block.encode()  # type: ignore[attr-defined]
        block_hash = executed.block.hash()
        self.candidates[block_hash] = Candidate(executed.block, raw, executed, True)
        self.post(ProposeBlockReady(height, eff.round, block_hash, now_ms()))

    def _sign_proposal(self, eff: SignAndBroadcastProposal) -> None:
        cand = self.candidates.get(eff.proposal.block_hash)
        if cand is None or self.key is None:
            log.error("asked to propose a block this node does not hold")
            return
        sp = self.node.signer.sign_proposal(eff.proposal)
        if sp is None:
            return
        data = pack([sp.to_wire(), cand.raw])  # type: ignore[attr-defined]
        self.node.gossip("proposals", data)
        self.post(ProposalReceived(sp, True, now_ms()))

    def _handle_proposal(self, sp: SignedProposal, raw: bytes) -> None:
        p = sp.proposal
        cand = self.candidates.get(p.block_hash)
        if cand is None:
            try:
                block = decode_block(raw)
            except CodecError as exc:
                log.info("proposal with an undecodable block: %s", exc)
                return
            if block.hash() != p.block_hash:
                log.info("proposal's block does not match its hash")
                return
            # A re-proposal of the valid value (pol_round >= 0) carries the block built by the
            # proposer of an earlier round; refusing it left nodes that missed that round unable
            # to ever prevote for it, and the height went round after round without a decision.
            if block.header.proposer != p.proposer and p.pol_round < 0:
                log.info("proposal's block names another proposer")
                return
            try:
                executed = validate_and_execute(self.chain, block, len(raw), self.node.mempool.verified_hashes())
                cand = Candidate(block, raw, executed, True)
            except InvalidBlock as exc:
                log.warning("invalid block proposed at height %d: %s", p.height, exc)
                cand = Candidate(block, raw, None, False)
            self.candidates[p.block_hash] = cand
        self.post(ProposalReceived(sp, cand.valid, now_ms()))

    # ---- votes --------------------------------------------------------------------------
    def _sign_vote(self, vote: Vote) -> None:
        sv = self.node.signer.sign_vote(vote)
        if sv is None:
            return
        self._gossip_own_vote(sv.encode())  # type: ignore[attr-defined]
        self.post(VoteReceived(sv, now_ms()))
        if self.node.config.faults.double_sign and vote.block_hash:
            self._double_sign(vote)

    def _gossip_own_vote(self, data: bytes) -> None:
        """Gossip a vote this node signed for the current height, and keep it for rebroadcast."""
        if self.own_height != self.state.height:
            self.own_height = self.state.height
            self.own_votes = []
        self.own_votes.append(data)
        self.node.gossip("votes", data)

    async def _rebroadcast_loop(self) -> None:
        """Re-send this node's own votes of a height that has taken over REBROADCAST_S."""
        while True:
            await trio.sleep(REBROADCAST_S)
            stalled = time.monotonic() - self.height_started >= REBROADCAST_S
            if self.paused or not stalled or self.own_height != self.state.height:
                continue
            for data in self.own_votes[-MAX_REBROADCAST:]:
                self.node.gossip("votes", data)

    def _double_sign(self, vote: Vote) -> None:
        """Devnet fault: sign a conflicting vote too, bypassing the guard (never on a real net)."""
        assert self.key is not None
        other = Vote(vote.type, vote.height, vote.round, sha256(b"conflict" + vote.block_hash),
                     vote.time_ms, vote.validator)
        sv = SignedVote(other, self.key.sign(other.sign_bytes(self.chain.chain_id)))
        log.warning("FAULT: double-signing at height %d round %d", vote.height, vote.round)
        self.node.gossip("votes", sv.encode())  # type: ignore[attr-defined]

    # ---- evidence -----------------------------------------------------------------------
    def _add_evidence(self, ev: DuplicateVoteEvidence, gossip: bool) -> None:
        h = ev.hash()
        if h in self.evidence_pool:
            return
        view = self.chain.db.view()
        if view.get(keys.evidence_seen_key(h)) is not None:
            return
        height = ev.vote_a.vote.height
        if height > self.chain.height + 1:
            return
        try:
            verify_duplicate_vote_evidence(self.chain.chain_id, validator_set_at(view, height), ev)
        except (InvalidEvidence, InvalidBlock) as exc:
            log.info("dropping invalid evidence: %s", exc)
            return
        log.warning("double-sign evidence against %s at height %d", ev.vote_a.vote.validator.hex(), height)
        self.evidence_pool[h] = ev
        if gossip:
            self.node.gossip("evidence", ev.encode())  # type: ignore[attr-defined]

    # ---- decisions ----------------------------------------------------------------------
    def _decide(self, eff: Decide) -> None:
        cand = self.candidates.get(eff.block_hash)
        if cand is None or cand.executed is None:
            log.error("decided block %s at height %d is not held; syncing", eff.block_hash.hex()[:12], eff.height)
            self.paused = True
            self.node.request_sync()
            return
        started = time.monotonic()
        self.node.commit_block(cand.block, cand.executed, eff.commit, cand.raw)
        self.node.metrics_block(time.monotonic() - started, len(cand.block.txs), eff.round)
        for h in list(self.evidence_pool):
            if self.chain.db.raw.get(keys.evidence_seen_key(h)) is not None:
                del self.evidence_pool[h]
        assert self.nursery is not None
        self.nursery.start_soon(self._commit_wait, eff.height)

    async def _commit_wait(self, height: int) -> None:
        await trio.sleep(self.params.timeout_commit_ms / 1000)
        self.post(_CommitWaitOver(height))

    def _finish_height(self) -> None:
        self.last_commit = current_commit(self.state)
        self._start_height()
