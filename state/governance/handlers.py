"""Governance (docs/governance.md): proposals, deposits, votes, the tally and what a passed proposal does.

The transaction kinds (dispatched by state.transition through HANDLERS), each checking its rules
first and mutating second:
    submit_proposal(kind, title, summary, content, deposit)
    deposit(proposal, amount)
    vote(proposal, option)
and the block hooks called by apply_block:
    begin_block:          a scheduled software upgrade at this height (state/governance/upgrade.py)
    fund_community_pool:  community_pool_bps of the block's new fees, before staking pays the rest
    end_block:            (after staking end_block) expired deposit periods, then the tally of
                          every voting period ending at this height, by proposal id
Deposits sit in GOVERNANCE_ESCROW until refunded or burned.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from state import keys
from state.accounts import (
    AGENT_STAKE_POOL,
    BOND_ESCROW,
    FEE_COLLECTOR,
    REWARD_POOL,
    STAKING_POOL,
    UNBONDING_POOL,
    burn,
    get_account,
    get_chain_meta,
    move,
)
from state.codec import CodecError
from state.crypto import to_hex
from state.errors import TxRejected, require
from state.governance import records as R
from state.governance.params import ParamChangeError, changed_params
from state.governance.records import (
    COMMUNITY_POOL,
    GOVERNANCE_ESCROW,
    Proposal,
    VoteRecord,
    decode_content,
    deposits_of,
    get_proposal,
    get_upgrade_done,
    set_deposit,
    set_proposal,
)
from state.governance.tally import decide, tally_votes
from state.governance.upgrade import is_valid_upgrade_name, trigger_upgrade
from state.params import BPS, Params
from state.staking.records import get_delegation, iter_validators
from state.store import StateView
from state.tx import ProposalDeposit, ProposalVote, SubmitProposal, Tx

if TYPE_CHECKING:  # state.transition imports this module lazily
    from state.context import BlockContext

# Accounts that back records (their balance equals what the records say): never a spend recipient.
MODULE_ACCOUNTS = frozenset({FEE_COLLECTOR, BOND_ESCROW, REWARD_POOL, STAKING_POOL, UNBONDING_POOL,
                             AGENT_STAKE_POOL, GOVERNANCE_ESCROW, COMMUNITY_POOL})


def circulating_supply(view: StateView) -> int:
    meta = get_chain_meta(view)
    return meta.supply - meta.burned


def current_params(view: StateView) -> Params:
    params = view.get_obj(keys.params_key(), Params)
    assert params is not None, "state has no params"
    return params


# ---- transactions --------------------------------------------------------------------------
def process_submit_proposal(view: StateView, tx: Tx, ctx: "BlockContext") -> None:
    """A new proposal with the sender's initial deposit; voting starts once min_deposit is met."""
    body: SubmitProposal = tx.body
    g = ctx.params.governance
    require(body.kind in R.CONTENT_TYPES, "unknown_proposal_kind",
            f"kind {body.kind} is not one of {sorted(R.KIND_NAMES.items())}")
    # ASCII whitespace only: strip without arguments would read the running Python's Unicode data
    require(body.title.strip(" \t\n\r\f\v") != "", "empty_title", "a proposal needs a title")
    try:
        content = decode_content(body.kind, body.content)
    except CodecError as exc:
        raise TxRejected("invalid_content", f"not a {R.KIND_NAMES[body.kind]} content: {exc}") from None
    check_content(view, ctx, body.kind, content)
    min_initial = g.min_deposit * g.min_initial_deposit_bps // BPS
    require(body.deposit >= min_initial, "deposit_too_low",
            f"initial deposit {body.deposit} is below {min_initial} ({g.min_initial_deposit_bps} bps of "
            f"min_deposit {g.min_deposit})")
    move(view, tx.sender, GOVERNANCE_ESCROW, body.deposit)
    proposal_id = R.next_proposal_id(view)
    R.set_next_proposal_id(view, proposal_id + 1)
    p = Proposal(proposal_id, body.kind, body.title, body.summary, body.content, tx.sender, tx.hash,
                 R.DEPOSIT_PERIOD, ctx.height, ctx.height + g.deposit_period_blocks, 0, 0, body.deposit,
                 R.DEPOSITS_HELD, R.EMPTY_TALLY, "")
    set_deposit(view, proposal_id, tx.sender, body.deposit)
    if body.deposit >= g.min_deposit:
        p = start_voting(view, p, ctx)
    else:
        R.queue_add(view, keys.deposit_queue_key(p.deposit_end_height, proposal_id))
    set_proposal(view, p)


def check_content(view: StateView, ctx: "BlockContext", kind: int, content: Any) -> None:
    """The rules a proposal's content must meet to be submitted (and, again, to be executed)."""
    if kind == R.PARAM_CHANGE:
        try:
            changed_params(current_params(view), content.changes, circulating_supply(view))
        except ParamChangeError as exc:
            raise TxRejected("invalid_param_change", str(exc)) from None
    elif kind == R.COMMUNITY_POOL_SPEND:
        require(content.amount > 0, "zero_amount", "a community pool spend needs a positive amount")
        require(content.recipient not in MODULE_ACCOUNTS, "invalid_recipient",
                f"{to_hex(content.recipient)} is a module account")
        pool = get_account(view, COMMUNITY_POOL).balance
        require(content.amount <= pool, "insufficient_pool",
                f"the community pool holds {pool}, less than {content.amount}")
    elif kind == R.SOFTWARE_UPGRADE:
        require(is_valid_upgrade_name(content.name), "invalid_upgrade_name",
                "an upgrade name is 1-64 characters of A-Z a-z 0-9 . _ + - starting with a letter or digit")
        require(content.height > ctx.height, "upgrade_height_passed",
                f"upgrade height {content.height} is not after the current height {ctx.height}")
        require(get_upgrade_done(view, content.name) is None, "upgrade_done",
                f"an upgrade named {content.name!r} already took place")


def start_voting(view: StateView, p: Proposal, ctx: "BlockContext") -> Proposal:
    """Move a proposal whose deposit reached min_deposit into its voting period."""
    view.delete(keys.deposit_queue_key(p.deposit_end_height, p.id))
    end = ctx.height + ctx.params.governance.voting_period_blocks
    R.queue_add(view, keys.voting_queue_key(end, p.id))
    return dataclasses.replace(p, status=R.VOTING_PERIOD, voting_start_height=ctx.height, voting_end_height=end)


def process_deposit(view: StateView, tx: Tx, ctx: "BlockContext") -> None:
    """Add to a proposal's deposit while it is in its deposit or voting period."""
    body: ProposalDeposit = tx.body
    require(body.amount > 0, "zero_amount", "a deposit must be positive")
    p = get_proposal(view, body.proposal)
    require(p is not None, "unknown_proposal", f"no proposal {body.proposal}")
    assert p is not None
    require(p.status in (R.DEPOSIT_PERIOD, R.VOTING_PERIOD), "proposal_inactive",
            f"proposal {p.id} is {R.STATUS_NAMES[p.status]}: it takes no more deposits")
    move(view, tx.sender, GOVERNANCE_ESCROW, body.amount)
    set_deposit(view, p.id, tx.sender, R.get_deposit(view, p.id, tx.sender) + body.amount)
    p = dataclasses.replace(p, total_deposit=p.total_deposit + body.amount)
    if p.status == R.DEPOSIT_PERIOD and p.total_deposit >= ctx.params.governance.min_deposit:
        p = start_voting(view, p, ctx)
    set_proposal(view, p)


def has_stake(view: StateView, address: bytes) -> bool:
    """Whether ``address`` delegates to any validator (its own self-delegation included)."""
    return any(get_delegation(view, v.operator, address) > 0 for v in iter_validators(view))


def process_vote(view: StateView, tx: Tx, ctx: "BlockContext") -> None:
    """Cast (or replace) the sender's vote on a proposal in its voting period."""
    body: ProposalVote = tx.body
    require(body.option in R.OPTION_NAMES, "invalid_option",
            f"option {body.option} is not one of {sorted(R.OPTION_NAMES.items())}")
    p = get_proposal(view, body.proposal)
    require(p is not None, "unknown_proposal", f"no proposal {body.proposal}")
    assert p is not None
    require(p.status == R.VOTING_PERIOD, "not_voting_period",
            f"proposal {p.id} is {R.STATUS_NAMES[p.status]}, not in its voting period")
    require(has_stake(view, tx.sender), "no_stake",
            f"{to_hex(tx.sender)} delegates to no validator: only staked accounts vote")
    R.set_vote(view, p.id, tx.sender, VoteRecord(body.option, ctx.height))


HANDLERS: dict[type[Any], Any] = {
    SubmitProposal: process_submit_proposal,
    ProposalDeposit: process_deposit,
    ProposalVote: process_vote,
}


# ---- block hooks ---------------------------------------------------------------------------
def begin_block(view: StateView, ctx: "BlockContext") -> None:
    """A software upgrade scheduled at this height: stop (UpgradeNeeded) or record it done."""
    trigger_upgrade(view, ctx.height, ctx.upgrades)


def fund_community_pool(view: StateView, ctx: "BlockContext", fee_carry: int) -> None:
    """community_pool_bps of the fees this block added to FEE_COLLECTOR (not of a carry-over)."""
    new_fees = get_account(view, FEE_COLLECTOR).balance - fee_carry
    share = new_fees * ctx.params.governance.community_pool_bps // BPS
    if share > 0:
        move(view, FEE_COLLECTOR, COMMUNITY_POOL, share)


def end_block(view: StateView, ctx: "BlockContext") -> None:
    """Expire deposit periods ending now, then tally voting periods ending now (by id)."""
    for proposal_id in R.queued(view, keys.deposit_queue_prefix(ctx.height)):
        expire(view, ctx, proposal_id)
    for proposal_id in R.queued(view, keys.voting_queue_prefix(ctx.height)):
        finish(view, ctx, proposal_id)


def expire(view: StateView, ctx: "BlockContext", proposal_id: int) -> None:
    """Deposit period over without min_deposit: refund every deposit, delete the proposal."""
    view.delete(keys.deposit_queue_key(ctx.height, proposal_id))
    settle_deposits(view, proposal_id, burn_them=False)
    view.delete(keys.proposal_key(proposal_id))


def settle_deposits(view: StateView, proposal_id: int, burn_them: bool) -> int:
    """Refund (or burn) and delete every deposit of a proposal; returns the total."""
    total = 0
    for depositor, amount in deposits_of(view, proposal_id):
        if burn_them:
            burn(view, GOVERNANCE_ESCROW, amount)
        else:
            move(view, GOVERNANCE_ESCROW, depositor, amount)
        set_deposit(view, proposal_id, depositor, 0)
        total += amount
    return total


def finish(view: StateView, ctx: "BlockContext", proposal_id: int) -> None:
    """Tally, settle the deposits, and execute the proposal if it passed."""
    view.delete(keys.voting_queue_key(ctx.height, proposal_id))
    p = get_proposal(view, proposal_id)
    assert p is not None, f"queued proposal {proposal_id} is missing"
    t = tally_votes(view, proposal_id, ctx.params.staking)
    decision = decide(t, ctx.params.governance)
    settle_deposits(view, proposal_id, burn_them=decision.burn_deposits)
    status, result = (R.PASSED if decision.passed else R.REJECTED), decision.reason
    if decision.passed:
        try:
            with view.transaction():
                execute(view, ctx, p)
        except TxRejected as exc:
            status, result = R.FAILED, f"{decision.reason}; execution failed: {exc.reason}: {exc.message}"
        except ValueError as exc:  # a content this software cannot decode: fail it, never halt the chain
            status, result = R.FAILED, f"{decision.reason}; execution failed: {exc}"
    fate = R.DEPOSITS_BURNED if decision.burn_deposits else R.DEPOSITS_REFUNDED
    set_proposal(view, dataclasses.replace(p, status=status, final_tally=t, deposit_fate=fate, result=result))


def execute(view: StateView, ctx: "BlockContext", p: Proposal) -> None:
    """What a passed proposal does; raises TxRejected (and changes nothing) when it cannot."""
    content = decode_content(p.kind, p.content)
    if p.kind == R.PARAM_CHANGE:
        old = current_params(view)  # an earlier proposal of this block may have changed it
        try:
            new = changed_params(old, content.changes, circulating_supply(view))
        except ParamChangeError as exc:
            raise TxRejected("invalid_param_change", str(exc)) from None
        view.put_obj(keys.params_key(), new)
        if new.staking.signed_blocks_window != old.staking.signed_blocks_window:
            reset_liveness_windows(view)
    elif p.kind == R.COMMUNITY_POOL_SPEND:
        pool = get_account(view, COMMUNITY_POOL).balance
        require(content.amount <= pool, "insufficient_pool",
                f"the community pool holds {pool}, less than {content.amount}")
        move(view, COMMUNITY_POOL, content.recipient, content.amount)
    elif p.kind == R.SOFTWARE_UPGRADE:
        check_content(view, ctx, p.kind, content)  # the height may have passed while voting
        view.put_obj(keys.upgrade_plan_key(), R.UpgradePlan(content.name, content.height, content.info, p.id))
    elif p.kind == R.CANCEL_SOFTWARE_UPGRADE:
        view.delete(keys.upgrade_plan_key())


def reset_liveness_windows(view: StateView) -> None:
    """A new signed_blocks_window: every liveness window (sized for the old one) starts afresh."""
    for key, _ in list(view.iter_prefix(keys.signing_info_key(b""))):
        view.delete(key)
