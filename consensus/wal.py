"""The consensus write-ahead log: every input of the machine for the height in progress.

The driver appends each event BEFORE stepping the machine with it, so replaying the log through a
fresh machine reproduces the state and every message it signed. The node's own signed messages and
its own built blocks are appended with ``sync=True`` (fsync); peer messages and timeouts are
written without fsync (losing them in a power cut only loses inputs, which peers re-send).

File format: a sequence of records ``[u32 length][u32 crc32(payload)][payload]`` (big-endian,
crc32 = zlib's), each payload the msgpack of one entry (see ``encode_entry``). The first record is
the height's ``NewHeight``. ``start_height`` replaces the file atomically (temp file, fsync, rename,
directory fsync), so the log only ever holds the height in progress.

Reading stops at the first bad record. A bad record that reaches the end of the file is a torn
write: it is dropped (and truncated away when the log is opened for appending). A bad record
followed by more data is corruption and raises ``WALCorrupt``.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consensus.events import Event, NewHeight, ProposalReceived, ProposeBlockReady, TimeoutElapsed, VoteReceived
from state.staking.validator_set import ValidatorSet
from state.block import SignedProposal, SignedVote
from state.codec import CodecError, pack, unpack

__all__ = [
    "ConsensusWAL",
    "WALCorrupt",
    "WALEntry",
    "WALReplay",
    "decode_entry",
    "encode_entry",
    "frame",
    "read_records",
    "read_wal",
]

MAX_RECORD = 16 * 1024 * 1024
_HEADER = struct.Struct(">II")

TAG_NEW_HEIGHT = 1
TAG_PROPOSAL = 2
TAG_BLOCK_READY = 3
TAG_VOTE = 4
TAG_TIMEOUT = 5


class WALCorrupt(ValueError):
    """A record in the middle of the log is damaged, or a record does not decode."""


@dataclass(frozen=True, slots=True)
class WALEntry:
    """One input event; ``attachment`` carries the block body of a proposal or of a built block."""

    event: Event
    attachment: bytes = b""


@dataclass(frozen=True)
class WALReplay:
    entries: list[WALEntry]
    valid_length: int  # bytes of intact records
    torn_bytes: int  # bytes of a torn last record that were ignored

    @property
    def height(self) -> int | None:
        """The height in progress (the first record's), None for an empty log."""
        if not self.entries:
            return None
        first = self.entries[0].event
        return first.height if isinstance(first, NewHeight) else None


# ---- entry codec ---------------------------------------------------------------------------------
def encode_entry(entry: WALEntry) -> bytes:
    ev = entry.event
    wire: list[Any]
    if isinstance(ev, NewHeight):
        wire = [TAG_NEW_HEIGHT, ev.height, ev.validators.to_wire(), ev.now_ms]  # type: ignore[attr-defined]
    elif isinstance(ev, ProposalReceived):
        wire = [TAG_PROPOSAL, ev.proposal.to_wire(), int(ev.block_valid), ev.now_ms, entry.attachment]  # type: ignore[attr-defined]
    elif isinstance(ev, ProposeBlockReady):
        wire = [TAG_BLOCK_READY, ev.height, ev.round, ev.block_hash, ev.now_ms, entry.attachment]
    elif isinstance(ev, VoteReceived):
        wire = [TAG_VOTE, ev.vote.to_wire(), ev.now_ms]  # type: ignore[attr-defined]
    elif isinstance(ev, TimeoutElapsed):
        wire = [TAG_TIMEOUT, ev.height, ev.round, ev.step, ev.now_ms]
    else:
        raise TypeError(f"not a consensus event: {type(ev).__name__}")
    return pack(wire)


def decode_entry(data: bytes) -> WALEntry:
    try:
        wire = unpack(data, MAX_RECORD)
        if type(wire) is not list or not wire or type(wire[0]) is not int:
            raise CodecError("not a WAL entry")
        tag, rest = wire[0], wire[1:]
        if tag == TAG_NEW_HEIGHT and len(rest) == 3:
            return WALEntry(NewHeight(_uint(rest[0]), ValidatorSet.from_wire(rest[1]), _uint(rest[2])))  # type: ignore[attr-defined]
        if tag == TAG_PROPOSAL and len(rest) == 4 and rest[1] in (0, 1):
            sp = SignedProposal.from_wire(rest[0])  # type: ignore[attr-defined]
            return WALEntry(ProposalReceived(sp, rest[1] == 1, _uint(rest[2])), _bytes(rest[3]))
        if tag == TAG_BLOCK_READY and len(rest) == 5:
            ev = ProposeBlockReady(_uint(rest[0]), _uint(rest[1]), _bytes(rest[2]), _uint(rest[3]))
            return WALEntry(ev, _bytes(rest[4]))
        if tag == TAG_VOTE and len(rest) == 2:
            return WALEntry(VoteReceived(SignedVote.from_wire(rest[0]), _uint(rest[1])))  # type: ignore[attr-defined]
        if tag == TAG_TIMEOUT and len(rest) == 4:
            return WALEntry(TimeoutElapsed(_uint(rest[0]), _uint(rest[1]), _uint(rest[2]), _uint(rest[3])))
        raise CodecError(f"unknown WAL entry tag {tag} or arity")
    except CodecError as exc:
        raise WALCorrupt(f"undecodable WAL record: {exc}") from exc


def _uint(v: Any) -> int:
    if type(v) is not int or v < 0:
        raise CodecError("expected a non-negative integer")
    return v


def _bytes(v: Any) -> bytes:
    if type(v) is not bytes:
        raise CodecError("expected bytes")
    return v


# ---- reading -------------------------------------------------------------------------------------
def frame(payload: bytes) -> bytes:
    """One record: [u32 length][u32 crc32(payload)][payload]."""
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_records(data: bytes, name: str = "log") -> tuple[list[bytes], int]:
    """The payloads of the intact records in ``data`` and the byte length they cover.

    A bad record reaching the end of ``data`` is a torn write and ends the list; a bad record with
    more data after it raises WALCorrupt.
    """
    payloads: list[bytes] = []
    pos = 0
    size = len(data)
    while size - pos >= _HEADER.size:
        length, crc = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        if length > MAX_RECORD or end > size:
            break  # a length that runs past the end: the write was torn
        payload = data[pos + _HEADER.size : end]
        if zlib.crc32(payload) != crc:
            if end == size:
                break
            raise WALCorrupt(f"{name}: damaged record at offset {pos} followed by more records")
        payloads.append(payload)
        pos = end
    return payloads, pos


def read_wal(path: str | os.PathLike[str]) -> WALReplay:
    """All intact entries of the log at ``path`` (an absent file is an empty log)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return WALReplay([], 0, 0)
    payloads, valid = read_records(data, str(path))
    entries = [decode_entry(p) for p in payloads]
    if entries and not isinstance(entries[0].event, NewHeight):
        raise WALCorrupt(f"{path}: the first record is not a NewHeight")
    return WALReplay(entries, valid, len(data) - valid)


# ---- writing -------------------------------------------------------------------------------------
class ConsensusWAL:
    """The log file of one node, opened for appending (a torn tail is truncated first)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replay = read_wal(self.path)
        self.recovered = replay
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        if replay.torn_bytes:
            os.ftruncate(self._fd, replay.valid_length)
            os.fsync(self._fd)
        os.lseek(self._fd, replay.valid_length, os.SEEK_SET)

    def start_height(self, entry: WALEntry) -> None:
        """Replace the log with one holding only ``entry`` (a NewHeight), durably."""
        if not isinstance(entry.event, NewHeight):
            raise TypeError("a height starts with a NewHeight entry")
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, frame(encode_entry(entry)))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY)
        os.lseek(self._fd, 0, os.SEEK_END)

    def append(self, entry: WALEntry, *, sync: bool) -> None:
        _write_all(self._fd, frame(encode_entry(entry)))
        if sync:
            os.fsync(self._fd)

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
