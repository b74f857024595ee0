"""The last-signed guard: refusals, identical re-signing, persistence across reopen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from consensus.signer import (
    GUARD_SLOT,
    DoubleSignRefused,
    FileGuardStore,
    LastSigned,
    MemoryGuardStore,
    Signer,
    SignerStateError,
    guard_slot,
)
from consensus.testkit import CHAIN_ID, block_hash
from state.block import PRECOMMIT, PREVOTE, Proposal, Vote
from state.crypto import PrivateKey, sha256, verify

KEY = PrivateKey.from_int(42)
X = block_hash("X")
Y = block_hash("Y")


def vote(kind: int, height: int, round_: int, value: bytes, time_ms: int = 0) -> Vote:
    return Vote(kind, height, round_, value, time_ms, KEY.address)


def proposal(height: int, round_: int, value: bytes, time_ms: int = 0) -> Proposal:
    return Proposal(height, round_, -1, value, time_ms, KEY.address)


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer(KEY, FileGuardStore(tmp_path / "last_signed"))


def test_signature_is_valid_and_the_record_is_durable(tmp_path: Path) -> None:
    store = FileGuardStore(tmp_path / "last_signed")
    sv = Signer(KEY, store).sign_vote(CHAIN_ID, vote(PREVOTE, 5, 1, X))
    assert verify(KEY.public_key, sv.signature, sv.vote.sign_bytes(CHAIN_ID))
    record = store.load()
    assert record is not None
    assert (record.height, record.round, record.step) == (5, 1, 2)
    assert record.sign_bytes_hash == sha256(sv.vote.sign_bytes(CHAIN_ID))
    assert record.signature == sv.signature
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_signed", "last_signed.lock"]


def test_identical_bytes_are_signed_again_with_the_same_signature(signer: Signer) -> None:
    first = signer.sign_vote(CHAIN_ID, vote(PREVOTE, 5, 1, X, 100))
    assert signer.sign_vote(CHAIN_ID, vote(PREVOTE, 5, 1, X, 100)) == first


def test_same_position_other_value_is_refused(signer: Signer) -> None:
    signer.sign_vote(CHAIN_ID, vote(PREVOTE, 5, 1, X))
    with pytest.raises(DoubleSignRefused):
        signer.sign_vote(CHAIN_ID, vote(PREVOTE, 5, 1, Y))
    with pytest.raises(DoubleSignRefused):
        signer.sign_vote(CHAIN_ID, vote(PREVOTE, 5, 1, b""))


def test_same_position_other_timestamp_returns_the_earlier_vote(signer: Signer) -> None:
    first = signer.sign_vote(CHAIN_ID, vote(PRECOMMIT, 5, 1, X, 100))
    again = signer.sign_vote(CHAIN_ID, vote(PRECOMMIT, 5, 1, X, 999))
    assert again == first and again.vote.time_ms == 100


def test_lower_positions_are_refused(signer: Signer) -> None:
    signer.sign_vote(CHAIN_ID, vote(PRECOMMIT, 5, 2, X))
    for lower in (vote(PREVOTE, 5, 2, X), vote(PRECOMMIT, 5, 1, X), vote(PRECOMMIT, 4, 9, X)):
        with pytest.raises(DoubleSignRefused):
            signer.sign_vote(CHAIN_ID, lower)
    with pytest.raises(DoubleSignRefused):
        signer.sign_proposal(CHAIN_ID, proposal(5, 2, X))  # step 1 < step 3
    signer.sign_proposal(CHAIN_ID, proposal(5, 3, Y))
    signer.sign_vote(CHAIN_ID, vote(PREVOTE, 5, 3, Y))
    signer.sign_vote(CHAIN_ID, vote(PREVOTE, 6, 0, X))


def test_proposals_follow_the_same_rules(signer: Signer) -> None:
    first = signer.sign_proposal(CHAIN_ID, proposal(7, 0, X, 1))
    assert signer.sign_proposal(CHAIN_ID, proposal(7, 0, X, 1)) == first
    assert signer.sign_proposal(CHAIN_ID, proposal(7, 0, X, 2)) == first
    with pytest.raises(DoubleSignRefused):
        signer.sign_proposal(CHAIN_ID, proposal(7, 0, Y, 1))


def test_another_chain_at_the_same_position_is_refused(signer: Signer) -> None:
    signer.sign_vote(CHAIN_ID, vote(PREVOTE, 5, 1, X))
    with pytest.raises(DoubleSignRefused):
        signer.sign_vote("other-chain", vote(PREVOTE, 5, 1, X))


def test_the_guard_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "last_signed"
    store = FileGuardStore(path)
    first = Signer(KEY, store).sign_vote(CHAIN_ID, vote(PREVOTE, 5, 1, X, 10))
    store.close()
    reopened = Signer(KEY, FileGuardStore(path))
    with pytest.raises(DoubleSignRefused):
        reopened.sign_vote(CHAIN_ID, vote(PREVOTE, 5, 1, Y))
    with pytest.raises(DoubleSignRefused):
        reopened.sign_vote(CHAIN_ID, vote(PREVOTE, 5, 0, X))
    assert reopened.sign_vote(CHAIN_ID, vote(PREVOTE, 5, 1, X, 10)) == first


def test_a_second_process_cannot_use_the_same_state(tmp_path: Path) -> None:
    FileGuardStore(tmp_path / "last_signed")
    with pytest.raises(SignerStateError):
        FileGuardStore(tmp_path / "last_signed")


def test_a_corrupt_state_file_stops_signing(tmp_path: Path) -> None:
    path = tmp_path / "last_signed"
    store = FileGuardStore(path)
    Signer(KEY, store).sign_vote(CHAIN_ID, vote(PREVOTE, 5, 1, X))
    store.close()
    data = bytearray(path.read_bytes())
    data[GUARD_SLOT + 60] ^= 1  # inside the only record (sequence 1, slot 1)
    path.write_bytes(bytes(data))
    with pytest.raises(SignerStateError, match="slot 1 fails its checksum"):
        FileGuardStore(path)
    path.write_bytes(bytes(data[:-1]))  # cut short: neither this format nor the earlier one
    with pytest.raises(SignerStateError, match="corrupt last-signed state"):
        FileGuardStore(path)


def test_a_torn_save_falls_back_to_the_record_before_it_and_both_damaged_refuses(tmp_path: Path) -> None:
    """A crash in the middle of a save can tear only the slot being written, which never holds the
    newest record: the signature of that save was never returned, so the record before it is the
    guard. Damage to both slots stops signing."""
    path = tmp_path / "last_signed"
    store = FileGuardStore(path)
    signer = Signer(KEY, store)
    first = signer.sign_vote(CHAIN_ID, vote(PREVOTE, 5, 1, X, 10))  # sequence 1, slot 1
    signer.sign_vote(CHAIN_ID, vote(PRECOMMIT, 5, 1, X, 10))  # sequence 2, slot 0
    store.close()
    data = bytearray(path.read_bytes())
    # the save of sequence 3 (slot 1) torn: its first half written over the older record
    torn = guard_slot(3, LastSigned(6, 0, 2, sha256(b"x"), b"x", bytes(64)))
    data[GUARD_SLOT : GUARD_SLOT + len(torn) // 2] = torn[: len(torn) // 2]
    path.write_bytes(bytes(data))
    store = FileGuardStore(path)
    reopened = Signer(KEY, store)
    last = reopened.last
    assert last is not None and (last.height, last.round, last.step) == (5, 1, 3)
    with pytest.raises(DoubleSignRefused):
        reopened.sign_vote(CHAIN_ID, vote(PRECOMMIT, 5, 1, Y))
    with pytest.raises(DoubleSignRefused):
        reopened.sign_vote(CHAIN_ID, first.vote)  # below the newest valid record
    reopened.sign_vote(CHAIN_ID, vote(PREVOTE, 6, 0, X))  # sequence 3 again, over the torn slot
    store.close()
    store = FileGuardStore(path)
    again = Signer(KEY, store).last
    assert again is not None and (again.height, again.round, again.step) == (6, 0, 2)
    store.close()
    # now damage both slots: nothing valid is left, nothing is signed
    data = bytearray(path.read_bytes())
    data[60] ^= 1
    data[GUARD_SLOT + 60] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(SignerStateError, match="slot 0 .*slot 1"):
        FileGuardStore(path)


def test_a_state_file_of_the_earlier_format_is_converted_and_keeps_the_guard(tmp_path: Path) -> None:
    path = tmp_path / "last_signed"
    sv = Signer(KEY, MemoryGuardStore()).sign_vote(CHAIN_ID, vote(PRECOMMIT, 9, 2, X, 10))
    sb = sv.vote.sign_bytes(CHAIN_ID)
    path.write_bytes(LastSigned(9, 2, 3, sha256(sb), sb, sv.signature).encode())  # type: ignore[attr-defined]
    store = FileGuardStore(path)
    assert path.stat().st_size == 2 * GUARD_SLOT
    signer = Signer(KEY, store)
    with pytest.raises(DoubleSignRefused):
        signer.sign_vote(CHAIN_ID, vote(PRECOMMIT, 9, 2, Y))
    assert signer.sign_vote(CHAIN_ID, vote(PRECOMMIT, 9, 2, X, 99)) == sv
    signer.sign_vote(CHAIN_ID, vote(PREVOTE, 10, 0, X))
    store.close()
    last = Signer(KEY, FileGuardStore(path)).last
    assert last is not None and (last.height, last.round, last.step) == (10, 0, 2)


def test_nothing_is_returned_unless_the_record_was_saved() -> None:
    class FailingStore:
        def load(self) -> LastSigned | None:
            return None

        def save(self, last: LastSigned) -> None:
            raise OSError("disk full")

    signer = Signer(KEY, FailingStore())
    with pytest.raises(OSError):
        signer.sign_vote(CHAIN_ID, vote(PREVOTE, 5, 1, X))
    assert signer.last is None


def test_only_own_messages_are_signed(signer: Signer) -> None:
    other = Vote(PREVOTE, 5, 1, X, 0, PrivateKey.from_int(43).address)
    with pytest.raises(ValueError):
        signer.sign_vote(CHAIN_ID, other)


def test_a_save_is_one_write_in_place_and_one_fdatasync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last_signed"
    store = FileGuardStore(path)
    signer = Signer(KEY, store)
    signer.sign_vote(CHAIN_ID, vote(PREVOTE, 5, 1, X))
    inode = os.stat(path).st_ino
    syncs: list[str] = []
    real_fdatasync = os.fdatasync
    monkeypatch.setattr(os, "fsync", lambda fd: syncs.append("fsync"))
    monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append("fdatasync"), real_fdatasync(fd))[1])
    signer.sign_vote(CHAIN_ID, vote(PRECOMMIT, 5, 1, X))
    assert syncs == ["fdatasync"]
    assert os.stat(path).st_ino == inode and os.stat(path).st_size == 2 * GUARD_SLOT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_signed", "last_signed.lock"]
    store.close()
    last = FileGuardStore(path).load()
    assert last is not None and (last.height, last.round, last.step) == (5, 1, 3)
