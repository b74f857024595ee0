"""The authenticated state tree: a collapsed binary sparse Merkle tree stored in LevelDB.

Hashing rules and proofs live in ``state.tree.proof`` (pure), storage pages in
``state.tree.page``, the per-block update pass in ``state.tree.update``; ``docs/state_tree.md``
documents the layout. Updates are two-phase so that one atomic LevelDB batch holds a block's
state and tree changes: ``prepare`` computes the new root and every write without touching the
committed view, the caller writes the batch, then ``commit`` adopts it.

LevelDB holds the lower pages (depth >= 20), one frontier record per non-empty 20-bit prefix
and the root record. The upper pages (depth < 20, at most 69,905) are derived from the frontier,
so they are kept in memory and rebuilt when the tree is opened; a block then writes one small
frontier record per touched prefix instead of rewriting five upper pages per key.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from typing import Protocol

from state.keys import tree_node_key, tree_root_key
from state.tree.page import (
    KINDS,
    LEAF_RECORD,
    PAGE,
    TreeCorruptionError,
    bit_of,
    decode_page,
    encode_page,
    node_hash,
    page_hash,
    records_at,
    split_depth,
    split_index,
    subtree_hash,
)
from state.tree.proof import EMPTY, EMPTY_ROOT, PATH_BITS, Proof, verify_proof
from state.tree.update import (
    FRONTIER_LEVEL,
    HEX_OF_SLOT_NODE,
    Change,
    apply_changes,
    build_upper_pages,
)

__all__ = [
    "DEFAULT_CACHE_LEVELS",
    "EMPTY_ROOT",
    "Proof",
    "SparseMerkleTree",
    "StaleUpdateError",
    "TreeCorruptionError",
    "TreeUpdate",
    "verify_proof",
]

log = logging.getLogger(__name__)

# Lower page levels kept in memory once read, from the frontier (depth 20) down. At a million
# keys few depth-20 pages exist (a 20-bit prefix holds about one key), so level 1 costs a few
# MiB and spares the LevelDB read of the rare update that goes below the frontier.
DEFAULT_CACHE_LEVELS = 1

# Frontier records live under this node path prefix; page node paths are hex digits only.
_FRONTIER = b"="
_sha256 = hashlib.sha256


class StaleUpdateError(RuntimeError):
    """commit() got an update prepared against a view of the tree that is no longer current."""


class WriteBatch(Protocol):
    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...


class LevelDB(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def iterator(self, *, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...


class TreeUpdate:
    """The new root and every LevelDB write that gets the tree there, root record included."""

    __slots__ = ("root", "_base", "_upper", "_cache_puts", "_cache_drops", "_writes")

    def __init__(
        self,
        root: bytes,
        base: int,
        upper: dict[bytes, bytearray | None],
        cache_puts: dict[bytes, bytearray],
        cache_drops: list[bytes],
        writes: list[tuple[bytes, bytes | None]],
    ) -> None:
        self.root = root
        self._base = base
        self._upper = upper
        self._cache_puts = cache_puts
        self._cache_drops = cache_drops
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

    @property
    def write_bytes(self) -> int:
        return sum(len(key) + len(value or b"") for key, value in self._writes)


def _changes_by_path(changes: Mapping[bytes, bytes | None]) -> list[Change]:
    items: list[Change] = []
    sha = _sha256
    for key, value in changes.items():
        if type(key) is not bytes:
            raise TypeError("state keys must be bytes")
        path = sha(key).digest()
        if value is None:
            record = None
        elif type(value) is bytes:
            record = path + sha(value).digest()
        else:
            raise TypeError("state values must be bytes or None")
        items.append((path.hex().encode(), path, record))
    items.sort()
    return items


class SparseMerkleTree:
    """The state tree over one LevelDB; a single writer, reads see the last committed root."""

    def __init__(self, db: LevelDB, cache_levels: int = DEFAULT_CACHE_LEVELS) -> None:
        self._db = db
        self._cache_depth = FRONTIER_LEVEL + max(0, cache_levels)
        # Committed lower pages only; prepare copies a page before changing it.
        self._cache: dict[bytes, bytearray] = {}
        self._version = 0
        self._upper: dict[bytes, bytearray] = {}
        self._root = EMPTY
        stored_root = db.get(tree_root_key())
        if stored_root is not None:
            self._reload(stored_root)

    def _reload(self, stored_root: bytes) -> None:
        """Rebuild the upper pages from the frontier records; they must give the stored root."""
        frontier_key = tree_node_key(_FRONTIER)
        records = (
            (key[len(frontier_key) :], value)
            for key, value in self._db.iterator(prefix=frontier_key)
        )
        self._upper = build_upper_pages(records)
        root_page = self._upper.get(b"")
        self._root = EMPTY if root_page is None else page_hash(root_page)
        if stored_root != self._root:
            raise TreeCorruptionError("tree frontier does not hash to the stored root")
        log.info("state tree loaded: root %s, %d upper pages", self._root.hex(), len(self._upper))

    def root(self) -> bytes:
        return self._root

    def _lower_page(self, node_path: bytes) -> bytearray:
        page = self._cache.get(node_path)
        if page is not None:
            return page
        blob = self._db.get(tree_node_key(node_path))
        if blob is None:
            raise TreeCorruptionError(f"tree page {node_path!r} is missing")
        page = decode_page(blob, 4 * len(node_path))
        if len(node_path) < self._cache_depth:
            self._cache[node_path] = page
        return page

    def _page(self, node_path: bytes) -> bytearray:
        if len(node_path) < FRONTIER_LEVEL:
            page = self._upper.get(node_path)
            if page is None:
                raise TreeCorruptionError(f"upper tree page {node_path!r} is missing")
            return page
        return self._lower_page(node_path)

    def prepare(self, changes: Mapping[bytes, bytes | None]) -> TreeUpdate:
        """New root and writes for ``changes`` (None deletes a key); the tree is not changed."""
        result = apply_changes(self._upper.get, self._lower_page, _changes_by_path(changes))
        cache_depth = self._cache_depth
        cache_puts: dict[bytes, bytearray] = {}
        cache_drops: list[bytes] = []
        writes: list[tuple[bytes, bytes | None]] = []
        for node_path, page in result.lower.items():
            if page is None:
                writes.append((tree_node_key(node_path), None))
                if len(node_path) < cache_depth:
                    cache_drops.append(node_path)
            else:
                writes.append((tree_node_key(node_path), encode_page(page)))
                if len(node_path) < cache_depth:
                    cache_puts[node_path] = page
        for prefix, stored in result.frontier.items():
            writes.append((tree_node_key(_FRONTIER + prefix), stored or None))
        writes.append((tree_root_key(), result.root))
        return TreeUpdate(result.root, self._version, result.upper, cache_puts, cache_drops, writes)

    def commit(self, update: TreeUpdate) -> None:
        """Adopt ``update`` once the batch holding its writes is on disk."""
        if update._base != self._version:
            raise StaleUpdateError("tree update was prepared against an older tree")
        upper = self._upper
        for node_path, page in update._upper.items():
            if page is None:
                upper.pop(node_path, None)
            else:
                upper[node_path] = page
        cache = self._cache
        for node_path in update._cache_drops:
            cache.pop(node_path, None)
        cache.update(update._cache_puts)
        self._root = update.root
        self._version += 1

    def get_proof(self, key: bytes) -> Proof:
        """Inclusion proof if ``key`` is in the tree, else non-inclusion, against root()."""
        if type(key) is not bytes:
            raise TypeError("state keys must be bytes")
        path = _sha256(key).digest()
        hex_path = path.hex().encode()
        found: list[tuple[int, bytes]] = []  # (depth, sibling) for every non-empty sibling
        record: bytes | None = None
        root_page = self._upper.get(b"")
        count = 0 if root_page is None else min(root_page[1], 2)
        if count == 1:
            record = self._single_leaf(b"", root_page, 1)  # type: ignore[arg-type]
        depth = 0
        level = 0
        while count >= 2:
            b = self._page(hex_path[:level])
            i = 1
            for _ in range(4):
                child = i + i + bit_of(path, depth)
                sibling = node_hash(b, child ^ 1)
                if sibling != EMPTY:
                    found.append((depth, sibling))
                depth += 1
                i = child
                if b[i] < 2:
                    break
            count = b[i]
            if count == 1:
                record = self._single_leaf(hex_path[:level], b, i)
            elif count and level + 1 >= FRONTIER_LEVEL and b[KINDS - 16 + i] != PAGE:
                kind = b[KINDS - 16 + i]
                at = records_at(b, i - 16)
                record = _walk_bucket(bytes(b[at : at + LEAF_RECORD * kind]), depth, path, found)
                break
            level += 1
        bitmap = 0
        for sibling_depth, _ in found:
            bitmap |= 1 << (PATH_BITS - 1 - sibling_depth)
        if record is not None and record[:32] != path:
            leaf_path, leaf_value_hash = record[:32], record[32:]
        else:
            leaf_path = leaf_value_hash = b""
        siblings = tuple(sibling for _, sibling in found)
        return Proof(bitmap.to_bytes(32, "big"), siblings, leaf_path, leaf_value_hash)

    def _single_leaf(self, node_path: bytes, b: bytearray, i: int) -> bytes:
        """The record of the one leaf below node ``i`` of the page at ``node_path``."""
        while True:
            while i < 16:
                i = i + i if b[i + i] else i + i + 1
            if len(node_path) + 1 >= FRONTIER_LEVEL:
                # In frontier pages and below a lone leaf sits in its slot as a bucket of one.
                at = records_at(b, i - 16)
                return bytes(b[at : at + LEAF_RECORD])
            node_path += HEX_OF_SLOT_NODE[i]
            b = self._page(node_path)
            i = 1


def _walk_bucket(
    records: bytes, depth: int, path: bytes, found: list[tuple[int, bytes]]
) -> bytes | None:
    """Follow ``path`` into a bucket at ``depth``: the terminal leaf's record, or None if the
    path leaves the bucket's leaves (an empty terminal). Siblings go to ``found``."""
    while len(records) > LEAF_RECORD:
        split = split_depth(records)
        first = records[:32]
        for d in range(depth, split):
            if bit_of(path, d) != bit_of(first, d):
                found.append((d, subtree_hash(records, d + 1)))
                return None
        at = split_index(records, split)
        if bit_of(path, split):
            sibling, records = records[:at], records[at:]
        else:
            sibling, records = records[at:], records[:at]
        found.append((split, subtree_hash(sibling, split + 1)))
        depth = split + 1
    return records
