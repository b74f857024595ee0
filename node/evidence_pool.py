"""Double-sign evidence waiting for a block: admitted by the same rule block validation applies.

Evidence enters ``pool`` only if a block at ``chain.height + 1`` would accept it
(``state.staking.slashing.check_evidence``: not yet processed, offence below the block height and
within ``evidence_max_age_blocks``, the accused in the set of the offence height, both votes signed
by it). Evidence for the height in progress (a double sign seen live) cannot go into the next block
yet: it waits in ``pending``, its two signatures verified against that height's validator set, and
is re-checked by the block rule once that height is committed. Block building re-checks every piece
against the very view the block is built on, so a proposal never carries evidence that would make
it invalid. Both maps are bounded in count overall and per accused validator.
"""

from __future__ import annotations

import logging
from enum import Enum

from consensus.evidence import InvalidEvidence, verify_duplicate_vote_evidence
from node.executor import validator_set_at
from state import keys
from state.block import DuplicateVoteEvidence
from state.chain import Chain
from state.errors import InvalidBlock
from state.transition import load_params
from state.staking.slashing import check_evidence
from state.store import StateView

log = logging.getLogger(__name__)

MAX_EVIDENCE = 256  # pieces in the pool (and, separately, pending)
MAX_PER_VALIDATOR = 2  # one proof is enough to tombstone; a second covers a lost first
MAX_EVIDENCE_PER_BLOCK = 16


class Admission(Enum):
    ADDED = "added"
    PENDING = "pending"  # the offence is at the height in progress
    KNOWN = "known"  # already pooled, pending or processed
    REFUSED = "refused"  # too old, from the future, or the pool is full: nothing wrong with the sender
    INVALID = "invalid"  # does not prove an offence: an honest peer never sends it


class EvidencePool:
    def __init__(self, chain: Chain, max_items: int = MAX_EVIDENCE, max_per_validator: int = MAX_PER_VALIDATOR) -> None:
        self.chain = chain
        self.max_items = max_items
        self.max_per_validator = max_per_validator
        self.pool: dict[bytes, DuplicateVoteEvidence] = {}
        self.pending: dict[bytes, DuplicateVoteEvidence] = {}

    def __len__(self) -> int:
        return len(self.pool)

    def __contains__(self, evidence_hash: bytes) -> bool:
        return evidence_hash in self.pool

    def add(self, ev: DuplicateVoteEvidence) -> tuple[Admission, str]:
        """Admit ``ev`` by the block rule (or as pending for the height in progress)."""
        h = ev.hash()
        if h in self.pool or h in self.pending:
            return Admission.KNOWN, "already held"
        view = self.chain.db.view()
        next_height = self.chain.height + 1
        offence = ev.vote_a.vote.height
        if offence == next_height:
            return self._add_pending(view, ev, h)
        if offence > next_height:
            return Admission.REFUSED, f"offence height {offence} is beyond the height in progress {next_height}"
        # room first: only verified evidence takes room, so a full share is refused without
        # verifying again (a flood of copies against one validator costs no signature check)
        if not self._has_room(self.pool, ev):
            return Admission.REFUSED, "evidence pool full for this validator or overall"
        try:
            check_evidence(view, self.chain.chain_id, next_height, load_params(view).staking, ev)
        except InvalidBlock as exc:
            reason = str(exc)
            if reason.startswith(("invalid_evidence_signature", "unknown_validator")):
                return Admission.INVALID, reason
            if reason.startswith("duplicate_evidence"):
                return Admission.KNOWN, reason
            return Admission.REFUSED, reason
        self.pool[h] = ev
        return Admission.ADDED, ""

    def _add_pending(self, view: StateView, ev: DuplicateVoteEvidence, h: bytes) -> tuple[Admission, str]:
        offence = ev.vote_a.vote.height
        if not self._has_room(self.pending, ev):  # room first, as in add()
            return Admission.REFUSED, "pending evidence full for this validator or overall"
        try:
            verify_duplicate_vote_evidence(self.chain.chain_id, validator_set_at(view, offence), ev)
        except (InvalidEvidence, InvalidBlock) as exc:
            return Admission.INVALID, str(exc)
        self.pending[h] = ev
        return Admission.PENDING, ""

    def _has_room(self, where: dict[bytes, DuplicateVoteEvidence], ev: DuplicateVoteEvidence) -> bool:
        if len(where) >= self.max_items:
            return False
        accused = ev.vote_a.vote.validator
        return sum(1 for e in where.values() if e.vote_a.vote.validator == accused) < self.max_per_validator

    def for_block(self, view: StateView, height: int) -> tuple[DuplicateVoteEvidence, ...]:
        """The pooled evidence a block at ``height`` built on ``view`` accepts, in hash order."""
        params = load_params(view).staking
        chosen: list[DuplicateVoteEvidence] = []
        for h in sorted(self.pool):
            ev = self.pool[h]
            try:
                check_evidence(view, self.chain.chain_id, height, params, ev)
            except InvalidBlock as exc:
                log.info("leaving evidence %s out of the block: %s", h.hex()[:12], exc)
                continue
            chosen.append(ev)
            if len(chosen) >= MAX_EVIDENCE_PER_BLOCK:
                break
        return tuple(chosen)

    def after_commit(self) -> list[DuplicateVoteEvidence]:
        """Drop what the chain processed or can no longer accept; admit pending evidence whose
        height is now committed. Returns the newly admitted pieces (to gossip)."""
        view = self.chain.db.view()
        next_height = self.chain.height + 1
        params = load_params(view).staking
        for h in list(self.pool):
            try:
                check_evidence(view, self.chain.chain_id, next_height, params, self.pool[h])
            except InvalidBlock:
                del self.pool[h]
        admitted = []
        for h in list(self.pending):
            ev = self.pending[h]
            if ev.vote_a.vote.height >= next_height:
                continue
            del self.pending[h]
            if view.get(keys.evidence_seen_key(h)) is None and self.add(ev)[0] is Admission.ADDED:
                admitted.append(ev)
        return admitted
