"""A simulated validator: a small driver around the pure machine (byzantine ones: sim_byzantine.py).

The driver does what node/'s trio driver does, against a virtual network and clock:
- it appends every event to the WAL right before stepping the machine (own messages and own
  blocks with sync), signs through the last-signed guard, logs every signed message before it
  is sent, and feeds its own signed messages back to the machine;
- it buffers messages for the next height and replays them when that height starts;
- after a decision it waits ``timeout_commit`` and starts the next height with the fullest commit;
- it catches up by block sync: it asks a random peer for the block and commit at its height and
  adopts them once ``verify_commit`` accepts the commit;
- when it made no progress for a while it re-sends its own messages of the current height
  (gossip re-transmission: lost messages would otherwise stall a round forever);
- on restart it rebuilds the machine from the WAL (``replay_wal``) and carries out what is pending.

Blocks are opaque byte strings ``b"height|proposer|round|variant"``; a block is valid unless it
starts with ``INVALID``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from consensus.events import (
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
from consensus.machine import MachineConfig, MachineState, current_commit, initial_state, step
from consensus.params import STEP_PROPOSE
from consensus.replay import replay_wal
from consensus.signer import DoubleSignRefused, GuardStore, MemoryGuardStore, Signer, vote_step
from consensus.votes import InvalidCommit, verify_commit
from consensus.wal import WALEntry
from state.block import Commit, Proposal, SignedProposal, SignedVote, Vote
from state.crypto import PrivateKey, sha256

if TYPE_CHECKING:
    from consensus.sim import Sim

Message = tuple[Any, ...]
MAX_FUTURE_BUFFER = 2000


def make_block(height: int, proposer: int, round_: int, variant: int = 0, invalid: bool = False) -> bytes:
    body = b"%d|%d|%d|%d" % (height, proposer, round_, variant)
    return b"INVALID|" + body if invalid else body


def is_valid_block(body: bytes) -> bool:
    return not body.startswith(b"INVALID")


class NodeStorage(Protocol):
    """What survives a crash: the guard, the WAL, the block store and the signed-message log."""

    @property
    def guard(self) -> GuardStore: ...

    def wal_start(self, entry: WALEntry) -> None: ...

    def wal_append(self, entry: WALEntry, sync: bool) -> None: ...

    def wal_entries(self) -> list[WALEntry]: ...

    def chain_put(self, height: int, block_hash: bytes, body: bytes, commit: Commit) -> None: ...

    def chain_get(self, height: int) -> tuple[bytes, bytes, Commit] | None: ...

    def chain_height(self) -> int: ...

    def chain_hashes(self) -> list[bytes]: ...

    def log_signed(self, message: SignedVote | SignedProposal) -> None: ...

    def log_refusal(self, message: Vote | Proposal) -> None: ...

    def lose_unsynced(self) -> None: ...


class MemoryStorage:
    """Simulated disk: survives crashes; a power loss drops WAL records written without sync."""

    def __init__(self) -> None:
        self.guard = MemoryGuardStore()
        self.wal: list[WALEntry] = []
        self.wal_synced = 0
        self.chain: list[tuple[bytes, bytes, Commit]] = []
        self.signed: dict[tuple[int, int, int], bytes] = {}  # position -> payload signed there
        self.conflicting_signatures = 0
        self.refused = 0

    def wal_start(self, entry: WALEntry) -> None:
        self.wal = [entry]
        self.wal_synced = 1

    def wal_append(self, entry: WALEntry, sync: bool) -> None:
        self.wal.append(entry)
        if sync:
            self.wal_synced = len(self.wal)

    def wal_entries(self) -> list[WALEntry]:
        return list(self.wal)

    def chain_put(self, height: int, block_hash: bytes, body: bytes, commit: Commit) -> None:
        if height == len(self.chain) + 1:
            self.chain.append((block_hash, body, commit))
        elif 1 <= height <= len(self.chain) and self.chain[height - 1][0] == block_hash:
            self.chain[height - 1] = (block_hash, body, commit)  # a fuller commit for the same block
        else:
            raise AssertionError(f"block store: unexpected put at height {height}")

    def chain_get(self, height: int) -> tuple[bytes, bytes, Commit] | None:
        return self.chain[height - 1] if 1 <= height <= len(self.chain) else None

    def chain_height(self) -> int:
        return len(self.chain)

    def chain_hashes(self) -> list[bytes]:
        return [c[0] for c in self.chain]

    def log_signed(self, message: SignedVote | SignedProposal) -> None:
        """Remember what was signed at each position; a second, different payload is a violation
        (payloads that differ only in time_ms are not signed twice: the guard returns the first)."""
        if isinstance(message, SignedVote):
            v = message.vote
            position, payload = (v.height, v.round, vote_step(v.type)), v.encode()  # type: ignore[attr-defined]
        else:
            p = message.proposal
            position, payload = (p.height, p.round, STEP_PROPOSE), p.encode()  # type: ignore[attr-defined]
        first = self.signed.setdefault(position, payload)
        if first != payload:
            self.conflicting_signatures += 1

    def log_refusal(self, message: Vote | Proposal) -> None:
        self.refused += 1

    def lose_unsynced(self) -> None:
        del self.wal[self.wal_synced :]


class SimNode:
    """An honest validator."""

    honest = True

    def __init__(self, sim: "Sim", index: int, key: PrivateKey, storage: NodeStorage) -> None:
        self.sim = sim
        self.index = index
        self.key = key
        self.address = key.address
        self.storage = storage
        self.config = MachineConfig(sim.chain_id, key.address, sim.params, sim.verifier_for(index))
        self.signer = Signer(key, storage.guard)
        self.alive = False
        self.incarnation = 0
        self.state: MachineState | None = None
        self.blocks: dict[bytes, bytes] = {}
        self.future: list[tuple[int, int, Message]] = []
        self.own: list[Message] = []
        self.targets: list[int] | None = None  # None: all other nodes
        self.variant = 0
        self._inbox: deque[tuple[Event, bool, bytes]] = deque()
        self._pumping = False
        self._progress_mark: tuple[int, int, int] | None = None
        self._first_votes: dict[tuple[bytes, int, int, int], bytes] = {}
        self.refusals = 0

    # ---- lifecycle ---------------------------------------------------------------------------
    def boot(self) -> None:
        self.alive = True
        self.incarnation += 1
        self._recover()
        inc = self.incarnation
        self.sim.schedule(self.sim.now + self.sim.regossip_ms, self._tick_regossip, inc)
        self.sim.schedule(self.sim.now + self.sim.sync_ms, self._tick_sync, inc)

    def crash(self, power_loss: bool) -> None:
        self.alive = False
        self.incarnation += 1
        self.state = None
        self.blocks = {}
        self.future = []
        self.own = []
        self._inbox.clear()
        self._first_votes = {}
        if power_loss:
            self.storage.lose_unsynced()

    def _recover(self) -> None:
        committed = self.storage.chain_height()
        entries = self.storage.wal_entries()
        first = entries[0].event if entries else None
        if isinstance(first, NewHeight) and first.height == committed + 1:
            result = replay_wal(self.config, entries)
            self.state = result.state
            for entry in entries:
                if entry.attachment:
                    self.blocks[sha256(entry.attachment)] = entry.attachment
            for entry in result.own_messages:
                msg = self._message_of(entry)
                self.own.append(msg)
                self.broadcast(msg)
            self._pumping = True
            try:
                for eff in result.pending:
                    self._execute(eff)
            finally:
                self._pumping = False
            self._pump()
            self.sim.stats["replays"] += 1
        else:
            self.state = initial_state(self.config)
            self._enter_height(committed + 1)

    def _message_of(self, entry: WALEntry) -> Message:
        ev = entry.event
        if isinstance(ev, VoteReceived):
            return ("vote", ev.vote)
        assert isinstance(ev, ProposalReceived)
        return ("proposal", ev.proposal, entry.attachment)

    # ---- feeding the machine -----------------------------------------------------------------
    def _feed(self, event: Event, own: bool = False, attachment: bytes = b"") -> None:
        self._inbox.append((event, own, attachment))
        if not self._pumping:
            self._pump()

    def _pump(self) -> None:
        self._pumping = True
        try:
            while self._inbox and self.state is not None:
                event, own, attachment = self._inbox.popleft()
                entry = WALEntry(event, attachment)
                if isinstance(event, NewHeight):
                    self.storage.wal_start(entry)
                else:
                    self.storage.wal_append(entry, own)
                self.state, effects = step(self.state, event)
                for eff in effects:
                    self._execute(eff)
        finally:
            self._pumping = False

    def _execute(self, eff: Effect) -> None:
        if isinstance(eff, SignAndBroadcastVote):
            self._sign_vote(eff.vote)
        elif isinstance(eff, SignAndBroadcastProposal):
            self._sign_proposal(eff.proposal)
        elif isinstance(eff, RequestBlock):
            body = self.build_block(eff.height, eff.round)
            block_hash = sha256(body)
            self.blocks[block_hash] = body
            self._feed(ProposeBlockReady(eff.height, eff.round, block_hash, self.sim.now), True, body)
        elif isinstance(eff, ScheduleTimeout):
            ev = TimeoutElapsed(eff.height, eff.round, eff.step)
            self.sim.schedule(self.sim.now + eff.duration_ms, self._on_timeout, self.incarnation, ev)
        elif isinstance(eff, Decide):
            self._on_decide(eff)
        elif isinstance(eff, EvidenceFound):
            self.sim.on_evidence(self.index, eff.evidence)
        elif isinstance(eff, MessageRejected):
            self.sim.stats["rejected"] += 1

    def build_block(self, height: int, round_: int) -> bytes:
        return make_block(height, self.index, round_, self.variant)

    # ---- signing -----------------------------------------------------------------------------
    def _sign_vote(self, vote: Vote) -> None:
        try:
            sv = self.signer.sign_vote(self.sim.chain_id, vote)
        except DoubleSignRefused:
            self._refused(vote)
            return
        self.storage.log_signed(sv)
        self.sim.verifier_learn(self.index, self.key.public_key, sv.signature, sv.vote.sign_bytes(self.sim.chain_id))
        msg: Message = ("vote", sv)
        self.own.append(msg)
        self.broadcast(msg)
        self._feed(VoteReceived(sv, self.sim.now), True)

    def _sign_proposal(self, proposal: Proposal) -> None:
        body = self.blocks.get(proposal.block_hash)
        if body is None:
            self.sim.stats["missing_body"] += 1
            return
        try:
            sp = self.signer.sign_proposal(self.sim.chain_id, proposal)
        except DoubleSignRefused:
            self._refused(proposal)
            return
        self._send_own_proposal(sp, body)

    def _refused(self, message: Vote | Proposal) -> None:
        self.refusals += 1
        self.sim.stats["refusals"] += 1
        self.storage.log_refusal(message)

    def _send_own_proposal(self, sp: SignedProposal, body: bytes) -> None:
        self.storage.log_signed(sp)
        self.sim.verifier_learn(
            self.index, self.key.public_key, sp.signature, sp.proposal.sign_bytes(self.sim.chain_id)
        )
        msg: Message = ("proposal", sp, body)
        self.own.append(msg)
        self.broadcast(msg)
        self._feed(ProposalReceived(sp, is_valid_block(body), self.sim.now), True, body)

    # ---- network -----------------------------------------------------------------------------
    def broadcast(self, msg: Message) -> None:
        if self.targets is None:
            self.sim.broadcast(self.index, msg)
        else:
            for j in self.targets:
                self.sim.send(self.index, j, msg)

    def on_message(self, frm: int, msg: Message) -> None:
        if not self.alive or self.state is None:
            return
        kind = msg[0]
        if kind == "vote":
            sv: SignedVote = msg[1]
            self._on_consensus_message(sv.vote.height, msg)
        elif kind == "proposal":
            sp: SignedProposal = msg[1]
            self._on_consensus_message(sp.proposal.height, msg)
        elif kind == "sync_req":
            record = self.storage.chain_get(msg[1])
            if record is not None:
                self.sim.send(self.index, frm, ("sync_resp", msg[1], record[1], record[2]))
        elif kind == "sync_resp":
            self._on_sync_response(frm, msg[1], msg[2], msg[3])

    def _on_consensus_message(self, height: int, msg: Message) -> None:
        assert self.state is not None
        if height == self.state.height:
            self._deliver(msg)
        elif height == self.state.height + 1 and len(self.future) < MAX_FUTURE_BUFFER:
            self.future.append((height, len(self.future), msg))

    def _deliver(self, msg: Message) -> None:
        if msg[0] == "vote":
            sv: SignedVote = msg[1]
            self._observe_vote(sv)
            self._feed(VoteReceived(sv, self.sim.now))
        else:
            sp: SignedProposal = msg[1]
            body: bytes = msg[2]
            if sha256(body) != sp.proposal.block_hash:
                self.sim.stats["bad_body"] += 1
                return
            self.blocks.setdefault(sp.proposal.block_hash, body)
            self._feed(ProposalReceived(sp, is_valid_block(body), self.sim.now), False, body)

    def _observe_vote(self, sv: SignedVote) -> None:
        """Harness bookkeeping: a conflicting pair fed to an honest machine must yield evidence."""
        v = sv.vote
        if v.validator == self.address or not self.honest:
            return
        key = (v.validator, v.height, v.round, v.type)
        first = self._first_votes.setdefault(key, v.block_hash)
        if first != v.block_hash:
            self.sim.observed_conflicts.add((self.index, v.validator))

    # ---- timers ------------------------------------------------------------------------------
    def _on_timeout(self, incarnation: int, ev: TimeoutElapsed) -> None:
        if incarnation != self.incarnation or not self.alive:
            return
        self._feed(replace(ev, now_ms=self.sim.now))

    def _tick_regossip(self, incarnation: int) -> None:
        if incarnation != self.incarnation or not self.alive or self.state is None:
            return
        st = self.state
        mark = (st.height, st.round, st.step)
        if mark == self._progress_mark:
            # The current and previous round, plus every proof-of-lock round in play: peers need
            # those prevotes to accept a re-proposed value (CometBFT gossips POL prevotes too).
            rounds = {st.round, st.round - 1, st.locked_round, st.valid_round}
            rounds.update(sp.proposal.pol_round for sp in st.proposals.get(st.round, {}).values())
            for msg in self.own:
                r = msg[1].vote.round if msg[0] == "vote" else msg[1].proposal.round
                if r in rounds:
                    self.broadcast(msg)
        self._progress_mark = mark
        self.sim.schedule(self.sim.now + self.sim.regossip_ms, self._tick_regossip, incarnation)

    def _tick_sync(self, incarnation: int) -> None:
        if incarnation != self.incarnation or not self.alive or self.state is None:
            return
        peers = self.targets if self.targets is not None else [j for j in range(self.sim.n) if j != self.index]
        if peers:
            peer = peers[self.sim.rng.randrange(len(peers))]
            self.sim.send(self.index, peer, ("sync_req", self.state.height))
        self.sim.schedule(self.sim.now + self.sim.sync_ms, self._tick_sync, incarnation)

    # ---- heights -----------------------------------------------------------------------------
    def _on_decide(self, d: Decide) -> None:
        body = self.blocks.get(d.block_hash)
        assert body is not None, "the machine decides only blocks whose proposal (and body) it holds"
        self.storage.chain_put(d.height, d.block_hash, body, d.commit)
        self.sim.on_commit(self.index, d.height, d.block_hash)
        self.sim.schedule(self.sim.now + self.sim.params.timeout_commit_ms, self._after_commit_wait, self.incarnation, d.height)

    def _after_commit_wait(self, incarnation: int, height: int) -> None:
        if incarnation != self.incarnation or not self.alive or self.state is None or self.state.height != height:
            return
        commit = current_commit(self.state)
        if commit is not None:
            record = self.storage.chain_get(height)
            assert record is not None
            self.storage.chain_put(height, record[0], record[1], commit)
        self._enter_height(height + 1)

    def _on_sync_response(self, frm: int, height: int, body: bytes, commit: Commit) -> None:
        st = self.state
        if st is None or height != st.height or st.decision is not None:
            return
        block_hash = sha256(body)
        try:
            verify_commit(self.sim.chain_id, self.sim.valset(height), commit, height, block_hash, self.config.verify)
        except InvalidCommit:
            self.sim.stats["bad_sync"] += 1
            return
        if not is_valid_block(body):
            self.sim.stats["bad_sync"] += 1
            return
        self.storage.chain_put(height, block_hash, body, commit)
        self.sim.on_commit(self.index, height, block_hash)
        self.sim.stats["synced"] += 1
        self._enter_height(height + 1)
        if frm >= 0:
            self.sim.send(self.index, frm, ("sync_req", height + 1))  # the peer may have more

    def _enter_height(self, height: int) -> None:
        self.own = []
        self.blocks = {}
        self._first_votes = {}
        self._feed(NewHeight(height, self.sim.valset(height), self.sim.now))
        ready = [m for h, _, m in self.future if h == height]
        self.future = [(h, i, m) for h, i, m in self.future if h > height]
        for msg in ready:
            if self.state is None or self.state.height != height:
                break
            self._deliver(msg)
