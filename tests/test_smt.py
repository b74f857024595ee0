"""The authenticated state tree (DESIGN section 4, docs/state_tree.md).

Every root and proof is checked against a slow reference written here straight from the
definition (sha256 over sorted key paths, collapsed single-leaf subtrees), never against values
copied from the tree's own output. Trees live in real LevelDB databases in temporary folders.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import plyvel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state.codec import CodecError, decode, encode
from state.keys import tree_node_key, tree_root_key
from state.tree.smt import EMPTY_ROOT, Proof, SparseMerkleTree, StaleUpdateError, verify_proof
from state.tree.page import TreeCorruptionError, decode_page

# ---- the reference: the definition, executed naively --------------------------------------


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def bit(path: bytes, depth: int) -> int:
    return (path[depth // 8] >> (7 - depth % 8)) & 1


def ref_leaves(state: Mapping[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return sorted((sha(k), sha(v)) for k, v in state.items())


def ref_hash(leaves: list[tuple[bytes, bytes]], depth: int = 0) -> bytes:
    if not leaves:
        return bytes(32)
    if len(leaves) == 1:
        path, value_hash = leaves[0]
        return sha(b"\x00" + path + value_hash)
    left = [leaf for leaf in leaves if bit(leaf[0], depth) == 0]
    right = [leaf for leaf in leaves if bit(leaf[0], depth) == 1]
    return sha(b"\x01" + ref_hash(left, depth + 1) + ref_hash(right, depth + 1))


def ref_root(state: Mapping[bytes, bytes]) -> bytes:
    return ref_hash(ref_leaves(state))


def ref_proof(state: Mapping[bytes, bytes], key: bytes) -> Proof:
    """The one canonical proof, derived from the definition and the proof format."""
    path = sha(key)
    leaves = ref_leaves(state)
    bitmap = 0
    siblings = []
    depth = 0
    while len(leaves) >= 2:
        side = bit(path, depth)
        sibling = ref_hash([leaf for leaf in leaves if bit(leaf[0], depth) != side], depth + 1)
        if sibling != bytes(32):
            bitmap |= 1 << (255 - depth)
            siblings.append(sibling)
        leaves = [leaf for leaf in leaves if bit(leaf[0], depth) == side]
        depth += 1
    other = b"", b""
    if leaves and leaves[0][0] != path:
        other = leaves[0]
    return Proof(bitmap.to_bytes(32, "big"), tuple(siblings), other[0], other[1])


# ---- keys whose paths share long prefixes ----------------------------------------------------


def _shared_prefix_keys() -> list[bytes]:
    """Keys ground so their paths pair up on 16 to 28 leading bits (deep chains and pages)."""
    by_prefix: dict[bytes, list[bytes]] = {}
    for n in range(1 << 15):
        key = b"deep-%d" % n
        by_prefix.setdefault(sha(key)[:3], []).append(key)
    deep = sorted((keys for keys in by_prefix.values() if len(keys) >= 2), key=len, reverse=True)
    chosen = [key for keys in deep[:12] for key in keys]
    by16: dict[bytes, list[bytes]] = {}
    for n in range(4096):
        key = b"mid-%d" % n
        by16.setdefault(sha(key)[:2], []).append(key)
    chosen += [key for keys in by16.values() if len(keys) >= 2 for key in keys][:24]
    return chosen


def _group_keys(size: int) -> list[bytes]:
    """``size`` keys whose paths share their first 16 bits: one block builds pages below them."""
    target = sha(b"group-0")[:2]
    found = []
    n = 0
    while len(found) < size:
        key = b"group-%d" % n
        if sha(key)[:2] == target:
            found.append(key)
        n += 1
    return found


# Six keys whose paths share their first 20 bits (found once by search; checked below): more
# than a bucket holds, so their frontier slot (depth 20) needs a lower page instead of a bucket.
DEEP20_KEYS = [b"deep20-%d" % n for n in (0, 2048698, 3050566, 5616095, 7318325, 11334818)]
DEEP_KEYS = _shared_prefix_keys()
GROUP_KEYS = _group_keys(6) + DEEP20_KEYS
PLAIN_KEYS = [b"key-%d" % n for n in range(48)]
KEY_POOL = DEEP_KEYS + GROUP_KEYS + PLAIN_KEYS


def test_key_pool_reaches_deep_pages() -> None:
    paths = sorted(sha(k) for k in KEY_POOL)
    shared = max(
        next((d for d in range(256) if bit(a, d) != bit(b, d)), 256)
        for a, b in zip(paths, paths[1:])
    )
    assert shared >= 24  # below the depth-20 frontier, into lower pages
    assert len({sha(key).hex()[:5] for key in DEEP20_KEYS}) == 1
    assert len({sha(key).hex()[:4] for key in GROUP_KEYS[:6]}) == 1


# ---- helpers -------------------------------------------------------------------------------


@contextmanager
def leveldb() -> Iterator[tuple[Any, str]]:
    with tempfile.TemporaryDirectory(prefix="smt_") as path:
        db = plyvel.DB(path, create_if_missing=True)
        try:
            yield db, path
        finally:
            db.close()


def apply(db: Any, tree: SparseMerkleTree, changes: Mapping[bytes, bytes | None]) -> bytes:
    update = tree.prepare(changes)
    with db.write_batch() as batch:
        update.write_to(batch)
    tree.commit(update)
    return update.root


def applied(state: dict[bytes, bytes], changes: Mapping[bytes, bytes | None]) -> dict[bytes, bytes]:
    new = dict(state)
    for key, value in changes.items():
        if value is None:
            new.pop(key, None)
        else:
            new[key] = value
    return new


def tree_keys(db: Any) -> list[bytes]:
    return [key for key, _ in db.iterator(prefix=tree_node_key(b""))]


values = st.binary(max_size=6)
change = st.tuples(st.sampled_from(KEY_POOL), st.none() | values)
group = st.sets(st.sampled_from(GROUP_KEYS), min_size=3).map(lambda keys: dict.fromkeys(keys, b"g"))
# (a block of several keys sharing 16 or 20 bits builds pages below the frontier in one go)
block = (st.lists(change, min_size=1, max_size=40).map(dict) | group)
blocks = st.lists(block, min_size=1, max_size=6)


# ---- roots ---------------------------------------------------------------------------------


def test_empty_tree_root_is_empty() -> None:
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        assert tree.root() == EMPTY_ROOT == bytes(32)
        assert apply(db, tree, {}) == EMPTY_ROOT
        assert apply(db, tree, {b"never-there": None}) == EMPTY_ROOT


def test_one_and_two_keys_follow_the_definition() -> None:
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        # one leaf: the whole tree collapses into it
        one = apply(db, tree, {b"a": b"1"})
        assert one == sha(b"\x00" + sha(b"a") + sha(b"1"))
        # two leaves diverging at depth d: a chain of d internal nodes with an EMPTY sibling
        apply(db, tree, {b"b": b"2"})
        (pa, va), (pb, vb) = sorted([(sha(b"a"), sha(b"1")), (sha(b"b"), sha(b"2"))])
        split = next(d for d in range(256) if bit(pa, d) != bit(pb, d))
        node = sha(b"\x01" + sha(b"\x00" + pa + va) + sha(b"\x00" + pb + vb))
        for depth in range(split - 1, -1, -1):
            pair = (node, bytes(32)) if bit(pa, depth) == 0 else (bytes(32), node)
            node = sha(b"\x01" + pair[0] + pair[1])
        assert tree.root() == node


@settings(max_examples=60, deadline=None)
@given(blocks)
def test_root_matches_reference_after_every_block(history: list[dict[bytes, bytes | None]]) -> None:
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        state: dict[bytes, bytes] = {}
        for changes in history:
            state = applied(state, changes)
            assert apply(db, tree, changes) == ref_root(state)
        # What is on disk alone gives the same tree: root, and the leaves in pages and buckets.
        reopened = SparseMerkleTree(db)
        assert reopened.root() == tree.root()
        for key in GROUP_KEYS:
            assert reopened.get_proof(key) == ref_proof(state, key)


@settings(max_examples=40, deadline=None)
@given(blocks, st.randoms(use_true_random=False))
def test_root_independent_of_order_and_batching(
    history: list[dict[bytes, bytes | None]], rng: random.Random
) -> None:
    state: dict[bytes, bytes] = {}
    for changes in history:
        state = applied(state, changes)
    # The same final state reached one key at a time in a shuffled order, with detours through
    # deletes and re-inserts of keys that end up present, then in two big batches.
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        items = list(state.items())
        rng.shuffle(items)
        for key, value in items:
            apply(db, tree, {key: value + b"-detour"})
            if rng.random() < 0.3:
                apply(db, tree, {key: None})
            apply(db, tree, {key: value})
        assert tree.root() == ref_root(state)
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        half = len(items) // 2
        apply(db, tree, dict(items[:half]))
        apply(db, tree, dict(items[half:]))
        assert tree.root() == ref_root(state)


@settings(max_examples=30, deadline=None)
@given(blocks)
def test_deleting_everything_leaves_an_empty_tree_and_no_pages(
    history: list[dict[bytes, bytes | None]],
) -> None:
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        state: dict[bytes, bytes] = {}
        for changes in history:
            state = applied(state, changes)
            apply(db, tree, changes)
        assert apply(db, tree, {key: None for key in state}) == EMPTY_ROOT
        assert tree_keys(db) == [tree_root_key()]
        # and the emptied tree grows back to the reference root
        assert apply(db, tree, state) == ref_root(state)


def test_pages_split_and_collapse_across_the_bucket_size() -> None:
    """Six keys under one 16-bit (then 20-bit) prefix, added and removed one at a time: the
    subtree moves between a bucket of up to four leaves and pages, and stays consistent."""
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        state: dict[bytes, bytes] = {b"anchor-%d" % n: b"a" for n in range(40)}
        apply(db, tree, state)
        sequence = [(key, b"x") for key in GROUP_KEYS] + [(key, None) for key in GROUP_KEYS[::-1]]
        sequence += [(key, b"y") for key in GROUP_KEYS[6:]]
        sequence += [(key, None) for key in GROUP_KEYS[6:]]
        for key, value in sequence:
            state = applied(state, {key: value})
            assert apply(db, tree, {key: value}) == ref_root(state)
            reopened = SparseMerkleTree(db)
            assert reopened.root() == ref_root(state)
            for probe in GROUP_KEYS:
                assert reopened.get_proof(probe) == ref_proof(state, probe)
        everything = dict.fromkeys(GROUP_KEYS, b"z")
        assert apply(db, tree, everything) == ref_root(applied(state, everything))


def test_a_large_random_tree_matches_the_reference() -> None:
    rng = random.Random(7)
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        state: dict[bytes, bytes] = {}
        for _ in range(3):
            changes: dict[bytes, bytes | None] = {
                b"bulk-%d" % rng.randrange(6000): rng.randbytes(8) for _ in range(1500)
            }
            for key in rng.sample(sorted(state), min(300, len(state))):
                changes[key] = None
            state = applied(state, changes)
            assert apply(db, tree, changes) == ref_root(state)


# ---- proofs --------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(blocks)
def test_proofs_verify_and_are_the_canonical_ones(history: list[dict[bytes, bytes | None]]) -> None:
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        state: dict[bytes, bytes] = {}
        for changes in history:
            state = applied(state, changes)
            apply(db, tree, changes)
        root = tree.root()
        for key in KEY_POOL[::3] + [b"absent-1", b"absent-2"]:
            proof = tree.get_proof(key)
            assert proof == ref_proof(state, key)
            assert verify_proof(root, key, state.get(key), proof)
            assert decode(Proof, encode(proof)) == proof


def test_wrong_value_key_root_or_presence_fails() -> None:
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        state = {key: b"v" + key for key in KEY_POOL[:60]}
        apply(db, tree, state)
        root = tree.root()
        present, absent = KEY_POOL[0], b"not-a-key"
        proof = tree.get_proof(present)
        assert verify_proof(root, present, state[present], proof)
        assert not verify_proof(root, present, state[present] + b"x", proof)
        assert not verify_proof(root, present, None, proof)
        assert not verify_proof(root, KEY_POOL[1], state[present], proof)
        assert not verify_proof(bytes(32), present, state[present], proof)
        assert not verify_proof(sha(root), present, state[present], proof)
        missing = tree.get_proof(absent)
        assert verify_proof(root, absent, None, missing)
        assert not verify_proof(root, absent, b"", missing)
        assert not verify_proof(root, present, None, missing)


def _tampered(proof: Proof) -> Iterator[Proof]:
    """Every single-field change: each sibling byte, each bitmap bit up to the depth and one
    past it, a sibling dropped or added, and the other-leaf fields set, cleared or altered."""
    for index, sibling in enumerate(proof.siblings):
        for position in range(32):
            changed = bytearray(sibling)
            changed[position] ^= 0x01
            siblings = list(proof.siblings)
            siblings[index] = bytes(changed)
            yield replace(proof, siblings=tuple(siblings))
    as_int = int.from_bytes(proof.sibling_bitmap, "big")
    depth = 257 - (as_int & -as_int).bit_length() if as_int else 0
    for position in range(min(256, depth + 2)):
        bitmap = bytearray(proof.sibling_bitmap)
        bitmap[position // 8] ^= 0x80 >> (position % 8)
        yield replace(proof, sibling_bitmap=bytes(bitmap))
    if proof.siblings:
        yield replace(proof, siblings=proof.siblings[:-1])
        yield replace(proof, siblings=proof.siblings[1:])
    yield replace(proof, siblings=proof.siblings + (sha(b"extra"),))
    yield replace(proof, siblings=proof.siblings + (bytes(32),))
    # An EMPTY sibling spelled out instead of left to the bitmap: same hash, not canonical.
    for position in range(depth):
        if not (as_int >> (255 - position)) & 1:
            index = bin(as_int >> (256 - position)).count("1")
            siblings = proof.siblings[:index] + (bytes(32),) + proof.siblings[index:]
            bitmap = (as_int | 1 << (255 - position)).to_bytes(32, "big")
            yield replace(proof, sibling_bitmap=bitmap, siblings=siblings)
            break
    if proof.leaf_path:
        for position in (0, 31):
            changed = bytearray(proof.leaf_path)
            changed[position] ^= 0x01
            yield replace(proof, leaf_path=bytes(changed))
            changed = bytearray(proof.leaf_value_hash)
            changed[position] ^= 0x01
            yield replace(proof, leaf_value_hash=bytes(changed))
        yield replace(proof, leaf_path=b"", leaf_value_hash=b"")
        yield replace(proof, leaf_value_hash=b"")
    else:
        yield replace(proof, leaf_path=sha(b"p"), leaf_value_hash=sha(b"v"))
        yield replace(proof, leaf_path=sha(b"p"))


def test_any_tampered_proof_fails() -> None:
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        state = {key: b"v" + key for key in KEY_POOL[::2]}
        apply(db, tree, state)
        root = tree.root()
        cases = [(key, state[key]) for key in list(state)[:6]] + [
            (key, None) for key in KEY_POOL[1:12:2] + [b"absent"]
        ]
        kinds = set()
        for key, value in cases:
            proof = tree.get_proof(key)
            if value is not None:
                kinds.add("inclusion")
            else:
                kinds.add("other leaf" if proof.leaf_path else "empty")
            assert verify_proof(root, key, value, proof)
            for bad in _tampered(proof):
                assert not verify_proof(root, key, value, bad), bad
            wire = encode(proof)
            for position in range(len(wire)):
                corrupted = bytearray(wire)
                corrupted[position] ^= 0x01
                try:
                    bad = decode(Proof, bytes(corrupted))
                except CodecError:
                    continue
                assert not verify_proof(root, key, value, bad)
        assert kinds == {"inclusion", "other leaf", "empty"}


def test_edge_trees_prove_membership() -> None:
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        proof = tree.get_proof(b"x")
        assert verify_proof(EMPTY_ROOT, b"x", None, proof)
        assert not verify_proof(EMPTY_ROOT, b"x", b"", proof)
        apply(db, tree, {b"only": b"1"})
        for key, value in ((b"only", b"1"), (b"x", None)):
            proof = tree.get_proof(key)
            assert proof == ref_proof({b"only": b"1"}, key)
            assert verify_proof(tree.root(), key, value, proof)


def _random_proof(data: st.DataObject) -> Proof:
    depth = data.draw(st.integers(0, 256))
    bitmap = 0
    for position in data.draw(st.lists(st.integers(0, max(depth - 1, 0)), max_size=12)):
        bitmap |= 1 << (255 - position)
    count = data.draw(st.sampled_from([bin(bitmap).count("1"), data.draw(st.integers(0, 20))]))
    leaf = data.draw(st.sampled_from([0, 32]))
    return Proof(
        bitmap.to_bytes(32, "big"),
        tuple(data.draw(st.binary(min_size=32, max_size=32)) for _ in range(count)),
        data.draw(st.binary(min_size=leaf, max_size=leaf)),
        data.draw(st.binary(min_size=leaf, max_size=leaf)),
    )


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_garbage_proofs_return_false_and_never_raise(data: st.DataObject) -> None:
    # (An empty root with the empty proof is a true statement, so roots are random here.)
    root = data.draw(st.binary(min_size=32, max_size=32).filter(lambda r: r != EMPTY_ROOT))
    key = data.draw(st.binary(max_size=8))
    value = data.draw(st.none() | st.binary(max_size=8))
    assert verify_proof(root, key, value, _random_proof(data)) is False


PROOF_FIELDS = ("sibling_bitmap", "siblings", "leaf_path", "leaf_value_hash")


def test_malformed_arguments_return_false() -> None:
    good = Proof(bytes(32), (), b"", b"")
    assert verify_proof(EMPTY_ROOT, b"k", None, good)
    forged = object.__new__(Proof)
    for name, field_value in (
        ("sibling_bitmap", 5),
        ("siblings", [b"x" * 32]),
        ("leaf_path", b"short"),
        ("leaf_value_hash", None),
    ):
        fields = {f: getattr(good, f) for f in PROOF_FIELDS}
        fields[name] = field_value
        for f, v in fields.items():
            object.__setattr__(forged, f, v)
        assert verify_proof(EMPTY_ROOT, b"k", None, forged) is False
    for args in (
        (EMPTY_ROOT, b"k", None, None),
        (EMPTY_ROOT, b"k", None, b"proof bytes"),
        (EMPTY_ROOT[:31], b"k", None, good),
        ("00" * 32, b"k", None, good),
        (EMPTY_ROOT, "k", None, good),
        (EMPTY_ROOT, b"k", 7, good),
        (EMPTY_ROOT, b"k", bytearray(b"v"), good),
    ):
        assert verify_proof(*args) is False  # type: ignore[arg-type]


# ---- persistence and the two-phase update --------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(blocks, block)
def test_reopening_keeps_the_root_and_keeps_working(
    history: list[dict[bytes, bytes | None]], later: dict[bytes, bytes | None]
) -> None:
    with tempfile.TemporaryDirectory(prefix="smt_") as path:
        state: dict[bytes, bytes] = {}
        db = plyvel.DB(path, create_if_missing=True)
        tree = SparseMerkleTree(db)
        for changes in history:
            state = applied(state, changes)
            apply(db, tree, changes)
        db.close()
        db = plyvel.DB(path)
        try:
            reopened = SparseMerkleTree(db)
            assert reopened.root() == ref_root(state)
            for key in KEY_POOL[:20]:
                assert verify_proof(reopened.root(), key, state.get(key), reopened.get_proof(key))
            state = applied(state, later)
            assert apply(db, reopened, later) == ref_root(state)
        finally:
            db.close()


@settings(max_examples=25, deadline=None)
@given(blocks)
def test_pages_in_memory_are_the_pages_rebuilt_from_storage(
    history: list[dict[bytes, bytes | None]],
) -> None:
    """After every block the upper pages an update produced (including the shortcut for a key
    alone in its prefix) are byte for byte those a reopened tree rebuilds from the frontier."""
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        for changes in history:
            apply(db, tree, changes)
            assert SparseMerkleTree(db)._upper == tree._upper


def test_prepared_but_uncommitted_update_changes_nothing() -> None:
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        state = {key: b"1" for key in KEY_POOL[:40]}
        apply(db, tree, state)
        before_root = tree.root()
        before_disk = dict(db.iterator())
        proofs = {key: tree.get_proof(key) for key in KEY_POOL[:50]}
        changes = {**dict.fromkeys(KEY_POOL[:20]), **dict.fromkeys(KEY_POOL[40:80], b"2")}
        dropped = tree.prepare(changes)
        assert dropped.root != before_root
        assert tree.root() == before_root
        assert dict(db.iterator()) == before_disk
        assert {key: tree.get_proof(key) for key in KEY_POOL[:50]} == proofs
        # a later update is computed from the committed tree, not from the dropped one
        later = {KEY_POOL[5]: b"3", b"new": b"4"}
        assert apply(db, tree, later) == ref_root(applied(state, later))
        with pytest.raises(StaleUpdateError):
            tree.commit(dropped)


def test_the_write_batch_alone_moves_the_tree() -> None:
    """After a crash between writing the batch and commit(), reopening finds the new tree."""
    with tempfile.TemporaryDirectory(prefix="smt_") as path:
        db = plyvel.DB(path, create_if_missing=True)
        tree = SparseMerkleTree(db)
        state = {key: b"1" for key in KEY_POOL[:50]}
        apply(db, tree, state)
        changes = {**{key: None for key in KEY_POOL[:25]}, **{key: b"2" for key in KEY_POOL[40:90]}}
        update = tree.prepare(changes)
        with db.write_batch() as batch:
            update.write_to(batch)
        db.close()  # no commit(): the process "died" here
        db = plyvel.DB(path)
        try:
            assert SparseMerkleTree(db).root() == ref_root(applied(state, changes)) == update.root
        finally:
            db.close()


def test_reopening_a_damaged_tree_is_refused() -> None:
    with tempfile.TemporaryDirectory(prefix="smt_") as path:
        db = plyvel.DB(path, create_if_missing=True)
        apply(db, SparseMerkleTree(db), {key: b"1" for key in KEY_POOL})
        frontier = [key for key in tree_keys(db) if key.startswith(tree_node_key(b"="))]
        db.delete(frontier[len(frontier) // 2])
        db.close()
        db = plyvel.DB(path)
        try:
            with pytest.raises(TreeCorruptionError):
                SparseMerkleTree(db)
        finally:
            db.close()
    record = sha(b"p") + sha(b"v")
    for blob in (
        b"",
        b"\x03" * 16,  # three leaves in every slot, but no records
        b"\x09" + bytes(15),  # not a slot kind
        b"\x01" + bytes(15) + record[:40],  # a truncated record
        b"\x02" + bytes(15) + record * 2,  # one path twice
        b"\x00" * 16,  # an empty page
        b"\x02\x01" + bytes(14) + record * 3,  # three leaves fit inline: no page for them
    ):
        with pytest.raises(TreeCorruptionError):
            decode_page(blob, 16)


def test_bad_change_types_are_rejected() -> None:
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        with pytest.raises(TypeError):
            tree.prepare({"text key": b"v"})  # type: ignore[dict-item]
        with pytest.raises(TypeError):
            tree.prepare({b"k": 5})  # type: ignore[dict-item]
        assert tree.root() == EMPTY_ROOT


def test_the_documented_worked_example() -> None:
    """docs/state_tree.md's example values (computed there with hashlib alone) match the tree."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "state_tree.md").read_text()
    block_text = doc.split("<!-- worked-example -->", 1)[1].split("```")[1]
    documented = dict(
        (name.strip(), bytes.fromhex(value.strip()))
        for name, value in (line.split("=", 1) for line in block_text.strip().splitlines())
    )
    state = {b"alice": b"100", b"bob": b"250", b"carol": b"7"}
    assert documented["root"] == ref_root(state)
    with leveldb() as (db, _):
        tree = SparseMerkleTree(db)
        assert apply(db, tree, state) == documented["root"]
        proof = tree.get_proof(b"carol")
        assert encode(proof) == documented["proof(carol)"]
        assert proof.siblings[1] == sha(b"\x00" + sha(b"alice") + sha(b"100"))
        assert verify_proof(documented["root"], b"carol", b"7", proof)
        dave = tree.get_proof(b"dave")
        assert (dave.sibling_bitmap, dave.siblings) == (proof.sibling_bitmap, proof.siblings)
        assert dave.leaf_path == sha(b"carol") and dave.leaf_value_hash == sha(b"7")
        grace = tree.get_proof(b"grace")
        assert grace.siblings == (documented["node_0"],) and grace.leaf_path == sha(b"bob")
