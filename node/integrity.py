"""Integrity at start: a node whose stores disagree or are damaged refuses to start.

Each check raises ``StartupError`` with one line naming the file and the way out; `attrchain node
run` prints it as one ERROR line and exits 1, without a traceback. The recovery procedures are in
docs/node.md ("When the node refuses to start").

- LevelDB damaged (``CorruptionError``) or locked by another process (its ``LOCK`` file).
- The consensus WAL (``cs.wal``) damaged in the middle, or not replayable.
- The block store behind what this node already did: the validator signed at a height more than
  one above the stored chain height (``priv_validator_state``), or the WAL holds a height more than
  one above it. Both mean committed blocks were lost (e.g. kill -9 and a truncated LevelDB log):
  running on would either stall behind the signer guard or sign from a rolled-back state.
"""

from __future__ import annotations

import os
from pathlib import Path

import plyvel

from consensus.machine import MachineConfig
from consensus.replay import ReplayResult, replay_wal
from consensus.wal import ConsensusWAL
from state.chain import Chain
from state.store import StateDB

DOCS = "docs/node.md"


class StartupError(Exception):
    """The node must not start; the message is one line: what is wrong, the file, the way out."""


def open_state_db(path: str | os.PathLike[str]) -> StateDB:
    """Open LevelDB, turning a lock held by another process or a damaged store into StartupError."""
    try:
        return StateDB(path)
    except plyvel.IOError as exc:
        if "lock" in str(exc).lower():
            raise StartupError(
                f"{Path(path) / 'LOCK'} is held by another process: another node runs on this home; "
                f"stop it first ({exc})") from exc
        raise StartupError(f"{path}: cannot open the LevelDB store ({exc}); check the disk and its "
                           f"permissions, or move {path} aside and resync ({DOCS})") from exc
    except plyvel.CorruptionError as exc:
        raise StartupError(f"{path}: the LevelDB store is damaged ({exc}); stop the node, move {path} "
                           f"aside and resync from peers or restore a backup ({DOCS})") from exc


def wal_damaged(path: Path, exc: Exception) -> StartupError:
    detail = str(exc).replace(f"{path}: ", "")
    return StartupError(
        f"{path}: the consensus WAL is damaged ({detail}); move it aside (mv {path} {path}.bad) and "
        f"restart: the signer guard keeps the validator from double-signing ({DOCS})")


def check_signed_height(chain: Chain, signed_height: int, signer_file: Path, db_dir: Path) -> None:
    """The validator last signed at ``signed_height``: the chain must hold every height below it."""
    if signed_height > chain.height + 1:
        raise StartupError(
            f"{db_dir}: stored height {chain.height} is below the height this validator last signed "
            f"({signed_height}, in {signer_file}): committed blocks were lost; move {db_dir} aside and "
            f"resync from peers, or restore a backup; never delete {signer_file} ({DOCS})")


def replay_height_in_progress(wal: ConsensusWAL, chain: Chain, config: MachineConfig,
                              db_dir: Path | None = None) -> ReplayResult | None:
    """Replay the WAL's height through a fresh machine; None when it holds no height to resume
    (an empty log, or a height the chain already committed before the crash)."""
    logged = wal.recovered.height
    if logged is None or logged <= chain.height:
        return None
    if logged > chain.height + 1:
        where = db_dir if db_dir is not None else "the block store"
        raise StartupError(
            f"{where}: stored height {chain.height} is below the height in progress in {wal.path} "
            f"({logged}): committed blocks were lost; move {where} aside and resync from peers, "
            f"or restore a backup ({DOCS})")
    try:
        return replay_wal(config, wal.recovered.entries)
    except (ValueError, AssertionError) as exc:
        raise wal_damaged(wal.path, exc) from exc
