"""Validator sets in state: which validators hold voting power, from which height.

Rule (docs/staking.md, "Validator sets"):
- The set that signs block h is stored under validator_set_key(h) as a consensus ValidatorSet
  (CometBFT proposer priorities included).
- Genesis stores set(1) = ValidatorSet.new(genesis validators) and set(2) = set(1) incremented once.
- end_block of height H computes the wanted set from staking state after the block: the top
  ``max_validators`` eligible validators (not jailed, not tombstoned, self-stake at least
  ``min_self_stake``, power > 0) by power, ties broken by the lower operator address, with power =
  bonded stake // POWER_REDUCTION. The difference to set(H+1) (already fixed) is applied to a copy
  of set(H+1), which is then incremented once and stored as set(H+2). So a change made in block H
  takes effect at height H+2.
- A set is never emptied: if nobody is eligible, set(H+1) carries over (incremented).
- Sets older than max(evidence_max_age_blocks, 1) blocks are pruned: evidence older than that is
  rejected anyway, and liveness needs only the previous height's set.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from state.staking.validator_set import ValidatorSet, ValidatorUpdate
from state import keys
from state.block import MAX_VALIDATORS_WIRE
from state.crypto import address_of, to_hex
from state.params import StakingParams
from state.staking.records import (
    Validator,
    is_eligible,
    iter_validators,
    operator_of_consensus,
    set_signing_info,
    voting_power,
)
from state.store import StateView

log = logging.getLogger(__name__)


class Member(NamedTuple):
    """A member of a stored set, with the operator that staking knows it by."""

    address: bytes  # consensus address
    public_key: bytes
    power: int
    operator: bytes


# ---- storage -------------------------------------------------------------------------------
def load_validator_set(view: StateView, height: int) -> ValidatorSet | None:
    return view.get_obj(keys.validator_set_key(height), ValidatorSet)


def store_validator_set(view: StateView, height: int, vset: ValidatorSet) -> None:
    view.put_obj(keys.validator_set_key(height), vset)


def members_at(view: StateView, height: int) -> list[Member] | None:
    """The set that signs ``height``, in set order, or None if none is stored."""
    vset = load_validator_set(view, height)
    if vset is None:
        return None
    out = []
    for v in vset.validators:
        operator = operator_of_consensus(view, v.address)
        if operator is None:
            raise LookupError(f"set member {to_hex(v.address)} has no validator record")
        out.append(Member(v.address, v.public_key, v.power, operator))
    return out


# ---- the wanted set ------------------------------------------------------------------------
def set_size_cap(params: StakingParams) -> int:
    return min(params.max_validators, MAX_VALIDATORS_WIRE)


def bonded_validators(view: StateView, params: StakingParams) -> list[Validator]:
    """The top eligible validators by power (ties: lower operator address), at most the cap."""
    eligible = [v for v in iter_validators(view) if is_eligible(view, v, params)]
    eligible.sort(key=lambda v: (-voting_power(v.tokens), v.operator))
    return eligible[: set_size_cap(params)]


def compute_changes(current: ValidatorSet, wanted: list[Validator]) -> list[ValidatorUpdate]:
    """Updates turning ``current`` into ``wanted`` (power 0 removes), by consensus address."""
    want = {address_of(v.consensus_public_key): (v.consensus_public_key, voting_power(v.tokens)) for v in wanted}
    changes = []
    for member in current.validators:
        if member.address not in want:
            changes.append(ValidatorUpdate(member.public_key, 0))
    for addr, (pk, power) in want.items():
        have = current.get_by_address(addr)
        if have is None or have.power != power:
            changes.append(ValidatorUpdate(pk, power))
    changes.sort(key=lambda u: address_of(u.public_key))
    return changes


# ---- hooks ---------------------------------------------------------------------------------
def init_validator_sets(view: StateView, params: StakingParams) -> ValidatorSet:
    """Store set(1) and set(2) from the genesis validators; returns set(1)."""
    wanted = bonded_validators(view, params)
    if not wanted:
        raise ValueError("no genesis validator is eligible for the validator set")
    first = ValidatorSet.new([(v.consensus_public_key, voting_power(v.tokens)) for v in wanted])
    store_validator_set(view, 1, first)
    store_validator_set(view, 2, first.increment_proposer_priority(1))
    return first


def update_validator_set(view: StateView, height: int, params: StakingParams) -> tuple[ValidatorUpdate, ...]:
    """Store set(height + 2); returns the changes it made to set(height + 1)."""
    nxt = load_validator_set(view, height + 1)
    if nxt is None:
        raise LookupError(f"no validator set stored for height {height + 1}")
    wanted = bonded_validators(view, params)
    if not wanted:
        log.error("no eligible validator at height %d: the validator set carries over", height)
        changes: list[ValidatorUpdate] = []
    else:
        changes = compute_changes(nxt, wanted)
    updated = nxt.update_with_changes(changes) if changes else nxt
    for change in changes:
        addr = address_of(change.public_key)
        if change.power > 0 and not nxt.has_address(addr):
            set_signing_info(view, addr, None)  # a returning validator starts a fresh window
    store_validator_set(view, height + 2, updated.increment_proposer_priority(1))
    prune_validator_sets(view, height, params)
    return tuple(changes)


def prune_validator_sets(view: StateView, height: int, params: StakingParams) -> None:
    """Drop the set no later block can need (evidence age and liveness bound it)."""
    old = height - max(params.evidence_max_age_blocks, 1)
    if old >= 1:
        view.delete(keys.validator_set_key(old))
