"""Builders for tests of consensus code (deterministic keys, signed votes and proposals).

Not used by consensus itself; node/ tests may use it too.
"""

from __future__ import annotations

from state.staking.validator_set import ValidatorSet
from state.block import PRECOMMIT, PREVOTE, Proposal, SignedProposal, SignedVote, Vote
from state.crypto import PrivateKey, sha256

CHAIN_ID = "attrchain-test"


def keys_by_address(n: int, offset: int = 500) -> list[PrivateKey]:
    """``n`` deterministic keys sorted by address (index order = address order)."""
    return sorted((PrivateKey.from_int(offset + i) for i in range(n)), key=lambda k: k.address)


def validator_set(keys: list[PrivateKey], powers: list[int]) -> ValidatorSet:
    return ValidatorSet.new([(k.public_key, p) for k, p in zip(keys, powers)])


def block_hash(label: str) -> bytes:
    return sha256(label.encode())


def signed_vote(
    key: PrivateKey,
    vote_type: int,
    height: int,
    round_: int,
    value: bytes,
    time_ms: int = 0,
    chain_id: str = CHAIN_ID,
) -> SignedVote:
    vote = Vote(vote_type, height, round_, value, time_ms, key.address)
    return SignedVote(vote, key.sign(vote.sign_bytes(chain_id)))


def prevote(key: PrivateKey, height: int, round_: int, value: bytes, time_ms: int = 0) -> SignedVote:
    return signed_vote(key, PREVOTE, height, round_, value, time_ms)


def precommit(key: PrivateKey, height: int, round_: int, value: bytes, time_ms: int = 0) -> SignedVote:
    return signed_vote(key, PRECOMMIT, height, round_, value, time_ms)


def signed_proposal(
    key: PrivateKey,
    height: int,
    round_: int,
    value: bytes,
    pol_round: int = -1,
    time_ms: int = 0,
    chain_id: str = CHAIN_ID,
) -> SignedProposal:
    p = Proposal(height, round_, pol_round, value, time_ms, key.address)
    return SignedProposal(p, key.sign(p.sign_bytes(chain_id)))
