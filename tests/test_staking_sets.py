"""Validator sets in state: genesis sets, H+2 activation, the max_validators cut-off, pruning."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from state.staking.validator_set import ValidatorSet, ValidatorUpdate
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
from state.staking import handlers as staking
from state.accounts import STAKING_POOL
from state.chain import Chain
from state.crypto import PrivateKey, to_hex
from state.genesis import GenesisError, init_chain, parse_genesis
from state.store import StateDB
from state.tx import CreateValidator, Delegate, Undelegate, sign_tx
from state.staking.validator_updates import load_validator_set

ALICE = PrivateKey.from_int(11)
CAROL = PrivateKey.from_int(13)
CONS_A = PrivateKey.from_int(611)
CONS_C = PrivateKey.from_int(613)


@pytest.fixture
def chain(tmp_path) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    opened: list[Chain] = []

    def factory(validators: Any = None, **overrides: Any) -> Chain:
        balances = {ALICE.address: 10_000_000, CAROL.address: 10_000_000, V0.address: 1_000}
        genesis = make_genesis(balances, validators, overrides or None)
        c = open_chain(tmp_path / f"db{len(opened)}", genesis)
        opened.append(c)
        return c

    yield factory
    for c in opened:
        c.db.close()


def test_genesis_bonds_stakes_and_stores_sets_1_and_2(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain([(V0, 1_000_000), (V1, 3_000_000)])
    view = c.db.view()
    assert balance(c, STAKING_POOL) == 4_000_000
    expected = ValidatorSet.new([(V1.public_key, 3000), (V0.public_key, 1000)])
    assert load_validator_set(view, 1) == expected
    assert load_validator_set(view, 2) == expected.increment_proposer_priority(1)
    assert load_validator_set(view, 3) is None
    for key, stake in ((V0, 1_000_000), (V1, 3_000_000)):
        info = staking.get_validator(view, key.address)
        assert info is not None and info["self_stake"] == info["tokens"] == stake
    shown = staking.validator_set_at(view, 1)
    assert shown is not None and shown["total_voting_power"] == 4000
    assert [v["operator"] for v in shown["validators"]] == [to_hex(V1.address), to_hex(V0.address)]
    assert_staking_invariants(view)


@pytest.mark.parametrize("problem", ["duplicate_consensus_key", "stake_below_minimum"])
def test_genesis_rejects_inconsistent_validators(tmp_path, problem) -> None:  # type: ignore[no-untyped-def]
    doc = make_genesis({}, [(V0, 1_000_000), (V1, 1_000_000)]).to_json()
    if problem == "duplicate_consensus_key":
        doc["validators"][1]["consensus_public_key"] = doc["validators"][0]["consensus_public_key"]
    else:
        doc["validators"][1]["stake"] = 999
    with StateDB(tmp_path / "db") as db:
        with pytest.raises(GenesisError):
            init_chain(db.view(), parse_genesis(doc))


def test_unchanged_sets_only_rotate_proposer_priority(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain([(V0, 1_000_000), (V1, 2_000_000)])
    for _ in range(4):
        next_block(c)
    view = c.db.view()
    for h in range(2, 7):
        prev, cur = load_validator_set(view, h - 1), load_validator_set(view, h)
        assert prev is not None and cur == prev.increment_proposer_priority(1)
    # the weighted round robin gives V1 (power 2000) two of every three proposals
    proposers = [load_validator_set(view, h).get_proposer().address for h in range(1, 7)]  # type: ignore[union-attr]
    assert proposers.count(V1.address) == 4 and proposers.count(V0.address) == 2


def test_a_change_in_block_h_takes_effect_exactly_at_h_plus_2(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain()
    next_block(c)
    next_block(c)
    next_block(c, [sign_tx(ALICE, CHAIN_ID, 0, Delegate(V0.address, 500_000), 1)])  # height 3
    assert set_powers(c, 3) == {V0.address: 1000}
    assert set_powers(c, 4) == {V0.address: 1000}
    assert set_powers(c, 5) == {V0.address: 1500}
    view = c.db.view()
    (s4, s5) = load_validator_set(view, 4), load_validator_set(view, 5)
    assert s4 is not None and s5 is not None
    assert s5 == s4.update_with_changes([ValidatorUpdate(V0.public_key, 1500)]).increment_proposer_priority(1)


def test_top_max_validators_by_power_ties_by_operator_address(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain(staking={"max_validators": 2})
    # ALICE 2000 power; CAROL ties V0 at 1000: the lower operator address keeps the seat
    next_block(c, [
        sign_tx(ALICE, CHAIN_ID, 0, CreateValidator(CONS_A.public_key, 2_000_000, "a"), 1),
        sign_tx(CAROL, CHAIN_ID, 0, CreateValidator(CONS_C.public_key, 1_000_000, "c"), 1),
    ])
    tie_winner, tie_loser = sorted([(V0.address, V0.address), (CAROL.address, CONS_C.address)])
    assert set_powers(c, 3) == {CONS_A.address: 2000, tie_winner[1]: 1000}
    # the loser overtakes by one unit of power
    loser_operator = tie_loser[0]
    next_block(c, [sign_tx(ALICE, CHAIN_ID, 1, Delegate(loser_operator, 1_000), 1)])  # height 2
    assert set_powers(c, 3) == {CONS_A.address: 2000, tie_winner[1]: 1000}
    assert set_powers(c, 4) == {CONS_A.address: 2000, tie_loser[1]: 1001}
    # stake short of a whole unit of power does not count: 999 more changes nothing
    next_block(c, [sign_tx(ALICE, CHAIN_ID, 2, Delegate(tie_winner[0], 999), 1)])  # height 3
    assert set_powers(c, 5) == {CONS_A.address: 2000, tie_loser[1]: 1001}
    # one more token ties at 1001 again, and the tie goes back to the lower operator address
    next_block(c, [sign_tx(ALICE, CHAIN_ID, 3, Delegate(tie_winner[0], 1), 1)])  # height 4
    assert set_powers(c, 6) == {CONS_A.address: 2000, tie_winner[1]: 1001}
    assert_staking_invariants(c.db.view())


def test_the_set_is_never_emptied(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain()
    _, results = next_block(c, [sign_tx(V0, CHAIN_ID, 0, Undelegate(V0.address, 999_001), 1)])
    assert results[0].ok
    # V0 is no longer eligible, but nobody else is: the set carries over
    assert set_powers(c, 3) == {V0.address: 1000}
    assert staking.get_validator(c.db.view(), V0.address)["voting_power"] == 0  # type: ignore[index]


def test_old_sets_are_pruned_past_the_evidence_age(chain) -> None:  # type: ignore[no-untyped-def]
    c = chain(staking={"evidence_max_age_blocks": 2})
    for _ in range(5):
        next_block(c)
    view = c.db.view()
    # after block 5, evidence in block 6 may concern heights 4 and 5 only
    assert [h for h in range(1, 8) if load_validator_set(view, h) is not None] == [4, 5, 6, 7]
