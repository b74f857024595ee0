"""Storage pages of the state tree: 4 binary levels (16 slots) per page.

Pages are a storage layout only: every hash follows the binary rule of ``state.tree.proof``.
A slot is the subtree 4 levels below the page's node and holds one of:
- nothing;
- a *bucket*: its 1 to BUCKET leaves, stored inline as 64-byte records (path || value hash)
  sorted by path; the slot's hash is that small subtree's collapsed hash, computed on the fly;
- a child page, when the subtree holds more than BUCKET leaves (slot hash = the page's hash).

In memory a page is ONE bytearray (no per-node objects, nothing for the garbage collector):
- ``b[i]`` for ``i`` in 1..31: the leaf count of heap node ``i``, capped per slot at 2 (node
  ``i`` has children ``2i`` and ``2i + 1``; 1 is the page's own node, 16..31 the slots):
  0 empty, 1 exactly one leaf, >= 2 an internal node;
- ``b[32 * i : 32 * i + 32]`` for ``i`` in 1..31: node ``i``'s hash (EMPTY when empty). Children
  are adjacent, so an internal hash is ``sha256(0x01 || b[64 * i : 64 * i + 64])``;
- ``b[1024 + s]``: slot ``s``'s stored kind: 0 empty, 1..BUCKET a bucket of that many leaves,
  PAGE (255) a child page;
- ``b[1040:]``: the buckets' records, slot after slot.

Stored form (``docs/state_tree.md``): the 16 kind bytes, the hash of each page slot in slot
order, then the records. Loading recomputes every other hash.
"""

from __future__ import annotations

import hashlib

from state.tree.proof import EMPTY

__all__ = [
    "BUCKET",
    "KINDS",
    "LEAF_RECORD",
    "PAGE",
    "RECORDS",
    "TreeCorruptionError",
    "bit_of",
    "decode_page",
    "encode_page",
    "new_page",
    "node_hash",
    "page_hash",
    "records_at",
    "rehash_above",
    "split_depth",
    "split_index",
    "subtree_hash",
]

SLOTS = 16
BUCKET = 4  # most leaves a slot keeps inline before it becomes a child page
PAGE = 255
LEAF_RECORD = 64  # path (32) || value hash (32)
KINDS = 1024  # offset of the 16 slot kind bytes
RECORDS = 1040  # offset of the first leaf record
_TEMPLATE = bytes(RECORDS)
_VALID_KINDS = bytes(range(BUCKET + 1)) + bytes((PAGE,))

_sha256 = hashlib.sha256
_INTERNAL = b"\x01"
_LEAF = b"\x00"


class TreeCorruptionError(RuntimeError):
    """A stored tree page, frontier record or root record is not one this module writes."""


def new_page() -> bytearray:
    return bytearray(_TEMPLATE)


def node_hash(b: bytearray, i: int) -> bytes:
    return bytes(b[32 * i : 32 * i + 32])


def page_hash(b: bytearray) -> bytes:
    return bytes(b[32:64])


def records_at(b: bytearray, slot: int) -> int:
    """Where slot ``slot``'s records start (or would)."""
    kinds = b[KINDS : KINDS + slot]
    return RECORDS + LEAF_RECORD * (sum(kinds) - PAGE * kinds.count(PAGE))


def bit_of(path: bytes, depth: int) -> int:
    return (path[depth >> 3] >> (7 - (depth & 7))) & 1


def split_depth(records: bytes) -> int:
    """First bit where the (sorted, distinct) records' paths differ: where their subtree splits."""
    differ = int.from_bytes(records[:32], "big") ^ int.from_bytes(records[-64:-32], "big")
    if not differ:
        raise TreeCorruptionError("two leaf records with one path")
    return 256 - differ.bit_length()


def split_index(records: bytes, split: int) -> int:
    """Byte offset of the first record whose path has bit ``split`` set."""
    at = LEAF_RECORD
    end = len(records)
    while at < end and not bit_of(records[at : at + 32], split):
        at += LEAF_RECORD
    if at >= end:
        raise TreeCorruptionError("leaf records out of order")
    return at


def subtree_hash(records: bytes, depth: int) -> bytes:
    """Collapsed hash of the subtree at ``depth`` holding exactly these sorted records."""
    size = len(records)
    if size == LEAF_RECORD:
        return _sha256(_LEAF + records).digest()
    split = split_depth(records)
    if size == 2 * LEAF_RECORD:
        # The usual bucket: two leaves, split where their paths first differ.
        node = _sha256(
            _INTERNAL
            + _sha256(_LEAF + records[:LEAF_RECORD]).digest()
            + _sha256(_LEAF + records[LEAF_RECORD:]).digest()
        ).digest()
    else:
        at = split_index(records, split)
        node = _sha256(
            _INTERNAL
            + subtree_hash(records[:at], split + 1)
            + subtree_hash(records[at:], split + 1)
        ).digest()
    # Above the split every node holds all the records on one side and EMPTY on the other.
    first = records[:32]
    for d in range(split - 1, depth - 1, -1):
        if bit_of(first, d):
            node = _sha256(_INTERNAL + EMPTY + node).digest()
        else:
            node = _sha256(_INTERNAL + node + EMPTY).digest()
    return node


def rehash_above(b: bytearray, parents: list[int]) -> None:
    """Recompute the nodes above changed slots; ``parents`` are their parents, ascending."""
    if not parents:
        return
    # Hashes are stored through a memoryview: its slice assignment is a plain copy, about a
    # fifth cheaper than the bytearray's. The page is not resized while the view exists.
    with memoryview(b) as m:
        sha = _sha256
        pre = _INTERNAL
        level = parents
        while level:
            above: list[int] = []
            previous = -1
            for i in level:
                if i == previous:
                    continue
                previous = i
                left = i + i
                count = b[left] + b[left + 1]
                b[i] = count
                at = 32 * i
                if count >= 2:
                    m[at : at + 32] = sha(pre + b[at + at : at + at + 64]).digest()
                elif count:
                    child = at + at if b[left] else at + at + 32
                    m[at : at + 32] = b[child : child + 32]
                else:
                    m[at : at + 32] = EMPTY
                if i > 1 and (not above or above[-1] != i >> 1):
                    above.append(i >> 1)
            level = above


def encode_page(b: bytearray) -> bytes:
    kinds = bytes(b[KINDS:RECORDS])
    hashes = []
    s = kinds.find(PAGE)
    while s >= 0:
        at = 512 + 32 * s
        hashes.append(b[at : at + 32])
        s = kinds.find(PAGE, s + 1)
    return kinds + b"".join(hashes) + b[RECORDS:]


def decode_page(blob: bytes, depth: int) -> bytearray:
    """Parse a stored page at ``depth`` and recompute its hashes; raises TreeCorruptionError."""
    kinds = blob[:SLOTS]
    if len(kinds) != SLOTS or kinds.translate(None, _VALID_KINDS):
        raise TreeCorruptionError("tree page header is malformed")
    pages = kinds.count(PAGE)
    leaves = sum(kinds) - PAGE * pages
    if len(blob) != SLOTS + 32 * pages + LEAF_RECORD * leaves:
        raise TreeCorruptionError("tree page length does not match its header")
    if pages == 0 and leaves <= BUCKET:
        raise TreeCorruptionError("tree page holds too few leaves to exist")
    b = bytearray(_TEMPLATE)
    b[KINDS:RECORDS] = kinds
    hash_at = SLOTS
    record_at = records = SLOTS + 32 * pages
    slot_depth = depth + 4
    parents = []
    for s in range(SLOTS):
        kind = kinds[s]
        if not kind:
            continue
        at = 512 + 32 * s
        if kind == PAGE:
            b[16 + s] = 2
            b[at : at + 32] = blob[hash_at : hash_at + 32]
            hash_at += 32
        else:
            end = record_at + LEAF_RECORD * kind
            b[16 + s] = min(kind, 2)
            b[at : at + 32] = subtree_hash(blob[record_at:end], slot_depth)
            record_at = end
        parents.append((16 + s) >> 1)
    b += blob[records:]
    rehash_above(b, parents)
    return b
