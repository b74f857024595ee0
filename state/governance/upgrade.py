"""Software upgrades: the plan a passed proposal schedules, and the stop at its height.

Rule (docs/governance.md, "Software upgrades"): at the start of block ``plan.height``
(governance begin_block, before anything else of the block), a node whose software does not
provide ``plan.name`` must not execute the block: the state transition raises UpgradeNeeded and
the node stops with one message. A node that provides it records UpgradeDone(height) under the
name, deletes the plan and goes on. Which names a node's software provides is the node's business
(node/app.py: its version string plus every ``--upgrade-name``); the state transition is told
through ``BlockContext.upgrades`` (None: no check, for tools and tests that replay blocks).
"""

from __future__ import annotations

import re

from state import keys
from state.governance.records import UpgradeDone, UpgradePlan, get_upgrade_plan
from state.store import StateView

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


class UpgradeNeeded(Exception):
    """This node's software cannot execute the block at a scheduled upgrade's height."""

    def __init__(self, plan: UpgradePlan, provided: frozenset[str] | set[str]) -> None:
        self.plan = plan
        super().__init__(upgrade_message(plan, provided))


def upgrade_message(plan: UpgradePlan, provided: frozenset[str] | set[str]) -> str:
    return (f'UPGRADE "{plan.name}" NEEDED at height {plan.height} (proposal {plan.proposal}): this node '
            f"provides {sorted(provided)}; restart it on software that provides \"{plan.name}\" "
            f"(a release whose version is {plan.name}, or `attrchain node run --upgrade-name {plan.name}`)"
            + (f"; info: {plan.info}" if plan.info else ""))


def is_valid_upgrade_name(name: str) -> bool:
    return NAME_RE.fullmatch(name) is not None


def pending_upgrade_at(view: StateView, height: int, provided: frozenset[str] | set[str]) -> UpgradePlan | None:
    """The plan that stops this node before block ``height``, or None."""
    plan = get_upgrade_plan(view)
    if plan is not None and plan.height == height and plan.name not in provided:
        return plan
    return None


def trigger_upgrade(view: StateView, height: int, provided: frozenset[str] | set[str] | None) -> None:
    """begin_block: at the plan's height, stop (UpgradeNeeded) or record it as done."""
    plan = get_upgrade_plan(view)
    if plan is None or plan.height != height:
        return
    if provided is not None and plan.name not in provided:
        raise UpgradeNeeded(plan, provided)
    view.put_obj(keys.upgrade_done_key(plan.name), UpgradeDone(height))
    view.delete(keys.upgrade_plan_key())
