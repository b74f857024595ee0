"""Staking (DESIGN section 3): validators, delegation, unbonding, slashing, rewards.

Handlers are registered in HANDLERS (body type -> handler) and dispatched by state.transition;
begin_block / end_block are called by apply_block.
"""

from __future__ import annotations

from typing import Any

HANDLERS: dict[type[Any], Any] = {}


def begin_block(view: Any, ctx: Any, evidence: Any, last_commit: Any) -> None:
    """Evidence and liveness processing (to be implemented with staking)."""


def end_block(view: Any, ctx: Any) -> Any:
    """Reward distribution, unbonding completion and validator-set changes (to be implemented)."""
    return None


def init_genesis(view: Any, genesis: Any) -> None:
    """Bond the genesis validators' stake (placeholder: escrow only, until staking lands)."""
    from state.accounts import STAKING_POOL, Account, get_account, set_account

    total = sum(v.stake for v in genesis.validators)
    acct = get_account(view, STAKING_POOL)
    set_account(view, STAKING_POOL, Account(acct.balance + total, acct.nonce))
