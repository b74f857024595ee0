"""Storage pages of the state tree: 4 binary levels (16 slots) per LevelDB value.

A page sits at a depth that is a multiple of 4 and exists only while its subtree holds two or
more leaves. Its 16 slots are the subtrees 4 levels below it: empty, exactly one leaf (stored
inline as path || value_hash) or a child page (stored as that page's hash). Pages are a storage
layout only: hashes follow the binary rule of ``state.smt_proof`` exactly.

In memory a page is (h, c, rec): two bytearrays in binary-heap order (node ``i`` has children
``2i`` and ``2i + 1``; 1 is the page's own node, 16..31 are the slots) and the slots' payloads.
Bytearrays keep a page to three objects the garbage collector never has to traverse.
- ``h[32 * i : 32 * i + 32]``: node ``i``'s hash (EMPTY when empty); children are adjacent, so
  an internal hash is ``sha256(0x01 || h[64 * i : 64 * i + 64])``;
- ``c[i]``: 0 empty, 1 exactly one leaf, >= 2 two or more leaves (an internal node); a slot's
  count is exactly 0, 1 or 2 (2: a child page);
- ``rec[s]``: slot ``s``'s stored bytes: b"" empty, the 64-byte leaf record, or the page hash.

Stored form (``docs/state_tree.md``): 16 kind bytes (slot count 0, 1 or 2, slot 0 first), then
the non-empty slots' stored bytes in slot order.
"""

from __future__ import annotations

import hashlib

from state.smt_proof import EMPTY

__all__ = [
    "LEAF_RECORD",
    "Page",
    "TreeCorruptionError",
    "decode_page",
    "encode_page",
    "new_page",
    "node_hash",
    "page_hash",
    "rehash_all",
    "rehash_above",
    "SLOTS",
]

SLOTS = 16
LEAF_RECORD = 64  # path (32) || value hash (32)
_SIZE = (0, LEAF_RECORD, 32)
Page = tuple[bytearray, bytearray, list[bytes]]

_sha256 = hashlib.sha256
_INTERNAL = b"\x01"
_LEAF = b"\x00"
_EMPTY_PAGE_HASHES = bytes(32 * 32)


class TreeCorruptionError(RuntimeError):
    """A stored tree page or root record is not one this module writes."""


def new_page() -> Page:
    return bytearray(_EMPTY_PAGE_HASHES), bytearray(32), [b""] * SLOTS


def page_hash(page: Page) -> bytes:
    return bytes(page[0][32:64])


def node_hash(page: Page, i: int) -> bytes:
    return bytes(page[0][32 * i : 32 * i + 32])


def rehash_all(page: Page) -> None:
    """Recompute nodes 15..1 from the slots."""
    h, c, _ = page
    sha = _sha256
    pre = _INTERNAL
    for i in range(15, 0, -1):
        left = i + i
        count = c[left] + c[left + 1]
        c[i] = count
        at = 32 * i
        if count >= 2:
            h[at : at + 32] = sha(pre + h[at + at : at + at + 64]).digest()
        elif count:
            # Exactly one leaf below: the collapsed node is that leaf.
            child = at + at if c[left] else at + at + 32
            h[at : at + 32] = h[child : child + 32]
        else:
            h[at : at + 32] = EMPTY


def rehash_above(page: Page, slots: list[int]) -> None:
    """Recompute only the nodes above the changed ``slots`` (sorted, distinct)."""
    h, c, _ = page
    sha = _sha256
    pre = _INTERNAL
    level = [(16 + s) >> 1 for s in slots]
    while True:
        previous = -1
        above = []
        for i in level:
            if i == previous:
                continue
            previous = i
            left = i + i
            count = c[left] + c[left + 1]
            c[i] = count
            at = 32 * i
            if count >= 2:
                h[at : at + 32] = sha(pre + h[at + at : at + at + 64]).digest()
            elif count:
                child = at + at if c[left] else at + at + 32
                h[at : at + 32] = h[child : child + 32]
            else:
                h[at : at + 32] = EMPTY
            above.append(i >> 1)
        if previous == 1:
            return
        level = above


def encode_page(page: Page) -> bytes:
    _, c, rec = page
    return bytes(c[16:]) + b"".join(rec)


def decode_page(blob: bytes) -> Page:
    """Parse a stored page and recompute its inner hashes; raises TreeCorruptionError."""
    kinds = blob[:SLOTS]
    if len(kinds) != SLOTS or kinds.translate(None, b"\x00\x01\x02"):
        raise TreeCorruptionError("tree page header is malformed")
    if len(blob) != SLOTS + LEAF_RECORD * kinds.count(1) + 32 * kinds.count(2):
        raise TreeCorruptionError("tree page length does not match its header")
    h, c, rec = page = new_page()
    c[16:] = kinds
    sha = _sha256
    pre = _LEAF
    offset = SLOTS
    for s in range(SLOTS):
        kind = kinds[s]
        if kind:
            end = offset + _SIZE[kind]
            stored = blob[offset:end]
            rec[s] = stored
            offset = end
            at = 512 + 32 * s
            h[at : at + 32] = sha(pre + stored).digest() if kind == 1 else stored
    rehash_all(page)
    if c[1] < 2:
        raise TreeCorruptionError("tree page holds fewer than two leaves")
    return page
