"""LevelDB storage and the state view the state transition works on.

`StateView` overlays pending changes on the committed LevelDB state in two layers: the block layer
(everything applied so far in this block) and the transaction layer (the transaction in progress).
`apply_tx` runs inside `view.transaction()`: a rejection drops the transaction layer, so a rejected
transaction changes nothing. `StateDB.commit` writes the block layer, the state-tree update, the
block, its indexes and receipts in ONE atomic LevelDB write batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import plyvel

from state import keys
from state.codec import pack, unpack_stored

log = logging.getLogger(__name__)
T = TypeVar("T")
_MISSING = object()
MAX_CACHED_VALUES = 200_000  # committed values (and decoded objects) kept across blocks
# ... and their bytes: every height writes a validator set (16 validators: ~1.3 KB, ~6 KB with its
# decoded object) under a new key, so 200,000 entries alone let an idle node grow by ~1 GB
MAX_CACHED_BYTES = 48 * 1024 * 1024


class PostingIndex:
    """Every committed posting record (``state.attribution.postings``), in memory: datanet id -> {fingerprint
    hash -> stored record}. An inference reads one record per output hash, which from LevelDB
    costs 3-7 us each (memtable and level lookups); from here a dict lookup. Loaded when the
    store opens and written through by every commit, so it always equals the committed records.
    Memory: about 145 bytes per record (160 MB for the 1.1 million of ``bench/attribution.py``).
    """

    prefix = keys.fp_postings_prefix(b"")

    def __init__(self) -> None:
        self.by_datanet: dict[bytes, dict[int, bytes]] = {}

    def __len__(self) -> int:
        return sum(len(records) for records in self.by_datanet.values())

    def set(self, key: bytes, value: bytes | None) -> None:
        """Record a committed write (None: deleted) of posting key ``key``."""
        datanet_id, fp_hash = keys.split_fp_postings_key(key)
        if value is not None:
            self.by_datanet.setdefault(datanet_id, {})[fp_hash] = value
            return
        records = self.by_datanet.get(datanet_id)
        if records is not None:
            records.pop(fp_hash, None)
            if not records:
                del self.by_datanet[datanet_id]

    def of(self, datanet_id: bytes) -> dict[int, bytes]:
        """The committed records of one datanet by hash (do not modify)."""
        return self.by_datanet.get(datanet_id, _NO_RECORDS)


_NO_RECORDS: dict[int, bytes] = {}


class ContainmentIndex:
    """Every committed record of the containment index (``keys.containment_key``), in memory: key
    -> stored value. A contribution looks up a bucket per sampled fingerprint hash (about 250 for
    3,000 words), nearly all absent; from LevelDB each absent key still costs a few microseconds
    (memtable, bloom filters of every level), from here a dict lookup. Loaded when the store
    opens and written through by every commit, like ``PostingIndex``. Memory: about 150 bytes
    per record (40 MB for the 280,000 of ``bench/attribution.py``)."""

    prefix = keys.CONTAINMENT_PREFIX

    def __init__(self) -> None:
        self.records: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        return len(self.records)

    def set(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.records.pop(key, None)
        else:
            self.records[key] = value


class StateView:
    """Reads through (tx layer -> block layer -> LevelDB); writes go to the innermost layer."""

    def __init__(self, db: "StateDB") -> None:
        self._db = db
        self._get = db.raw.get
        self.block_writes: dict[bytes, bytes | None] = {}
        self.local_writes: dict[bytes, bytes | None] = {}  # indexes etc., not in the state root
        self._tx_writes: dict[bytes, bytes | None] | None = None
        self._tx_local: dict[bytes, bytes | None] | None = None
        # Reads of the committed store go through the StateDB's cache of committed values, which
        # every commit writes through; decoded objects are cached against the exact bytes object
        # they came from, so an object decoded in one block is reused by the next ones.
        self._read_cache = db.committed
        self._objs = db.decoded

    # ---- raw access ----------------------------------------------------------------------
    def get(self, key: bytes) -> bytes | None:
        tw = self._tx_writes
        if tw is not None:
            v = tw.get(key, _MISSING)
            if v is not _MISSING:
                return v  # type: ignore[return-value]
        v = self.block_writes.get(key, _MISSING)
        if v is not _MISSING:
            return v  # type: ignore[return-value]
        v = self._read_cache.get(key, _MISSING)
        if v is _MISSING:
            v = self._read_cache[key] = self._get(key)
            if v is not None:
                self._db.cached_bytes += len(v)
        return v  # type: ignore[return-value]

    def get_postings(self, datanet_id: bytes, hashes: Sequence[int]) -> list[bytes | None]:
        """``get`` of the posting records of many hashes of one datanet (the bulk read of an
        inference): committed records come from the StateDB's in-memory PostingIndex, pending
        writes of this block win, as in ``get``."""
        committed = self._db.postings.of(datanet_id)
        out = [committed.get(h) for h in hashes]
        pending = [layer for layer in (self.block_writes, self._tx_writes) if layer]
        if pending:
            wanted = keys.fp_postings_keys(datanet_id, hashes)
            wanted_set = set(wanted)
            for layer in pending:  # the transaction's writes last: they win
                found = layer.keys() & wanted_set  # at C speed; usually empty
                if found:
                    for i, key in enumerate(wanted):
                        if key in found:
                            out[i] = layer[key]
        return out

    def get_containment(self, wanted: Sequence[bytes]) -> list[bytes | None]:
        """``get`` of many containment-index keys: committed records from the StateDB's in-memory
        ContainmentIndex, pending writes of this block and transaction win, as in ``get``."""
        committed = self._db.containment.records
        layers = [layer for layer in (self._tx_writes, self.block_writes) if layer]  # innermost first
        if not layers:
            return [committed.get(k) for k in wanted]
        out: list[bytes | None] = []
        for k in wanted:
            for layer in layers:
                if k in layer:
                    out.append(layer[k])
                    break
            else:
                out.append(committed.get(k))
        return out

    def put(self, key: bytes, value: bytes) -> None:
        (self._tx_writes if self._tx_writes is not None else self.block_writes)[key] = value

    def delete(self, key: bytes) -> None:
        (self._tx_writes if self._tx_writes is not None else self.block_writes)[key] = None

    def local_put(self, key: bytes, value: bytes) -> None:
        (self._tx_local if self._tx_local is not None else self.local_writes)[key] = value

    # ---- typed access --------------------------------------------------------------------
    def get_obj(self, key: bytes, cls: type[T]) -> T | None:
        raw = self.get(key)
        if raw is None:
            return None
        cached = self._objs.get(key)
        if cached is not None and cached[0] is raw and type(cached[1]) is cls:
            return cached[1]  # type: ignore[no-any-return]
        obj = cls.from_wire(unpack_stored(raw))  # type: ignore[attr-defined]
        self._objs[key] = (raw, obj)
        return obj  # type: ignore[no-any-return]

    def put_obj(self, key: bytes, obj: Any) -> None:
        raw = pack(obj.to_wire())
        self.put(key, raw)
        self._objs[key] = (raw, obj)  # frozen objects: safe to hand out again

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Keys under ``prefix`` in byte order, merging pending writes over LevelDB."""
        pending: dict[bytes, bytes | None] = {
            k: v for k, v in self.block_writes.items() if k.startswith(prefix)
        }
        if self._tx_writes:
            pending.update((k, v) for k, v in self._tx_writes.items() if k.startswith(prefix))
        merged: dict[bytes, bytes | None] = {}
        for k, v in self._db.raw.iterator(prefix=prefix):
            merged[k] = v
        merged.update(pending)
        for k in sorted(merged):
            v = merged[k]
            if v is not None:
                yield k, v

    # ---- transaction layer ---------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Run a block of changes atomically: on any exception, none of them happened."""
        if self._tx_writes is not None:
            raise RuntimeError("nested state transactions are not supported")
        self._tx_writes, self._tx_local = {}, {}
        try:
            yield
        except BaseException:
            self._tx_writes = self._tx_local = None
            raise
        tw, tl = self._tx_writes, self._tx_local
        self._tx_writes = self._tx_local = None
        self.block_writes.update(tw)
        self.local_writes.update(tl)  # type: ignore[arg-type]

    def state_changes(self) -> dict[bytes, bytes | None]:
        """Pending changes to authenticated state keys (those under keys.STATE)."""
        return {k: v for k, v in self.block_writes.items() if k[:1] == keys.STATE}


class StateDB:
    """One LevelDB holding state, the state tree, blocks and indexes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from state.tree.smt import SparseMerkleTree

        os.makedirs(path, exist_ok=True)
        self.path = str(path)
        # Bloom filters make a read of an absent key (an unknown content hash, an empty LSH band) cost
        # ~1 us instead of a block read per level; the block cache (filled lazily) keeps the hot
        # blocks of the attribution indexes in memory. No compression: most of the state is
        # hashes (fingerprints, posting records, tree pages) that do not compress, and a read
        # that misses the block cache then costs a copy instead of a decompression. A moderate
        # write buffer keeps point reads cheap (docs/state_tree.md section 4).
        self.raw = plyvel.DB(self.path, create_if_missing=True, bloom_filter_bits=10,
                             lru_cache_size=256 * 1024 * 1024, write_buffer_size=16 * 1024 * 1024,
                             compression=None)
        self.tree = SparseMerkleTree(self.raw)
        # Committed values read through views (None: absent), kept equal to LevelDB by commit's
        # write-through; and decoded objects keyed by state key, tagged with their bytes object.
        # Both are plain caches: emptied whenever they outgrow MAX_CACHED_VALUES or MAX_CACHED_BYTES.
        self.committed: dict[bytes, bytes | None] = {}
        self.decoded: dict[bytes, tuple[bytes, Any]] = {}
        self.cached_bytes = 0  # bytes of the values ``committed`` took in under new keys since it was emptied
        self.postings = PostingIndex()
        for key, value in self.raw.iterator(prefix=PostingIndex.prefix):
            self.postings.set(key, value)
        self.containment = ContainmentIndex()
        for key, value in self.raw.iterator(prefix=ContainmentIndex.prefix):
            self.containment.set(key, value)
        log.info("state store opened: %d posting records and %d containment records in memory",
                 len(self.postings), len(self.containment))

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> "StateDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def view(self) -> StateView:
        if (len(self.committed) > MAX_CACHED_VALUES or len(self.decoded) > MAX_CACHED_VALUES
                or self.cached_bytes > MAX_CACHED_BYTES):
            self.committed.clear()
            self.decoded.clear()
            self.cached_bytes = 0
        return StateView(self)

    def root(self) -> bytes:
        return self.tree.root()

    def preview_root(self, view: StateView) -> Any:
        """The tree update (with its root) that committing ``view`` would make; writes nothing."""
        return self.tree.prepare(view.state_changes())

    def commit(
        self,
        view: StateView,
        extra: dict[bytes, bytes | None] | None = None,
        tree_update: Any = None,
        sync: bool = True,
    ) -> bytes:
        """Write the view's state and local changes, the tree update and ``extra`` (None: delete) in ONE batch.

        Returns the new state root. ``tree_update`` may be passed if it was already prepared.
        """
        update = tree_update if tree_update is not None else self.preview_root(view)
        with self.raw.write_batch(sync=sync) as batch:
            for k, v in view.block_writes.items():
                if v is None:
                    batch.delete(k)
                else:
                    batch.put(k, v)
            for k, v in view.local_writes.items():
                if v is None:
                    batch.delete(k)
                else:
                    batch.put(k, v)
            if extra:
                for k, v in extra.items():
                    if v is None:
                        batch.delete(k)
                    else:
                        batch.put(k, v)
            update.write_to(batch)
        # write-through, after the batch is written: the cache only ever holds committed values
        cached = self.committed
        writes = view.block_writes
        # the cache grows by its new keys' values (an overwritten value replaces the old one)
        self.cached_bytes += sum(len(writes[k] or b"") for k in writes.keys() - cached.keys())
        cached.update(writes)
        postings, posting_prefix = self.postings, PostingIndex.prefix
        containment, containment_prefix = self.containment, ContainmentIndex.prefix
        for k, v in writes.items():
            if k.startswith(posting_prefix):
                postings.set(k, v)
            elif k.startswith(containment_prefix):
                containment.set(k, v)
        for written in (view.local_writes, extra or {}):
            for k in written.keys() & cached.keys():
                cached[k] = written[k]
        self.tree.commit(update)
        return update.root  # type: ignore[no-any-return]

    def get_meta(self, name: str) -> bytes | None:
        return self.raw.get(keys.meta_key(name))  # type: ignore[no-any-return]
