"""Staking state records and their typed accessors (docs/staking.md, "State").

Every record is a canonical structure stored under a key built by state.keys:
- ``Validator``       at validator_key(operator)
- ``ConsensusLink``   at validator_by_consensus_key(consensus address) -> operator (never deleted,
                      so a consensus key is used by at most one validator, ever)
- ``Delegation``      at delegation_key(validator operator, delegator); absent means zero
- ``UnbondingEntry``  at unbonding_key(completion height, validator, delegator), the maturity
                      queue, plus an ``UnbondingRef`` at unbonding_by_validator_key(...) so slashing
                      reaches a validator's entries without scanning everyone's
- ``SigningInfo``     at signing_info_key(consensus address): the liveness window
- ``EvidenceRecord``  at evidence_seen_key(evidence hash)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TypeVar

from state import keys
from state.codec import ADDRESS, PUBKEY, U8, U32, U64, Bytes, CodecError, Str, canonical, f, unpack
from state.crypto import address_of
from state.params import StakingParams
from state.store import StateView

# Voting power is bonded stake divided by this constant (integer division). It keeps the total
# power of any possible set (supply < 2**64) below 2**60, the bound CometBFT's proposer-priority
# arithmetic relies on; stake below it gives no power.
POWER_REDUCTION = 1000

T = TypeVar("T")


@canonical
class Validator:
    operator: bytes = f(ADDRESS)
    consensus_public_key: bytes = f(PUBKEY)
    moniker: str = f(Str(64))
    tokens: int = f(U64)  # bonded stake: the sum of all its delegations (self-delegation included)
    jailed: int = f(U8)
    jailed_until: int = f(U64)  # first height at which unjail is accepted
    tombstoned: int = f(U8)  # double-signed: never again in a validator set
    created_height: int = f(U64)

    def validate(self, path: str) -> None:
        if self.jailed not in (0, 1) or self.tombstoned not in (0, 1):
            raise CodecError(f"{path}: jailed and tombstoned are 0 or 1")

    @property
    def consensus_address(self) -> bytes:
        return address_of(self.consensus_public_key)


@canonical
class ConsensusLink:
    operator: bytes = f(ADDRESS)


@canonical
class Delegation:
    amount: int = f(U64)


@canonical
class UnbondingEntry:
    amount: int = f(U64)
    creation_height: int = f(U64)


@canonical
class UnbondingRef:
    """Value of the by-validator index; the key itself names the entry."""


@canonical
class SigningInfo:
    """Liveness window of one validator: bit ``(h - start_height) % window`` is 1 if it missed h."""

    start_height: int = f(U64)
    missed: int = f(U32)
    bitmap: bytes = f(Bytes())


@canonical
class EvidenceRecord:
    height: int = f(U64)  # the block that processed it
    operator: bytes = f(ADDRESS)


# ---- predicates ----------------------------------------------------------------------------
def voting_power(tokens: int) -> int:
    return tokens // POWER_REDUCTION


_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _edwards_add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = _D * x1 * x2 * y1 * y2 % _P
    x3 = (x1 * y2 + y1 * x2) * pow(1 + t, _P - 2, _P) % _P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, _P - 2, _P) % _P
    return x3, y3


def _decode_point(encoded: bytes) -> tuple[int, int] | None:
    """RFC 8032 section 5.1.3 point decoding; None when the bytes are not a curve point."""
    y = int.from_bytes(encoded, "little") & ((1 << 255) - 1)
    sign = encoded[31] >> 7
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P or (x == 0 and sign):
        return None
    return (_P - x if x & 1 != sign else x), y


def is_valid_consensus_key(public_key: bytes) -> bool:
    """An Ed25519 point in canonical encoding and not of small order.

    OpenSSL loads any 32 bytes as a key, and a small-order key (the identity, for one) verifies
    forged signatures; such a key could never stand for a validator's votes.
    """
    if len(public_key) != 32:
        return False
    point = _decode_point(public_key)
    if point is None:
        return False
    for _ in range(3):  # 8 * point
        point = _edwards_add(point, point)
    return point != (0, 1)


def is_eligible(view: StateView, v: Validator, params: StakingParams) -> bool:
    """May hold voting power: not jailed, not tombstoned, enough self-stake, non-zero power."""
    return (
        not v.jailed
        and not v.tombstoned
        and get_delegation(view, v.operator, v.operator) >= params.min_self_stake
        and voting_power(v.tokens) > 0
    )


# ---- validators ----------------------------------------------------------------------------
def get_validator(view: StateView, operator: bytes) -> Validator | None:
    return view.get_obj(keys.validator_key(operator), Validator)


def set_validator(view: StateView, v: Validator) -> None:
    view.put_obj(keys.validator_key(v.operator), v)


def with_tokens(v: Validator, tokens: int) -> Validator:
    return dataclasses.replace(v, tokens=tokens)


def operator_of_consensus(view: StateView, consensus_address: bytes) -> bytes | None:
    link = view.get_obj(keys.validator_by_consensus_key(consensus_address), ConsensusLink)
    return link.operator if link is not None else None


def is_consensus_key_used(view: StateView, public_key: bytes) -> bool:
    return view.get(keys.validator_by_consensus_key(address_of(public_key))) is not None


def link_consensus_key(view: StateView, v: Validator) -> None:
    view.put_obj(keys.validator_by_consensus_key(v.consensus_address), ConsensusLink(v.operator))


def iter_validators(view: StateView) -> Iterator[Validator]:
    """Every validator record, in operator-address order."""
    for _, raw in view.iter_prefix(keys.validator_key(b"")):
        yield decode_record(Validator, raw)


# ---- delegations ---------------------------------------------------------------------------
def get_delegation(view: StateView, validator: bytes, delegator: bytes) -> int:
    d = view.get_obj(keys.delegation_key(validator, delegator), Delegation)
    return d.amount if d is not None else 0


def set_delegation(view: StateView, validator: bytes, delegator: bytes, amount: int) -> None:
    key = keys.delegation_key(validator, delegator)
    if amount == 0:
        view.delete(key)
    else:
        view.put_obj(key, Delegation(amount))


def delegations_of(view: StateView, validator: bytes) -> list[tuple[bytes, int]]:
    """(delegator, amount) of one validator, in delegator-address order."""
    out = []
    for key, raw in view.iter_prefix(keys.delegation_key(validator, b"")):
        out.append((key[-20:], decode_record(Delegation, raw).amount))  # key ends with the delegator
    return out


# ---- unbonding -----------------------------------------------------------------------------
def get_unbonding(view: StateView, completion: int, validator: bytes, delegator: bytes) -> UnbondingEntry | None:
    return view.get_obj(keys.unbonding_key(completion, validator, delegator), UnbondingEntry)


def set_unbonding(
    view: StateView, completion: int, validator: bytes, delegator: bytes, entry: UnbondingEntry | None
) -> None:
    """Write (or, with None or a zero amount, delete) an entry and its by-validator index."""
    key = keys.unbonding_key(completion, validator, delegator)
    index = keys.unbonding_by_validator_key(validator, completion, delegator)
    if entry is None or entry.amount == 0:
        view.delete(key)
        view.delete(index)
    else:
        view.put_obj(key, entry)
        view.put_obj(index, UnbondingRef())


def unbondings_maturing_at(view: StateView, height: int) -> list[tuple[bytes, bytes, UnbondingEntry]]:
    """(validator, delegator, entry) completing at ``height``, in key order."""
    out = []
    for key, raw in view.iter_prefix(keys.unbonding_key(height, b"", b"")):
        out.append((key[-40:-20], key[-20:], decode_record(UnbondingEntry, raw)))
    return out


def unbondings_of_validator(view: StateView, validator: bytes) -> list[tuple[int, bytes, UnbondingEntry]]:
    """(completion height, delegator, entry) of one validator, by completion then delegator."""
    out = []
    for key, _ in view.iter_prefix(keys.unbonding_by_validator_prefix(validator)):
        completion, delegator = int.from_bytes(key[-28:-20], "big"), key[-20:]
        entry = get_unbonding(view, completion, validator, delegator)
        if entry is not None:
            out.append((completion, delegator, entry))
    return out


def iter_unbondings(view: StateView) -> Iterator[tuple[int, bytes, bytes, UnbondingEntry]]:
    """Every unbonding entry (completion, validator, delegator, entry) by completion height."""
    for key, raw in view.iter_prefix(keys.unbonding_queue_prefix()):
        yield int.from_bytes(key[-48:-40], "big"), key[-40:-20], key[-20:], decode_record(UnbondingEntry, raw)


# ---- liveness ------------------------------------------------------------------------------
def get_signing_info(view: StateView, consensus_address: bytes) -> SigningInfo | None:
    return view.get_obj(keys.signing_info_key(consensus_address), SigningInfo)


def set_signing_info(view: StateView, consensus_address: bytes, info: SigningInfo | None) -> None:
    if info is None:
        view.delete(keys.signing_info_key(consensus_address))
    else:
        view.put_obj(keys.signing_info_key(consensus_address), info)


def decode_record(cls: type[T], raw: bytes) -> T:
    return cls.from_wire(unpack(raw))  # type: ignore[attr-defined,no-any-return]
