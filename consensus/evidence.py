"""Duplicate-vote evidence: building it from two conflicting votes and checking it.

A validator commits an offence when it signs two votes of one type for one height and round with
different block hashes (nil counts as a value). Two votes that differ only in ``time_ms`` are not an
offence: the signer guard may return the earlier of them after a restart (see ``signer.py``).
"""

from __future__ import annotations

from typing import Callable

from state.staking.validator_set import ValidatorSet
from state.block import DuplicateVoteEvidence, SignedVote
from state.crypto import verify as ed25519_verify

Verifier = Callable[[bytes, bytes, bytes], bool]


class InvalidEvidence(ValueError):
    """Evidence that does not prove an offence by a validator of the given set."""


def is_conflicting(a: SignedVote, b: SignedVote) -> bool:
    """Same validator, type, height and round, different block hash."""
    va, vb = a.vote, b.vote
    return (
        va.validator == vb.validator
        and va.type == vb.type
        and va.height == vb.height
        and va.round == vb.round
        and va.block_hash != vb.block_hash
    )


def make_duplicate_vote_evidence(a: SignedVote, b: SignedVote) -> DuplicateVoteEvidence:
    """Evidence with the two votes in canonical order (lower block hash first)."""
    if not is_conflicting(a, b):
        raise InvalidEvidence("votes do not conflict")
    if a.vote.block_hash > b.vote.block_hash:
        a, b = b, a
    return DuplicateVoteEvidence(a, b)


def verify_duplicate_vote_evidence(
    chain_id: str,
    validators: ValidatorSet,
    evidence: DuplicateVoteEvidence,
    verify: Verifier = ed25519_verify,
) -> None:
    """Both votes are validly signed by a member of ``validators`` (the set at the votes' height).

    Structure (same validator/height/round/type, different hashes, canonical order) is enforced by
    ``DuplicateVoteEvidence`` itself on construction and decoding.
    """
    a, b = evidence.vote_a, evidence.vote_b
    val = validators.get_by_address(a.vote.validator)
    if val is None:
        raise InvalidEvidence("the accused is not in the validator set of that height")
    for sv in (a, b):
        if not verify(val.public_key, sv.signature, sv.vote.sign_bytes(chain_id)):
            raise InvalidEvidence("a vote in the evidence has an invalid signature")
