"""The tally: bonded stake behind each option, and the decision (docs/governance.md, "Tally").

Rule (Cosmos x/gov, integers instead of decimals), in end_block of the voting period's last
height, on the state after that block's transactions and staking end_block:
- bonded validators are those ``bonded_validators`` returns (eligible, top ``max_validators``);
  ``bonded`` = the sum of their tokens. Stake delegated to anyone else does not vote.
- each delegation to a bonded validator counts for its delegator's vote if the delegator voted,
  else for the validator operator's vote if the operator voted, else for nothing. A vote's weight
  is the stake at tally time, not at the time it was cast.
- ``voted * 10000 < quorum_bps * bonded``            -> rejected, deposits burned (quorum)
- everyone who voted abstained                        -> rejected, deposits refunded
- ``no_with_veto * 10000 > veto_bps * voted``         -> rejected, deposits burned (veto)
- ``yes * 10000 > threshold_bps * (voted - abstain)`` -> passed, deposits refunded
- otherwise                                           -> rejected, deposits refunded
(no bonded stake at all: rejected, deposits refunded)
"""

from __future__ import annotations

from typing import NamedTuple

from state.governance.records import ABSTAIN, NO, NO_WITH_VETO, YES, Tally, votes_of
from state.params import BPS, GovernanceParams, StakingParams
from state.staking.records import delegations_of
from state.staking.validator_updates import bonded_validators
from state.store import StateView


def tally_votes(view: StateView, proposal_id: int, staking: StakingParams) -> Tally:
    """Bonded stake behind each option of one proposal, from the current state."""
    votes = {voter: v.option for voter, v in votes_of(view, proposal_id)}
    sums = {YES: 0, ABSTAIN: 0, NO: 0, NO_WITH_VETO: 0}
    bonded = 0
    for validator in bonded_validators(view, staking):
        bonded += validator.tokens
        inherited = validator.tokens  # what the operator's vote carries: delegations whose owner did not vote
        if votes:
            for delegator, amount in delegations_of(view, validator.operator):
                option = votes.get(delegator)
                if option is not None:
                    sums[option] += amount
                    inherited -= amount
        own = votes.get(validator.operator)
        if own is not None:
            sums[own] += inherited
    return Tally(sums[YES], sums[ABSTAIN], sums[NO], sums[NO_WITH_VETO], bonded)


class Decision(NamedTuple):
    passed: bool
    burn_deposits: bool
    reason: str


def decide(t: Tally, params: GovernanceParams) -> Decision:
    """The outcome of a final tally under the governance params in force at the tally."""
    voted = t.voted
    if t.bonded == 0:
        return Decision(False, False, "no bonded stake")
    if voted * BPS < params.quorum_bps * t.bonded:
        return Decision(False, True, f"quorum not reached: {voted} of {t.bonded} bonded voted, "
                                     f"{params.quorum_bps} bps needed")
    if voted == t.abstain:
        return Decision(False, False, "every vote abstained")
    if t.no_with_veto * BPS > params.veto_bps * voted:
        return Decision(False, True, f"vetoed: {t.no_with_veto} of {voted} voted no_with_veto, "
                                     f"more than {params.veto_bps} bps")
    if t.yes * BPS > params.threshold_bps * (voted - t.abstain):
        return Decision(True, False, f"passed: {t.yes} yes of {voted - t.abstain} non-abstain, "
                                     f"more than {params.threshold_bps} bps")
    return Decision(False, False, f"threshold not reached: {t.yes} yes of {voted - t.abstain} non-abstain, "
                                  f"{params.threshold_bps} bps needed")
