"""A validator process for the kill -9 test: ``python -m consensus._killtest_validator DIR RUN``.

Validator 0 runs the pure machine on real disk storage under ``DIR``:

- ``last_signed``: the last-signed guard (fsynced before any signature is returned);
- ``wal``: the consensus WAL of the height in progress;
- ``chain``: decided blocks with their commits (framed records, fsync per block);
- ``signed.log``: every signed vote or proposal, written and fsynced BEFORE it is sent;
- ``refusals.log``: every message the guard refused to sign (for the test's report).

Its three peers are simulated inside the process (the simulator's virtual network, with a little
loss, duplication and reordering). They keep nothing across a kill: each run they start from
validator 0's chain with no WAL and no guard, so after a restart they may well contradict what
they said before, which only makes validator 0's inputs more varied.

On start validator 0 recovers from its files exactly as a restarted node does (replay the WAL of
the height after its last block, else start that height fresh); the process prints one JSON line
describing what it recovered, then ``ready``, and runs until it is killed. ``--wipe-wal`` deletes
the WAL first: a validator that lost its WAL may only be saved from double-signing by the guard.
The test kills this process at random moments, restarts it, and finally checks ``signed.log`` for
two different signed messages at one position.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from consensus.params import STEP_PROPOSE
from consensus.replay import replay_wal
from consensus.signer import FileGuardStore, vote_step
from consensus.sim import Scenario, Sim
from consensus.sim_node import MemoryStorage, NodeStorage
from consensus.wal import ConsensusWAL, WALEntry, frame, read_records
from state.block import Commit, Proposal, SignedProposal, SignedVote, Vote
from state.codec import CodecError, pack, unpack

CHAIN_ID = "attrchain-killtest"
POWERS = (3, 2, 2, 1)  # validator 0 first; peers alone (5 of 8) cannot commit without it
WALL_CLOCK_LIMIT_S = 60  # the process ends itself if nobody kills it
RUN_SPACING_MS = 10_000_000  # virtual clock of run k starts at k * this, so time only moves forward


class DiskStorage:
    """Node storage on disk (see the module docstring for the files)."""

    def __init__(self, root: Path, wipe_wal: bool) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.guard = FileGuardStore(root / "last_signed")
        if wipe_wal:
            (root / "wal").unlink(missing_ok=True)
        self.wal = ConsensusWAL(root / "wal")
        self._recovered = list(self.wal.recovered.entries)
        self.chain: list[tuple[bytes, bytes, Commit]] = [
            (_bytes(r[1]), _bytes(r[2]), Commit.from_wire(r[3])) for r in read_log(root / "chain")  # type: ignore[attr-defined]
        ]
        self._chain_fd = _open_append(root / "chain")
        self._signed_fd = _open_append(root / "signed.log")

    def wal_start(self, entry: WALEntry) -> None:
        self.wal.start_height(entry)

    def wal_append(self, entry: WALEntry, sync: bool) -> None:
        self.wal.append(entry, sync=sync)

    def wal_entries(self) -> list[WALEntry]:
        return list(self._recovered)

    def chain_put(self, height: int, block_hash: bytes, body: bytes, commit: Commit) -> None:
        if height == len(self.chain) + 1:
            _append_synced(self._chain_fd, pack([height, block_hash, body, commit.to_wire()]))  # type: ignore[attr-defined]
            self.chain.append((block_hash, body, commit))
        elif not (1 <= height <= len(self.chain) and self.chain[height - 1][0] == block_hash):
            raise AssertionError(f"block store: unexpected put at height {height}")

    def chain_get(self, height: int) -> tuple[bytes, bytes, Commit] | None:
        return self.chain[height - 1] if 1 <= height <= len(self.chain) else None

    def chain_height(self) -> int:
        return len(self.chain)

    def chain_hashes(self) -> list[bytes]:
        return [c[0] for c in self.chain]

    def log_signed(self, message: SignedVote | SignedProposal) -> None:
        kind = "vote" if isinstance(message, SignedVote) else "proposal"
        _append_synced(self._signed_fd, pack([kind, message.to_wire()]))  # type: ignore[union-attr]

    def log_refusal(self, message: Vote | Proposal) -> None:
        """Kept for the test's report only (no fsync: losing a line changes no decision)."""
        with open(self.root / "refusals.log", "ab") as fh:
            fh.write(frame(message.encode()))  # type: ignore[union-attr]

    def lose_unsynced(self) -> None:
        """Killing a process keeps what it wrote; only a power cut would lose unsynced records."""


def _bytes(value: object) -> bytes:
    if type(value) is not bytes:
        raise CodecError("expected bytes in a block-store record")
    return value


def _open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def _append_synced(fd: int, payload: bytes) -> None:
    os.write(fd, frame(payload))
    os.fsync(fd)


def read_log(path: Path) -> list[list[object]]:
    """The intact records of a framed log (a torn last record, from a kill mid-write, is ignored)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    payloads, _ = read_records(data, str(path))
    return [unpack(p) for p in payloads]


def signed_positions(path: Path) -> list[tuple[tuple[int, int, int], bytes, SignedVote | SignedProposal]]:
    """(position, payload bytes, signed message) for every record of a ``signed.log``."""
    out: list[tuple[tuple[int, int, int], bytes, SignedVote | SignedProposal]] = []
    for kind, wire in read_log(path):
        if kind == "vote":
            sv = SignedVote.from_wire(wire)  # type: ignore[attr-defined]
            v: Vote = sv.vote
            out.append(((v.height, v.round, vote_step(v.type)), v.encode(), sv))  # type: ignore[attr-defined]
        elif kind == "proposal":
            sp = SignedProposal.from_wire(wire)  # type: ignore[attr-defined]
            p: Proposal = sp.proposal
            out.append(((p.height, p.round, STEP_PROPOSE), p.encode(), sp))  # type: ignore[attr-defined]
        else:
            raise CodecError(f"unknown signed-log record {kind!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dir", type=Path)
    parser.add_argument("run", type=int)
    parser.add_argument("--wipe-wal", action="store_true")
    args = parser.parse_args(argv)
    signal.alarm(WALL_CLOCK_LIMIT_S)

    disk = DiskStorage(args.dir, args.wipe_wal)
    peers: list[NodeStorage] = []
    for _ in POWERS[1:]:
        peer = MemoryStorage()
        peer.chain = list(disk.chain)
        peers.append(peer)
    scenario = Scenario(
        seed=args.run,
        powers=POWERS,
        delay_ms=(1, 15),
        loss=0.05,
        duplication=0.05,
        gst_ms=10**12,  # faults never stop; the run ends when the process is killed
        max_heights=10**9,
    )
    sim = Sim(scenario, chain_id=CHAIN_ID, start_ms=args.run * RUN_SPACING_MS, storages=[disk, *peers])
    entries = disk.wal_entries()
    wal_height = entries[0].event.height if entries else None  # type: ignore[union-attr]
    replay_height = None
    if wal_height == disk.chain_height() + 1:
        replay_height = replay_wal(sim.nodes[0].config, entries).state.height
    report = {
        "chain": disk.chain_height(),
        "wal_height": wal_height,
        "wal_entries": len(entries),
        "replay_height": replay_height,
        "wiped": args.wipe_wal,
    }
    print(json.dumps(report), flush=True)
    print("ready", flush=True)
    sim.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
