"""The last-signed guard: refusals, identical re-signing, persistence across reopen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from consensus.signer import DoubleSignRefused, FileGuardStore, LastSigned, Signer, SignerStateError
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
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(SignerStateError):
        Signer(KEY, store)


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


def test_the_state_file_is_replaced_not_rewritten_in_place(tmp_path: Path) -> None:
    path = tmp_path / "last_signed"
    signer = Signer(KEY, FileGuardStore(path))
    signer.sign_vote(CHAIN_ID, vote(PREVOTE, 5, 1, X))
    inode = os.stat(path).st_ino
    signer.sign_vote(CHAIN_ID, vote(PRECOMMIT, 5, 1, X))
    assert os.stat(path).st_ino != inode  # rename over the old file
    assert not (tmp_path / "last_signed.tmp").exists()
