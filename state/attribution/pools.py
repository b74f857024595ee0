"""Per-datanet reward pools: a reward-per-unit accumulator, O(1) per deposit and per claim.

Tokens deposited for a datanet sit in the REWARD_POOL module account. The datanet keeps
``reward_per_unit`` (scaled by PRECISION) and ``carry``, the scaled remainder the last division
could not hand out. A deposit of ``amount`` does

    num = amount * PRECISION + carry
    reward_per_unit += num // total_units
    carry = num % total_units

and an accepted contribution of ``size`` units that last settled at ``reward_entry`` is owed
``size * (reward_per_unit - reward_entry) + reward_frac`` scaled units, of which the whole tokens
move to ``unclaimed`` and the sub-token rest stays in ``reward_frac``. Summed over the datanet's
contributions, the scaled amounts owed plus ``carry`` equal PRECISION times the tokens deposited
minus those claimed, exactly, so nothing is ever lost to rounding and a claim can never take more
than the pool holds (see docs/attribution.md, "Reward pools").
"""

from __future__ import annotations

from dataclasses import replace

from state.attribution.records import ACCEPTED, Contribution, Datanet

PRECISION = 10**18


def units(c: Contribution, cap: int) -> int:
    """A contribution's weight in its datanet's pool: its validator-computed size, at most ``cap``
    (genesis ``pool_unit_cap``, immutable: joins and leaves must agree), so the largest document
    does not win the pool part by size alone."""
    return min(c.size, cap)


def settle(c: Contribution, dn: Datanet, cap: int) -> Contribution:
    """Fold the pool rewards an accepted contribution accrued since its last settlement into
    ``unclaimed`` (whole tokens) and ``reward_frac`` (the scaled rest)."""
    if c.status != ACCEPTED or c.reward_entry == dn.reward_per_unit:
        return c
    scaled = units(c, cap) * (dn.reward_per_unit - c.reward_entry) + c.reward_frac
    return replace(
        c,
        reward_entry=dn.reward_per_unit,
        reward_frac=scaled % PRECISION,
        unclaimed=c.unclaimed + scaled // PRECISION,
    )


def has_units(dn: Datanet) -> bool:
    """True when the datanet has accepted contributions to pay through its pool."""
    return dn.total_units > 0


def deposit(dn: Datanet, amount: int) -> Datanet:
    """Credit ``amount`` tokens (already moved into REWARD_POOL) to every accepted unit."""
    num = amount * PRECISION + dn.carry
    return replace(
        dn,
        reward_per_unit=dn.reward_per_unit + num // dn.total_units,
        carry=num % dn.total_units,
        rewards_in=dn.rewards_in + amount,
    )


def join(dn: Datanet, c: Contribution, cap: int) -> tuple[Datanet, Contribution]:
    """An accepted contribution starts earning from the current accumulator value."""
    dn2 = replace(dn, total_units=dn.total_units + units(c, cap), accepted=dn.accepted + 1)
    c2 = replace(c, status=ACCEPTED, reward_entry=dn.reward_per_unit, reward_frac=0)
    return dn2, c2


def leave(dn: Datanet, c: Contribution, cap: int) -> tuple[Datanet, Contribution]:
    """An accepted contribution stops earning: it is settled, its units leave the pool and its
    sub-token remainder goes back to the datanet's carry (so the scaled ledger stays exact).

    The returned contribution still holds its settled ``unclaimed`` tokens; the caller decides
    what happens to them.
    """
    s = settle(c, dn, cap)
    dn2 = replace(
        dn,
        total_units=dn.total_units - units(s, cap),
        accepted=dn.accepted - 1,
        carry=dn.carry + s.reward_frac,
    )
    return dn2, replace(s, reward_frac=0)
