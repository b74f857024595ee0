"""Fee distribution: the whole fee pool to the validators by power, then to delegators by stake,
exactly, with hand-computed amounts and conservation at every block."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from staking_support import (
    CHAIN_ID,
    V0,
    V1,
    assert_staking_invariants,
    balance,
    make_genesis,
    next_block,
    open_chain,
    set_powers,
)
from state.accounts import FEE_COLLECTOR
from state.chain import Chain
from state.crypto import PrivateKey
from state.staking.rewards import split_by_weight
from state.tx import Delegate, Transfer, sign_tx

DAN = PrivateKey.from_int(21)  # delegates to V1
EVE = PrivateKey.from_int(22)  # pays fees
WATCHED = (V0.address, V1.address, DAN.address)


@pytest.fixture
def chain(tmp_path) -> Iterator[Chain]:  # type: ignore[no-untyped-def]
    """V0 (1000 power) and V1 (2000 + DAN's 1000 = 3000 power from height 3)."""
    balances = {DAN.address: 2_000_000, EVE.address: 1_000_000}
    # the community pool's share is governance's (tests/test_governance_*.py): here every fee is paid out
    no_pool = {"governance": {"community_pool_bps": 0}}
    c = open_chain(tmp_path / "db", make_genesis(balances, [(V0, 1_000_000), (V1, 2_000_000)], no_pool))
    next_block(c, [sign_tx(DAN, CHAIN_ID, 0, Delegate(V1.address, 1_000_000), 1)])  # height 1
    next_block(c)  # height 2
    assert set_powers(c, 3) == {V0.address: 1000, V1.address: 3000}
    yield c
    c.db.close()


def block_with_fee(chain: Chain, fee: int, nonce: int, proposer: bytes) -> dict[bytes, int]:
    """Commit a block whose only fee is ``fee``; returns the balance change of each watched account."""
    before = {a: balance(chain, a) for a in WATCHED}
    _, results = next_block(chain, [sign_tx(EVE, CHAIN_ID, nonce, Transfer(EVE.address, 1), fee)],
                            proposer=proposer)
    assert results[0].ok
    assert balance(chain, FEE_COLLECTOR) == 0  # the whole pool is paid out every block
    assert_staking_invariants(chain.db.view())
    return {a: balance(chain, a) - before[a] for a in WATCHED}


def test_fees_split_by_power_then_by_stake_with_remainders_to_proposer_and_operator(chain) -> None:  # type: ignore[no-untyped-def]
    # F = 1003 over powers 1000 : 3000 -> V0 250 (250.75), V1 752 (752.25), remainder 1 to the
    # proposer V0 -> 251. V1's 752 over stakes 2M : 1M -> operator 501 (501.33), DAN 250 (250.67),
    # remainder 1 to the operator -> 502. 251 + 502 + 250 = 1003.
    delta = block_with_fee(chain, 1003, 0, proposer=V0.address)
    assert delta == {V0.address: 251, V1.address: 502, DAN.address: 250}


def test_remainder_follows_the_proposer(chain) -> None:  # type: ignore[no-untyped-def]
    # Same F with V1 proposing: V0 250, V1 752 + 1 = 753 -> operator 502 (502.0), DAN 251 (251.0).
    delta = block_with_fee(chain, 1003, 0, proposer=V1.address)
    assert delta == {V0.address: 250, V1.address: 502, DAN.address: 251}


def test_unknown_proposer_leaves_the_remainder_to_the_first_member(chain) -> None:  # type: ignore[no-untyped-def]
    # The first member in set order is V1 (highest power): the same split as V1 proposing.
    delta = block_with_fee(chain, 1003, 0, proposer=PrivateKey.from_int(77).address)
    assert delta == {V0.address: 250, V1.address: 502, DAN.address: 251}


def test_every_block_conserves_supply_and_empties_the_pool(chain) -> None:  # type: ignore[no-untyped-def]
    total = 0
    for nonce, fee in enumerate([1, 2, 3, 997, 4001]):
        delta = block_with_fee(chain, fee, nonce, proposer=V0.address)
        assert sum(delta.values()) == fee
        total += fee
    assert balance(chain, EVE.address) == 1_000_000 - total


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**9), min_size=1, max_size=12), st.data())
def test_split_by_weight_is_exact_and_floors_every_other_share(amount, weights, data) -> None:  # type: ignore[no-untyped-def]
    if sum(weights) == 0:
        weights[0] = 1
    at = data.draw(st.integers(0, len(weights) - 1))
    shares = split_by_weight(amount, weights, at)
    total = sum(weights)
    assert sum(shares) == amount
    for i, (share, w) in enumerate(zip(shares, weights)):
        if i != at:  # the floor of its exact fraction: share * total <= amount * w < (share + 1) * total
            assert share * total <= amount * w < (share + 1) * total
    # the remainder recipient gets at least its own fraction, and less than one token per share more
    assert amount * weights[at] < (shares[at] + 1) * total
    assert (shares[at] - len(weights)) * total < amount * weights[at]
