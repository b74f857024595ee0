"""Staking (DESIGN section 3): validators, delegation, unbonding, slashing, rewards.

The transaction kinds (dispatched by state.transition through HANDLERS), each checking its rules
first and mutating second:
    create_validator(consensus_public_key, self_stake, moniker)   sender = operator
    delegate(validator, amount)
    undelegate(validator, amount)
    unjail()
and the block hooks called by apply_block:
    begin_block: double-sign evidence, then liveness of the previous block's signers
    end_block:   matured unbondings, fee distribution, the validator set for height + 2
Bonded stake sits in STAKING_POOL, unbonding stake in UNBONDING_POOL; slashed stake is burned.
The full rules are in docs/staking.md.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from state import keys
from state.accounts import STAKING_POOL, UNBONDING_POOL, Account, get_account, move, set_account
from state.block import Commit, DuplicateVoteEvidence
from state.crypto import to_hex
from state.errors import GenesisError, require
from state.params import StakingParams
from state.staking.rewards import distribute_fees
from state.staking.slashing import process_evidence, process_liveness
from state.staking.records import (
    Delegation,
    UnbondingEntry,
    Validator,
    decode_record,
    get_delegation as delegation_amount,
    get_unbonding,
    get_validator as load_validator,
    is_consensus_key_used,
    is_valid_consensus_key,
    iter_unbondings,
    iter_validators,
    link_consensus_key,
    operator_of_consensus,
    set_delegation,
    set_unbonding,
    set_validator,
    unbondings_maturing_at,
    voting_power,
)
from state.store import StateView
from state.tx import CreateValidator, Delegate, Tx, Undelegate, Unjail
from state.staking.validator_updates import init_validator_sets, load_validator_set, update_validator_set

if TYPE_CHECKING:  # state.transition imports this module lazily
    from state.context import BlockContext


# ---- transactions --------------------------------------------------------------------------
def process_create_validator(view: StateView, tx: Tx, ctx: "BlockContext") -> None:
    """A new validator run by the sender, bonded with at least min_self_stake of its own."""
    body: CreateValidator = tx.body
    operator = tx.sender
    min_self = ctx.params.staking.min_self_stake
    require(load_validator(view, operator) is None, "validator_exists",
            f"{to_hex(operator)} already runs a validator")
    require(is_valid_consensus_key(body.consensus_public_key), "invalid_consensus_key",
            "the consensus public key is not a valid Ed25519 key")
    require(not is_consensus_key_used(view, body.consensus_public_key), "consensus_key_in_use",
            "the consensus key belongs to another validator")
    require(body.self_stake > 0 and body.self_stake >= min_self, "self_stake_too_low",
            f"self stake {body.self_stake} is below the minimum {max(min_self, 1)}")
    move(view, operator, STAKING_POOL, body.self_stake)
    v = Validator(operator, body.consensus_public_key, body.moniker, body.self_stake, 0, 0, 0, ctx.height)
    set_validator(view, v)
    link_consensus_key(view, v)
    set_delegation(view, operator, operator, body.self_stake)


def process_delegate(view: StateView, tx: Tx, ctx: "BlockContext") -> None:
    """Bond ``amount`` of the sender's balance to a validator that is not tombstoned."""
    body: Delegate = tx.body
    require(body.amount > 0, "zero_amount", "delegation amount must be positive")
    v = load_validator(view, body.validator)
    require(v is not None, "unknown_validator", f"no validator {to_hex(body.validator)}")
    assert v is not None
    require(not v.tombstoned, "validator_tombstoned", "the validator double-signed and is tombstoned")
    move(view, tx.sender, STAKING_POOL, body.amount)
    set_delegation(view, v.operator, tx.sender, delegation_amount(view, v.operator, tx.sender) + body.amount)
    set_validator(view, dataclasses.replace(v, tokens=v.tokens + body.amount))


def process_undelegate(view: StateView, tx: Tx, ctx: "BlockContext") -> None:
    """Start unbonding ``amount``: paid back at height + unbonding_blocks, slashable until then."""
    body: Undelegate = tx.body
    require(body.amount > 0, "zero_amount", "undelegation amount must be positive")
    v = load_validator(view, body.validator)
    require(v is not None, "unknown_validator", f"no validator {to_hex(body.validator)}")
    assert v is not None
    bonded = delegation_amount(view, v.operator, tx.sender)
    require(bonded > 0, "no_delegation", f"no delegation to {to_hex(v.operator)}")
    require(body.amount <= bonded, "insufficient_delegation",
            f"delegation {bonded} is below {body.amount}")
    completion = ctx.height + ctx.params.staking.unbonding_blocks
    move(view, STAKING_POOL, UNBONDING_POOL, body.amount)
    set_delegation(view, v.operator, tx.sender, bonded - body.amount)
    set_validator(view, dataclasses.replace(v, tokens=v.tokens - body.amount))
    # Undelegations of one pair in one block share a completion height, hence one entry.
    entry = get_unbonding(view, completion, v.operator, tx.sender)
    pending = entry.amount if entry is not None else 0
    set_unbonding(view, completion, v.operator, tx.sender, UnbondingEntry(pending + body.amount, ctx.height))


def process_unjail(view: StateView, tx: Tx, ctx: "BlockContext") -> None:
    """The sender's jailed validator returns (at height + 2) once its jail period is over."""
    v = load_validator(view, tx.sender)
    require(v is not None, "unknown_validator", f"{to_hex(tx.sender)} runs no validator")
    assert v is not None
    require(not v.tombstoned, "validator_tombstoned", "a tombstoned validator can never return")
    require(bool(v.jailed), "not_jailed", "the validator is not jailed")
    require(ctx.height >= v.jailed_until, "jail_period_not_over",
            f"jailed until height {v.jailed_until}")
    min_self = ctx.params.staking.min_self_stake
    require(delegation_amount(view, v.operator, v.operator) >= min_self, "self_stake_too_low",
            f"self stake is below the minimum {min_self}")
    set_validator(view, dataclasses.replace(v, jailed=0))


HANDLERS: dict[type[Any], Any] = {
    CreateValidator: process_create_validator,
    Delegate: process_delegate,
    Undelegate: process_undelegate,
    Unjail: process_unjail,
}


# ---- block hooks ---------------------------------------------------------------------------
def begin_block(view: StateView, ctx: "BlockContext", evidence: Any, last_commit: Any) -> None:
    """Evidence first (a tombstoned validator is then out of liveness), then liveness.

    Raises InvalidBlock for evidence that does not hold or a commit for the wrong height.
    """
    params = ctx.params.staking
    for ev in evidence or ():
        assert isinstance(ev, DuplicateVoteEvidence)
        process_evidence(view, ctx.chain_id, ctx.height, params, ev)
    assert last_commit is None or isinstance(last_commit, Commit)
    process_liveness(view, ctx.height, params, last_commit)


def end_block(view: StateView, ctx: "BlockContext") -> Any:
    """Pay matured unbondings, distribute the fee pool, fix the validator set of height + 2.

    Returns the validator-set changes (consensus ValidatorUpdate, power 0 = removal).
    """
    complete_unbondings(view, ctx.height)
    distribute_fees(view, ctx.height, ctx.proposer)
    return update_validator_set(view, ctx.height, ctx.params.staking)


def complete_unbondings(view: StateView, height: int) -> None:
    """Entries completing at ``height`` go from UNBONDING_POOL back to their delegators."""
    for validator, delegator, entry in unbondings_maturing_at(view, height):
        move(view, UNBONDING_POOL, delegator, entry.amount)
        set_unbonding(view, height, validator, delegator, None)


def init_genesis(view: StateView, genesis: Any) -> None:
    """Bond each genesis validator's stake as its self-delegation; store sets 1 and 2."""
    params = genesis.params.staking
    try:
        for gv in sorted(genesis.validators, key=lambda g: g.operator):
            bond_genesis_validator(view, params, gv)
        init_validator_sets(view, params)
    except GenesisError:
        raise
    except ValueError as exc:  # CodecError, InvalidValidatorUpdate: a genesis that cannot be built
        raise GenesisError(str(exc)) from exc


def bond_genesis_validator(view: StateView, params: StakingParams, gv: Any) -> None:
    where = f"validator {to_hex(gv.operator)}"
    if not is_valid_consensus_key(gv.consensus_public_key):
        raise GenesisError(f"{where}: invalid consensus key")
    if is_consensus_key_used(view, gv.consensus_public_key):
        raise GenesisError(f"{where}: consensus key used twice")
    if gv.stake < params.min_self_stake:
        raise GenesisError(f"{where}: stake {gv.stake} is below min_self_stake {params.min_self_stake}")
    v = Validator(gv.operator, gv.consensus_public_key, gv.moniker, gv.stake, 0, 0, 0, 0)
    set_validator(view, v)
    link_consensus_key(view, v)
    set_delegation(view, gv.operator, gv.operator, gv.stake)
    pool = get_account(view, STAKING_POOL)  # genesis stake is part of the supply, held by the pool
    set_account(view, STAKING_POOL, Account(pool.balance + gv.stake, pool.nonce))


# ---- queries (RPC): plain JSON-able dicts, byte strings as 0x hex -------------------------------
def validator_info(view: StateView, v: Validator) -> dict[str, Any]:

    return {
        "operator": to_hex(v.operator),
        "consensus_public_key": to_hex(v.consensus_public_key),
        "consensus_address": to_hex(v.consensus_address),
        "moniker": v.moniker,
        "tokens": v.tokens,
        "self_stake": delegation_amount(view, v.operator, v.operator),
        "voting_power": voting_power(v.tokens),
        "jailed": bool(v.jailed),
        "jailed_until": v.jailed_until,
        "tombstoned": bool(v.tombstoned),
        "created_height": v.created_height,
    }


def get_validator(view: StateView, operator: bytes) -> dict[str, Any] | None:
    """One validator by operator address, or None."""
    v = load_validator(view, operator)
    return validator_info(view, v) if v is not None else None


def list_validators(view: StateView) -> list[dict[str, Any]]:
    """Every validator (jailed and tombstoned included), by tokens descending then operator."""
    vals = sorted(iter_validators(view), key=lambda v: (-v.tokens, v.operator))
    return [validator_info(view, v) for v in vals]


def validator_set_at(view: StateView, height: int) -> dict[str, Any] | None:
    """The set that signs ``height`` (CometBFT `validators` shape), or None if not stored."""
    vset = load_validator_set(view, height)
    if vset is None:
        return None
    return {
        "block_height": height,
        "hash": to_hex(vset.hash()),
        "total": len(vset.validators),
        "total_voting_power": vset.total_power,
        "proposer": to_hex(vset.get_proposer().address),
        "validators": [
            {
                "address": to_hex(m.address),
                "pub_key": to_hex(m.public_key),
                "operator": to_hex(operator_of_consensus(view, m.address) or b""),
                "voting_power": m.power,
                "proposer_priority": m.proposer_priority,
            }
            for m in vset.validators
        ],
    }


def get_delegation(view: StateView, validator: bytes, delegator: bytes) -> dict[str, Any] | None:
    """One delegation, or None when there is none."""
    amount = delegation_amount(view, validator, delegator)
    if amount == 0:
        return None
    return {"validator": to_hex(validator), "delegator": to_hex(delegator), "amount": amount}


def delegations(view: StateView, delegator: bytes | None = None, validator: bytes | None = None) -> list[dict[str, Any]]:
    """Delegations filtered by delegator and/or validator, by validator then delegator.

    With only a delegator this scans every delegation (RPC use, not consensus).
    """
    prefix = keys.delegation_key(validator, b"") if validator is not None else keys.delegation_key(b"", b"")
    out = []
    for key, raw in view.iter_prefix(prefix):
        val, dele = key[-40:-20], key[-20:]  # key ends with validator + delegator addresses
        if delegator is None or dele == delegator:
            out.append({"validator": to_hex(val), "delegator": to_hex(dele),
                        "amount": decode_record(Delegation, raw).amount})
    return out


def unbondings(view: StateView, delegator: bytes | None = None, validator: bytes | None = None) -> list[dict[str, Any]]:
    """Pending unbonding entries filtered by delegator and/or validator, by completion height."""
    out = []
    for completion, val, dele, entry in iter_unbondings(view):
        if (delegator is None or dele == delegator) and (validator is None or val == validator):
            out.append({
                "validator": to_hex(val),
                "delegator": to_hex(dele),
                "amount": entry.amount,
                "creation_height": entry.creation_height,
                "completion_height": completion,
            })
    return out
