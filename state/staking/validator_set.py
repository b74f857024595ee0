"""Validator sets and CometBFT's proposer-priority algorithm (weighted round robin).

Rules (integers only):
- A set is ordered by voting power descending, then address ascending; addresses are unique and
  each address is ``address_of(public_key)``.
- ``increment_proposer_priority(times)``: first rescale priorities when their spread exceeds
  ``2 * total_power`` (divide every priority, truncating toward zero, by ``ceil(spread / (2 *
  total))``), then centre them (subtract the floor of their mean); then ``times`` times: add each
  validator's power to its priority, choose the highest priority (ties: lowest address) and
  subtract the total power from the chosen one. The last chosen validator is the proposer.
- ``update_with_changes``: a change with power 0 removes a validator; a known address keeps its
  priority with its new power; a new validator starts at ``-(T + T // 8)`` where ``T`` is the total
  power after updates and before removals (CometBFT's -1.125 x total, so leaving and re-joining
  cannot reset a negative priority); then rescale, centre and re-sort.
- The set's ``hash()`` commits to (address, public key, power) in set order, not to priorities,
  so a header's validators hash does not change as priorities rotate.

This module imports only ``state.codec``, ``state.crypto`` and ``state.block``; consensus/ imports it from here.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from state.block import MAX_VALIDATORS_WIRE
from state.codec import ADDRESS, I64, PUBKEY, U64, Bytes, CodecError, List, Nested, canonical, f, pack
from state.crypto import address_of, sha256

__all__ = [
    "MAX_TOTAL_VOTING_POWER",
    "PRIORITY_WINDOW_SIZE_FACTOR",
    "InvalidValidatorUpdate",
    "Validator",
    "ValidatorSet",
    "ValidatorUpdate",
    "has_one_third_plus",
    "has_two_thirds",
]

# Same bound as CometBFT: keeps every priority inside int64 through rescaling and centring.
MAX_TOTAL_VOTING_POWER = (2**63 - 1) // 8
PRIORITY_WINDOW_SIZE_FACTOR = 2
OPT_ADDRESS = Bytes(sizes=(0, 20))


class InvalidValidatorUpdate(ValueError):
    """A validator-set change that cannot be applied (duplicate, unknown removal, empty result)."""


def has_two_thirds(power: int, total: int) -> bool:
    """Quorum: strictly more than two thirds of the total power (exactly 2/3 is not a quorum)."""
    return 3 * power > 2 * total


def has_one_third_plus(power: int, total: int) -> bool:
    """Strictly more than one third of the total power: at least one honest validator is in it."""
    return 3 * power > total


@canonical
class Validator:
    address: bytes = f(ADDRESS)
    public_key: bytes = f(PUBKEY)
    power: int = f(U64)
    proposer_priority: int = f(I64)

    def validate(self, path: str) -> None:
        if self.power == 0:
            raise CodecError(f"{path}.power: a validator in a set has positive power")
        if self.power > MAX_TOTAL_VOTING_POWER:
            raise CodecError(f"{path}.power: exceeds {MAX_TOTAL_VOTING_POWER}")
        if self.address != address_of(self.public_key):
            raise CodecError(f"{path}.address: is not the address of the public key")


@canonical
class ValidatorUpdate:
    """One change to a validator set; ``power`` 0 removes the validator."""

    public_key: bytes = f(PUBKEY)
    power: int = f(U64)


def _sort_key(v: Validator) -> tuple[int, bytes]:
    return (-v.power, v.address)


@canonical
class ValidatorSet:
    """An ordered, non-empty validator set and the proposer chosen by the last increment.

    ``proposer`` is empty when the set has not been incremented since it was built or changed;
    ``get_proposer`` then falls back to the highest priority (ties: lowest address), as CometBFT.
    """

    validators: tuple[Validator, ...] = f(List(Nested(Validator), MAX_VALIDATORS_WIRE))
    proposer: bytes = f(OPT_ADDRESS)

    def validate(self, path: str) -> None:
        vals = self.validators
        if not vals:
            raise CodecError(f"{path}.validators: a validator set is not empty")
        for i in range(1, len(vals)):
            if _sort_key(vals[i - 1]) >= _sort_key(vals[i]):
                raise CodecError(f"{path}.validators: not sorted by (power desc, address asc)")
        index = {v.address: i for i, v in enumerate(vals)}
        if len(index) != len(vals):
            raise CodecError(f"{path}.validators: duplicate address")
        total = sum(v.power for v in vals)
        if total > MAX_TOTAL_VOTING_POWER:
            raise CodecError(f"{path}.validators: total power exceeds {MAX_TOTAL_VOTING_POWER}")
        if self.proposer and self.proposer not in index:
            raise CodecError(f"{path}.proposer: not in the set")
        # Derived lookups, computed once per (immutable) set.
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_total", total)

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def new(cls, members: Iterable[tuple[bytes, int]]) -> "ValidatorSet":
        """A genesis set from (public_key, power) pairs, incremented once (CometBFT NewValidatorSet)."""
        updates = [ValidatorUpdate(pk, power) for pk, power in members]
        if any(u.power == 0 for u in updates):
            raise InvalidValidatorUpdate("a genesis validator has positive power")
        rows = _apply_changes([], updates)
        return _build(rows, b"").increment_proposer_priority(1)

    # ---- lookups -----------------------------------------------------------------------------
    @property
    def total_power(self) -> int:
        return self._total  # type: ignore[attr-defined,no-any-return]

    def __len__(self) -> int:
        return len(self.validators)

    def index_of(self, address: bytes) -> int | None:
        return self._index.get(address)  # type: ignore[attr-defined,no-any-return]

    def get_by_address(self, address: bytes) -> Validator | None:
        i = self._index.get(address)  # type: ignore[attr-defined]
        return None if i is None else self.validators[i]

    def has_address(self, address: bytes) -> bool:
        return address in self._index  # type: ignore[attr-defined]

    def hash(self) -> bytes:
        """sha256(pack([[address, public_key, power], ...])) in set order; priorities excluded."""
        return sha256(pack([[v.address, v.public_key, v.power] for v in self.validators]))

    # ---- proposer selection ------------------------------------------------------------------
    def get_proposer(self) -> Validator:
        """The validator chosen by the last increment (else the highest priority, lowest address)."""
        if self.proposer:
            return self.validators[self._index[self.proposer]]  # type: ignore[attr-defined]
        prios = [v.proposer_priority for v in self.validators]
        return self.validators[_most_priority(prios, self.validators)]

    def increment_proposer_priority(self, times: int) -> "ValidatorSet":
        """A new set with priorities advanced ``times`` rounds; its proposer is the last chosen."""
        prios, chosen = self._priorities_after(times)
        return _build(
            [(v.public_key, v.address, v.power, p) for v, p in zip(self.validators, prios)],
            self.validators[chosen].address,
        )

    def copy_increment(self, times: int) -> "ValidatorSet":
        """Same as ``increment_proposer_priority`` (sets are immutable, so every increment copies)."""
        return self.increment_proposer_priority(times)

    def proposer_after(self, times: int) -> Validator:
        """``copy_increment(times).get_proposer()`` without building the new set."""
        return self.validators[self._priorities_after(times)[1]]

    def _priorities_after(self, times: int) -> tuple[list[int], int]:
        if type(times) is not int or times < 1:
            raise ValueError("times must be a positive integer")
        vals = self.validators
        total = self.total_power
        prios = _centre(_rescale([v.proposer_priority for v in vals], total))
        powers = [v.power for v in vals]
        chosen = 0
        for _ in range(times):
            for i, p in enumerate(powers):
                prios[i] += p
            chosen = _most_priority(prios, vals)
            prios[chosen] -= total
        return prios, chosen

    # ---- changes -----------------------------------------------------------------------------
    def update_with_changes(self, changes: Sequence[ValidatorUpdate]) -> "ValidatorSet":
        """A new set with ``changes`` applied (CometBFT updateWithChangeSet); see module rules."""
        current = [(v.public_key, v.address, v.power, v.proposer_priority) for v in self.validators]
        rows = _apply_changes(current, list(changes))
        remaining = {r[1] for r in rows}
        return _build(rows, self.proposer if self.proposer in remaining else b"")


_Row = tuple[bytes, bytes, int, int]  # (public_key, address, power, priority)


def _most_priority(prios: list[int], vals: Sequence[Validator]) -> int:
    best = 0
    for i in range(1, len(prios)):
        if prios[i] > prios[best] or (prios[i] == prios[best] and vals[i].address < vals[best].address):
            best = i
    return best


def _div_trunc(a: int, b: int) -> int:
    """Integer division truncating toward zero (Go's ``/`` on int64), for b > 0."""
    return a // b if a >= 0 else -((-a) // b)


def _rescale(prios: list[int], total: int) -> list[int]:
    diff_max = PRIORITY_WINDOW_SIZE_FACTOR * total
    diff = max(prios) - min(prios)
    if diff_max <= 0 or diff <= diff_max:
        return list(prios)
    ratio = (diff + diff_max - 1) // diff_max
    return [_div_trunc(p, ratio) for p in prios]


def _centre(prios: list[int]) -> list[int]:
    avg = sum(prios) // len(prios)  # floor, as Go's big.Int (Euclidean) division for n > 0
    return [p - avg for p in prios]


def _apply_changes(current: list[_Row], changes: list[ValidatorUpdate]) -> list[_Row]:
    by_address = {r[1]: r for r in current}
    seen: set[bytes] = set()
    updates: list[tuple[bytes, bytes, int]] = []
    removals: list[bytes] = []
    for ch in sorted(changes, key=lambda c: address_of(c.public_key)):
        addr = address_of(ch.public_key)
        if addr in seen:
            raise InvalidValidatorUpdate(f"duplicate change for {addr.hex()}")
        seen.add(addr)
        if ch.power == 0:
            if addr not in by_address:
                raise InvalidValidatorUpdate(f"cannot remove unknown validator {addr.hex()}")
            removals.append(addr)
        else:
            if ch.power > MAX_TOTAL_VOTING_POWER:
                raise InvalidValidatorUpdate(f"power of {addr.hex()} exceeds the maximum")
            old = by_address.get(addr)
            if old is not None and old[0] != ch.public_key:
                raise InvalidValidatorUpdate(f"public key of {addr.hex()} changed")
            updates.append((ch.public_key, addr, ch.power))
    new_count = sum(1 for u in updates if u[1] not in by_address)
    if new_count == 0 and len(removals) == len(current):
        raise InvalidValidatorUpdate("the changes would leave an empty validator set")
    total = sum(r[2] for r in current)
    after_updates = total + sum(p - (by_address[a][2] if a in by_address else 0) for _, a, p in updates)
    removed = sum(by_address[a][2] for a in removals)
    if after_updates - removed > MAX_TOTAL_VOTING_POWER:
        raise InvalidValidatorUpdate("total power would exceed the maximum")
    start = -(after_updates + after_updates // 8)
    for pk, addr, power in updates:
        old = by_address.get(addr)
        by_address[addr] = (pk, addr, power, start if old is None else old[3])
    for addr in removals:
        del by_address[addr]
    rows = list(by_address.values())
    new_total = sum(r[2] for r in rows)
    prios = _centre(_rescale([r[3] for r in rows], new_total))
    rows = [(r[0], r[1], r[2], p) for r, p in zip(rows, prios)]
    rows.sort(key=lambda r: (-r[2], r[1]))
    return rows


def _build(rows: Sequence[_Row], proposer: bytes) -> ValidatorSet:
    return ValidatorSet(tuple(Validator(addr, pk, power, prio) for pk, addr, power, prio in rows), proposer)
