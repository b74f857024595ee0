"""Block rewards: the whole fee pool, every block, to validators and their delegators, exactly.

Rule (docs/staking.md, "Rewards"): in end_block of height H the whole FEE_COLLECTOR balance F
(transaction fees and the validators' share of inference fees) is paid out, by direct crediting:

1. to the members of the validator set that signed H (validator_set_key(H)) that are neither jailed
   nor tombstoned, each ``F * power // total_power``; the rounding remainder goes to the block's
   proposer (or, if the proposer gets nothing, to the first recipient in set order);
2. within each validator, its amount R to its delegators (self-delegation included) by their
   current stake, each ``R * stake // tokens``; the rounding remainder goes to the validator's
   operator.

So the pool is always emptied (unless no validator is eligible, then it carries over) and every
token lands in a balance: conservation holds at every block.
"""

from __future__ import annotations

from state.accounts import FEE_COLLECTOR, get_account, move
from state.staking.records import delegations_of, get_validator
from state.store import StateView
from state.staking.validator_updates import Member, members_at


def split_by_weight(amount: int, weights: list[int], remainder_to: int) -> list[int]:
    """``amount * w // sum(weights)`` each, plus the rounding remainder at ``remainder_to``."""
    total = sum(weights)
    if total <= 0:
        raise ValueError("a weighted split needs a positive total weight")
    shares = [amount * w // total for w in weights]
    shares[remainder_to] += amount - sum(shares)
    return shares


def is_reward_eligible(view: StateView, member: Member) -> bool:
    v = get_validator(view, member.operator)
    return v is not None and not v.jailed and not v.tombstoned


def proposer_index(members: list[Member], proposer: bytes) -> int:
    """Position of the block's proposer (consensus or operator address); 0 when absent."""
    for i, m in enumerate(members):
        if proposer in (m.address, m.operator):
            return i
    return 0


def distribute_fees(view: StateView, height: int, proposer: bytes) -> None:
    """Pay the whole fee pool to the set of ``height`` by power, then to delegators by stake."""
    pool = get_account(view, FEE_COLLECTOR).balance
    if pool == 0:
        return
    members = [m for m in (members_at(view, height) or []) if is_reward_eligible(view, m)]
    if not members:
        return  # nobody may be paid this block: the pool waits for the next one
    shares = split_by_weight(pool, [m.power for m in members], proposer_index(members, proposer))
    for member, share in zip(members, shares):
        pay_delegators(view, member.operator, share)


def pay_delegators(view: StateView, operator: bytes, amount: int) -> None:
    """Credit ``amount`` from the fee pool to one validator's delegators by stake."""
    if amount == 0:
        return
    delegations = delegations_of(view, operator)
    total = sum(stake for _, stake in delegations)
    paid = 0
    if total > 0:
        for delegator, stake in delegations:
            share = amount * stake // total
            move(view, FEE_COLLECTOR, delegator, share)
            paid += share
    move(view, FEE_COLLECTOR, operator, amount - paid)  # the rounding remainder
