"""Blocks, headers, commits, votes, proposals and evidence: the consensus-critical structures.

These are data only (encode/decode, hashes, sign bytes). The rules that use them live in
``state/transition.py`` (applying a block) and ``consensus/`` (voting, commits, evidence checks).
"""

from __future__ import annotations

from typing import Any

from state.codec import (
    ADDRESS,
    HASH,
    I64,
    SIGNATURE,
    U8,
    U32,
    U64,
    Bytes,
    CodecError,
    List,
    Nested,
    Str,
    canonical,
    f,
    pack,
    unpack,
)
from state.crypto import DOMAIN_PROPOSAL, DOMAIN_VOTE, sha256, sign_bytes
from state.tx import MAX_TX_BYTES

BLOCK_VERSION = 1
MAX_BLOCK_TXS = 20_000
MAX_BLOCK_BYTES = 8 * 1024 * 1024
# the most transaction bytes genesis or governance may allow (fees.max_block_bytes): the rest of the
# decode cap is room for the header, the last commit (MAX_VALIDATORS_WIRE signatures) and evidence
MAX_BLOCK_TX_BYTES = MAX_BLOCK_BYTES - 1024 * 1024
MAX_EVIDENCE = 64
MAX_VALIDATORS_WIRE = 1024
OPT_HASH = Bytes(sizes=(0, 32))

PREVOTE = 1
PRECOMMIT = 2


@canonical
class Header:
    version: int = f(U8)
    chain_id: str = f(Str(64))
    height: int = f(U64)
    time_ms: int = f(U64)  # BFT time: weighted median of the last commit's timestamps
    last_block_hash: bytes = f(OPT_HASH)  # empty at height 1
    last_commit_hash: bytes = f(HASH)
    txs_hash: bytes = f(HASH)
    evidence_hash: bytes = f(HASH)
    validators_hash: bytes = f(HASH)  # validator set that signs this block
    next_validators_hash: bytes = f(HASH)
    state_root: bytes = f(HASH)  # root AFTER applying this block
    results_hash: bytes = f(HASH)  # hash of the per-tx results of this block
    proposer: bytes = f(ADDRESS)

    def hash(self) -> bytes:
        return sha256(pack(self.to_wire()))  # type: ignore[attr-defined]


@canonical
class Vote:
    """A prevote or precommit; ``block_hash`` empty means nil."""

    type: int = f(U8)
    height: int = f(U64)
    round: int = f(U32)
    block_hash: bytes = f(OPT_HASH)
    time_ms: int = f(U64)
    validator: bytes = f(ADDRESS)

    def validate(self, path: str) -> None:
        if self.type not in (PREVOTE, PRECOMMIT):
            raise CodecError(f"{path}.type: {self.type} is not a vote type")

    def sign_bytes(self, chain_id: str) -> bytes:
        return sign_bytes(DOMAIN_VOTE, chain_id, self.to_wire())  # type: ignore[attr-defined]


@canonical
class SignedVote:
    vote: Vote = f(Nested(Vote))
    signature: bytes = f(SIGNATURE)


@canonical
class CommitSig:
    """One precommit for the committed block, in validator-set order; absent votes are omitted."""

    validator: bytes = f(ADDRESS)
    time_ms: int = f(U64)
    signature: bytes = f(SIGNATURE)


@canonical
class Commit:
    height: int = f(U64)
    round: int = f(U32)
    block_hash: bytes = f(HASH)
    signatures: tuple[CommitSig, ...] = f(List(Nested(CommitSig), MAX_VALIDATORS_WIRE))

    def hash(self) -> bytes:
        return sha256(pack(self.to_wire()))  # type: ignore[attr-defined]

    def vote_for(self, sig: CommitSig) -> Vote:
        """The precommit each commit signature signed."""
        return Vote(PRECOMMIT, self.height, self.round, self.block_hash, sig.time_ms, sig.validator)


EMPTY_COMMIT = Commit(0, 0, b"\x00" * 32, ())


@canonical
class Proposal:
    height: int = f(U64)
    round: int = f(U32)
    pol_round: int = f(I64)  # -1 when there is no proof-of-lock round
    block_hash: bytes = f(HASH)
    time_ms: int = f(U64)
    proposer: bytes = f(ADDRESS)

    def sign_bytes(self, chain_id: str) -> bytes:
        return sign_bytes(DOMAIN_PROPOSAL, chain_id, self.to_wire())  # type: ignore[attr-defined]


@canonical
class SignedProposal:
    proposal: Proposal = f(Nested(Proposal))
    signature: bytes = f(SIGNATURE)


@canonical
class DuplicateVoteEvidence:
    """Two conflicting signed votes by one validator at one (height, round, type)."""

    vote_a: SignedVote = f(Nested(SignedVote))
    vote_b: SignedVote = f(Nested(SignedVote))

    def validate(self, path: str) -> None:
        a, b = self.vote_a.vote, self.vote_b.vote
        if (a.type, a.height, a.round, a.validator) != (b.type, b.height, b.round, b.validator):
            raise CodecError(f"{path}: votes are not for the same validator, height, round and type")
        if a.block_hash == b.block_hash:
            raise CodecError(f"{path}: votes do not conflict")
        # Canonical order (a < b by block hash) so the same offence has one encoding.
        if a.block_hash > b.block_hash:
            raise CodecError(f"{path}: votes out of canonical order")

    def hash(self) -> bytes:
        return sha256(pack(self.to_wire()))  # type: ignore[attr-defined]


@canonical
class Block:
    header: Header = f(Nested(Header))
    txs: tuple[bytes, ...] = f(List(Bytes(MAX_TX_BYTES), MAX_BLOCK_TXS))
    evidence: tuple[DuplicateVoteEvidence, ...] = f(List(Nested(DuplicateVoteEvidence), MAX_EVIDENCE))
    last_commit: Commit = f(Nested(Commit))

    def hash(self) -> bytes:
        return self.header.hash()


def list_hash(items: list[bytes] | tuple[bytes, ...]) -> bytes:
    """Hash of an ordered list of byte strings: sha256(pack([sha256(item), ...]))."""
    return sha256(pack([sha256(x) for x in items]))


def evidence_list_hash(evidence: tuple[DuplicateVoteEvidence, ...]) -> bytes:
    return sha256(pack([ev.to_wire() for ev in evidence]))  # type: ignore[attr-defined]


def decode_block(data: bytes) -> Block:
    return Block.from_wire(unpack(data, MAX_BLOCK_BYTES))  # type: ignore[attr-defined,no-any-return]


def encode_wire(obj: Any) -> bytes:
    return pack(obj.to_wire())
