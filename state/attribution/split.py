"""The arithmetic of an inference's fee split: pure integer functions, each exact to the token.

Every function returns amounts that sum exactly to what it was given; the rounding remainder of
each division goes to one fixed, documented recipient (docs/attribution.md, "Scoring and fee
split"):

- fee split: validators, model, adapter, agent floor their bps; data takes the rest (the missing
  parties' shares and the rounding);
- pro-rata splits (matched contributions by score, a training mix by weight): each floors its
  share, the first entry (top score; first datanet of the mix as registered) takes the rest;
- lineage: a model passes ``floor(part * lineage_bps / 10000)`` up to its parent and keeps the
  rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from state.params import BPS, AttributionParams


@dataclass(frozen=True)
class FeeSplit:
    validators: int
    model: int
    adapter: int
    agent: int
    data: int

    @property
    def total(self) -> int:
        return self.validators + self.model + self.adapter + self.agent + self.data


def split_fee(payment: int, a: AttributionParams, has_adapter: bool, has_agent: bool) -> FeeSplit:
    """Top-level split by genesis bps; a missing adapter or agent leaves its share to data."""
    validators = payment * a.validators_bps // BPS
    model = payment * a.model_bps // BPS
    adapter = payment * a.adapter_bps // BPS if has_adapter else 0
    agent = payment * a.agent_bps // BPS if has_agent else 0
    return FeeSplit(validators, model, adapter, agent, payment - validators - model - adapter - agent)


def split_data(data: int, a: AttributionParams, covered: int, shingles: int) -> tuple[int, int]:
    """(matched part, pool part) of the data share. The matched part scales with the evidence:
    ``data * matched_bps * covered // (10000 * shingles)`` where ``covered`` output shingles of
    ``shingles`` are credited to paid spans; with no match the pool part takes it all."""
    matched = data * a.matched_bps * covered // (BPS * shingles) if covered else 0
    return matched, data - matched


def split_pro_rata(total: int, weights: list[int]) -> list[int]:
    """``total * w // sum(weights)`` each; the first entry also takes the remainder."""
    denominator = sum(weights)
    if denominator == 0:
        raise ValueError("pro-rata split needs a positive total weight")
    amounts = [total * w // denominator for w in weights]
    amounts[0] += total - sum(amounts)
    return amounts


def split_lineage(
    pool: int, chain: list[tuple[tuple[tuple[bytes, int], ...], int]]
) -> dict[bytes, int]:
    """Spread the pool part over a lineage chain, then over each model's training mix.

    ``chain`` lists (training mix, lineage_bps) from the inferred model up through its ancestors.
    Each model passes ``floor(part * lineage_bps / 10000)`` of the part it received up to its
    parent (the last model in the chain passes nothing) and splits the rest over its mix by
    weight. A datanet named by several models of the chain receives the sum. Returns
    {datanet id: amount}; the amounts sum to ``pool``.
    """
    out: dict[bytes, int] = {}
    part = pool
    for i, (mix, lineage_bps) in enumerate(chain):
        up = part * lineage_bps // BPS if i + 1 < len(chain) else 0
        own = part - up
        for (datanet, _), amount in zip(mix, split_pro_rata(own, [w for _, w in mix]), strict=True):
            out[datanet] = out.get(datanet, 0) + amount
        part = up
    return out
