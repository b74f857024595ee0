"""Vote sets for one (height, round, type), commits built from them, and commit verification.

Rules:
- A vote counts only if its validator is in the set and its signature over
  ``vote.sign_bytes(chain_id)`` is valid. A later vote with the same block hash (another
  timestamp) is ignored. A later vote with another block hash is an offence and yields
  ``DuplicateVoteEvidence`` (against the first vote); it still counts for its own value, up to
  ``MAX_VALUES_PER_VALIDATOR`` values per validator.
- Power is tallied per block hash (nil = ``b""``) over the distinct validators that voted for it.
  A hash has a two-thirds majority when ``3 * power > 2 * total``; "two thirds of any" counts each
  validator that voted once.
- A commit holds one ``CommitSig`` per validator that precommitted the committed block, in
  validator-set order. ``verify_commit`` accepts it only if every signature is valid, validators are
  known, distinct and in set order, and their power is a two-thirds majority.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from consensus.evidence import make_duplicate_vote_evidence
from state.staking.validator_set import ValidatorSet, has_two_thirds
from state.block import PRECOMMIT, PREVOTE, Commit, CommitSig, DuplicateVoteEvidence, SignedVote
from state.crypto import verify as ed25519_verify

Verifier = Callable[[bytes, bytes, bytes], bool]

NIL = b""
# Values counted per validator in one vote set. The paper counts every sender of a value, so a
# byzantine validator's conflicting votes count for each value it voted for (other nodes saw them
# too; counting only the first would leave honest nodes unable to confirm another's proof of
# lock). The bound keeps a byzantine validator from making a node store unboundedly many values;
# nil and the (at most two kept) proposals of a round are all that honest rules can use.
MAX_VALUES_PER_VALIDATOR = 3


class InvalidVote(ValueError):
    """A vote that cannot count: wrong height/round/type, unknown validator or bad signature."""


class InvalidCommit(ValueError):
    """A commit that does not prove a two-thirds majority of valid precommits for the block."""


@dataclass(frozen=True, slots=True)
class AddVoteResult:
    """``added``: the vote now counts. ``evidence``: the vote conflicts with the counted one."""

    added: bool
    evidence: DuplicateVoteEvidence | None = None


NOT_ADDED = AddVoteResult(False)
ADDED = AddVoteResult(True)


class VoteSet:
    """Votes of one type for one height and round, checked against a validator set."""

    __slots__ = (
        "chain_id",
        "height",
        "round",
        "type",
        "validators",
        "_verify",
        "_first",
        "_values",
        "_by_hash",
        "_power",
        "_sum",
        "_maj23",
    )

    def __init__(
        self,
        chain_id: str,
        height: int,
        round_: int,
        vote_type: int,
        validators: ValidatorSet,
        verify: Verifier = ed25519_verify,
    ) -> None:
        if vote_type not in (PREVOTE, PRECOMMIT):
            raise ValueError(f"{vote_type} is not a vote type")
        self.chain_id = chain_id
        self.height = height
        self.round = round_
        self.type = vote_type
        self.validators = validators
        self._verify = verify
        self._first: dict[bytes, SignedVote] = {}  # each validator's first counted vote
        self._values: dict[bytes, tuple[bytes, ...]] = {}  # the values each validator voted for
        self._by_hash: dict[bytes, dict[bytes, SignedVote]] = {}
        self._power: dict[bytes, int] = {}
        self._sum = 0
        self._maj23: bytes | None = None

    def copy(self) -> "VoteSet":
        """An independent copy (inner per-value dicts are replaced, never mutated, on add)."""
        other = object.__new__(VoteSet)
        other.chain_id = self.chain_id
        other.height = self.height
        other.round = self.round
        other.type = self.type
        other.validators = self.validators
        other._verify = self._verify
        other._first = dict(self._first)
        other._values = dict(self._values)
        other._by_hash = dict(self._by_hash)
        other._power = dict(self._power)
        other._sum = self._sum
        other._maj23 = self._maj23
        return other

    # ---- adding ------------------------------------------------------------------------------
    def add_vote(self, signed: SignedVote) -> AddVoteResult:
        """Count ``signed`` if it is new and valid; raises InvalidVote for a vote that cannot count."""
        vote = signed.vote
        if vote.height != self.height or vote.round != self.round or vote.type != self.type:
            raise InvalidVote("vote is for another height, round or type")
        val = self.validators.get_by_address(vote.validator)
        if val is None:
            raise InvalidVote("vote from a validator outside the set")
        values = self._values.get(vote.validator, ())
        if vote.block_hash in values:
            return NOT_ADDED  # a duplicate, or the same choice re-signed with another timestamp
        self._check_signature(signed, val.public_key)
        evidence = None
        if values:
            evidence = make_duplicate_vote_evidence(self._first[vote.validator], signed)
            if len(values) >= MAX_VALUES_PER_VALIDATOR:
                return AddVoteResult(False, evidence)
        else:
            self._first[vote.validator] = signed
            self._sum += val.power
        self._values[vote.validator] = values + (vote.block_hash,)
        voters = dict(self._by_hash.get(vote.block_hash, {}))
        voters[vote.validator] = signed
        self._by_hash[vote.block_hash] = voters
        power = self._power.get(vote.block_hash, 0) + val.power
        self._power[vote.block_hash] = power
        if self._maj23 is None and has_two_thirds(power, self.validators.total_power):
            self._maj23 = vote.block_hash
        return AddVoteResult(True, evidence)

    def _check_signature(self, signed: SignedVote, public_key: bytes) -> None:
        if not self._verify(public_key, signed.signature, signed.vote.sign_bytes(self.chain_id)):
            raise InvalidVote("invalid vote signature")

    # ---- queries -----------------------------------------------------------------------------
    def get_vote(self, address: bytes) -> SignedVote | None:
        """The validator's first counted vote."""
        return self._first.get(address)

    def has_vote(self, signed: SignedVote) -> bool:
        """This exact signed vote is already counted."""
        return self._by_hash.get(signed.vote.block_hash, {}).get(signed.vote.validator) == signed

    def __len__(self) -> int:
        return len(self._first)

    def power_for(self, block_hash: bytes) -> int:
        """Power of the distinct validators that voted for ``block_hash`` (nil: ``b""``)."""
        return self._power.get(block_hash, 0)

    @property
    def sum_power(self) -> int:
        """Power of all distinct validators that voted (any value)."""
        return self._sum

    def two_thirds_majority(self) -> bytes | None:
        """The first block hash (``b""`` for nil) to gather more than 2/3 of the power, else None."""
        return self._maj23

    def has_two_thirds_any(self) -> bool:
        return has_two_thirds(self._sum, self.validators.total_power)

    def votes_for(self, block_hash: bytes) -> tuple[SignedVote, ...]:
        """Votes for ``block_hash`` in validator-set order."""
        voters = self._by_hash.get(block_hash, {})
        return tuple(voters[v.address] for v in self.validators.validators if v.address in voters)

    def make_commit(self) -> Commit:
        """The commit for the two-thirds-majority block of this precommit set."""
        if self.type != PRECOMMIT:
            raise ValueError("only precommits make a commit")
        block_hash = self._maj23
        if not block_hash:
            raise ValueError("no two-thirds majority for a block")
        sigs = tuple(CommitSig(sv.vote.validator, sv.vote.time_ms, sv.signature) for sv in self.votes_for(block_hash))
        return Commit(self.height, self.round, block_hash, sigs)


def verify_commit(
    chain_id: str,
    validators: ValidatorSet,
    commit: Commit,
    height: int,
    block_hash: bytes,
    verify: Verifier = ed25519_verify,
) -> int:
    """Check ``commit`` proves ``block_hash`` at ``height`` for ``validators``; returns signed power."""
    if commit.height != height:
        raise InvalidCommit(f"commit is for height {commit.height}, expected {height}")
    if commit.block_hash != block_hash:
        raise InvalidCommit("commit is for another block")
    power = 0
    last_index = -1
    keys: list[bytes] = []
    for sig in commit.signatures:
        i = validators.index_of(sig.validator)
        if i is None:
            raise InvalidCommit("commit signature from a validator outside the set")
        if i <= last_index:
            raise InvalidCommit("commit signatures are duplicated or not in validator-set order")
        last_index = i
        val = validators.validators[i]
        power += val.power
        keys.append(val.public_key)
    if not has_two_thirds(power, validators.total_power):
        raise InvalidCommit(f"commit power {power} is not more than 2/3 of {validators.total_power}")
    for sig, public_key in zip(commit.signatures, keys):
        if not verify(public_key, sig.signature, commit.vote_for(sig).sign_bytes(chain_id)):
            raise InvalidCommit("invalid commit signature")
    return power
