"""The gateway's durable queue of signed `infer` transactions (docs/gateway.md, "Never twice").

One append-only file of JSON lines, fsynced before the completion is answered:

    {"t": "tx", "a": ADDRESS, "n": NONCE, "h": HASH, "raw": SIGNED_TX_HEX}   a signed infer
    {"t": "committed", "a": ADDRESS, "upto": N}   the chain's nonce of ADDRESS reached N: every tx
                                                  of ADDRESS with a nonce below N is final

Each completion is bound to one (address, nonce) when it is signed, and only journaled bytes are
ever broadcast, so at most one transaction per completion can commit: after a crash the gateway
re-broadcasts the same bytes, never signs the completion again. A torn last line (a crash during
the write) is a transaction nobody was told about and that never left the process: it is dropped.
``max_pending`` bounds the queue: when it is full, completions are refused (HTTP 503), not served
unpaid.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FILE = "journal.jsonl"
COMPACT_BYTES = 8 * 1024 * 1024  # rewrite the file with only what is pending past this size


class JournalFull(Exception):
    """The bounded queue is full: the chain has not taken the queued transactions yet."""


@dataclass(frozen=True)
class Entry:
    address: str
    nonce: int
    hash: str
    raw: bytes


class Journal:
    def __init__(self, directory: str | os.PathLike[str], max_pending: int = 10_000) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / FILE
        self.max_pending = max_pending
        self.pending: dict[str, dict[int, Entry]] = {}  # address -> nonce -> entry
        self.committed: dict[str, int] = {}  # address -> chain nonce known final
        self.torn = 0
        self._replay()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    # ---- reading back ------------------------------------------------------------------------

    def _replay(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good = 0
        for line in data.split(b"\n"):
            if not line:
                good += 1
                continue
            try:
                rec = json.loads(line)
                self._apply(rec)
            except (ValueError, KeyError, TypeError):
                self.torn += 1
                break  # only the last line can be torn: nothing after it was ever acknowledged
            good += len(line) + 1
        if self.torn:
            log.warning("journal %s: dropped a torn last record (a crash during its write)", self.path)
            with open(self.path, "r+b") as fh:
                fh.truncate(min(good, len(data)))
        n = self.size
        if n:
            log.info("journal %s: %d signed completion(s) still to submit", self.path, n)

    def _apply(self, rec: dict) -> None:  # type: ignore[type-arg]
        if rec["t"] == "tx":
            e = Entry(rec["a"], int(rec["n"]), rec["h"], bytes.fromhex(rec["raw"]))
            if e.nonce >= self.committed.get(e.address, 0):
                self.pending.setdefault(e.address, {})[e.nonce] = e
        elif rec["t"] == "committed":
            self._drop_below(rec["a"], int(rec["upto"]))
        else:
            raise ValueError(f"unknown record {rec['t']!r}")

    def _drop_below(self, address: str, upto: int) -> int:
        if upto <= self.committed.get(address, 0):
            return 0
        self.committed[address] = upto
        queue = self.pending.get(address, {})
        done = [n for n in queue if n < upto]
        for n in done:
            del queue[n]
        return len(done)

    # ---- state -------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        return sum(len(q) for q in self.pending.values())

    def is_full(self) -> bool:
        return self.size >= self.max_pending

    def next_nonce(self, address: str) -> int | None:
        """One past the highest journaled nonce of ``address`` (None: nothing journaled)."""
        queue = self.pending.get(address)
        if queue:
            return max(queue) + 1
        return self.committed.get(address)

    def queued(self, address: str, start: int, limit: int) -> list[Entry]:
        """Pending entries of ``address`` with consecutive nonces from ``start``, at most ``limit``."""
        queue = self.pending.get(address, {})
        out = []
        n = start
        while n in queue and len(out) < limit:
            out.append(queue[n])
            n += 1
        return out

    # ---- writing -----------------------------------------------------------------------------

    def _write(self, rec: dict) -> None:  # type: ignore[type-arg]
        line = json.dumps(rec, separators=(",", ":")).encode() + b"\n"
        os.write(self._fd, line)
        os.fsync(self._fd)

    def append(self, e: Entry) -> None:
        """Durably record a signed transaction before anyone learns of it (raises JournalFull)."""
        if self.is_full():
            raise JournalFull(f"{self.size} completions are waiting for the chain (max_pending {self.max_pending})")
        self._write({"t": "tx", "a": e.address, "n": e.nonce, "h": e.hash, "raw": e.raw.hex()})
        self.pending.setdefault(e.address, {})[e.nonce] = e

    def replace(self, e: Entry) -> None:
        """Durably replace the transaction of a journaled nonce (same completion, same nonce: at most
        one of the two can ever commit)."""
        self._write({"t": "tx", "a": e.address, "n": e.nonce, "h": e.hash, "raw": e.raw.hex()})
        self.pending.setdefault(e.address, {})[e.nonce] = e

    def mark_committed(self, address: str, upto: int) -> int:
        """The chain's nonce of ``address`` is ``upto``: drop what it made final; returns how many."""
        if upto <= self.committed.get(address, 0):
            return 0
        self._write({"t": "committed", "a": address, "upto": upto})
        done = self._drop_below(address, upto)
        if os.fstat(self._fd).st_size > COMPACT_BYTES:
            self.compact()
        return done

    def compact(self) -> None:
        """Rewrite the file with only the pending entries and the committed marks (atomic rename)."""
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            for address, upto in self.committed.items():
                fh.write(json.dumps({"t": "committed", "a": address, "upto": upto}).encode() + b"\n")
            for queue in self.pending.values():
                for e in sorted(queue.values(), key=lambda x: x.nonce):
                    fh.write(json.dumps({"t": "tx", "a": e.address, "n": e.nonce, "h": e.hash,
                                         "raw": e.raw.hex()}).encode() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def close(self) -> None:
        os.close(self._fd)
