"""The last-signed guard: a validator never signs two conflicting messages, even across kill -9.

Each message has a position (height, round, step) with step 1 = proposal, 2 = prevote,
3 = precommit. Rules, checked against the last signed record before any signature is made:
- a position below the last one is refused;
- at the same position, identical sign bytes return the stored signature; a message that differs
  from the stored one only in ``time_ms`` returns the stored message and signature (CometBFT's
  rule: nothing new is signed, and a restarted node can still re-send its vote);
- anything else at the same position is refused;
- a higher position is signed, and the record (position, sha256 of the sign bytes, the sign bytes
  and the signature) is made durable BEFORE the signature is returned.

Refusals raise ``DoubleSignRefused``. The state file (``FileGuardStore``) has two fixed-size slots;
each save writes the canonical msgpack of ``LastSigned`` with a sequence number and a sha256
checksum into the slot that does NOT hold the newest record, in place, and fdatasyncs it once (the
file's size never changes, so no metadata has to reach the disk). A crash can tear only the slot
being written, whose signature was never returned: loading takes the valid record with the
highest sequence number, and refuses (``SignerStateError``) when no slot holds a valid record but
one holds something. A state file of the earlier format (the bare msgpack record, replaced by
rename on every save) is converted on open.
"""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from consensus.params import STEP_PRECOMMIT, STEP_PREVOTE, STEP_PROPOSE
from state.block import PREVOTE, Proposal, SignedProposal, SignedVote, Vote
from state.codec import HASH, SIGNATURE, U8, U32, U64, Bytes, CodecError, canonical, decode, f, unpack
from state.crypto import DOMAIN_PROPOSAL, DOMAIN_VOTE, PrivateKey, sha256, verify

__all__ = [
    "DoubleSignRefused",
    "FileGuardStore",
    "GuardStore",
    "LastSigned",
    "MemoryGuardStore",
    "Signer",
    "SignerStateError",
    "vote_step",
]

MAX_SIGN_BYTES = 4096


class DoubleSignRefused(Exception):
    """Signing this message could conflict with one already signed."""


class SignerStateError(ValueError):
    """The guard's state file is unreadable, corrupt, or locked by another process."""


@canonical
class LastSigned:
    height: int = f(U64)
    round: int = f(U32)
    step: int = f(U8)
    sign_bytes_hash: bytes = f(HASH)
    sign_bytes: bytes = f(Bytes(MAX_SIGN_BYTES))
    signature: bytes = f(SIGNATURE)

    def validate(self, path: str) -> None:
        if self.step not in (STEP_PROPOSE, STEP_PREVOTE, STEP_PRECOMMIT):
            raise CodecError(f"{path}.step: {self.step} is not a signing step")
        if sha256(self.sign_bytes) != self.sign_bytes_hash:
            raise CodecError(f"{path}.sign_bytes_hash: does not match the sign bytes")


def vote_step(vote_type: int) -> int:
    return STEP_PREVOTE if vote_type == PREVOTE else STEP_PRECOMMIT


class GuardStore(Protocol):
    def load(self) -> LastSigned | None: ...

    def save(self, last: LastSigned) -> None:
        """Durable when it returns."""


class MemoryGuardStore:
    """A store that survives simulated crashes (it is the simulated disk)."""

    def __init__(self) -> None:
        self.value: LastSigned | None = None

    def load(self) -> LastSigned | None:
        return self.value

    def save(self, last: LastSigned) -> None:
        self.value = last


GUARD_MAGIC = b"AGS2"
GUARD_SLOT = 8192  # bytes per slot; a record is at most ~4.3 KiB (sign bytes <= MAX_SIGN_BYTES)
_SLOT_HEAD = struct.Struct(">4sQI")  # magic, sequence number, payload length
_CHECKSUM = 32  # sha256 of the head and the payload, after the payload


def guard_slot(seq: int, last: LastSigned) -> bytes:
    """One slot's record: head, canonical ``LastSigned``, sha256 of both. Its slot is ``seq % 2``."""
    payload = last.encode()  # type: ignore[attr-defined]
    body = _SLOT_HEAD.pack(GUARD_MAGIC, seq, len(payload)) + payload
    return body + sha256(body)


def _read_slot(data: bytes, index: int) -> tuple[int, LastSigned] | str | None:
    """Slot ``index``'s (sequence, record); None when it was never written (all zeros); a string
    saying why when it holds something that is not a valid record (a torn write or damage)."""
    slot = data[index * GUARD_SLOT : (index + 1) * GUARD_SLOT]
    if not slot.strip(b"\0"):
        return None
    if len(slot) < _SLOT_HEAD.size:
        return f"slot {index} is cut short"
    magic, seq, size = _SLOT_HEAD.unpack_from(slot)
    end = _SLOT_HEAD.size + size
    if magic != GUARD_MAGIC or end + _CHECKSUM > len(slot):
        return f"slot {index} has no valid head"
    if sha256(slot[:end]) != slot[end : end + _CHECKSUM]:
        return f"slot {index} fails its checksum"
    if seq % 2 != index:
        return f"slot {index} holds sequence {seq}"
    try:
        return seq, decode(LastSigned, slot[_SLOT_HEAD.size : end])
    except CodecError as exc:
        return f"slot {index}: {exc}"


class FileGuardStore:
    """The guard record in two slots of one file, open for the node's life, each save one
    in-place write and one fdatasync; an flock keeps out a second process (see the module doc)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise SignerStateError(f"{self.path} is in use by another process") from exc
        self._fd = -1
        self._seq = 0
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            self._replace(b"\0" * (2 * GUARD_SLOT))  # nothing signed yet
        else:
            if len(data) != 2 * GUARD_SLOT:
                # the earlier format (the bare record, at most ~4.3 KiB): converted once, atomically
                try:
                    old = decode(LastSigned, data)
                except CodecError as exc:
                    raise SignerStateError(f"{self.path}: corrupt last-signed state ({exc})") from exc
                self._replace(b"\0" * GUARD_SLOT + guard_slot(1, old).ljust(GUARD_SLOT, b"\0"))
        self._fd = os.open(self.path, os.O_RDWR)
        self.load()  # a damaged file stops here; sets the sequence number the next save follows

    def _replace(self, content: bytes) -> None:
        """Write ``content`` as the whole state file: temporary file, fsync, rename, directory fsync."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, content, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def load(self) -> LastSigned | None:
        data = os.pread(self._fd, 2 * GUARD_SLOT, 0)
        slots = [_read_slot(data, 0), _read_slot(data, 1)]
        valid = [slot for slot in slots if isinstance(slot, tuple)]
        if not valid:
            damage = [slot for slot in slots if isinstance(slot, str)]
            if damage:
                # Never guess: signing with a lost record could double-sign.
                raise SignerStateError(f"{self.path}: corrupt last-signed state ({'; '.join(damage)})")
            self._seq = 0
            return None
        # a damaged other slot is the save a crash cut short: its signature never left the node
        self._seq, last = max(valid, key=lambda slot: slot[0])
        return last

    def save(self, last: LastSigned) -> None:
        seq = self._seq + 1
        _write_all(self._fd, guard_slot(seq, last), (seq % 2) * GUARD_SLOT)
        os.fdatasync(self._fd)
        self._seq = seq

    def close(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


class Signer:
    """Signs votes and proposals with ``key`` through the last-signed guard kept in ``store``."""

    def __init__(self, key: PrivateKey, store: GuardStore) -> None:
        self.key = key
        self.store = store
        self._last = store.load()
        if self._last is not None and not verify(key.public_key, self._last.signature, self._last.sign_bytes):
            raise SignerStateError("the last-signed record does not hold this key's signature of its bytes")

    @property
    def last(self) -> LastSigned | None:
        return self._last

    def sign_vote(self, chain_id: str, vote: Vote) -> SignedVote:
        if vote.validator != self.key.address:
            raise ValueError("vote is not for this signer's address")
        sb = vote.sign_bytes(chain_id)
        position = (vote.height, vote.round, vote_step(vote.type))
        earlier = self._same_position(position, sb)
        if earlier is not None:
            prev = _decode_payload(earlier.sign_bytes, DOMAIN_VOTE, chain_id, Vote)
            if isinstance(prev, Vote) and replace(prev, time_ms=vote.time_ms) == vote:
                return SignedVote(prev, earlier.signature)
            raise DoubleSignRefused(f"already signed another message at {position}")
        return SignedVote(vote, self._sign_new(position, sb))

    def sign_proposal(self, chain_id: str, proposal: Proposal) -> SignedProposal:
        if proposal.proposer != self.key.address:
            raise ValueError("proposal is not for this signer's address")
        sb = proposal.sign_bytes(chain_id)
        position = (proposal.height, proposal.round, STEP_PROPOSE)
        earlier = self._same_position(position, sb)
        if earlier is not None:
            prev = _decode_payload(earlier.sign_bytes, DOMAIN_PROPOSAL, chain_id, Proposal)
            if isinstance(prev, Proposal) and replace(prev, time_ms=proposal.time_ms) == proposal:
                return SignedProposal(prev, earlier.signature)
            raise DoubleSignRefused(f"already signed another message at {position}")
        return SignedProposal(proposal, self._sign_new(position, sb))

    def _same_position(self, position: tuple[int, int, int], sign_bytes: bytes) -> LastSigned | None:
        """Raises for a lower position; returns the record when it is at the same position and
        differs; None when ``position`` is higher (sign anew) or the bytes are identical (handled
        by ``_sign_new`` returning the stored signature)."""
        last = self._last
        if last is None:
            return None
        last_position = (last.height, last.round, last.step)
        if position < last_position:
            raise DoubleSignRefused(f"{position} is below the last signed {last_position}")
        if position == last_position and sign_bytes != last.sign_bytes:
            return last
        return None

    def _sign_new(self, position: tuple[int, int, int], sign_bytes: bytes) -> bytes:
        last = self._last
        if last is not None and (last.height, last.round, last.step) == position:
            return last.signature  # identical bytes: the same signature again
        signature = self.key.sign(sign_bytes)
        record = LastSigned(position[0], position[1], position[2], sha256(sign_bytes), sign_bytes, signature)
        self.store.save(record)
        self._last = record
        return signature


def _decode_payload(sign_bytes: bytes, domain: str, chain_id: str, cls: type[Vote] | type[Proposal]) -> object:
    """The message inside stored sign bytes, or None when they are of another kind or chain."""
    try:
        wire = unpack(sign_bytes)
        if type(wire) is not list or len(wire) != 3 or wire[0] != domain or wire[1] != chain_id:
            return None
        return cls.from_wire(wire[2])  # type: ignore[union-attr]
    except CodecError:
        return None
