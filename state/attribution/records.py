"""State records of the attribution domain: the canonical structures stored under state keys.

Every value written by the attribution handlers is one of these structures (or, for the two hot
indexes, the small fixed-shape arrays documented next to their helpers in `state/attribution/postings.py` and
`state/attribution/dedupe.py`). Lists of ids and of 64-bit hashes are stored as concatenated fixed-width bytes
(32 bytes per id, 8 bytes big-endian per hash): one msgpack `bin` is canonical and decodes in O(1)
Python calls, which is what keeps an inference with 1,024 output hashes within a few milliseconds.
"""

from __future__ import annotations

import operator
import struct
from dataclasses import dataclass
from typing import Any

from state.codec import ADDRESS, HASH, U8, U16, U32, U64, Bytes, CodecError, List, Tuple, canonical, f
from state.tx import MAX_FINGERPRINT, MAX_MINHASH, MIX, NAME, OPT_ADDRESS, OPT_HASH, URI

# contribution status
PENDING = 0
ACCEPTED = 1
REJECTED = 2
VOIDED = 3
STATUS_NAMES = {PENDING: "pending", ACCEPTED: "accepted", REJECTED: "rejected", VOIDED: "voided"}

ID_SIZE = 32


@dataclass(frozen=True)
class UInt256:
    """Unsigned integer below 2**256, on the wire as exactly 32 big-endian bytes (msgpack ints stop
    at 64 bits; the reward-per-unit accumulator does not)."""

    def check(self, value: Any, path: str) -> int:
        if type(value) is not int or not 0 <= value < 1 << 256:
            raise CodecError(f"{path}: expected uint256, got {value!r:.40}")
        return value

    def to_wire(self, value: int) -> bytes:
        return value.to_bytes(32, "big")

    def from_wire(self, value: Any, path: str) -> int:
        if type(value) is not bytes or len(value) != 32:
            raise CodecError(f"{path}: expected 32 bytes (uint256)")
        return int.from_bytes(value, "big")

    def describe(self) -> str:
        return "bin(32): uint256 big-endian"


U256 = UInt256()


@canonical
class Datanet:
    owner: bytes = f(ADDRESS)
    name: str = f(NAME)
    metadata_uri: str = f(URI)
    bond_required: int = f(U64)
    created_height: int = f(U64)
    curators: int = f(U32)  # number of curators, the owner included
    submitted: int = f(U64)  # contributions ever submitted
    accepted: int = f(U64)  # contributions currently accepted
    total_units: int = f(U64)  # sum of the pool units, min(size, pool_unit_cap), of the accepted contributions
    reward_per_unit: int = f(U256)  # accumulator, scaled by pools.PRECISION
    carry: int = f(U256)  # undistributed remainder, scaled by pools.PRECISION
    rewards_in: int = f(U256)  # tokens ever paid to this datanet (pool or owner fallback)


@canonical
class Curator:
    added_height: int = f(U64)


@canonical
class Contribution:
    datanet: bytes = f(HASH)
    owner: bytes = f(ADDRESS)
    content_hash: bytes = f(HASH)
    size: int = f(U32)  # bytes of content = reward units once accepted
    bond: int = f(U64)  # escrowed while pending
    status: int = f(U8)
    created_height: int = f(U64)
    fingerprint_len: int = f(U16)
    reward_entry: int = f(U256)  # datanet reward_per_unit when last settled
    reward_frac: int = f(U64)  # settled sub-token remainder, scaled by pools.PRECISION
    unclaimed: int = f(U64)  # settled whole tokens not yet claimed
    claimed: int = f(U256)  # tokens ever claimed
    commit_height: int = f(U64)  # block of its commitment: (commit_height, commit_index) orders conflicts
    commit_index: int = f(U32)  # position of the commitment in that block
    accepted_height: int = f(U64)  # 0 until accepted; bond escrowed and rewards vesting until + challenge_window_blocks


@canonical
class Commitment:
    """A commit_contribution awaiting its reveal (deleted by the reveal)."""

    sender: bytes = f(ADDRESS)
    height: int = f(U64)
    index: int = f(U32)


@canonical
class Sketch:
    """The registered fingerprint and MinHash of a pending or accepted contribution."""

    fingerprint: bytes = f(Bytes(8 * MAX_FINGERPRINT))  # u64 big-endian each
    minhash: bytes = f(Bytes(8 * MAX_MINHASH))
    # u32 big-endian per fingerprint value: the shingle index of its first occurrence in the text
    positions: bytes = f(Bytes(4 * MAX_FINGERPRINT))


@canonical
class Model:
    owner: bytes = f(ADDRESS)
    name: str = f(NAME)
    datanets: tuple[tuple[bytes, int], ...] = f(MIX)
    parent: bytes = f(OPT_HASH)
    lineage_bps: int = f(U16)
    depth: int = f(U16)  # 0 for a base model, parent depth + 1 for a fine-tune
    created_height: int = f(U64)


@canonical
class Adapter:
    owner: bytes = f(ADDRESS)
    name: str = f(NAME)
    base_model: bytes = f(HASH)
    datanets: tuple[tuple[bytes, int], ...] = f(MIX)
    created_height: int = f(U64)


@canonical
class Agent:
    owner: bytes = f(ADDRESS)
    name: str = f(NAME)
    model: bytes = f(HASH)
    adapter: bytes = f(OPT_HASH)
    stake: int = f(U64)
    actions: int = f(U64)  # recorded agent actions = the next action sequence number
    created_height: int = f(U64)


@canonical
class AgentActionRecord:
    action_hash: bytes = f(HASH)
    outcome_hash: bytes = f(HASH)
    height: int = f(U64)
    tx_hash: bytes = f(HASH)


@canonical
class Inference:
    payer: bytes = f(ADDRESS)
    model: bytes = f(HASH)
    adapter: bytes = f(OPT_HASH)
    agent: bytes = f(OPT_ADDRESS)
    payment: int = f(U64)
    input_tokens: int = f(U32)
    output_tokens: int = f(U32)
    output_hash: bytes = f(HASH)
    output_bytes: int = f(U32)  # 0: unattributed (no text; the data share goes to the pool)
    output_shingles: int = f(U32)  # shingles of the output text (the matched part's denominator)
    covered_shingles: int = f(U32)  # output shingles credited to a paid span
    height: int = f(U64)
    tx_index: int = f(U32)


# receipt roles
ROLE_VALIDATORS = 1
ROLE_MODEL_OWNER = 2
ROLE_ADAPTER_OWNER = 3
ROLE_AGENT_OWNER = 4
ROLE_MATCHED = 5
ROLE_DATANET_POOL = 6
ROLE_DATANET_OWNER = 7
ROLE_NAMES = {
    ROLE_VALIDATORS: "validators",
    ROLE_MODEL_OWNER: "model_owner",
    ROLE_ADAPTER_OWNER: "adapter_owner",
    ROLE_AGENT_OWNER: "agent_owner",
    ROLE_MATCHED: "matched_contribution",
    ROLE_DATANET_POOL: "datanet_pool",
    ROLE_DATANET_OWNER: "datanet_owner",
}

MAX_RECEIPT_ENTRIES = 1 << 17  # above max_matched (u16) + every possible datanet and owner
RECIPIENT = Bytes(sizes=(20, 32))  # an account address or a contribution / datanet id
ENTRY = Tuple((RECIPIENT, U8, U64))  # (recipient, role, amount)
# a paid span: (output shingle start, contribution shingle start, shingles, credited shingles, weight)
SPAN = Tuple((U32, U32, U32, U32, U64))
MAX_SPANS = 1 << 16
# (contribution, owner, score, amount, spans); a score can exceed 64 bits when genesis picks a huge idf_scale
MATCH = Tuple((HASH, ADDRESS, U256, U64, List(SPAN, MAX_SPANS)))
# a pool deposit: (datanet, its total_units and accepted count at the deposit, reward_per_unit added):
# each accepted contribution of the datanet earned min(size, pool_unit_cap) * added / PRECISION
POOL = Tuple((HASH, U64, U64, U256))


@canonical
class Receipt:
    """Where one inference's payment went; the amounts of ``entries`` sum to the payment."""

    payment: int = f(U64)
    height: int = f(U64)
    entries: tuple[tuple[bytes, int, int], ...] = f(List(ENTRY, MAX_RECEIPT_ENTRIES))
    matched: tuple[tuple[bytes, bytes, int, int, tuple[tuple[int, int, int, int, int], ...]], ...] = f(
        List(MATCH, MAX_RECEIPT_ENTRIES))
    pools: tuple[tuple[bytes, int, int, int], ...] = f(List(POOL, MAX_RECEIPT_ENTRIES))


# ---- fixed-width packing of id and hash lists -------------------------------------------------


def join_ids(ids: list[bytes] | tuple[bytes, ...]) -> bytes:
    return b"".join(ids)


def split_ids(data: bytes) -> list[bytes]:
    return [data[i : i + ID_SIZE] for i in range(0, len(data), ID_SIZE)]


def pack_u64s(values: tuple[int, ...] | list[int]) -> bytes:
    return struct.pack(f">{len(values)}Q", *values)


def unpack_u64s(data: bytes) -> tuple[int, ...]:
    return struct.unpack(f">{len(data) // 8}Q", data)


def is_strictly_ascending(values: tuple[int, ...]) -> bool:
    """True when every value is below the next (sorted and unique); C-speed for 1,024 values."""
    return all(map(operator.lt, values, values[1:]))
