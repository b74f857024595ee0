"""One block's changes applied to the state tree's pages, in a single pass over sorted paths.

The changes are sorted by key path, so the changes under any page form one contiguous run and
each page a block touches is loaded, changed and rehashed once, however many of the block's
keys lie below it. Nothing here writes: the result is the new root hash, the changed pages
(None for a page that no longer exists) and the changed frontier records.

Two kinds of page (``docs/state_tree.md``):
- upper pages (node paths of 0 to 4 hex digits, depth 0 to 16) live in memory only. One exists
  for every prefix with at least one leaf below it; the slots of those above depth 16 are
  empty or an upper page (count 1 or 2, hash = that page's subtree hash);
- the slots of the depth-16 pages form the frontier at depth 20 (one LevelDB record per 20-bit
  prefix) and, like the slots of lower pages (depth >= 20, in LevelDB), hold nothing, a bucket
  of up to BUCKET leaves, or a lower page.
Leaf counts (capped at 2) make every hash follow the collapsed binary rule either way.

This is the hot path of block execution; it trades a little repetition for fewer Python
operations per page (see ``bench/tree_bench.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from state.tree.page import (
    BUCKET,
    KINDS,
    LEAF_RECORD,
    PAGE,
    RECORDS,
    TreeCorruptionError,
    new_page,
    page_hash,
    records_at,
    rehash_above,
    subtree_hash,
)
from state.tree.proof import EMPTY

__all__ = [
    "Change",
    "EMPTY_SLOT",
    "FRONTIER_LEVEL",
    "HEX_OF_SLOT_NODE",
    "Pages",
    "Slot",
    "TreeChanges",
    "apply_changes",
    "build_upper_pages",
    "decode_frontier_record",
    "merged_records",
]

# Node paths shorter than this (in hex digits) are upper pages; the frontier (depth 20) is the
# slots of the upper pages with FRONTIER_LEVEL - 1 digits. A deeper frontier keeps more pages
# in memory (about 130 MiB at a million keys) but spares each key update a ~1 KB page rewrite.
FRONTIER_LEVEL = 5

# A subtree as (count, records, hash): count 0 empty, 1 one leaf, 2 two or more; records are
# its leaves' records when it is a bucket (at most BUCKET leaves), None when it is a page.
Slot = tuple[int, "bytes | None", bytes]
EMPTY_SLOT: Slot = (0, None, EMPTY)
# One change: (ASCII hex of the key path, key path, leaf record or None for a delete). A page's
# node path is the hex prefix of the paths below it, one digit per page level.
Change = tuple[bytes, bytes, "bytes | None"]
Pages = dict[bytes, "bytearray | None"]

_sha256 = hashlib.sha256
_LEAF = b"\x00"
# Heap index of the slot a hex digit (as an ASCII code) selects: 16 + its value.
_SLOT_NODE = [0] * 256
for _value, _char in enumerate(b"0123456789abcdef"):
    _SLOT_NODE[_char] = 16 + _value
HEX_OF_SLOT_NODE = {16 + s: b"%x" % s for s in range(16)}


class TreeChanges:
    """What one block does to the tree: new root, changed pages and frontier records."""

    __slots__ = ("root", "upper", "lower", "frontier")

    def __init__(self) -> None:
        self.root = EMPTY
        self.upper: Pages = {}
        self.lower: Pages = {}
        # 4-digit prefix -> stored frontier record (b"" when the prefix became empty)
        self.frontier: dict[bytes, bytes] = {}


def decode_frontier_record(stored: bytes) -> tuple[int, bytes]:
    """(kind byte as in a page, payload) of a stored frontier record."""
    if stored[:1] == b"\x02" and len(stored) == 33:
        return PAGE, stored[1:]
    count, rest = divmod(len(stored) - 1, LEAF_RECORD)
    if stored[:1] == b"\x01" and rest == 0 and 1 <= count <= BUCKET:
        return count, stored[1:]
    raise TreeCorruptionError("malformed frontier record")


def apply_changes(
    upper_page: Callable[[bytes], "bytearray | None"],
    lower_page: Callable[[bytes], bytearray],
    items: list[Change],
) -> TreeChanges:
    """The tree after ``items`` (sorted by path, one per key), computed without writing."""
    result = TreeChanges()
    upper = result.upper
    lower = result.lower
    frontier = result.frontier
    sha = _sha256
    leaf_prefix = _LEAF
    slot_node = _SLOT_NODE

    def update_page(
        nibble: int, node_path: bytes, old_hash: bytes, lo: int, hi: int, frontier_page: bool
    ) -> Slot:
        """The page at ``node_path`` after ``items[lo:hi]``, which all lie under it.

        A lower page, or (``frontier_page``) a depth-16 upper page whose slots are frontier
        records: that one stays while it holds any leaf and returns (count, None, hash).
        """
        if frontier_page:
            base = upper_page(node_path)
            b = new_page() if base is None else bytearray(base)
        else:
            b = bytearray(lower_page(node_path))
        parents: list[int] = []
        j = lo
        while j < hi:
            hex_path = items[j][0]
            ch = hex_path[nibble]
            end = j + 1
            if hi - j > 1:
                while end < hi and items[end][0][nibble] == ch:
                    end += 1
            i = slot_node[ch]
            at = i << 5
            kind = b[KINDS - 16 + i]
            if kind == PAGE:
                new_count, records, new_hash = update_page(
                    nibble + 1, hex_path[: nibble + 1], bytes(b[at : at + 32]), j, end, False
                )
                size = 0
                if records is not None:
                    offset = records_at(b, i - 16)
            else:
                offset = records_at(b, i - 16)
                size = LEAF_RECORD * kind
                if end - j == 1 and (
                    kind == 0 or (kind == 1 and b[offset : offset + 32] == items[j][1])
                ):
                    # The common case at the bottom: one change to an empty slot or its own leaf.
                    records = items[j][2]
                    if records is None:
                        new_count, new_hash = 0, EMPTY
                    else:
                        new_count, new_hash = 1, sha(leaf_prefix + records).digest()
                else:
                    records = merged_records(bytes(b[offset : offset + size]), items, j, end)
                    child_path = hex_path[: nibble + 1]
                    new_count, records, new_hash = build(nibble + 1, child_path, records)
            if records is None:
                b[KINDS - 16 + i] = PAGE if new_count else 0
                if size:
                    del b[offset : offset + size]
            else:
                b[KINDS - 16 + i] = len(records) >> 6
                b[offset : offset + size] = records
            b[i] = new_count
            b[at : at + 32] = new_hash
            if frontier_page:
                frontier[hex_path[:FRONTIER_LEVEL]] = (
                    (b"\x02" + new_hash if new_count else b"")
                    if records is None
                    else b"\x01" + records
                )
            parents.append(i >> 1)
            j = end
        rehash_above(b, parents)
        if frontier_page:
            if b[1] == 0:
                upper[node_path] = None
                return EMPTY_SLOT
            upper[node_path] = b
            return (min(b[1], 2), None, page_hash(b))
        kinds = b[KINDS:RECORDS]
        if PAGE not in kinds:
            leaves_left = sum(kinds)
            if leaves_left <= BUCKET:
                # Few enough leaves to sit inline in the parent's slot: the page goes.
                lower[node_path] = None
                if leaves_left == 0:
                    return EMPTY_SLOT
                return (min(leaves_left, 2), bytes(b[RECORDS:]), page_hash(b))
        new_hash = page_hash(b)
        if new_hash != old_hash:
            lower[node_path] = b
        return (2, None, new_hash)

    def lone_leaf_page(nibble: int, node_path: bytes, j: int) -> Slot | None:
        """Shortcut for the commonest frontier page of a sparse tree: one change that leaves it
        with at most one leaf (a key alone in its prefix added, changed or deleted). The page is
        built directly: every node above the leaf's slot has count 1 and the leaf's hash. None
        when the change does not fit (update_page then does the general work)."""
        hex_path, path, record = items[j]
        base = upper_page(node_path)
        if base is None:
            if record is None:
                return None
        elif base[1] != 1 or base[RECORDS : RECORDS + 32] != path:
            return None  # more than one leaf, or another key's leaf: no longer alone
        prefix = hex_path[:FRONTIER_LEVEL]
        if record is None:
            upper[node_path] = None
            frontier[prefix] = b""
            return EMPTY_SLOT
        b = new_page()
        i = slot_node[hex_path[nibble]]
        b[KINDS - 16 + i] = 1
        b += record
        leaf_hash = sha(leaf_prefix + record).digest()
        while i:
            b[i] = 1
            b[i << 5 : (i << 5) + 32] = leaf_hash
            i >>= 1
        upper[node_path] = b
        frontier[prefix] = b"\x01" + record
        return (1, None, leaf_hash)

    def update_upper(nibble: int, node_path: bytes, lo: int, hi: int) -> tuple[int, bytes]:
        """(count, hash) of the upper page at ``node_path`` after ``items[lo:hi]``."""
        base = upper_page(node_path)
        b = new_page() if base is None else bytearray(base)
        parents: list[int] = []
        j = lo
        while j < hi:
            hex_path = items[j][0]
            ch = hex_path[nibble]
            end = j + 1
            while end < hi and items[end][0][nibble] == ch:
                end += 1
            i = slot_node[ch]
            if nibble + 2 < FRONTIER_LEVEL:
                count, subtree = update_upper(nibble + 1, hex_path[: nibble + 1], j, end)
            else:
                child_path = hex_path[: nibble + 1]
                lone = lone_leaf_page(nibble + 1, child_path, j) if end - j == 1 else None
                if lone is None:
                    lone = update_page(nibble + 1, child_path, EMPTY, j, end, True)
                count, _, subtree = lone
            b[i] = count
            b[i << 5 : (i << 5) + 32] = subtree
            parents.append(i >> 1)
            j = end
        rehash_above(b, parents)
        count = b[1]
        if count == 0:
            upper[node_path] = None
            return 0, EMPTY
        upper[node_path] = b
        return min(count, 2), page_hash(b)

    def build(nibble: int, node_path: bytes, records: bytes) -> Slot:
        """A fresh subtree at ``node_path`` (depth 4 * nibble) holding the sorted records."""
        n = len(records) >> 6
        if n <= BUCKET:
            if n == 0:
                return EMPTY_SLOT
            return (min(n, 2), records, subtree_hash(records, 4 * nibble))
        b = new_page()
        parents = []
        hex_paths = [records[at : at + 32].hex().encode() for at in range(0, len(records), 64)]
        j = 0
        while j < n:
            hex_path = hex_paths[j]
            ch = hex_path[nibble]
            end = j + 1
            while end < n and hex_paths[end][nibble] == ch:
                end += 1
            i = slot_node[ch]
            group = records[LEAF_RECORD * j : LEAF_RECORD * end]
            count, records_here, subtree = build(nibble + 1, hex_path[: nibble + 1], group)
            b[i] = count
            b[i << 5 : (i << 5) + 32] = subtree
            if records_here is None:
                b[KINDS - 16 + i] = PAGE
            else:
                b[KINDS - 16 + i] = len(records_here) >> 6
                b += records_here
            parents.append(i >> 1)
            j = end
        rehash_above(b, parents)
        lower[node_path] = b
        return (2, None, page_hash(b))

    if items:
        result.root = update_upper(0, b"", 0, len(items))[1]
    else:
        root = upper_page(b"")
        result.root = EMPTY if root is None else page_hash(root)
    return result


def merged_records(existing: bytes, items: list[Change], lo: int, hi: int) -> bytes:
    """The sorted records of a bucket holding ``existing`` after ``items[lo:hi]``."""
    if hi - lo == 1:
        # One change: splice it into the (at most BUCKET) sorted records.
        _, path, record = items[lo]
        at = 0
        size = len(existing)
        while at < size and existing[at : at + 32] < path:
            at += LEAF_RECORD
        replaced = LEAF_RECORD if at < size and existing[at : at + 32] == path else 0
        return existing[:at] + (record or b"") + existing[at + replaced :]
    merged = {
        existing[at : at + 32]: existing[at : at + LEAF_RECORD]
        for at in range(0, len(existing), LEAF_RECORD)
    }
    for _, path, record in items[lo:hi]:
        if record is None:
            merged.pop(path, None)
        else:
            merged[path] = record
    return b"".join(merged[path] for path in sorted(merged))


def build_upper_pages(records: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytearray]:
    """Every upper page, rebuilt from the frontier records in prefix order (when reopening)."""
    pages: dict[bytes, bytearray] = {}
    parents: dict[bytes, list[int]] = {}
    slot_depth = 4 * FRONTIER_LEVEL
    for prefix, stored in records:
        if len(prefix) != FRONTIER_LEVEL or prefix.strip(b"0123456789abcdef"):
            raise TreeCorruptionError(f"malformed frontier key {prefix!r}")
        owner = prefix[:-1]
        b = pages.get(owner)
        if b is None:
            b = pages[owner] = new_page()
            parents[owner] = []
        i = _SLOT_NODE[prefix[-1]]
        kind, payload = decode_frontier_record(stored)
        b[KINDS - 16 + i] = kind
        if kind == PAGE:
            b[i] = 2
            b[i << 5 : (i << 5) + 32] = payload
        else:
            b[i] = min(kind, 2)
            b[i << 5 : (i << 5) + 32] = subtree_hash(payload, slot_depth)
            b += payload  # records arrive in slot order, as the page keeps them
        parents[owner].append(i >> 1)
    for level in range(FRONTIER_LEVEL - 1, 0, -1):
        for node_path in sorted(p for p in pages if len(p) == level):
            b = pages[node_path]
            rehash_above(b, parents[node_path])
            owner = node_path[:-1]
            if owner not in pages:
                pages[owner] = new_page()
                parents[owner] = []
            parent = pages[owner]
            i = _SLOT_NODE[node_path[-1]]
            parent[i] = min(b[1], 2)
            parent[i << 5 : (i << 5) + 32] = page_hash(b)
            parents[owner].append(i >> 1)
    if b"" in pages:
        rehash_above(pages[b""], parents[b""])
    return pages
