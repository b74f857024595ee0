"""The mempool on a real Chain over LevelDB: admission rules, proposal order, RBF, eviction, recheck."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import node.mempool as mempool_module
import state.tx as tx_module
from conftest import VALIDATOR_KEY, commit_txs, make_genesis
from node.mempool import Mempool, MempoolConfig, is_replacement_priced
from state.accounts import get_account
from state.codec import pack
from state.crypto import PrivateKey
from state.errors import TxRejected
from state.tx import Transfer, Tx, decode_tx, sign_tx

ALICE = PrivateKey.from_int(1)
BOB = PrivateKey.from_int(2)
CAROL = PrivateKey.from_int(3)
DAVE = PrivateKey.from_int(4)
SINK = PrivateKey.from_int(99).address
RICH = 2**50


def transfer(chain_id: str, key: PrivateKey, nonce: int, fee: int, amount: int = 1) -> Tx:
    return sign_tx(key, chain_id, nonce, Transfer(SINK, amount), fee=fee)


def rejection(pool: Mempool, tx: Tx | bytes) -> str:
    raw = tx.raw if isinstance(tx, Tx) else tx
    with pytest.raises(TxRejected) as info:
        pool.submit(raw)
    return info.value.reason


@pytest.fixture
def rich_chain(new_chain):  # type: ignore[no-untyped-def]
    return new_chain({k.address: RICH for k in (ALICE, BOB, CAROL, DAVE)})


# ---- proposal order -------------------------------------------------------------------------
def test_pending_orders_by_fee_then_arrival(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    pool = Mempool(rich_chain)
    a = transfer(chain_id, ALICE, 0, fee=5)
    b = transfer(chain_id, BOB, 0, fee=9)
    c = transfer(chain_id, CAROL, 0, fee=5)  # same fee as a, arrives later
    d = transfer(chain_id, DAVE, 0, fee=1)
    for t in (a, b, c, d):
        assert pool.submit(t.raw) == t.hash
    assert pool.pending(10) == [b.raw, a.raw, c.raw, d.raw]


def test_pending_keeps_each_senders_nonces_consecutive(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    pool = Mempool(rich_chain)
    a0 = transfer(chain_id, ALICE, 0, fee=1)
    a1 = transfer(chain_id, ALICE, 1, fee=100)  # rich, but only eligible after a0
    b0 = transfer(chain_id, BOB, 0, fee=50)
    b1 = transfer(chain_id, BOB, 1, fee=2)
    for t in (a0, a1, b0, b1):
        pool.submit(t.raw)
    # heads a0(1), b0(50) -> b0; heads a0(1), b1(2) -> b1; then a0, then a1
    assert pool.pending(10) == [b0.raw, b1.raw, a0.raw, a1.raw]
    _, results = commit_txs(rich_chain, pool.pending(10))
    assert all(r.ok for r in results)


def test_pending_respects_count_and_byte_limits(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    pool = Mempool(rich_chain)
    big = transfer(chain_id, ALICE, 0, fee=10, amount=2**40)  # 8 more amount bytes on the wire
    small = [transfer(chain_id, k, 0, fee=5) for k in (BOB, CAROL)]
    a1 = transfer(chain_id, ALICE, 1, fee=9)
    for t in (big, a1, *small):
        pool.submit(t.raw)
    assert len(big.raw) > len(small[0].raw)
    assert pool.pending(0) == []
    assert pool.pending(2) == [big.raw, a1.raw]
    size = len(small[0].raw)
    assert pool.pending(10, max_bytes=3 * size + 8) == [big.raw, a1.raw, small[0].raw]  # exact fit
    assert pool.pending(10, max_bytes=len(big.raw)) == [big.raw]
    # big does not fit: Alice's later nonce waits with it although it would fit
    assert pool.pending(10, max_bytes=len(big.raw) - 1) == [small[0].raw]


# ---- admission checks -----------------------------------------------------------------------
def test_each_bad_transaction_is_rejected_with_its_reason(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    pool = Mempool(rich_chain, MempoolConfig(max_tx_bytes=400))
    good = transfer(chain_id, ALICE, 0, fee=1)
    pool.submit(good.raw)
    other = transfer(chain_id, BOB, 0, fee=1)
    forged = pack([other.signed.unsigned.to_wire(), good.signed.signature])  # type: ignore[attr-defined]
    poor = PrivateKey.from_int(500)
    cases = [
        (good.raw, "duplicate"),
        (b"\x93\x01\x02", "malformed"),
        (good.raw + b"\x00", "malformed"),
        (b"\x00" * 401, "tx_too_large"),
        (forged, "invalid_signature"),
        (transfer(chain_id + "-other", BOB, 0, fee=1).raw, "invalid_signature"),
        (transfer(chain_id, BOB, 0, fee=0).raw, "fee_too_low"),
        (transfer(chain_id, BOB, 1, fee=1).raw, "future_nonce"),
        (transfer(chain_id, ALICE, 2, fee=1).raw, "future_nonce"),
        (transfer(chain_id, poor, 0, fee=1).raw, "insufficient_balance"),
        (transfer(chain_id, BOB, 0, fee=1, amount=0).raw, "zero_amount"),  # the kind's own rule
    ]
    for raw, reason in cases:
        assert rejection(pool, raw) == reason, reason
        assert pool.add_from_peer(raw) is False
    assert pool.size == 1 and pool.bytes == len(good.raw)
    assert pool.pending(10) == [good.raw]


def test_stale_nonce_after_commit(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    pool = Mempool(rich_chain)
    t0 = transfer(chain_id, ALICE, 0, fee=1)
    commit_txs(rich_chain, [t0])
    # the pool notices the new height by itself, even before update_after_block
    assert rejection(pool, transfer(chain_id, ALICE, 0, fee=3)) == "stale_nonce"
    assert pool.next_nonce(ALICE.address) == 1


def test_balance_must_cover_the_senders_whole_queue(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    chain = new_chain({ALICE.address: 1000})
    pool = Mempool(chain)
    pool.submit(transfer(chain_id, ALICE, 0, fee=10, amount=600).raw)  # leaves 390
    assert rejection(pool, transfer(chain_id, ALICE, 1, fee=10, amount=381)) == "insufficient_balance"
    pool.submit(transfer(chain_id, ALICE, 1, fee=10, amount=380).raw)  # leaves exactly 0
    assert rejection(pool, transfer(chain_id, ALICE, 2, fee=1)) == "insufficient_balance"


def test_per_sender_queue_is_bounded(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    pool = Mempool(rich_chain, MempoolConfig(max_per_sender=3))
    for n in range(3):
        pool.submit(transfer(chain_id, ALICE, n, fee=1).raw)
    assert rejection(pool, transfer(chain_id, ALICE, 3, fee=1)) == "sender_queue_full"
    # replacing within the queue is still allowed
    pool.submit(transfer(chain_id, ALICE, 2, fee=2).raw)
    assert pool.size == 3


def test_admission_takes_the_transaction_the_signature_thread_decoded(rich_chain, chain_id, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The signature thread decodes and verifies a batch (node/workers.verified_txs_of); admission
    takes those decoded transactions instead of decoding the same bytes again, once each; other
    bytes are decoded and checked as before."""
    pool = Mempool(rich_chain)
    a, b = transfer(chain_id, ALICE, 0, fee=1), transfer(chain_id, BOB, 0, fee=1)
    from_thread = decode_tx(a.raw)
    pool.mark_verified_txs([from_thread])
    assert pool.is_verified(a.hash) and not pool.is_verified(b.hash)
    decoded: list[bytes] = []
    real = mempool_module.decode_tx
    monkeypatch.setattr(mempool_module, "decode_tx", lambda raw: decoded.append(raw) or real(raw))
    assert pool.admit_from_peer(bytes(a.raw)) is None  # equal bytes, another object
    assert pool.pooled_tx(a.raw) is from_thread and decoded == []
    assert pool.admit_from_peer(a.raw) == "duplicate" and decoded == [a.raw]  # taken once
    assert pool.admit_from_peer(b.raw) is None and decoded == [a.raw, b.raw]
    assert pool.admit_from_peer(b"\x93garbage") == "malformed"


def test_the_decoded_transactions_kept_for_admission_are_bounded(rich_chain, chain_id, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A peer may send transactions that verify but are never admitted (stale, duplicate): what
    the thread decoded is kept for DECODED_KEPT transactions at most, oldest forgotten first."""
    monkeypatch.setattr(mempool_module, "DECODED_KEPT", 3)
    pool = Mempool(rich_chain)
    txs = [transfer(chain_id, ALICE, n, fee=1) for n in range(5)]
    pool.mark_verified_txs([decode_tx(t.raw) for t in txs])
    assert list(pool._decoded) == [t.raw for t in txs[2:]]


def test_the_count_of_clients_pooled_transactions_follows_every_way_out(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    """``local_size`` (node/tx_intake.py: each node's clients' share of the backlog bound) counts
    the pooled transactions this node's clients submitted: a peer's transaction never, and every
    way out of the pool (replacement, a committed block, a later nonce dropped with its gap)
    takes its own off. A count that drifted up would refuse this node's clients for good."""
    pool = Mempool(rich_chain)

    def counted() -> int:
        return sum(e.local for e in pool._by_hash.values())

    a0, a1, a2 = (transfer(chain_id, ALICE, n, fee=10) for n in range(3))
    for t in (a0, a1, a2):
        pool.submit(t.raw)
    assert pool.admit_from_peer(transfer(chain_id, BOB, 0, fee=10).raw) is None
    assert pool.local_size == counted() == 3 and pool.size == 4
    # a peer's replacement of a client's transaction (same nonce, 10 % more fee)
    assert pool.admit_from_peer(transfer(chain_id, ALICE, 2, fee=11, amount=2).raw) is None
    assert pool.local_size == counted() == 2
    # a client's replacement of a peer's
    pool.submit(transfer(chain_id, BOB, 0, fee=11, amount=2).raw)
    assert pool.local_size == counted() == 3
    # a block commits a0 from elsewhere, and a conflicting a1 (so the pooled a1.. are stale)
    other_a1 = transfer(chain_id, ALICE, 1, fee=10, amount=7)
    commit_txs(rich_chain, [a0, other_a1])
    pool.update_after_block([a0.hash, other_a1.hash])
    assert pool.local_size == counted() == 1 and pool.size == 2  # BOB's (a client's); ALICE's 2 (a peer's)
    assert pool.commit_log[-1][1:] == (2, 1)  # of the block's 2 transactions, 1 was this pool's client's


# ---- replace-by-fee ------------------------------------------------------------------------
def test_replacement_needs_ten_percent_more_exactly(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    assert is_replacement_priced(100, 110, 1000) and not is_replacement_priced(100, 109, 1000)
    pool = Mempool(rich_chain)
    old = transfer(chain_id, ALICE, 0, fee=100)
    pool.submit(old.raw)
    below = transfer(chain_id, ALICE, 0, fee=109, amount=2)
    assert rejection(pool, below) == "replacement_underpriced"
    at = transfer(chain_id, ALICE, 0, fee=110, amount=3)
    assert pool.submit(at.raw) == at.hash
    assert not pool.contains(old.hash) and pool.contains(at.hash)
    assert pool.size == 1 and pool.bytes == len(at.raw)
    assert pool.pending(10) == [at.raw]
    # a fee of 1 needs 2 (1.1 rounded up); the message names the threshold
    pool.submit(transfer(chain_id, BOB, 0, fee=1).raw)
    with pytest.raises(TxRejected) as info:
        pool.submit(transfer(chain_id, BOB, 0, fee=1, amount=5).raw)
    assert info.value.reason == "replacement_underpriced" and "at least 2" in info.value.message
    pool.submit(transfer(chain_id, BOB, 0, fee=2, amount=5).raw)


def test_replacement_that_starves_later_nonces_drops_them(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    chain = new_chain({ALICE.address: 1000})
    pool = Mempool(chain)
    t0 = transfer(chain_id, ALICE, 0, fee=100, amount=500)
    t1 = transfer(chain_id, ALICE, 1, fee=100, amount=300)  # exactly the rest: 1000 - 600 - 400
    pool.submit(t0.raw)
    pool.submit(t1.raw)
    richer = transfer(chain_id, ALICE, 0, fee=110, amount=500)
    pool.submit(richer.raw)
    assert pool.pending(10) == [richer.raw] and not pool.contains(t1.hash)
    assert pool.next_nonce(ALICE.address) == 1


# ---- eviction --------------------------------------------------------------------------------
def test_full_by_count_evicts_only_a_strictly_cheaper_tx(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    pool = Mempool(rich_chain, MempoolConfig(max_txs=3))
    a = transfer(chain_id, ALICE, 0, fee=5)
    b = transfer(chain_id, BOB, 0, fee=3)
    c = transfer(chain_id, CAROL, 0, fee=7)
    for t in (a, b, c):
        pool.submit(t.raw)
    assert rejection(pool, transfer(chain_id, DAVE, 0, fee=3)) == "mempool_full"  # equal is not more
    assert rejection(pool, transfer(chain_id, DAVE, 0, fee=1)) == "mempool_full"
    assert [pool.contains(t.hash) for t in (a, b, c)] == [True, True, True]
    d = transfer(chain_id, DAVE, 0, fee=4)
    pool.submit(d.raw)
    assert not pool.contains(b.hash) and pool.size == 3
    # now the cheapest is 4: a fee-4 newcomer may not evict it, nor anything dearer
    assert rejection(pool, transfer(chain_id, BOB, 0, fee=4)) == "mempool_full"
    assert pool.pending(10) == [c.raw, a.raw, d.raw]


def test_eviction_takes_later_nonces_along_only_when_all_are_cheaper(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    pool = Mempool(rich_chain, MempoolConfig(max_txs=3))
    a0 = transfer(chain_id, ALICE, 0, fee=1)
    a1 = transfer(chain_id, ALICE, 1, fee=2)
    b0 = transfer(chain_id, BOB, 0, fee=10)
    for t in (a0, a1, b0):
        pool.submit(t.raw)
    c0 = transfer(chain_id, CAROL, 0, fee=5)
    pool.submit(c0.raw)  # cheapest is a0: it goes, and a1 (gapped without it) with it
    assert pool.pending(10) == [b0.raw, c0.raw]

    pool2 = Mempool(rich_chain, MempoolConfig(max_txs=3))
    x0 = transfer(chain_id, ALICE, 0, fee=1)
    x1 = transfer(chain_id, ALICE, 1, fee=9)  # dearer than the newcomer: protects x0
    y0 = transfer(chain_id, BOB, 0, fee=2)
    for t in (x0, x1, y0):
        pool2.submit(t.raw)
    z0 = transfer(chain_id, CAROL, 0, fee=5)
    pool2.submit(z0.raw)
    assert not pool2.contains(y0.hash)
    assert pool2.pending(10) == [z0.raw, x0.raw, x1.raw]
    # the newcomer's own earlier nonces are never its victims
    assert rejection(pool2, transfer(chain_id, CAROL, 1, fee=6)) == "mempool_full"


def test_full_by_bytes_evicts_enough_cheaper_txs_or_nothing(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    smalls = [transfer(chain_id, k, 0, fee=2 + i) for i, k in enumerate((ALICE, BOB, CAROL))]
    size = len(smalls[0].raw)
    assert all(len(t.raw) == size for t in smalls)
    big = transfer(chain_id, DAVE, 0, fee=4, amount=2**40)
    assert len(big.raw) == size + 8  # a 9-byte uint instead of a 1-byte one
    pool = Mempool(rich_chain, MempoolConfig(max_bytes=3 * size + 2))
    for t in smalls:
        pool.submit(t.raw)
    # room needed: size + 6 bytes, more than one small tx: the two cheapest (fees 2, 3) go
    cheaper_big = transfer(chain_id, DAVE, 0, fee=3, amount=2**40)
    assert rejection(pool, cheaper_big) == "mempool_full"  # could only evict the fee-2 one
    assert pool.size == 3
    pool.submit(big.raw)
    assert pool.pending(10) == [smalls[2].raw, big.raw]
    assert pool.bytes == size + len(big.raw) <= 3 * size + 2


# ---- after a block ---------------------------------------------------------------------------
def test_recheck_after_block_drops_stale_and_invalid_and_keeps_the_rest(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    chain = new_chain({ALICE.address: RICH, BOB.address: RICH, CAROL.address: 1000})
    pool = Mempool(chain)
    a = [transfer(chain_id, ALICE, n, fee=3) for n in range(3)]
    b = [transfer(chain_id, BOB, n, fee=2) for n in range(2)]
    c0 = transfer(chain_id, CAROL, 0, fee=1, amount=100)
    c1 = transfer(chain_id, CAROL, 1, fee=1, amount=800)
    for t in (*a, *b, c0, c1):
        pool.submit(t.raw)
    # the block carries a0, b0 and a different nonce-0 tx of Carol that spends more than c0
    other_c0 = transfer(chain_id, CAROL, 0, fee=1, amount=500)
    block, results = commit_txs(chain, [a[0], b[0], other_c0])
    assert all(r.ok for r in results)
    stats = pool.update_after_block([a[0].hash, b[0].hash, other_c0.hash])
    # c0 is stale; c1 needs 801 but Carol has 499 left
    assert (stats.committed, stats.dropped) == (2, 2)
    assert pool.pending(10) == [a[1].raw, a[2].raw, b[1].raw]
    _, results = commit_txs(chain, pool.pending(10))
    assert all(r.ok for r in results)
    pool.update_after_block([a[1].hash, a[2].hash, b[1].hash])
    assert pool.size == 0 and pool.bytes == 0 and pool.pending(10) == []


def test_committed_but_failed_tx_drops_the_later_nonces(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    pool = Mempool(rich_chain)
    t0 = transfer(chain_id, ALICE, 0, fee=1)
    t1 = transfer(chain_id, ALICE, 1, fee=1)
    pool.submit(t0.raw)
    pool.submit(t1.raw)
    # Alice spends everything in a block this pool never saw, so t0 itself fails in the next one
    drain = sign_tx(ALICE, chain_id, 0, Transfer(SINK, RICH - 1), fee=1)
    commit_txs(rich_chain, [drain])
    pool.update_after_block([drain.hash])
    assert pool.size == 0


def test_recheck_does_not_replay_senders_no_poorer_than_expected(rich_chain, chain_id, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pool = Mempool(rich_chain)
    txs = [transfer(chain_id, k, n, fee=1 + n) for k in (ALICE, BOB, CAROL) for n in range(4)]
    for t in txs:
        pool.submit(t.raw)
    block_txs = pool.pending(6)
    commit_txs(rich_chain, block_txs)
    calls = []
    real = mempool_module.apply_tx
    monkeypatch.setattr(mempool_module, "apply_tx", lambda *a: calls.append(1) or real(*a))
    stats = pool.update_after_block([decode_tx(r).hash for r in block_txs])
    assert stats.committed == 6 and stats.dropped == 0 and calls == []
    assert pool.size == 6
    block_txs = pool.pending(3)
    commit_txs(rich_chain, block_txs)
    pool.config = MempoolConfig(full_recheck=True)  # CometBFT-style: replay everything left
    stats = pool.update_after_block([decode_tx(r).hash for r in block_txs])
    assert stats.committed == 3 and stats.dropped == 0 and len(calls) == 3 == pool.size
    _, results = commit_txs(rich_chain, pool.pending(10))
    assert len(results) == 3 and all(r.ok for r in results)


def test_signatures_are_verified_once(rich_chain, chain_id, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    txs = [transfer(chain_id, k, n, fee=1 + n) for k in (ALICE, BOB) for n in range(3)]
    counted: list[bytes] = []
    real_verify = tx_module.verify  # the name Tx.has_valid_signature calls

    def counting_verify(pub: bytes, sig: bytes, msg: bytes) -> bool:
        counted.append(sig)
        return real_verify(pub, sig, msg)

    monkeypatch.setattr(tx_module, "verify", counting_verify)
    pool = Mempool(rich_chain)
    for t in txs:
        pool.submit(t.raw)
        assert pool.add_from_peer(t.raw) is False  # a duplicate: no second verification
    assert len(counted) == len(txs)
    pool.submit(transfer(chain_id, ALICE, 1, fee=50).raw)  # RBF replays queued txs: no re-verify
    assert len(counted) == len(txs) + 1
    assert all(t.hash in pool.verified_hashes() for t in txs)
    pending = tuple(pool.pending(10))
    # the wrapper does see block verification: without the pool's set every signature is checked
    rich_chain.build_block(pending, 5_000, VALIDATOR_KEY.address)
    assert len(counted) == 2 * len(txs) + 1
    ex = rich_chain.build_block(pending, 5_000, VALIDATOR_KEY.address, txs_verified=pool.verified_hashes())
    assert all(r.ok for r in ex.result.tx_results) and len(ex.result.tx_results) == len(txs)
    assert len(counted) == 2 * len(txs) + 1
    rich_chain.commit(ex.block, ex)
    pool.update_after_block(ex.result.tx_hashes)
    assert len(counted) == 2 * len(txs) + 1 and pool.size == 0


def test_verified_cache_is_bounded(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    pool = Mempool(rich_chain, MempoolConfig(verified_cache_size=2))
    txs = [transfer(chain_id, ALICE, n, fee=1) for n in range(3)]
    for t in txs:
        pool.submit(t.raw)
    assert set(pool.verified_hashes()) == {txs[1].hash, txs[2].hash}


def test_seen_names_pooled_and_recently_committed_hashes_within_a_bound(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    pool = Mempool(rich_chain, MempoolConfig(verified_cache_size=2))
    txs = [transfer(chain_id, who, 0, fee=1) for who in (ALICE, BOB, CAROL)]
    pool.submit(txs[0].raw)
    assert pool.seen(txs[0].hash) == "duplicate" and pool.seen(txs[1].hash) is None
    commit_txs(rich_chain, txs)
    pool.update_after_block([t.hash for t in txs])
    # the oldest committed hash is forgotten past the bound; a forgotten one is still refused by
    # its nonce on admission (stale_nonce), only later and at more cost
    assert [pool.seen(t.hash) for t in txs] == [None, "committed", "committed"]
    assert rejection(pool, txs[0]) == "stale_nonce"


# ---- gossip --------------------------------------------------------------------------------
def test_take_new_for_gossip_returns_each_local_accept_once(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    pool = Mempool(rich_chain, MempoolConfig(max_txs=2))
    a = transfer(chain_id, ALICE, 0, fee=1)
    b = transfer(chain_id, BOB, 0, fee=5)
    pool.submit(a.raw)
    pool.submit(b.raw)
    assert pool.take_new_for_gossip() == [a.raw, b.raw]
    assert pool.take_new_for_gossip() == []
    peer = transfer(chain_id, CAROL, 0, fee=3)
    assert pool.add_from_peer(peer.raw) is True  # evicts a; a peer's tx is not re-announced
    d = transfer(chain_id, DAVE, 0, fee=4)
    pool.submit(d.raw)  # evicts the peer's tx
    a2 = transfer(chain_id, ALICE, 0, fee=6, amount=2)
    pool.submit(a2.raw)  # evicts d before it was ever taken
    assert pool.take_new_for_gossip() == [a2.raw]
    assert pool.pending(10) == [a2.raw, b.raw]

    relay = Mempool(rich_chain, MempoolConfig(gossip_peer_txs=True))
    assert relay.add_from_peer(peer.raw) is True
    assert relay.take_new_for_gossip() == [peer.raw]


# ---- property: what pending() proposes is a valid block ---------------------------------------
SENDERS = (ALICE, BOB, CAROL)
EXPECTED_REASONS = {"duplicate", "stale_nonce", "future_nonce", "insufficient_balance", "replacement_underpriced", "mempool_full",
                    "sender_queue_full", "zero_amount"}

# nonce offset from the pool's next nonce: -1 replaces the last queued one, 1 leaves a gap
tx_op = st.tuples(st.just("tx"), st.integers(0, 2), st.sampled_from([-1, 0, 0, 0, 0, 1]),
                  st.integers(1, 30), st.integers(0, 250))
block_op = st.tuples(st.just("block"), st.integers(0, 2), st.integers(0, 3), st.integers(0, 0),
                     st.integers(0, 0))
foreign_op = st.tuples(st.just("foreign"), st.integers(0, 2), st.integers(0, 0), st.integers(1, 3),
                       st.integers(1, 1400))


def submit_expecting_a_known_reason(pool: Mempool, tx: Tx) -> None:
    try:
        pool.submit(tx.raw)
    except TxRejected as exc:
        assert exc.reason in EXPECTED_REASONS, exc


def commit_pending(pool: Mempool, chain, limit: int) -> None:  # type: ignore[no-untyped-def]
    """Commit a block of the pool's first ``limit`` pending transactions, all of them valid."""
    txs = pool.pending(limit)
    _, results = commit_txs(chain, txs)
    assert all(r.ok for r in results)
    pool.update_after_block([decode_tx(r).hash for r in txs])


def assert_pool_proposes_a_valid_block(pool: Mempool, chain) -> None:  # type: ignore[no-untyped-def]
    pending = pool.pending(1000)
    assert len(pending) == pool.size and sum(map(len, pending)) == pool.bytes
    assert pool.size <= pool.config.max_txs and pool.bytes <= pool.config.max_bytes
    view = chain.db.view()
    expected = {k.address: get_account(view, k.address).nonce for k in SENDERS}
    for raw in pending:
        t = decode_tx(raw)
        assert t.unsigned.nonce == expected[t.sender]  # consecutive from the committed nonce
        expected[t.sender] += 1
    ex = chain.build_block(tuple(pending), 2_000 + chain.height * 1000, VALIDATOR_KEY.address)
    assert all(r.ok for r in ex.result.tx_results), [r.reason for r in ex.result.tx_results]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(tx_op, tx_op, tx_op, tx_op, tx_op, block_op, foreign_op), min_size=8, max_size=40))
def test_pending_is_always_a_valid_block(tmp_path_factory, chain_id, ops) -> None:  # type: ignore[no-untyped-def]
    from state.chain import Chain
    from state.store import StateDB

    with StateDB(tmp_path_factory.mktemp("mempool")) as db:
        chain = Chain(db)
        chain.init_genesis(make_genesis(chain_id, {k.address: 1500 for k in SENDERS}))
        size = len(transfer(chain_id, ALICE, 0, fee=1).raw)  # 1-byte fee and amount
        # byte pressure below the count limit: larger amounts take more bytes
        pool = Mempool(chain, MempoolConfig(max_txs=5, max_bytes=4 * size + 2, max_per_sender=3))
        for kind, who, a, b, c in ops:
            key = SENDERS[who]
            nonce = get_account(db.view(), key.address).nonce
            if kind == "tx":
                submit_expecting_a_known_reason(pool, transfer(chain_id, key, max(0, pool.next_nonce(key.address) + a),
                                                               fee=b, amount=c))
            elif kind == "block":
                commit_pending(pool, chain, a)
            else:  # a tx of this sender's that reached a block through another node's pool
                other = transfer(chain_id, key, nonce, fee=b, amount=c)
                _, results = commit_txs(chain, [other])
                pool.update_after_block([other.hash])
            assert_pool_proposes_a_valid_block(pool, chain)


# ---- property: a queue of transfers carried onto a new block by amounts == its replay ----------
# to: 0-2 a sender (possibly the sender itself, possibly one with its own queue), 3 the sink
carry_tx = st.tuples(st.just("tx"), st.integers(0, 2), st.integers(0, 3), st.integers(1, 20), st.integers(0, 400))
carry_block = st.tuples(st.just("block"), st.just(0), st.just(0), st.just(0), st.integers(0, 5))
# a block the pool did not build: a payment to a sender from outside the pool, or a sender's next
# nonce spent elsewhere (its queue's later transactions may now fail); compared before the pool
# hears of the block (to == 1) and after
carry_foreign = st.tuples(st.sampled_from(["credit", "spend"]), st.integers(0, 2), st.integers(0, 1),
                          st.integers(1, 5), st.integers(1, 900))


def assert_rebuild_equals_replay(pool: Mempool) -> None:
    for sender in list(pool._queues):
        q = pool._queues[sender]
        n = len(q.entries)
        rebuilt = pool._rebuild(sender, q)
        carried = [e.balance_before for e in q.entries]
        replayed = pool._replay(sender, q, n)
        kept = len(pool._queues[sender].entries) if sender in pool._queues else 0
        if rebuilt is None:
            assert kept < n  # given up only where a transfer now fails
        else:
            assert kept == n
            assert rebuilt.block_writes == replayed.block_writes
            assert carried == [e.balance_before for e in q.entries]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(carry_tx, carry_tx, carry_tx, carry_block, carry_foreign), min_size=6, max_size=40))
def test_a_transfer_queue_carried_by_amounts_equals_its_replay(tmp_path_factory, chain_id, ops) -> None:  # type: ignore[no-untyped-def]
    """After every step, each sender's queue rebuilt from amounts (``Mempool._rebuild``, what the
    pool uses after a block instead of running the queue through apply_tx again) writes exactly
    what the replay writes, records the same balances, and gives up exactly when the replay
    drops a transaction."""
    from state.chain import Chain
    from state.store import StateDB

    targets = [k.address for k in SENDERS] + [SINK]
    with StateDB(tmp_path_factory.mktemp("carry")) as db:
        chain = Chain(db)
        chain.init_genesis(make_genesis(chain_id, {**{k.address: 1500 for k in SENDERS}, DAVE.address: RICH}))
        pool = Mempool(chain)
        dave_nonce = 0
        for kind, who, to, fee, amount in ops:
            key = SENDERS[who]
            if kind == "tx":  # amount 0: refused as zero_amount
                submit_expecting_a_known_reason(
                    pool, sign_tx(key, chain_id, pool.next_nonce(key.address), Transfer(targets[to], amount), fee=fee))
            elif kind == "block":
                commit_pending(pool, chain, amount)
            else:
                if kind == "credit":
                    other = sign_tx(DAVE, chain_id, dave_nonce, Transfer(key.address, amount), fee=fee)
                    dave_nonce += 1
                else:
                    nonce = get_account(db.view(), key.address).nonce
                    other = sign_tx(key, chain_id, nonce, Transfer(SINK, amount), fee=fee)
                commit_txs(chain, [other])
                if to == 1:
                    assert_rebuild_equals_replay(pool)
                pool.update_after_block([other.hash])
            assert_rebuild_equals_replay(pool)


@settings(max_examples=60, deadline=None)
@given(st.lists(carry_tx, min_size=1, max_size=30))
def test_admitting_transfers_writes_what_apply_tx_writes(tmp_path_factory, chain_id, ops) -> None:  # type: ignore[no-untyped-def]
    """Admission's trial apply of a plain transfer (``Mempool._trial_apply``: fold_transfers, not
    apply_tx) leaves each sender's view with exactly the writes apply_tx makes replaying the
    queue, and refuses with apply_tx's reason (zero amounts, overdrafts, self-transfers)."""
    from state.chain import Chain
    from state.store import StateDB

    targets = [k.address for k in SENDERS] + [SINK]
    with StateDB(tmp_path_factory.mktemp("admit")) as db:
        chain = Chain(db)
        chain.init_genesis(make_genesis(chain_id, {k.address: 1500 for k in SENDERS}))
        pool = Mempool(chain)
        for _, who, to, fee, amount in ops:
            key = SENDERS[who]
            submit_expecting_a_known_reason(
                pool, sign_tx(key, chain_id, pool.next_nonce(key.address), Transfer(targets[to], amount), fee=fee))
        for sender, q in list(pool._queues.items()):
            admitted = dict(q.view.block_writes)
            assert admitted == pool._replay(sender, q, len(q.entries)).block_writes


def test_a_queue_a_foreign_block_starved_is_replayed_not_carried(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    chain = new_chain({CAROL.address: 1000})
    pool = Mempool(chain)
    c0, c1 = transfer(chain_id, CAROL, 0, fee=1, amount=100), transfer(chain_id, CAROL, 1, fee=1, amount=300)
    pool.submit(c0.raw)
    pool.submit(c1.raw)
    q = pool._queues[CAROL.address]
    assert pool._rebuild(CAROL.address, q) is not None  # 1000 covers 101 + 301
    other = transfer(chain_id, CAROL, 0, fee=1, amount=800)  # Carol's nonce 0, spent through another pool
    commit_txs(chain, [other])
    assert pool._rebuild(CAROL.address, q) is None  # c0 is stale now
    pool.update_after_block([other.hash])  # c1 stays (nonce 1 is next) but needs 301 of the 199 left
    assert pool.size == 0 and rejection(pool, c1) == "insufficient_balance"


def test_block_execution_takes_pooled_transactions_instead_of_decoding_again(rich_chain, chain_id, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import state.transition as transition

    pool = Mempool(rich_chain)
    txs = [transfer(chain_id, k, n, fee=1 + n) for k in (ALICE, BOB) for n in range(3)]
    for t in txs:
        pool.submit(t.raw)
    stranger = transfer(chain_id, CAROL, 0, fee=1)  # in the block, never in this pool
    raws = tuple(pool.pending(10)) + (stranger.raw,)
    assert pool.pooled_tx(raws[0]) is pool._by_hash[decode_tx(raws[0]).hash].tx
    assert pool.pooled_tx(stranger.raw) is None and pool.pooled_tx(raws[0] + b"x") is None
    decoded: list[bytes] = []
    real = transition.decode_tx
    monkeypatch.setattr(transition, "decode_tx", lambda raw: decoded.append(raw) or real(raw))
    plain = rich_chain.build_block(raws, 5_000, VALIDATOR_KEY.address)
    assert len(decoded) == len(raws)
    decoded.clear()
    reused = rich_chain.build_block(raws, 5_000, VALIDATOR_KEY.address, known_tx=pool.pooled_tx)
    assert decoded == [stranger.raw]  # only the transaction the pool never saw
    assert reused.block.header == plain.block.header and reused.result.tx_results == plain.result.tx_results
    assert all(r.ok for r in reused.result.tx_results)


def test_what_is_still_pooled_after_a_while_is_sent_once_more(rich_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    pool = Mempool(rich_chain)
    a = [transfer(chain_id, ALICE, n, fee=2) for n in range(3)]
    for t in a:
        pool.submit(t.raw)
    assert pool.take_new_for_gossip(now=100.0) == [t.raw for t in a]
    b = transfer(chain_id, BOB, 0, fee=2)
    pool.submit(b.raw)
    assert pool.take_new_for_gossip(now=101.0) == [b.raw]
    assert pool.take_for_resend(2.0, now=101.5) == []  # not old enough yet
    commit_txs(rich_chain, [a[0]])
    pool.update_after_block([a[0].hash])
    # a[0] committed: not sent again; the rest in the order they went out, once
    assert pool.take_for_resend(2.0, now=102.0) == [a[1].raw, a[2].raw]
    assert pool.take_for_resend(2.0, now=102.5) == []
    assert pool.take_for_resend(2.0, now=103.0) == [b.raw]
    assert pool.take_for_resend(2.0, now=200.0) == [] and pool.take_new_for_gossip() == []
