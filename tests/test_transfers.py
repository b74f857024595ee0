"""Accounts, transfers, fees and nonces through apply_tx / apply_block, one rule per test."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_conserved, commit_txs
from state.accounts import FEE_COLLECTOR, get_account
from state.crypto import PrivateKey
from state.transition import BlockContext, apply_tx, load_params
from state.tx import Transfer, decode_tx, sign_tx
from state.codec import pack

ALICE = PrivateKey.from_int(1)
BOB = PrivateKey.from_int(2)
CAROL = PrivateKey.from_int(3)


def _ctx(chain, chain_id: str) -> BlockContext:  # type: ignore[no-untyped-def]
    view = chain.db.view()
    return BlockContext(chain_id, chain.height + 1, 10_000, load_params(view))


def _apply_alone(chain, chain_id, tx):  # type: ignore[no-untyped-def]
    """Apply one tx to a fresh view; return (result, pending writes)."""
    view = chain.db.view()
    result = apply_tx(view, tx, _ctx(chain, chain_id))
    return result, dict(view.block_writes), dict(view.local_writes)


def test_transfer_moves_amount_and_charges_fee(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    chain = new_chain({ALICE.address: 1000})
    _, results = commit_txs(chain, [sign_tx(ALICE, chain_id, 0, Transfer(BOB.address, 300), fee=5)])
    assert results[0].ok
    view = chain.db.view()
    assert get_account(view, ALICE.address).balance == 695
    assert get_account(view, ALICE.address).nonce == 1
    assert get_account(view, BOB.address).balance == 300
    assert_conserved(chain)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda cid: sign_tx(ALICE, cid + "x", 0, Transfer(BOB.address, 1), 1), "invalid_signature"),
        (lambda cid: sign_tx(CAROL, cid, 0, Transfer(BOB.address, 1), 1), "insufficient_balance"),
        (lambda cid: sign_tx(ALICE, cid, 1, Transfer(BOB.address, 1), 1), "future_nonce"),
        (lambda cid: sign_tx(ALICE, cid, 0, Transfer(BOB.address, 0), 1), "zero_amount"),
        (lambda cid: sign_tx(ALICE, cid, 0, Transfer(BOB.address, 10_000), 1), "insufficient_balance"),
        (lambda cid: sign_tx(ALICE, cid, 0, Transfer(BOB.address, 1), 0), "fee_too_low"),
        (lambda cid: sign_tx(ALICE, cid, 0, Transfer(BOB.address, 1), 5000), "insufficient_balance"),
    ],
)
def test_each_rejection_has_its_reason_and_changes_nothing(new_chain, chain_id, make, reason) -> None:  # type: ignore[no-untyped-def]
    chain = new_chain({ALICE.address: 1000})
    result, writes, local = _apply_alone(chain, chain_id, make(chain_id))
    assert not result.ok and result.reason == reason, result
    assert writes == {} and local == {}


def test_forged_signature_rejected(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    chain = new_chain({ALICE.address: 1000})
    tx = sign_tx(ALICE, chain_id, 0, Transfer(BOB.address, 1), 1)
    other = sign_tx(BOB, chain_id, 0, Transfer(BOB.address, 1), 1)
    forged = decode_tx(pack([tx.signed.unsigned.to_wire(), other.signed.signature]))  # type: ignore[attr-defined]
    result, writes, _ = _apply_alone(chain, chain_id, forged)
    assert result.reason == "invalid_signature" and writes == {}


def test_stale_nonce_after_commit(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    chain = new_chain({ALICE.address: 1000})
    tx = sign_tx(ALICE, chain_id, 0, Transfer(BOB.address, 1), 1)
    commit_txs(chain, [tx])
    result, writes, _ = _apply_alone(chain, chain_id, tx)
    assert result.reason == "stale_nonce" and writes == {}


def test_malformed_bytes_in_a_block_fail_without_effect(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    chain = new_chain({ALICE.address: 1000})
    root_before = chain.db.root()
    good = sign_tx(ALICE, chain_id, 0, Transfer(BOB.address, 7), 1)
    block, results = commit_txs(chain, [b"\x93\x01\x02", good, good.raw])
    assert [r.reason for r in results] == ["malformed", "", "stale_nonce"]
    assert get_account(chain.db.view(), BOB.address).balance == 7
    assert chain.db.root() != root_before
    loc = chain.get_tx_location(good.hash)
    assert loc is not None and (loc.height, loc.index, loc.code) == (1, 1, 0)
    assert_conserved(chain)


def test_sequential_nonces_in_one_block(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    chain = new_chain({ALICE.address: 1000})
    txs = [sign_tx(ALICE, chain_id, n, Transfer(BOB.address, 10), 1) for n in range(5)]
    _, results = commit_txs(chain, txs)
    assert all(r.ok for r in results)
    assert get_account(chain.db.view(), BOB.address).balance == 50
    assert get_account(chain.db.view(), FEE_COLLECTOR).balance >= 0
    assert_conserved(chain)


@settings(max_examples=25)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 400), st.integers(0, 3)),
                min_size=1, max_size=30), st.integers(1, 4))
def test_random_transfers_conserve_supply_every_block(tmp_path_factory, chain_id, ops, blocks) -> None:  # type: ignore[no-untyped-def]
    from conftest import make_genesis
    from state.chain import Chain
    from state.store import StateDB

    keys_ = [ALICE, BOB, CAROL]
    with StateDB(tmp_path_factory.mktemp("prop")) as db:
        chain = Chain(db)
        chain.init_genesis(make_genesis(chain_id, {k.address: 500 for k in keys_}))
        nonces = [0, 0, 0]
        per_block = max(1, len(ops) // blocks)
        for start in range(0, len(ops), per_block):
            txs = []
            for s, r, amount, fee in ops[start:start + per_block]:
                txs.append(sign_tx(keys_[s], chain_id, nonces[s], Transfer(keys_[r].address, amount), fee))
                nonces[s] += 1
            _, results = commit_txs(chain, txs)
            # a rejected tx does not consume the nonce: resync from state
            nonces = [get_account(db.view(), k.address).nonce for k in keys_]
            assert_conserved(chain)
            for k in keys_:
                assert get_account(db.view(), k.address).balance >= 0
