"""BFT time: a block's time is derived from the timestamps in the previous block's commit.

Rules (integers only):
- ``bft_time(commit, valset)``: sort the commit signatures by (time_ms, validator address); let
  ``W`` be the total power of the signers. The result is the time of the first signature at which
  the cumulative power ``c`` satisfies ``2 * c > W`` (a weighted median: more than half of the
  signing power stamped a time at or before it).
  Because a commit holds more than 2/3 of the total power and byzantine power is below 1/3, honest
  signers hold more than half of ``W``, so the result lies between two honest timestamps.
- A header's time must be strictly greater than the previous block's time:
  ``next_block_time(prev, commit, valset) = t if t > prev else prev + 1`` with ``t = bft_time``.
  The first block's time is the genesis time (there is no commit before it).
"""

from __future__ import annotations

from state.staking.validator_set import ValidatorSet
from state.block import Commit


class InvalidBlockTime(ValueError):
    """A commit from which no time can be derived (empty, or signed by unknown validators)."""


def bft_time(commit: Commit, validators: ValidatorSet) -> int:
    """Weighted median of the commit signatures' ``time_ms`` by the signers' voting power."""
    weighted: list[tuple[int, bytes, int]] = []
    for sig in commit.signatures:
        val = validators.get_by_address(sig.validator)
        if val is None:
            raise InvalidBlockTime("commit signature from a validator outside the set")
        weighted.append((sig.time_ms, sig.validator, val.power))
    if not weighted:
        raise InvalidBlockTime("commit has no signatures")
    weighted.sort()
    total = sum(w for _, _, w in weighted)
    cumulative = 0
    for time_ms, _, power in weighted:
        cumulative += power
        if 2 * cumulative > total:
            return time_ms
    raise AssertionError("unreachable: the cumulative power reaches the total")


def next_block_time(prev_time_ms: int, commit: Commit, validators: ValidatorSet) -> int:
    """The time of the block after one at ``prev_time_ms`` whose commit is ``commit``."""
    t = bft_time(commit, validators)
    return t if t > prev_time_ms else prev_time_ms + 1


def is_valid_block_time(time_ms: int, prev_time_ms: int, commit: Commit, validators: ValidatorSet) -> bool:
    """A header's time equals ``next_block_time`` of its last commit."""
    return time_ms == next_block_time(prev_time_ms, commit, validators)
