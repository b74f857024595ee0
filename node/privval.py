"""The node's validator signer: the consensus key behind the last-signed guard (consensus/signer.py).

A full node (no validator key) signs nothing. A refusal by the guard is logged and the message is
not sent: that is the guard doing its job (e.g. after a restart in the middle of a round).
"""

from __future__ import annotations

import logging
from pathlib import Path

from consensus.signer import DoubleSignRefused, FileGuardStore, Signer, SignerStateError
from node.integrity import DOCS, StartupError
from state.block import Proposal, SignedProposal, SignedVote, Vote
from state.crypto import PrivateKey

log = logging.getLogger(__name__)


class PrivValidator:
    def __init__(self, key: PrivateKey | None, state_file: Path, chain_id: str) -> None:
        self.chain_id = chain_id
        try:
            self._store = FileGuardStore(state_file) if key is not None else None
            self._signer = Signer(key, self._store) if key is not None and self._store is not None else None
        except SignerStateError as exc:
            raise StartupError(f"{exc}; never delete or edit this file to get past it: stop the other "
                               f"process, or restore the file from the node that signed with this key ({DOCS})") from exc

    @property
    def last_height(self) -> int:
        """The height of the last message this validator signed (0: none, or not a validator)."""
        position = self.last_position
        return position[0] if position is not None else 0

    @property
    def last_position(self) -> tuple[int, int, int] | None:
        """(height, round, step) of the last message this validator signed; None: none."""
        last = self._signer.last if self._signer is not None else None
        return (last.height, last.round, last.step) if last is not None else None

    @property
    def address(self) -> bytes:
        return self._signer.key.address if self._signer else b""

    def sign_vote(self, vote: Vote) -> SignedVote | None:
        """The signed vote (possibly the identical earlier one: the guard may return the vote it
        already signed at this position when only the timestamp differs), or None if refused."""
        if self._signer is None:
            return None
        try:
            return self._signer.sign_vote(self.chain_id, vote)
        except DoubleSignRefused as exc:
            log.warning("signer refused a vote: %s", exc)
            return None

    def sign_proposal(self, proposal: Proposal) -> SignedProposal | None:
        if self._signer is None:
            return None
        try:
            return self._signer.sign_proposal(self.chain_id, proposal)
        except DoubleSignRefused as exc:
            log.warning("signer refused a proposal: %s", exc)
            return None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
