"""Key backup and restore as docs/operators.md section 6 says (moving a validator to a new home):
the restored home has the same node id and consensus key, and because the signer state file moved
with the keys, the restored signer refuses a vote conflicting with one the old home signed. Without
that file it would sign it (the double sign the doc warns about). Real CLI `init`, real files."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

from node.config import Home
from node.privval import PrivValidator
from state.block import PRECOMMIT, Vote

ROOT = Path(__file__).resolve().parent.parent
CHAIN = "backup-1"


def init(home: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "node.cli", "init", "--chain-id", CHAIN, "--home", str(home)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr


def precommit(home: Home, height: int, value: bytes) -> Vote:
    key = home.validator_key()
    assert key is not None
    return Vote(PRECOMMIT, height, 0, value, 0, key.address)


def test_moved_validator_keeps_its_identity_and_cannot_double_sign(tmp_path: Path) -> None:
    old, new = Home(tmp_path / "old"), Home(tmp_path / "new")
    init(old.root)
    init(new.root)  # the new machine's own keys, replaced by the backup below
    for f in (old.node_key_file, old.validator_key_file):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    signer = PrivValidator(old.validator_key(), old.signer_state_file, CHAIN)
    assert signer.sign_vote(precommit(old, 7, b"A" * 32)) is not None
    signer.close()  # the old node is stopped for good

    # restore: the keys AND data/priv_validator_state.json
    for name in ("node_key_file", "validator_key_file", "signer_state_file"):
        shutil.copy2(getattr(old, name), getattr(new, name))
    assert new.node_key().public_key == old.node_key().public_key  # same node id for peers
    assert new.validator_key().address == old.validator_key().address  # type: ignore[union-attr]
    assert stat.S_IMODE(new.validator_key_file.stat().st_mode) == 0o600
    restored = PrivValidator(new.validator_key(), new.signer_state_file, CHAIN)
    assert restored.last_height == 7
    assert restored.sign_vote(precommit(new, 7, b"B" * 32)) is None  # refused: would double-sign
    assert restored.sign_vote(precommit(new, 8, b"B" * 32)) is not None  # it goes on from there
    restored.close()

    # the same keys without the state file would sign the conflicting vote: why the doc insists
    careless = PrivValidator(old.validator_key(), tmp_path / "fresh_state.json", CHAIN)
    assert careless.sign_vote(precommit(old, 7, b"B" * 32)) is not None
    careless.close()
