"""LevelDB storage and the state view the state transition works on.

`StateView` overlays pending changes on the committed LevelDB state in two layers: the block layer
(everything applied so far in this block) and the transaction layer (the transaction in progress).
`apply_tx` runs inside `view.transaction()`: a rejection drops the transaction layer, so a rejected
transaction changes nothing. `StateDB.commit` writes the block layer, the state-tree update, the
block, its indexes and receipts in ONE atomic LevelDB write batch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import plyvel

from state import keys
from state.codec import pack, unpack_stored

T = TypeVar("T")
_MISSING = object()
MAX_CACHED_VALUES = 200_000  # committed values (and decoded objects) kept across blocks


class PresenceFilter:
    """One bit per slot over the committed keys of a family of random keys (the posting records):
    a clear bit proves a key absent without a LevelDB read. Bits are set when a key is committed
    (and for every stored key when the store opens) and never cleared, so a set bit only means
    "maybe": the read then goes to LevelDB. A key's slot mixes its last 8 bytes (a fingerprint
    hash) with the 8 bytes after the prefix (the datanet id)."""

    BITS = 24  # 2 MiB of bits; about 6% set at a million posting records

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix
        self._at = len(prefix)
        self.bits = bytearray(1 << (self.BITS - 3))

    def slot(self, key: bytes) -> int:
        at = self._at
        mixed = int.from_bytes(key[-8:], "big") ^ int.from_bytes(key[at:at + 8], "big")
        return mixed >> (64 - self.BITS)

    def add(self, key: bytes) -> None:
        i = self.slot(key)
        self.bits[i >> 3] |= 1 << (i & 7)

    def may_contain(self, key: bytes) -> bool:
        i = self.slot(key)
        return bool(self.bits[i >> 3] >> (i & 7) & 1)

    def may_contain_hashes(self, group: bytes, hashes: Sequence[int]) -> list[int]:
        """``may_contain`` (as 0 or 1) of the keys of many 8-byte hashes under one 32-byte
        ``group`` (a datanet id), computed from the integers without building the keys."""
        mix = int.from_bytes(group[:8], "big")
        shift = 64 - self.BITS
        bits = self.bits
        return [bits[i >> 3] >> (i & 7) & 1 for i in [(h ^ mix) >> shift for h in hashes]]


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
        return v  # type: ignore[return-value]

    def get_postings(self, datanet_id: bytes, hashes: Sequence[int]) -> list[bytes | None]:
        """``get`` of the posting records of many hashes of one datanet (the bulk read of an
        inference): hashes the presence filter proves absent from the committed store cost no
        LevelDB read, and the committed values read are not kept in the cache (most are read
        once). Pending writes of this block win, as in ``get``."""
        pending = [layer for layer in (self._tx_writes, self.block_writes) if layer]
        cached = self._read_cache
        get = self._get
        maybe = self._db.postings_filter.may_contain_hashes(datanet_id, hashes)
        out: list[bytes | None] = []
        for key, may in zip(keys.fp_postings_keys(datanet_id, hashes), maybe):
            for layer in pending:
                if key in layer:
                    out.append(layer[key])
                    break
            else:
                if may:
                    v = cached.get(key, _MISSING)
                    out.append(get(key) if v is _MISSING else v)  # type: ignore[arg-type]
                else:
                    out.append(None)
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
        from state.smt import SparseMerkleTree

        os.makedirs(path, exist_ok=True)
        self.path = str(path)
        # Bloom filters make a read of an absent key (most output hashes of an inference) cost
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
        # Both are plain caches: emptied whenever they outgrow MAX_CACHED_VALUES.
        self.committed: dict[bytes, bytes | None] = {}
        self.decoded: dict[bytes, tuple[bytes, Any]] = {}
        self.postings_filter = PresenceFilter(keys.fp_postings_prefix(b""))
        for key in self.raw.iterator(prefix=self.postings_filter.prefix, include_value=False):
            self.postings_filter.add(key)

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> "StateDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def view(self) -> StateView:
        if len(self.committed) > MAX_CACHED_VALUES or len(self.decoded) > MAX_CACHED_VALUES:
            self.committed.clear()
            self.decoded.clear()
        return StateView(self)

    def root(self) -> bytes:
        return self.tree.root()

    def preview_root(self, view: StateView) -> Any:
        """The tree update (with its root) that committing ``view`` would make; writes nothing."""
        return self.tree.prepare(view.state_changes())

    def commit(
        self,
        view: StateView,
        extra: dict[bytes, bytes] | None = None,
        tree_update: Any = None,
        sync: bool = True,
    ) -> bytes:
        """Write the view's state and local changes, the tree update and ``extra`` in ONE batch.

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
                    batch.put(k, v)
            update.write_to(batch)
        # write-through, after the batch is written: the cache only ever holds committed values
        cached = self.committed
        cached.update(view.block_writes)
        postings = self.postings_filter
        for k, v in view.block_writes.items():
            if v is not None and k.startswith(postings.prefix):
                postings.add(k)
        for written in (view.local_writes, extra or {}):
            for k in written.keys() & cached.keys():
                cached[k] = written[k]
        self.tree.commit(update)
        return update.root  # type: ignore[no-any-return]

    def get_meta(self, name: str) -> bytes | None:
        return self.raw.get(keys.meta_key(name))  # type: ignore[no-any-return]
