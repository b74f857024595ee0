"""StateDB's read accelerators never change what a read returns: the committed-value cache is
written through by every commit, and the in-memory index of posting records always equals the
committed records (also after reopening the store)."""

from __future__ import annotations

import random

import pytest

from state import keys, store
from state.store import StateDB

DATANETS = [bytes([d]) * 32 for d in (1, 2)]


def posting_key(rng: random.Random) -> bytes:
    return keys.fp_postings_key(rng.choice(DATANETS), rng.getrandbits(64))


def postings_of(view: store.StateView, probe: list[bytes]) -> list[bytes | None]:
    """``get_postings`` of posting keys of several datanets, one bulk read per datanet."""
    got: dict[bytes, bytes | None] = {}
    for d in DATANETS:
        mine = [k for k in probe if k[4:36] == d]
        hashes = [int.from_bytes(k[-8:], "big") for k in mine]
        assert keys.fp_postings_keys(d, hashes) == mine
        got.update(zip(mine, view.get_postings(d, hashes)))
    return [got[k] for k in probe]


def commit(db: StateDB, writes: dict[bytes, bytes | None]) -> None:
    view = db.view()
    for k, v in writes.items():
        if v is None:
            view.delete(k)
        else:
            view.put(k, v)
    db.commit(view)


def test_committed_cache_follows_every_commit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with StateDB(tmp_path / "db") as db:
        k = keys.account_key(b"\x07" * 20)
        assert db.view().get(k) is None  # an absent key is cached as absent ...
        commit(db, {k: b"one"})
        assert db.view().get(k) == b"one"  # ... and the commit replaces that
        commit(db, {k: b"two"})
        assert db.view().get(k) == b"two" == db.raw.get(k)
        commit(db, {k: None})
        assert db.view().get(k) is None and db.raw.get(k) is None


def test_cache_is_emptied_when_it_outgrows_its_bound(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(store, "MAX_CACHED_VALUES", 10)
    with StateDB(tmp_path / "db") as db:
        commit(db, {keys.account_key(bytes([i]) * 20): b"v%d" % i for i in range(20)})
        assert len(db.committed) == 20
        view = db.view()
        assert len(db.committed) == 0
        assert view.get(keys.account_key(b"\x03" * 20)) == b"v3"


def test_cache_is_emptied_when_its_values_outgrow_the_byte_bound(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # a value under a new key at every height (as the validator set at height + 2 is): few entries,
    # many bytes; without the byte bound the cache kept 200,000 of them (~1 GB at 16 validators)
    monkeypatch.setattr(store, "MAX_CACHED_BYTES", 50_000)
    big = bytes(1_000)
    with StateDB(tmp_path / "db") as db:
        largest = 0
        for height in range(300):
            commit(db, {keys.validator_set_key(height): big})
            largest = max(largest, len(db.committed))
            assert db.cached_bytes <= 50_000 + len(big)
        assert largest <= 51 and len(db.committed) < 300
        # a hot key overwritten every block replaces its value: the cache does not grow, nor is it
        # emptied for it (bench/attribution.py's contribute was 20 % slower when overwrites counted)
        db.view()
        before = db.cached_bytes
        for _ in range(300):
            commit(db, {keys.account_key(b"\x01" * 20): big})
        assert db.cached_bytes == before + len(big) and db.view().get(keys.account_key(b"\x01" * 20)) == big
    with StateDB(tmp_path / "db") as db:  # reads fill it too; what is read is the committed value
        view = db.view()
        assert [view.get(keys.validator_set_key(h)) for h in range(0, 300, 7)] == [big] * 43
        assert db.cached_bytes == 43_000 and len(db.committed) == 43
        view = db.view()
        assert [view.get(keys.validator_set_key(h)) for h in range(1, 300, 7)] == [big] * 43
        assert db.cached_bytes == 86_000
        db.view()
        assert db.cached_bytes == 0 and len(db.committed) == 0


def test_posting_reads_match_plain_reads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(5)
    present = [posting_key(rng) for _ in range(3000)]
    with StateDB(tmp_path / "db") as db:
        for i in range(0, 2000, 500):
            commit(db, {k: b"p" + k[-8:] for k in present[i:i + 500]})
        commit(db, {k: None for k in present[:100]})  # deleted: gone from the index too
        assert len(db.postings) == 1900
        absent = [posting_key(rng) for _ in range(3000)]
        probe = present + absent
        rng.shuffle(probe)
        view = db.view()
        assert postings_of(view, probe) == [db.raw.get(k) for k in probe]  # no pending writes
        view.put(present[2500], b"pending")  # pending writes win over the index
        view.delete(present[150])
        got = postings_of(view, probe)
        assert got == [view.get(k) for k in probe]
        assert sum(v is not None for v in got) == 1900 - 1 + 1
        with view.transaction():  # the transaction's writes win over the block's
            view.put(present[2500], b"in tx")
            view.put(present[150], b"back in tx")
            view.delete(present[200])
            in_tx = postings_of(view, probe)
            assert in_tx == [view.get(k) for k in probe]
            assert in_tx[probe.index(present[2500])] == b"in tx"
            assert in_tx[probe.index(present[150])] == b"back in tx"
            assert in_tx[probe.index(present[200])] is None
        db.commit(view)  # 2500 added, 200 deleted (150 deleted, then put back)
        commit(db, {k: b"q" for k in present[1990:2010]})  # overwrites and new records
        assert postings_of(db.view(), present) == [db.raw.get(k) for k in present]
    with StateDB(tmp_path / "db") as db:  # reopened: the index is rebuilt from the store
        assert len(db.postings) == 1900 + 1 - 1 + 10
        assert postings_of(db.view(), probe) == [db.raw.get(k) for k in probe]


def test_posting_keys_split_back_into_datanet_and_hash() -> None:
    k = keys.fp_postings_key(DATANETS[1], 2**64 - 3)
    assert keys.split_fp_postings_key(k) == (DATANETS[1], 2**64 - 3)
    for bad in (k[:-1], k + b"\x00", keys.account_key(b"\x01" * 20)):
        with pytest.raises(ValueError, match="not a posting-record key"):
            keys.split_fp_postings_key(bad)


def test_containment_reads_match_plain_reads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The in-memory containment index equals the committed records: after commits, deletes,
    with pending block and transaction writes, and after reopening."""
    rng = random.Random(6)
    present = [keys.containment_key(rng.getrandbits(64)) for _ in range(2000)]
    probe = present + [keys.containment_key(rng.getrandbits(64)) for _ in range(2000)]
    rng.shuffle(probe)
    with StateDB(tmp_path / "db") as db:
        commit(db, {k: b"c" + k[-8:] for k in present})
        commit(db, {k: None for k in present[:100]})
        assert len(db.containment) == 1900
        view = db.view()
        assert view.get_containment(probe) == [db.raw.get(k) for k in probe]
        view.put(present[1500], b"pending")
        view.delete(present[150])
        assert view.get_containment(probe) == [view.get(k) for k in probe]
        with view.transaction():
            view.put(present[1500], b"in tx")
            view.put(present[50], b"back in tx")
            view.delete(present[200])
            in_tx = view.get_containment(probe)
            assert in_tx == [view.get(k) for k in probe]
            assert in_tx[probe.index(present[1500])] == b"in tx" and in_tx[probe.index(present[200])] is None
        db.commit(view)
        assert db.view().get_containment(probe) == [db.raw.get(k) for k in probe]
    with StateDB(tmp_path / "db") as db:  # reopened: rebuilt from the store
        assert len(db.containment) == 1900 + 1 - 1 - 1
        assert db.view().get_containment(probe) == [db.raw.get(k) for k in probe]


def test_a_validator_set_is_decoded_once_and_a_corrupt_one_is_an_invalid_block(tmp_path) -> None:
    """The executor reads validator sets through the decoded-object cache (the same object for the
    same stored bytes, ~4 reads per height); bytes that do not decode are refused as InvalidBlock
    with one line, whether they fail msgpack or the structure, and nothing is cached for them."""
    from node.executor import validator_set_at
    from state.crypto import PrivateKey
    from state.errors import InvalidBlock
    from state.staking.validator_set import ValidatorSet
    from state.codec import pack

    db = StateDB(tmp_path / "db")
    try:
        vs = ValidatorSet.new([(PrivateKey.from_int(i + 1).public_key, 10 + i) for i in range(4)])
        commit(db, {keys.validator_set_key(7): pack(vs.to_wire()),  # type: ignore[attr-defined]
                    keys.validator_set_key(8): b"\xc1",
                    keys.validator_set_key(9): pack([[], b""])})
        first = validator_set_at(db.view(), 7)
        assert first == vs and validator_set_at(db.view(), 7) is first
        for height, reason in ((8, "is corrupt"), (9, "is corrupt"), (10, "no validator set is known")):
            with pytest.raises(InvalidBlock, match=reason) as info:
                validator_set_at(db.view(), height)
            assert "\n" not in str(info.value)
        assert keys.validator_set_key(8) not in db.decoded and keys.validator_set_key(9) not in db.decoded
    finally:
        db.close()
