"""Slashing: double-sign evidence and liveness, processed in begin_block (docs/staking.md).

Evidence that does not hold makes the whole block invalid (InvalidBlock): a proposer must only
include evidence that verifies. Liveness counts who signed the previous block's commit; the commit
itself (signatures, quorum) is verified by the consensus layer before the block is applied.
"""

from __future__ import annotations

import dataclasses
import logging

from state import keys
from state.accounts import STAKING_POOL, UNBONDING_POOL, burn
from state.block import Commit, DuplicateVoteEvidence
from state.crypto import to_hex, verify
from state.errors import InvalidBlock
from state.params import BPS, StakingParams
from state.staking.records import (
    EvidenceRecord,
    SigningInfo,
    Validator,
    delegations_of,
    get_signing_info,
    get_validator,
    operator_of_consensus,
    set_delegation,
    set_signing_info,
    set_unbonding,
    set_validator,
    unbondings_of_validator,
)
from state.store import StateView
from state.staking.validator_updates import Member, members_at

log = logging.getLogger(__name__)


def require_valid(condition: bool, reason: str, message: str) -> None:
    """Reject the whole block with ``reason`` unless ``condition`` holds."""
    if not condition:
        raise InvalidBlock(f"{reason}: {message}")


# ---- double sign ---------------------------------------------------------------------------
def check_evidence(view: StateView, chain_id: str, height: int, params: StakingParams,
                   ev: DuplicateVoteEvidence) -> Member:
    """The offending member of the set at the votes' height, if the evidence holds.

    The codec already guarantees two votes of one validator at one (height, round, type) for
    different blocks, in canonical order.
    """
    vote_a = ev.vote_a.vote
    offence = vote_a.height
    require_valid(view.get(keys.evidence_seen_key(ev.hash())) is None, "duplicate_evidence",
                  "this evidence was already processed")
    require_valid(1 <= offence < height, "evidence_from_future",
                  f"offence height {offence} is not below the block height {height}")
    require_valid(height - offence <= params.evidence_max_age_blocks, "evidence_too_old",
                  f"offence at {offence} is older than {params.evidence_max_age_blocks} blocks")
    members = members_at(view, offence) or []
    member = next((m for m in members if m.address == vote_a.validator), None)
    require_valid(member is not None, "unknown_validator",
                  f"{to_hex(vote_a.validator)} is not in the validator set of height {offence}")
    assert member is not None
    for signed in (ev.vote_a, ev.vote_b):
        require_valid(verify(member.public_key, signed.signature, signed.vote.sign_bytes(chain_id)),
                      "invalid_evidence_signature",
                      f"a vote does not verify for {to_hex(member.address)} on chain {chain_id!r}")
    return member


def process_evidence(view: StateView, chain_id: str, height: int, params: StakingParams,
                     ev: DuplicateVoteEvidence) -> None:
    """Verified double sign: slash bonded and unbonding stake, burn it, tombstone, jail."""
    member = check_evidence(view, chain_id, height, params, ev)
    view.put_obj(keys.evidence_seen_key(ev.hash()), EvidenceRecord(height, member.operator))
    v = get_validator(view, member.operator)
    if v is None or v.tombstoned:
        return  # already punished for a double sign; the proof is recorded, nothing more is due
    offence = ev.vote_a.vote.height
    v, burned = slash(view, v, offence, params.double_sign_slash_bps)
    set_validator(view, dataclasses.replace(v, jailed=1, tombstoned=1))
    set_signing_info(view, v.consensus_address, None)
    log.warning("double sign: validator %s at height %d slashed %d and tombstoned",
                to_hex(v.operator), offence, burned)


# ---- slashing ------------------------------------------------------------------------------
def is_slashable_unbonding(creation_height: int, offence_height: int) -> bool:
    """Stake undelegated at height c still counted in the sets of heights up to c + 1 (set
    changes take effect two blocks later), so it answers for offences at those heights."""
    return creation_height + 1 >= offence_height


def slash(view: StateView, v: Validator, offence_height: int, bps: int) -> tuple[Validator, int]:
    """Burn ``bps`` of each of the validator's delegations and slashable unbonding entries.

    Each delegation and entry loses ``amount * bps // 10000`` (rounded down). Returns the updated
    validator and the total burned.
    """
    bonded = 0
    for delegator, amount in delegations_of(view, v.operator):
        cut = amount * bps // BPS
        if cut:
            set_delegation(view, v.operator, delegator, amount - cut)
            bonded += cut
    unbonding = 0
    for completion, delegator, entry in unbondings_of_validator(view, v.operator):
        if not is_slashable_unbonding(entry.creation_height, offence_height):
            continue
        cut = entry.amount * bps // BPS
        if cut:
            set_unbonding(view, completion, v.operator, delegator,
                          dataclasses.replace(entry, amount=entry.amount - cut))
            unbonding += cut
    burn(view, STAKING_POOL, bonded)
    burn(view, UNBONDING_POOL, unbonding)
    slashed = dataclasses.replace(v, tokens=v.tokens - bonded)
    set_validator(view, slashed)
    return slashed, bonded + unbonding


# ---- liveness ------------------------------------------------------------------------------
def max_missed(params: StakingParams) -> int:
    """More misses than this within the window jails the validator."""
    w = params.signed_blocks_window
    return w - w * params.min_signed_bps // BPS


def fresh_signing_info(start_height: int, params: StakingParams) -> SigningInfo:
    return SigningInfo(start_height, 0, bytes((params.signed_blocks_window + 7) // 8))


def process_liveness(view: StateView, height: int, params: StakingParams, last_commit: Commit | None) -> None:
    """Record who signed block ``height - 1``; jail and slash those over the allowed misses."""
    if last_commit is None or last_commit.height == 0:
        return  # height 1 (and test blocks built without a commit) carry no liveness information
    signed_height = last_commit.height
    require_valid(signed_height == height - 1, "wrong_commit_height",
                  f"last commit is for height {signed_height}, expected {height - 1}")
    signers = {sig.validator for sig in last_commit.signatures}
    for member in members_at(view, signed_height) or []:
        record_signature(view, height, params, member, signed_height, member.address in signers)


def record_signature(view: StateView, height: int, params: StakingParams, member: Member,
                     signed_height: int, signed: bool) -> None:
    """Update one validator's window for ``signed_height``; O(1), writes only when a bit flips."""
    v = get_validator(view, member.operator)
    if v is None or v.jailed or v.tombstoned:
        return  # already out of the next sets; its window restarts when it returns
    info = get_signing_info(view, member.address)
    if info is None:
        if signed:
            return  # an all-signed window needs no record: it is created at the first miss
        info = fresh_signing_info(signed_height, params)
    index = (signed_height - info.start_height) % params.signed_blocks_window
    byte, bit = divmod(index, 8)
    was_missed = bool(info.bitmap[byte] >> bit & 1)
    if was_missed == (not signed):
        return
    bitmap = bytearray(info.bitmap)
    bitmap[byte] ^= 1 << bit
    missed = info.missed + (1 if not signed else -1)
    if missed > max_missed(params):
        jail_for_downtime(view, height, params, v, signed_height)
        return
    set_signing_info(view, member.address, SigningInfo(info.start_height, missed, bytes(bitmap)))


def jail_for_downtime(view: StateView, height: int, params: StakingParams, v: Validator,
                      offence_height: int) -> None:
    v, burned = slash(view, v, offence_height, params.downtime_slash_bps)
    set_validator(view, dataclasses.replace(v, jailed=1, jailed_until=height + params.jail_blocks))
    set_signing_info(view, v.consensus_address, None)
    log.warning("downtime: validator %s jailed until %d, slashed %d",
                to_hex(v.operator), height + params.jail_blocks, burned)
