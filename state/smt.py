"""The authenticated state tree: a collapsed binary sparse Merkle tree stored in LevelDB.

Hashing rules and proofs live in ``state.smt_proof`` (pure); storage pages in ``state.smt_page``;
the layout is documented in ``docs/state_tree.md``. Updates are two-phase so that one atomic
LevelDB batch holds a block's state and tree changes: ``prepare`` computes the new root and every
write without touching the committed view, the caller writes the batch, then ``commit`` adopts it.

A node path is the ASCII hex of the key-path nibbles above a page ("" for the root page, "a3"
for the page at depth 8 under path bits 1010 0011), so page keys are short and a page sorts
right before its descendants in LevelDB.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Protocol

from state.keys import tree_node_key, tree_root_key
from state.smt_page import (
    LEAF_RECORD,
    Page,
    TreeCorruptionError,
    decode_page,
    encode_page,
    node_hash as node_hash_at,
    new_page,
    page_hash,
    rehash_above,
    rehash_all,
)
from state.smt_proof import EMPTY, EMPTY_ROOT, PATH_BITS, Proof, verify_proof

__all__ = [
    "DEFAULT_CACHE_PAGES",
    "EMPTY_ROOT",
    "Proof",
    "SparseMerkleTree",
    "StaleUpdateError",
    "TreeCorruptionError",
    "TreeUpdate",
    "verify_proof",
]

log = logging.getLogger(__name__)

# About 2-3 KiB each decoded; the upper pages a block touches stay hot, the rest are re-read.
DEFAULT_CACHE_PAGES = 20_000

_sha256 = hashlib.sha256
_LEAF = b"\x00"
_NIBBLE = {ch: i for i, ch in enumerate("0123456789abcdef")}

# A slot (or the whole tree's root) as (kind, leaf record or None, hash); kind is the leaf
# count 0, 1 or 2 (two or more: a page exists at the slot's node path).
Slot = tuple[int, bytes | None, bytes]
_EMPTY_SLOT: Slot = (0, None, EMPTY)
# One change, sorted by path: (hex of path, path, leaf record or None for a delete).
Change = tuple[str, bytes, bytes | None]


class StaleUpdateError(RuntimeError):
    """commit() got an update prepared against a view of the tree that is no longer current."""


class WriteBatch(Protocol):
    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


class LevelDB(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


class TreeUpdate:
    """The new root and every LevelDB write that gets the tree there, root record included."""

    __slots__ = ("root", "_base", "_root_slot", "_pages", "_writes")

    def __init__(
        self,
        root: bytes,
        base: int,
        root_slot: Slot,
        pages: dict[str, Page | None],
        writes: list[tuple[bytes, bytes | None]],
    ) -> None:
        self.root = root
        self._base = base
        self._root_slot = root_slot
        self._pages = pages
        self._writes = writes

    def write_to(self, batch: WriteBatch) -> None:
        for key, value in self._writes:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)

    @property
    def write_count(self) -> int:
        return len(self._writes)


def _leaf_slot(record: bytes) -> Slot:
    return (1, record, _sha256(_LEAF + record).digest())


def encode_root_record(slot: Slot) -> bytes:
    """Empty tree: b""; one leaf: 0x01 || path || value hash; a root page: 0x02 || its hash."""
    kind, record, node_hash = slot
    if kind == 0:
        return b""
    if kind == 1:
        return b"\x01" + record  # type: ignore[operator]
    return b"\x02" + node_hash


def decode_root_record(blob: bytes | None) -> Slot:
    if not blob:
        return _EMPTY_SLOT
    if blob[0] == 1 and len(blob) == 1 + LEAF_RECORD:
        return _leaf_slot(blob[1:])
    if blob[0] == 2 and len(blob) == 33:
        return (2, None, blob[1:])
    raise TreeCorruptionError("malformed tree root record")


class SparseMerkleTree:
    """The state tree over one LevelDB; a single writer, reads see the last committed root."""

    def __init__(self, db: LevelDB, cache_pages: int = DEFAULT_CACHE_PAGES) -> None:
        self._db = db
        self._cache_limit = max(0, cache_pages)
        self._cache: OrderedDict[str, Page] = OrderedDict()
        self._version = 0
        self._root_slot = decode_root_record(db.get(tree_root_key()))

    def root(self) -> bytes:
        return self._root_slot[2]

    # ---- reading -------------------------------------------------------------------------

    def _load(self, node_path: str) -> Page:
        page = self._cache.get(node_path)
        if page is not None:
            return page
        blob = self._db.get(tree_node_key(node_path.encode()))
        if blob is None:
            raise TreeCorruptionError(f"tree page {node_path!r} is missing")
        page = decode_page(blob)
        # Committed pages only: prepare never writes here, so the cache stays the committed view.
        self._cache[node_path] = page
        return page

    # ---- updating ------------------------------------------------------------------------

    def prepare(self, changes: Mapping[bytes, bytes | None]) -> TreeUpdate:
        """New root and writes for ``changes`` (None deletes a key); the tree is not changed."""
        items: list[Change] = []
        for key, value in changes.items():
            if type(key) is not bytes:
                raise TypeError("state keys must be bytes")
            path = _sha256(key).digest()
            if value is None:
                record = None
            elif type(value) is bytes:
                record = path + _sha256(value).digest()
            else:
                raise TypeError("state values must be bytes or None")
            items.append((path.hex(), path, record))
        items.sort()
        pages: dict[str, Page | None] = {}
        new_root = self._root_slot
        if items:
            new_root = self._apply(0, "", self._root_slot, items, 0, len(items), pages)
        writes: list[tuple[bytes, bytes | None]] = [
            (tree_node_key(node_path.encode()), None if page is None else encode_page(page))
            for node_path, page in pages.items()
        ]
        writes.append((tree_root_key(), encode_root_record(new_root)))
        return TreeUpdate(new_root[2], self._version, new_root, pages, writes)

    def commit(self, update: TreeUpdate) -> None:
        """Adopt ``update`` once the batch holding its writes is on disk."""
        if update._base != self._version:
            raise StaleUpdateError("tree update was prepared against an older tree")
        cache = self._cache
        for node_path, page in update._pages.items():
            if page is None:
                cache.pop(node_path, None)
            else:
                cache[node_path] = page
                cache.move_to_end(node_path)
        # Least recently rewritten first: the upper pages every block touches stay cached.
        while len(cache) > self._cache_limit:
            cache.popitem(last=False)
        self._root_slot = update._root_slot
        self._version += 1

    def _apply(
        self,
        nibble: int,
        node_path: str,
        slot: Slot,
        items: list[Change],
        lo: int,
        hi: int,
        pages: dict[str, Page | None],
    ) -> Slot:
        """New content of the subtree at ``node_path`` after ``items[lo:hi]`` (all under it)."""
        if slot[0] >= 2:
            return self._update_page(nibble, node_path, slot[2], items, lo, hi, pages)
        return _build(nibble, node_path, _merge_leaf(slot[1], items, lo, hi), pages)

    def _update_page(
        self,
        nibble: int,
        node_path: str,
        old_hash: bytes,
        items: list[Change],
        lo: int,
        hi: int,
        pages: dict[str, Page | None],
    ) -> Slot:
        old = self._load(node_path)
        h = old[0][:]
        c = old[1][:]
        rec = old[2][:]
        page: Page = (h, c, rec)
        changed: list[int] = []
        j = lo
        while j < hi:
            ch = items[j][0][nibble]
            end = j + 1
            while end < hi and items[end][0][nibble] == ch:
                end += 1
            s = _NIBBLE[ch]
            kind = c[16 + s]
            if kind == 2:
                kind, stored, node_hash = self._update_page(
                    nibble + 1, node_path + ch, rec[s], items, j, end, pages
                )
            elif end - j == 1 and (kind == 0 or rec[s][:32] == items[j][1]):
                # The common case at the bottom: one change for an empty slot or its own leaf.
                stored = items[j][2]
                if stored is None:
                    kind, node_hash = 0, EMPTY
                else:
                    kind, node_hash = 1, _sha256(_LEAF + stored).digest()
            else:
                leaves = _merge_leaf(rec[s] if kind else None, items, j, end)
                kind, stored, node_hash = _build(nibble + 1, node_path + ch, leaves, pages)
            at = 512 + 32 * s
            c[16 + s] = kind
            h[at : at + 32] = node_hash
            rec[s] = node_hash if kind == 2 else stored or b""
            changed.append(s)
            j = end
        slot_counts = c[16:]
        nonempty = 16 - slot_counts.count(0)
        if nonempty <= 1 and 2 not in slot_counts:
            # At most one leaf left: the page goes and the leaf (if any) moves up a level.
            pages[node_path] = None
            if nonempty == 0:
                return _EMPTY_SLOT
            s = slot_counts.index(1)
            return (1, rec[s], node_hash_at(page, 16 + s))
        rehash_above(page, changed)
        new_hash = page_hash(page)
        if new_hash != old_hash:
            pages[node_path] = page
        return (2, None, new_hash)

    # ---- proofs --------------------------------------------------------------------------

    def get_proof(self, key: bytes) -> Proof:
        """Inclusion proof if ``key`` is in the tree, else non-inclusion, against root()."""
        if type(key) is not bytes:
            raise TypeError("state keys must be bytes")
        path = _sha256(key).digest()
        hex_path = path.hex()
        bitmap = 0
        siblings: list[bytes] = []
        kind, record, _ = self._root_slot
        depth = 0
        node_path = ""
        while kind >= 2:
            page = self._load(node_path)
            c = page[1]
            i = 1
            for _ in range(4):
                child = i + i + ((path[depth >> 3] >> (7 - (depth & 7))) & 1)
                sibling = node_hash_at(page, child ^ 1)
                if sibling != EMPTY:
                    bitmap |= 1 << (PATH_BITS - 1 - depth)
                    siblings.append(sibling)
                depth += 1
                i = child
                if c[i] < 2:
                    break
            kind = c[i]
            if kind >= 2:
                node_path += hex_path[len(node_path)]
            elif kind == 1:
                record = _single_leaf_below(page, i)
        if kind == 1 and record is not None and record[:32] != path:
            leaf_path, leaf_value_hash = record[:32], record[32:]
        else:
            leaf_path = leaf_value_hash = b""
        return Proof(bitmap.to_bytes(32, "big"), tuple(siblings), leaf_path, leaf_value_hash)


def _single_leaf_below(page: Page, i: int) -> bytes:
    """The record of the one leaf in the subtree of heap node ``i`` (a slot or above)."""
    c = page[1]
    while i < 16:
        i = i + i if c[i + i] else i + i + 1
    return page[2][i - 16]


def _merge_leaf(
    existing: bytes | None, items: list[Change], lo: int, hi: int
) -> list[tuple[str, bytes]]:
    """Sorted leaves of a subtree that held at most the ``existing`` leaf, after the items."""
    leaves = [(hex_path, record) for hex_path, _, record in items[lo:hi] if record is not None]
    if existing is not None:
        existing_path = existing[:32]
        if all(path != existing_path for _, path, _ in items[lo:hi]):
            leaves.append((existing_path.hex(), existing))
            leaves.sort()
    return leaves


def _build(
    nibble: int, node_path: str, leaves: list[tuple[str, bytes]], pages: dict[str, Page | None]
) -> Slot:
    """A fresh subtree at ``node_path`` holding ``leaves`` (sorted), pages created as needed."""
    if not leaves:
        return _EMPTY_SLOT
    if len(leaves) == 1:
        return _leaf_slot(leaves[0][1])
    page = new_page()
    h, c, rec = page
    j = 0
    n = len(leaves)
    while j < n:
        ch = leaves[j][0][nibble]
        end = j + 1
        while end < n and leaves[end][0][nibble] == ch:
            end += 1
        s = _NIBBLE[ch]
        kind, record, node_hash = _build(nibble + 1, node_path + ch, leaves[j:end], pages)
        at = 512 + 32 * s
        c[16 + s] = kind
        h[at : at + 32] = node_hash
        rec[s] = node_hash if kind == 2 else record  # type: ignore[assignment]
        j = end
    rehash_all(page)
    pages[node_path] = page
    return (2, None, page_hash(page))
