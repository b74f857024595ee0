"""Staking transactions, one rule per test: create_validator, delegate, undelegate, unbonding."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from staking_support import (
    V0,
    apply_alone,
    assert_staking_invariants,
    balance,
    make_genesis,
    next_block,
    open_chain,
    set_powers,
)
from state.staking import handlers as staking
from state.accounts import STAKING_POOL, UNBONDING_POOL
from state.chain import Chain
from state.crypto import PrivateKey, address_of
from state.tx import CreateValidator, Delegate, Transfer, Undelegate, Unjail, sign_tx
from staking_support import CHAIN_ID
from state.staking.validator_set import ValidatorUpdate

ALICE = PrivateKey.from_int(1)
BOB = PrivateKey.from_int(2)
CAROL = PrivateKey.from_int(3)
CONS_A = PrivateKey.from_int(601)
CONS_B = PrivateKey.from_int(602)
NOBODY = PrivateKey.from_int(999).address


@pytest.fixture
def chain(tmp_path) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """Factory: a chain with V0 at genesis and ALICE/BOB/CAROL funded."""
    opened: list[Chain] = []

    def factory(**overrides: Any) -> Chain:
        balances = {ALICE.address: 10_000_000, BOB.address: 2_000, CAROL.address: 1_000_000}
        c = open_chain(tmp_path / f"db{len(opened)}", make_genesis(balances, overrides=overrides or None))
        opened.append(c)
        return c

    yield factory
    for c in opened:
        c.db.close()


def create(key: PrivateKey, nonce: int, cons: PrivateKey, stake: int, fee: int = 1):  # type: ignore[no-untyped-def]
    return sign_tx(key, CHAIN_ID, nonce, CreateValidator(cons.public_key, stake, "node"), fee)


def assert_rejected(chain: Chain, tx: Any, reason: str) -> None:
    result, writes = apply_alone(chain, tx)
    assert not result.ok and result.reason == reason, result
    assert writes == {}


# ---- create_validator ----------------------------------------------------------------------
def test_create_validator_bonds_self_stake_and_joins_at_h_plus_2(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain()
    ex, results = next_block(c, [create(ALICE, 0, CONS_A, 50_000, fee=3)])
    assert results[0].ok
    view = c.db.view()
    assert balance(c, ALICE.address) == 10_000_000 - 50_000 - 3
    assert balance(c, STAKING_POOL) == 1_000_000 + 50_000
    info = staking.get_validator(view, ALICE.address)
    assert info is not None
    assert (info["tokens"], info["self_stake"], info["voting_power"]) == (50_000, 50_000, 50)
    assert info["consensus_address"] == "0x" + CONS_A.address.hex()
    assert (info["jailed"], info["tombstoned"], info["created_height"]) == (False, False, 1)
    assert staking.get_delegation(view, ALICE.address, ALICE.address)["amount"] == 50_000  # type: ignore[index]
    # block 1's change: set(2) was fixed before it, set(3) carries it
    assert set_powers(c, 2) == {V0.address: 1000}
    assert set_powers(c, 3) == {V0.address: 1000, CONS_A.address: 50}
    assert ex.result.validator_updates == (ValidatorUpdate(CONS_A.public_key, 50),)
    assert_staking_invariants(view)


def test_create_validator_rejections_change_nothing(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain()
    next_block(c, [create(ALICE, 0, CONS_A, 50_000)])
    assert_rejected(c, create(ALICE, 1, CONS_B, 50_000), "validator_exists")
    assert_rejected(c, create(CAROL, 0, CONS_A, 50_000), "consensus_key_in_use")
    assert_rejected(c, create(CAROL, 0, V0, 50_000), "consensus_key_in_use")
    assert_rejected(c, create(CAROL, 0, CONS_B, 999), "self_stake_too_low")
    assert_rejected(c, create(CAROL, 0, CONS_B, 0), "self_stake_too_low")
    assert_rejected(c, create(BOB, 0, CONS_B, 5_000), "insufficient_balance")
    identity_point = b"\x01" + bytes(31)  # small order: would verify forged signatures
    bad = sign_tx(CAROL, CHAIN_ID, 0, CreateValidator(identity_point, 5_000, "x"), 1)
    assert_rejected(c, bad, "invalid_consensus_key")
    not_on_curve = b"\xff" * 32
    bad = sign_tx(CAROL, CHAIN_ID, 0, CreateValidator(not_on_curve, 5_000, "x"), 1)
    assert_rejected(c, bad, "invalid_consensus_key")


def test_min_self_stake_zero_still_needs_a_positive_stake(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain(staking={"min_self_stake": 0})
    assert_rejected(c, create(CAROL, 0, CONS_B, 0), "self_stake_too_low")


# ---- delegate ------------------------------------------------------------------------------
def test_delegate_adds_to_tokens_and_power_at_h_plus_2(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain()
    next_block(c, [create(ALICE, 0, CONS_A, 50_000)])
    _, results = next_block(c, [sign_tx(CAROL, CHAIN_ID, 0, Delegate(ALICE.address, 30_000), 1)])
    assert results[0].ok
    view = c.db.view()
    assert balance(c, CAROL.address) == 1_000_000 - 30_000 - 1
    assert staking.get_delegation(view, ALICE.address, CAROL.address)["amount"] == 30_000  # type: ignore[index]
    assert staking.get_validator(view, ALICE.address)["tokens"] == 80_000  # type: ignore[index]
    assert set_powers(c, 3)[CONS_A.address] == 50  # block 2's change is not in set(3)
    assert set_powers(c, 4)[CONS_A.address] == 80
    assert_staking_invariants(view)


def test_delegate_rejections_change_nothing(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain()
    next_block(c, [create(ALICE, 0, CONS_A, 50_000)])
    assert_rejected(c, sign_tx(CAROL, CHAIN_ID, 0, Delegate(ALICE.address, 0), 1), "zero_amount")
    assert_rejected(c, sign_tx(CAROL, CHAIN_ID, 0, Delegate(NOBODY, 10), 1), "unknown_validator")
    assert_rejected(c, sign_tx(BOB, CHAIN_ID, 0, Delegate(ALICE.address, 2_000), 1), "insufficient_balance")


# ---- undelegate and unbonding --------------------------------------------------------------
def test_undelegate_moves_stake_to_unbonding_and_pays_back_exactly_at_maturity(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain(staking={"unbonding_blocks": 3})
    next_block(c, [create(ALICE, 0, CONS_A, 50_000),
                   sign_tx(CAROL, CHAIN_ID, 0, Delegate(ALICE.address, 30_000), 1)])
    carol_before = balance(c, CAROL.address)
    _, results = next_block(c, [sign_tx(CAROL, CHAIN_ID, 1, Undelegate(ALICE.address, 12_000), 1)])  # h 2
    assert results[0].ok
    view = c.db.view()
    assert balance(c, CAROL.address) == carol_before - 1
    assert balance(c, UNBONDING_POOL) == 12_000
    assert staking.get_delegation(view, ALICE.address, CAROL.address)["amount"] == 18_000  # type: ignore[index]
    assert staking.get_validator(view, ALICE.address)["tokens"] == 68_000  # type: ignore[index]
    assert staking.unbondings(view, delegator=CAROL.address) == [{
        "validator": "0x" + ALICE.address.hex(), "delegator": "0x" + CAROL.address.hex(),
        "amount": 12_000, "creation_height": 2, "completion_height": 5}]
    assert set_powers(c, 4)[CONS_A.address] == 68
    next_block(c)  # 3
    next_block(c)  # 4
    assert balance(c, CAROL.address) == carol_before - 1
    assert_staking_invariants(c.db.view())
    next_block(c)  # 5: completion height, paid in its end_block
    assert balance(c, CAROL.address) == carol_before - 1 + 12_000
    assert balance(c, UNBONDING_POOL) == 0
    assert staking.unbondings(c.db.view()) == []
    assert_staking_invariants(c.db.view())


def test_undelegations_in_one_block_merge_and_a_full_exit_removes_the_delegation(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain()
    next_block(c, [create(ALICE, 0, CONS_A, 50_000),
                   sign_tx(CAROL, CHAIN_ID, 0, Delegate(ALICE.address, 30_000), 1)])
    _, results = next_block(c, [sign_tx(CAROL, CHAIN_ID, 1, Undelegate(ALICE.address, 10_000), 1),
                                sign_tx(CAROL, CHAIN_ID, 2, Undelegate(ALICE.address, 20_000), 1)])
    assert all(r.ok for r in results)
    view = c.db.view()
    assert staking.get_delegation(view, ALICE.address, CAROL.address) is None
    (entry,) = staking.unbondings(view, validator=ALICE.address)
    assert (entry["amount"], entry["completion_height"]) == (30_000, 2 + 20)
    assert_staking_invariants(view)


def test_undelegate_rejections_change_nothing(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain()
    next_block(c, [create(ALICE, 0, CONS_A, 50_000),
                   sign_tx(CAROL, CHAIN_ID, 0, Delegate(ALICE.address, 30_000), 1)])
    assert_rejected(c, sign_tx(CAROL, CHAIN_ID, 1, Undelegate(ALICE.address, 0), 1), "zero_amount")
    assert_rejected(c, sign_tx(CAROL, CHAIN_ID, 1, Undelegate(NOBODY, 5), 1), "unknown_validator")
    assert_rejected(c, sign_tx(CAROL, CHAIN_ID, 1, Undelegate(V0.address, 5), 1), "no_delegation")
    assert_rejected(c, sign_tx(CAROL, CHAIN_ID, 1, Undelegate(ALICE.address, 30_001), 1),
                    "insufficient_delegation")


def test_self_stake_below_minimum_leaves_the_set_at_h_plus_2(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain()
    next_block(c, [create(ALICE, 0, CONS_A, 50_000),
                   sign_tx(CAROL, CHAIN_ID, 0, Delegate(ALICE.address, 30_000), 1)])
    # the operator keeps 999 < min_self_stake 1000: delegations alone do not make a validator
    ex, results = next_block(c, [sign_tx(ALICE, CHAIN_ID, 1, Undelegate(ALICE.address, 49_001), 1)])
    assert results[0].ok
    assert CONS_A.address in set_powers(c, 3)
    assert CONS_A.address not in set_powers(c, 4)
    assert ex.result.validator_updates == (ValidatorUpdate(CONS_A.public_key, 0),)
    # topping the self-stake up brings it back
    next_block(c, [sign_tx(ALICE, CHAIN_ID, 2, Delegate(ALICE.address, 1), 1)])
    assert set_powers(c, 5)[CONS_A.address] == 31


def test_unjail_rejections_for_active_and_unknown_validators(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain()
    next_block(c, [create(ALICE, 0, CONS_A, 50_000)])
    assert_rejected(c, sign_tx(ALICE, CHAIN_ID, 1, Unjail(), 1), "not_jailed")
    assert_rejected(c, sign_tx(CAROL, CHAIN_ID, 0, Unjail(), 1), "unknown_validator")


def test_rejected_staking_tx_in_a_block_changes_nothing_but_the_others_apply(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain()
    _, results = next_block(c, [
        create(ALICE, 0, CONS_A, 50_000),
        create(CAROL, 0, CONS_A, 50_000),  # same consensus key: rejected
        sign_tx(CAROL, CHAIN_ID, 0, Transfer(BOB.address, 5), 1),
    ])
    assert [r.reason for r in results] == ["", "consensus_key_in_use", ""]
    assert staking.get_validator(c.db.view(), CAROL.address) is None
    assert address_of(CONS_A.public_key) in set_powers(c, 3)
    assert_staking_invariants(c.db.view())
