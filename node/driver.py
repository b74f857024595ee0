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
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from consensus.bft_time import next_block_time
from consensus.events import (
    STEP_COMMIT,
    STEP_PRECOMMIT,
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
from consensus.machine import MAX_PROPOSALS_PER_ROUND, MachineConfig, current_commit, initial_state, step
from consensus.params import ConsensusParams
from consensus.votes import MAX_VALUES_PER_VALIDATOR
from consensus.replay import ReplayResult
from consensus.wal import ConsensusWAL, WALCorrupt, WALEntry
from node.consensus_inbox import DriverInbox, FutureBuffer, RawMessage
from node.evidence_pool import Admission, EvidencePool
from node.executor import validate_and_execute, validator_set_at
from node.integrity import check_signed_height, replay_height_in_progress, wal_damaged
from p2p.scoring import Offence
from state.governance.upgrade import pending_upgrade_at, upgrade_message
from state import keys
from state.block import (
    EMPTY_COMMIT,
    MAX_BLOCK_BYTES,
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
from state.crypto import verify as ed25519_verify
from state.errors import InvalidBlock
from state.staking.validator_set import ValidatorSet

if TYPE_CHECKING:
    from node.app import Node

log = logging.getLogger(__name__)

# How far ahead of the height consensus is at (or will start at) messages are kept; beyond it the
# node is behind and asks block sync instead.
FUTURE_HEIGHTS = 2
# Gossip is fire-and-forget and Tendermint waits for messages, not time, in some steps (2/3 of
# prevotes before the prevote timeout even starts): a message lost to a partition or a full queue
# would stall the height forever. So a height that takes this long re-sends this node's own votes
# of the height, like CometBFT's vote gossip routine does for its peers. (A lost proposal only
# costs a round: the propose timeout moves everyone on, and a later proposer re-sends the block.)
REBROADCAST_S = 2.0
MAX_REBROADCAST = 16
MAX_PROPOSAL_GOSSIP_BYTES = 880_000  # py-libp2p drops pubsub messages of 1 MiB or more
MAX_INLINE_BYTES = MAX_PROPOSAL_GOSSIP_BYTES - 64_000  # a block carried in its proposal, whatever the config
# A proposal whose block is larger than [consensus] proposal_inline_bytes is gossiped without its
# body (``[signed proposal, b""]``); peers fetch the body by hash from the sender by
# request/response (docs/p2p.md "Proposal blocks"). At most this many fetches run at once, each
# tries at most FETCH_PEERS peers, each for at most FETCH_TIMEOUT_S.
MAX_FETCHES = 4
FETCH_PEERS = 3
FETCH_TIMEOUT_S = 5.0

# A proposer's block holds at most BLOCK_GROWTH times the transactions of the last block this node
# committed (at least BLOCK_GROWTH_FLOOR): every validator executes a proposal before it prevotes,
# and a burst of backlog (each node's pool fills before the chain's commit rate is known) made one
# block of thousands of transactions that the validators of a CPU-starved 16-validator devnet could
# not execute within the round's timeouts; each failed round's proposal was larger still.
# Local proposer policy, not a validity rule (the genesis fees.max_block_txs is the rule).
BLOCK_GROWTH = 2
BLOCK_GROWTH_FLOOR = 500
FILL_POLL_S = 0.02  # how often the fill wait (consensus.fill_wait_ms) looks at the pool


def block_growth_limit(commit_log: Sequence[tuple[float, int, int]]) -> int:
    """Most transactions to propose: BLOCK_GROWTH x the last committed block's, at least the floor."""
    last = commit_log[-1][1] if commit_log else 0
    return max(BLOCK_GROWTH_FLOOR, BLOCK_GROWTH * last)


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


class VerifiedCache:
    """Ed25519 verification with a bounded memory of successes: the driver verifies a peer's
    message before queueing it, and the machine (and WAL replay) verifies it again for free."""

    def __init__(self, capacity: int = 16_384) -> None:
        self.capacity = capacity
        self._ok: OrderedDict[bytes, None] = OrderedDict()  # oldest first (mempool._committed says why)

    def __call__(self, public_key: bytes, signature: bytes, message: bytes) -> bool:
        key = sha256(public_key + signature + message)
        if key in self._ok:
            return True
        if not ed25519_verify(public_key, signature, message):
            return False
        if len(self._ok) >= self.capacity:
            self._ok.popitem(last=False)
        self._ok[key] = None
        return True


class ConsensusDriver:
    def __init__(self, node: "Node") -> None:
        self.node = node
        self.chain = node.chain
        self.key = node.validator_key
        self.address = self.key.address if self.key else b""
        self.params = consensus_params(node)
        self.verify = node.verified  # shared with the topic validators (node/gossip_auth.py)
        self.state = initial_state(MachineConfig(self.chain.chain_id, self.address, self.params, self.verify))
        cfg = node.config.consensus
        self.inbox = DriverInbox(cfg.peer_queue_events)
        self.future = FutureBuffer(cfg.future_buffer_bytes, cfg.future_buffer_peer_bytes)
        self.candidate_bytes = cfg.candidate_bytes
        self.candidates: dict[bytes, Candidate] = {}
        self.evidence = EvidencePool(self.chain)
        self.last_commit: Commit | None = None
        self.nursery: trio.Nursery | None = None
        self.height_started = time.monotonic()
        self.paused = False
        try:
            self.wal = ConsensusWAL(node.home.wal_file)
        except WALCorrupt as exc:
            raise wal_damaged(node.home.wal_file, exc) from exc
        check_signed_height(self.chain, node.signer.last_height, node.home.signer_state_file, node.home.db_dir)
        self._valsets: dict[int, ValidatorSet | None] = {}  # stored sets of future heights, per height
        self._fetching: set[bytes] = set()  # proposal blocks being fetched by request/response
        self._proposers: dict[tuple[int, int], bytes] = {}  # (height, round) -> proposer address
        # of the height in progress: block hashes voted per (round, type, validator), and blocks
        # taken for decoding/execution per round (both bounded like the machine's own sets)
        self._vote_hashes: dict[tuple[int, int, bytes], tuple[bytes, ...]] = {}
        self._round_blocks: dict[int, set[bytes]] = {}
        # this node's signed votes at the current height, re-sent while the height is stuck
        # (votes lost to a partition or a restart are otherwise never seen again)
        self.own_height = 0
        self.own_votes: list[bytes] = []  # this node's signed votes of own_height
        self.recovery = self._plan_recovery()

    # ---- public -------------------------------------------------------------------------
    @property
    def height(self) -> int:
        return self.state.height

    @property
    def evidence_pool(self) -> dict[bytes, DuplicateVoteEvidence]:
        return self.evidence.pool

    def info(self) -> dict[str, Any]:
        return {"height": self.state.height, "round": self.state.round, "step": self.state.step}

    def post(self, event: Any) -> None:
        """Queue one of this node's own events (timeouts, own messages, built blocks): never dropped."""
        self.inbox.post_internal(event)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            # (the initial block sync may have moved the chain past the logged height meanwhile)
            if self.recovery is not None and self.recovery.state.height == self.chain.height + 1:
                self._resume(self.recovery)
            else:
                self._start_height()
            self.recovery = None
            nursery.start_soon(self._rebroadcast_loop)
            task_status.started()
            while True:
                source, item = await self.inbox.next()
                if source == "replay":
                    self._on_raw(item)
                elif isinstance(item, _CommitWaitOver):
                    if item.height == self.state.height and not self.paused:
                        self._finish_height()
                elif not self.paused:
                    self._feed(item)
                # one item per turn: peer readers, timers and RPC run between any two
                await trio.lowlevel.checkpoint()

    def restart_after_sync(self) -> None:
        """Called after block sync moved the chain forward: start the next height afresh."""
        self.paused = False
        self.last_commit = None
        self._start_height()
        self._replay_future(self.state.height)  # kept while paused, when the height did not change

    # ---- network input: authenticate first, then decode bodies / execute / store ---------
    def on_proposal_message(self, data: bytes, sender: str = "") -> None:
        self._on_raw(RawMessage("proposal", data, sender))

    def on_vote_message(self, data: bytes, sender: str = "") -> None:
        self._on_raw(RawMessage("vote", data, sender))

    def on_evidence_message(self, data: bytes, sender: str = "") -> None:
        try:
            ev = decode(DuplicateVoteEvidence, data)
        except CodecError as exc:
            self.node.metrics.drop("evidence", "malformed")
            self._report(sender, Offence.MALFORMED, f"evidence: {exc}")
            return
        self._add_evidence(ev, gossip=False, sender=sender)

    def _on_raw(self, msg: RawMessage) -> None:
        if msg.kind == "vote":
            self._on_vote(msg)
        else:
            self._on_proposal(msg)

    def _drop(self, kind: str, reason: str) -> None:
        """Count a peer message not passed on (attrchain_dropped_total, node/metrics.py DROP_SITES)."""
        self.node.metrics.drop(f"consensus_{kind}", reason)

    def _report(self, sender: str, offence: Offence, detail: str) -> None:
        if sender:
            self.node.report_peer(sender, offence, detail)

    def _placement(self, height: int) -> str:
        """Where a message of ``height`` goes: "old", "current", "future" or "far"."""
        # the height in progress first: in the commit wait the chain already holds it, and its late
        # precommits still make the next block's commit certificate fuller
        if height == self.state.height and not self.paused and self.state.validators is not None:
            return "current"
        base = max(self.state.height, self.chain.height + 1)
        if height < base:
            return "old"
        if height <= base + FUTURE_HEIGHTS:
            return "future"
        return "far"

    def _validators_of(self, height: int) -> ValidatorSet | None:
        """The validator set of ``height`` if known (the running height's, or a stored one)."""
        if height == self.state.height and self.state.validators is not None:
            return self.state.validators
        if height not in self._valsets:
            try:
                self._valsets[height] = validator_set_at(self.chain.db.view(), height)
            except InvalidBlock:
                return None  # not stored yet: such a message is buffered unauthenticated (bounded)
        return self._valsets[height]

    def _proposer_of(self, height: int, round_: int, valset: ValidatorSet) -> bytes:
        """proposer(height, round) from that height's set, remembered for the height in progress
        and the buffered ones (rounds are bounded by the lookahead before this is asked)."""
        key = (height, round_)
        found = self._proposers.get(key)
        if found is None:
            found = (valset.get_proposer() if round_ == 0 else valset.proposer_after(round_)).address
            self._proposers[key] = found
        return found

    def _defer(self, height: int, msg: RawMessage) -> None:
        if not self.future.add(height, msg):  # counted in future.dropped (pulled by the metrics)
            log.debug("future-height buffer: dropped a %s for height %d from %s", msg.kind, height, msg.sender[-8:])
            self._not_yet(msg)

    def _not_yet(self, msg: RawMessage) -> None:
        """A message dropped only because this node is not there yet (a later height or round, a
        full buffer): the gossip layer forgets it, so the signer's rebroadcast can bring it back.
        Kept as seen, every copy was refused as a duplicate: a validator fresh from block sync
        dropped the votes of the next height as too far ahead, never got them again, and with
        one more validator down the chain stalled for good (test_late_nodes_block_sync...)."""
        self.node.forget_gossip("votes" if msg.kind == "vote" else "proposals", msg.data)

    def _on_vote(self, msg: RawMessage) -> None:
        try:
            sv = self.node.decoded_votes.take(msg.data) or decode(SignedVote, msg.data)
        except CodecError as exc:
            self._drop("vote", "malformed")
            self._report(msg.sender, Offence.MALFORMED, f"vote: {exc}")
            return
        v = sv.vote
        place = self._placement(v.height)
        if place == "old":
            self._drop("vote", "old_height")
            return
        if place == "far":
            self._drop("vote", "far_height")
            self._not_yet(msg)
            self.node.request_sync()  # far ahead: we are behind
            return
        round_base = self.state.round if place == "current" else 0
        if v.round > round_base + self.params.max_round_lookahead:
            self._drop("vote", "round_ahead")
            self._not_yet(msg)
            return
        valset = self._validators_of(v.height)
        if valset is None:
            self._defer(v.height, msg)
            return
        val = valset.get_by_address(v.validator)
        if val is None:
            self._drop("vote", "not_validator")
            self._report(msg.sender, Offence.NOT_A_VALIDATOR, f"vote signed by {v.validator.hex()[:12]} at height {v.height}")
            return
        if place == "current":
            # Per (round, type, validator) the machine counts at most MAX_VALUES_PER_VALIDATOR block
            # hashes (enough to prove a double sign); the same hash again (a duplicate, or the same
            # choice re-signed with another time) counts for nothing. Both are dropped here, before
            # the signature check, so an equivocating validator cannot fill the queue or the WAL.
            slot = (v.round, v.type, v.validator)
            seen = self._vote_hashes.get(slot, ())
            if v.block_hash in seen or len(seen) >= MAX_VALUES_PER_VALIDATOR:
                self._drop("vote", "duplicate")
                return
        if not self.verify(val.public_key, sv.signature, v.sign_bytes(self.chain.chain_id)):
            self._drop("vote", "bad_signature")
            self._report(msg.sender, Offence.BAD_SIGNATURE, f"vote of {v.validator.hex()[:12]} at height {v.height}")
            return
        if place == "current":
            self._vote_hashes[slot] = (*seen, v.block_hash)
            self.inbox.post_peer(VoteReceived(sv, now_ms()))
        else:
            self._defer(v.height, msg)

    def _on_proposal(self, msg: RawMessage) -> None:
        try:
            wire = unpack(msg.data)
            if not (isinstance(wire, list) and len(wire) == 2 and type(wire[1]) is bytes):
                raise CodecError("expected [signed proposal, block]")
            sp = SignedProposal.from_wire(wire[0])  # type: ignore[attr-defined]
        except CodecError as exc:
            self._drop("proposal", "malformed")
            self._report(msg.sender, Offence.MALFORMED, f"proposal: {exc}")
            return
        p = sp.proposal
        raw: bytes = wire[1]
        if len(raw) > MAX_BLOCK_BYTES:
            self._drop("proposal", "oversized")
            self._report(msg.sender, Offence.OVERSIZED, f"proposal block of {len(raw)} bytes")
            return
        place = self._placement(p.height)
        if place == "old":
            self._drop("proposal", "old_height")
            return
        if place == "far":
            self._drop("proposal", "far_height")
            self._not_yet(msg)
            self.node.request_sync()
            return
        round_base = self.state.round if place == "current" else 0
        if p.round > round_base + self.params.max_round_lookahead or not -1 <= p.pol_round < p.round:
            self._drop("proposal", "round_ahead")
            self._not_yet(msg)
            return
        valset = self._validators_of(p.height)
        if valset is None:
            self._defer(p.height, msg)
            return
        val = valset.get_by_address(p.proposer)
        if val is None:
            self._drop("proposal", "not_validator")
            self._report(msg.sender, Offence.NOT_A_VALIDATOR, f"proposal signed by {p.proposer.hex()[:12]} at height {p.height}")
            return
        if p.proposer != self._proposer_of(p.height, p.round, valset):
            self._drop("proposal", "wrong_proposer")
            self._report(msg.sender, Offence.BOGUS_PROPOSAL,
                         f"proposal for height {p.height} round {p.round} from a validator that is not its proposer")
            return
        if not self.verify(val.public_key, sp.signature, p.sign_bytes(self.chain.chain_id)):
            self._drop("proposal", "bad_signature")
            self._report(msg.sender, Offence.BAD_SIGNATURE, f"proposal for height {p.height} round {p.round}")
            return
        if place == "current":
            self._handle_proposal(sp, raw, msg.sender)
        else:
            self._defer(p.height, msg)

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
                log.info("height %d: round %d%s", self.state.height, self.state.round, self._round_failure(before))
        for eff in effects:
            self._effect(eff)

    def _round_failure(self, before: tuple[int, int]) -> str:
        """Why the previous round of this height ended without a decision, as far as this node saw:
        its proposer and whether its proposal arrived (for the log line of a round change)."""
        height, last = before
        valset = self.state.validators
        if height != self.state.height or valset is None:
            return ""
        proposer = self._proposer_of(height, last, valset)
        got = bool(self.state.proposals.get(last))
        return (f" (round {last}: proposer {proposer.hex()[:12]}{' (this node)' if proposer == self.address else ''}"
                f", its proposal {'received' if got else 'never arrived'})")

    def _plan_recovery(self) -> ReplayResult | None:
        """Replay the WAL of the height in progress (at construction: a log that cannot be
        replayed stops the node before it starts, see node/integrity.py); None when the log holds
        no height to resume (empty, or a height the chain has already committed)."""
        result = replay_height_in_progress(self.wal, self.chain, self.state.config, self.node.home.db_dir)
        if result is None:
            return None
        for entry in self.wal.recovered.entries:
            if entry.attachment:
                self._remember_block(entry.attachment)
        return result

    def _resume(self, result: ReplayResult) -> None:
        """Continue the height in progress from its replayed WAL: the same locks, the same votes."""
        self.state = result.state
        log.info("resumed height %d round %d from the WAL (%d entries)", self.state.height,
                 self.state.round, len(self.wal.recovered.entries))
        self.height_started = time.monotonic()
        for entry in result.own_messages:
            ev = entry.event
            if isinstance(ev, VoteReceived):
                self._gossip_own_vote(ev.vote.encode())  # type: ignore[attr-defined]
            elif isinstance(ev, ProposalReceived) and entry.attachment:
                self.node.gossip("proposals", self._proposal_message(ev.proposal, entry.attachment))
        for eff in result.pending:
            self._effect(eff)
        self._skip_signed_rounds(fresh=False)
        self._replay_future(self.state.height)  # what arrived during the initial block sync

    def _skip_signed_rounds(self, fresh: bool) -> None:
        """End the rounds of this height in which the signer signed more than the machine knows of:
        the WAL was moved aside (the way out of a damaged one, docs/node.md) or lost records. The
        guard refuses every message of such a round, so the validator would never propose or vote
        in it, and alone (a dev chain) never leave it: nothing else ends a round without votes.
        ``fresh``: the height started without the WAL, so the machine knows none of its own
        messages and the last signed round is over too; after a replay it knows all but at most
        the last one, which the guard hands out again. A round given up early is safe (it is
        what a timeout does); as after any lost WAL, a lock taken in it is forgotten."""
        last = self.node.signer.last_position
        if last is None or last[0] != self.state.height:
            return
        last_round = last[1] + (1 if fresh else 0)
        skipped = self.state.round
        while self.state.round < last_round and self.state.step != STEP_COMMIT:
            self._feed(TimeoutElapsed(self.state.height, self.state.round, STEP_PRECOMMIT, now_ms()))
        if self.state.round != skipped:
            log.warning("height %d: rounds %d-%d ended at start: the signer signed in them and the WAL "
                        "does not hold those messages", self.state.height, skipped, self.state.round - 1)

    def _remember_block(self, raw: bytes) -> Candidate | None:
        """A block body from this node's own WAL (it was authenticated before it was logged)."""
        try:
            block = decode_block(raw)
        except CodecError:
            return None
        h = block.hash()
        if h in self.candidates:
            return self.candidates[h]
        try:
            cand = Candidate(block, raw, validate_and_execute(self.chain, block, len(raw), verify=self.verify), True)
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
        self._vote_hashes.clear()
        self._round_blocks.clear()
        self._valsets = {h: vs for h, vs in self._valsets.items() if h > height}
        self._proposers = {k: a for k, a in self._proposers.items() if k[0] >= height}
        if self.inbox.peer:  # authenticated for heights now over
            self.node.metrics.drop("consensus_buffer", "height_over", len(self.inbox.peer))
            self.inbox.peer.clear()
        self.height_started = time.monotonic()
        self._feed(NewHeight(height, valset, now_ms()))
        self._skip_signed_rounds(fresh=True)
        self.node.metrics_height(self.chain.height)
        self._replay_future(height)

    def _replay_future(self, height: int) -> None:
        """Hand the buffered messages of ``height`` back to authentication, one per loop turn."""
        self.inbox.post_replay(self.future.take(height))

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
        """Build this node's block; a block that would not validate is never proposed, and a
        failure here costs this round's proposal (the propose timeout moves on), never the node."""
        height = eff.height
        view = self.chain.db.view()
        last_commit = self._last_commit_for(height)
        prev = self.chain.get_header(height - 1)
        if prev is None:
            time_ms = max(self.chain.genesis_time_ms + 1, now_ms())
        else:
            time_ms = next_block_time(prev.time_ms, last_commit, validator_set_at(view, height - 1))
        limit = min(self.node.config.consensus.max_block_txs, self.chain.params().fees.max_block_txs,
                    block_growth_limit(self.node.mempool.commit_log))
        # the genesis limit only: a block too large for one gossip message is proposed without its
        # body, which peers fetch by hash (_proposal_message)
        max_bytes = self.chain.params().fees.max_block_bytes
        txs = tuple(self.node.mempool.pending(limit, max_bytes=max_bytes))
        evidence = self.evidence.for_block(view, height)
        build = lambda ev: self.chain.build_block(  # noqa: E731
            txs,
            time_ms,
            self.address,
            last_commit=last_commit,
            validators_hash=validator_set_at(view, height).hash(),
            next_validators_hash=validator_set_at(view, height + 1).hash(),
            evidence=ev,
            txs_verified=self.node.mempool.verified_hashes(),
            known_tx=self.node.mempool.pooled_tx,
        )
        try:
            executed = build(evidence)
        except InvalidBlock as exc:
            if not evidence:
                log.error("cannot build a block for height %d: %s; not proposing this round", height, exc)
                return
            log.error("block for height %d with evidence failed (%s); proposing it without", height, exc)
            try:
                executed = build(())
            except InvalidBlock as exc2:
                log.error("cannot build a block for height %d: %s; not proposing this round", height, exc2)
                return
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
        self.node.gossip("proposals", self._proposal_message(sp, cand.raw))
        self.post(ProposalReceived(sp, True, now_ms()))

    def _proposal_message(self, sp: SignedProposal, raw: bytes) -> bytes:
        """The gossip message of a proposal: with its block, or without it when the block is large."""
        limit = min(self.node.config.consensus.proposal_inline_bytes, MAX_INLINE_BYTES)
        inline = raw if len(raw) <= limit else b""
        return pack([sp.to_wire(), inline])  # type: ignore[attr-defined]

    def serve_proposal_block(self, block_hash: bytes) -> bytes | None:
        """The body of a block proposed at the height in progress (or already committed), by hash."""
        cand = self.candidates.get(block_hash)
        if cand is not None:
            return cand.raw
        raw_height = self.chain.db.raw.get(keys.block_hash_key(block_hash))
        return self.chain.get_block_bytes(int.from_bytes(raw_height, "big")) if raw_height else None

    async def _fetch_block(self, sp: SignedProposal, sender: str) -> None:
        """Fetch the body of an authenticated proposal gossiped without it, then handle it."""
        p = sp.proposal
        peers = [sender] if sender else []
        peers += [q for q in self.node.consensus_peers() if q != sender]
        try:
            for peer in peers[:FETCH_PEERS]:
                if self.state.height != p.height or p.block_hash in self.candidates:
                    break
                with trio.move_on_after(FETCH_TIMEOUT_S):
                    raw = await self.node.fetch_proposal_block(peer, p.block_hash)
                    if raw is None:
                        continue
                    try:
                        matches = decode_block(raw).hash() == p.block_hash
                    except CodecError:
                        matches = False
                    if not matches:
                        self._report(peer, Offence.BAD_SYNC_ANSWER, "a proposal block that does not match its hash")
                        continue
                    if self.state.height == p.height and not self.paused:
                        self._handle_proposal(sp, raw, sender)
                    return
            log.info("could not fetch the block of the proposal for height %d round %d", p.height, p.round)
        finally:
            self._fetching.discard(p.block_hash)

    def _held_bytes(self) -> int:
        return sum(len(c.raw) for c in self.candidates.values())

    def _handle_proposal(self, sp: SignedProposal, raw: bytes, sender: str = "") -> None:
        """An authenticated proposal of the current height: decode and execute its block once."""
        p = sp.proposal
        round_proposals = self.state.proposals.get(p.round, {})
        if p.block_hash in round_proposals:
            self._drop("proposal", "duplicate")
            return  # a gossip duplicate
        if len(round_proposals) >= MAX_PROPOSALS_PER_ROUND:
            self._drop("proposal", "round_full")
            return  # an equivocating proposer gains nothing from more
        cand = self.candidates.get(p.block_hash)
        if cand is None:
            # blocks decoded and executed per round: the machine keeps MAX_PROPOSALS_PER_ROUND, so
            # a proposer sending more blocks for its round (queued, not yet fed) costs nothing more
            executed_here = self._round_blocks.setdefault(p.round, set())
            if p.block_hash not in executed_here and len(executed_here) >= MAX_PROPOSALS_PER_ROUND:
                self._drop("proposal", "round_full")
                return
            executed_here.add(p.block_hash)
        if cand is None and not raw:
            # gossiped without its body (a large block): fetch it by request/response, bounded
            if p.block_hash not in self._fetching and len(self._fetching) < MAX_FETCHES and self.nursery is not None:
                self._fetching.add(p.block_hash)
                self.nursery.start_soon(self._fetch_block, sp, sender)
            elif p.block_hash not in self._fetching:
                self._drop("proposal", "fetch_busy")
            return
        if cand is None and p.height != self.chain.height + 1:
            # the chain committed this height while the machine has not moved on yet: a late (honest)
            # proposal for it, not an invalid block; scoring it banned a validator that had just
            # caught up by block sync, and with one more validator down the chain stalled
            self._drop("proposal", "late")
            return
        if cand is None:
            if self._held_bytes() + len(raw) > self.candidate_bytes:
                log.warning("not holding another %d-byte block at height %d: %d bytes of candidates held",
                            len(raw), p.height, self._held_bytes())
                self._drop("proposal", "candidate_bytes")
                return
            try:
                block = decode_block(raw)
            except CodecError as exc:
                self._drop("proposal", "undecodable_block")
                self._report(sender, Offence.BOGUS_PROPOSAL, f"undecodable block: {exc}")
                return
            if block.hash() != p.block_hash:
                self._drop("proposal", "hash_mismatch")
                self._report(sender, Offence.BOGUS_PROPOSAL, "the block does not match the signed hash")
                return
            # A re-proposal of the valid value (pol_round >= 0) carries the block built by the
            # proposer of an earlier round; refusing it left nodes that missed that round unable
            # to ever prevote for it, and the height went round after round without a decision.
            if block.header.proposer != p.proposer and p.pol_round < 0:
                self._drop("proposal", "wrong_proposer")
                self._report(sender, Offence.BOGUS_PROPOSAL, "the block names another proposer")
                return
            try:
                executed = validate_and_execute(self.chain, block, len(raw), self.node.mempool.verified_hashes(),
                                                proposer_round=p.pol_round if p.pol_round >= 0 else p.round,
                                                verify=self.verify, known_tx=self.node.mempool.pooled_tx)
                cand = Candidate(block, raw, executed, True)
            except InvalidBlock as exc:
                log.warning("invalid block proposed at height %d: %s", p.height, exc)
                self._report(sender, Offence.INVALID_BLOCK, f"proposed block at height {p.height}: {exc}")
                cand = Candidate(block, raw, None, False)
            self.candidates[p.block_hash] = cand
        self.inbox.post_peer(ProposalReceived(sp, cand.valid, now_ms()))

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
    def _add_evidence(self, ev: DuplicateVoteEvidence, gossip: bool, sender: str = "") -> None:
        admission, reason = self.evidence.add(ev)
        height = ev.vote_a.vote.height
        if admission is Admission.INVALID:
            log.info("dropping invalid evidence: %s", reason)
            self.node.metrics.drop("evidence", "invalid")
            self._report(sender, Offence.INVALID_EVIDENCE, reason)
            return
        if admission is Admission.REFUSED:
            # nothing wrong with the sender (too old, not yet includable, pool full); one attacker can
            # send dozens a second, so not at INFO
            log.debug("not keeping evidence for height %d: %s", height, reason)
            self.node.metrics.drop("evidence", "refused")
            return
        if admission is Admission.KNOWN:
            return
        log.warning("double-sign evidence against %s at height %d%s", ev.vote_a.vote.validator.hex(), height,
                    " (pending until that height is committed)" if admission is Admission.PENDING else "")
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
        for ev in self.evidence.after_commit():
            self.node.gossip("evidence", ev.encode())  # type: ignore[attr-defined]
        assert self.nursery is not None
        self.nursery.start_soon(self._commit_wait, eff.height)

    async def _commit_wait(self, height: int) -> None:
        await trio.sleep(self.params.timeout_commit_ms / 1000)
        cfg = self.node.config.consensus
        if cfg.fill_wait_ms > 0:
            # local pacing, not a rule: the proposer's pool decides what the next block holds
            with trio.move_on_after(cfg.fill_wait_ms / 1000):
                while 0 < self.node.mempool.size < cfg.fill_txs:
                    await trio.sleep(FILL_POLL_S)
        self.post(_CommitWaitOver(height))

    def _finish_height(self) -> None:
        self.last_commit = current_commit(self.state)
        self._start_height()
