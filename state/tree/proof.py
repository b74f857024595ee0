"""The hash rules of the authenticated state tree and its proofs (DESIGN section 4).

The tree is a collapsed binary sparse Merkle tree over ``sha256(key)``; ``docs/state_tree.md``
fixes it byte for byte:

- path of a key = sha256(key), 256 bits, most significant bit first; bit 0 goes left, 1 right;
- leaf hash = sha256(0x00 || path || sha256(value));
- internal hash = sha256(0x01 || left || right);
- EMPTY = 32 zero bytes is the hash of an empty subtree;
- a subtree holding exactly one leaf IS that leaf (its hash is the leaf hash wherever it sits);
  a subtree holding two or more leaves is an internal node; the empty tree's root is EMPTY.

This module is pure: ``verify_proof`` is what a light client runs against a header's state root.
"""

from __future__ import annotations

import hashlib

from state.codec import HASH, Bytes, List, canonical, f

__all__ = [
    "EMPTY",
    "EMPTY_ROOT",
    "PATH_BITS",
    "Proof",
    "internal_hash",
    "key_path",
    "leaf_hash",
    "verify_proof",
]

PATH_BITS = 256
EMPTY = bytes(32)
EMPTY_ROOT = EMPTY

_LEAF = b"\x00"
_INTERNAL = b"\x01"
_sha256 = hashlib.sha256


def key_path(key: bytes) -> bytes:
    """The 256-bit position of a state key in the tree."""
    return _sha256(key).digest()


def leaf_hash(path: bytes, value_hash: bytes) -> bytes:
    return _sha256(_LEAF + path + value_hash).digest()


def internal_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(_INTERNAL + left + right).digest()


def path_bit(path: bytes, depth: int) -> int:
    """Branch taken at ``depth`` (0 = root): 0 left, 1 right."""
    return (path[depth >> 3] >> (7 - (depth & 7))) & 1


def shares_prefix(a: bytes, b: bytes, bits: int) -> bool:
    """True when the first ``bits`` bits of two 32-byte paths are equal."""
    whole, rest = divmod(bits, 8)
    if a[:whole] != b[:whole]:
        return False
    if rest == 0:
        return True
    mask = (0xFF << (8 - rest)) & 0xFF
    return (a[whole] & mask) == (b[whole] & mask)


@canonical
class Proof:
    """Inclusion or non-inclusion proof of one key against a state root.

    ``sibling_bitmap`` bit ``i`` (byte ``i // 8``, most significant bit first) is set when the
    sibling at depth ``i`` (the child of the path's depth-``i`` node that is NOT on the key's
    path) is non-empty; ``siblings`` lists exactly those hashes, root side first. The proof's
    depth is one past the last set bit: the terminal node sits there. The terminal is the key's
    own leaf (inclusion), an empty subtree (both ``leaf_*`` fields empty) or another key's leaf
    (``leaf_path`` and ``leaf_value_hash`` given) that occupies the key's position.
    """

    sibling_bitmap: bytes = f(HASH)
    siblings: tuple[bytes, ...] = f(List(HASH, PATH_BITS))
    leaf_path: bytes = f(Bytes(sizes=(0, 32)))
    leaf_value_hash: bytes = f(Bytes(sizes=(0, 32)))


def proof_depth(bitmap: bytes) -> int:
    """Depth of the terminal node: one past the deepest non-empty sibling (0 if none)."""
    as_int = int.from_bytes(bitmap, "big")
    if as_int == 0:
        return 0
    trailing_zeros = (as_int & -as_int).bit_length() - 1
    return PATH_BITS - trailing_zeros


def _is_well_formed(proof: object) -> bool:
    """Field types and sizes, re-checked because a Proof can be forged past its constructor."""
    if type(proof) is not Proof:
        return False
    bitmap = proof.sibling_bitmap
    siblings = proof.siblings
    if type(bitmap) is not bytes or len(bitmap) != 32:
        return False
    if type(siblings) is not tuple or len(siblings) > PATH_BITS:
        return False
    for sibling in siblings:
        if type(sibling) is not bytes or len(sibling) != 32:
            return False
    for field_value in (proof.leaf_path, proof.leaf_value_hash):
        if type(field_value) is not bytes or len(field_value) not in (0, 32):
            return False
    return True


def _terminal_hash(path: bytes, value: bytes | None, proof: Proof, depth: int) -> bytes | None:
    """Hash of the terminal node the proof claims, or None when the claim is malformed."""
    other_path = proof.leaf_path
    other_value_hash = proof.leaf_value_hash
    if len(other_path) != len(other_value_hash):
        return None
    if value is not None:
        # Inclusion: the terminal is the key's own leaf, so no other leaf may be named.
        if other_path:
            return None
        return leaf_hash(path, _sha256(value).digest())
    if not other_path:
        return EMPTY
    # Non-inclusion by another leaf: it must be a different key sitting on this key's path.
    if other_path == path or not shares_prefix(other_path, path, depth):
        return None
    return leaf_hash(other_path, other_value_hash)


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> bool:
    """True iff ``proof`` shows that ``key`` maps to ``value`` (None: is absent) under ``root``.

    Pure and total: any malformed or hostile input gives False, never an exception. A proof is
    accepted only in its one canonical form (no EMPTY listed as a sibling, sibling count equal
    to the bitmap's population), so no field can be altered without rejection.
    """
    if type(root) is not bytes or len(root) != 32 or type(key) is not bytes:
        return False
    if value is not None and type(value) is not bytes:
        return False
    if not _is_well_formed(proof):
        return False
    bitmap_int = int.from_bytes(proof.sibling_bitmap, "big")
    siblings = proof.siblings
    if bitmap_int.bit_count() != len(siblings) or EMPTY in siblings:
        return False
    depth = proof_depth(proof.sibling_bitmap)
    path = key_path(key)
    node = _terminal_hash(path, value, proof, depth)
    if node is None:
        return False
    # Above the deepest non-empty sibling every node on the path holds two or more leaves, so
    # every step is an internal hash, EMPTY siblings included; nothing collapses on the way up.
    index = len(siblings)
    for depth_i in range(depth - 1, -1, -1):
        if (bitmap_int >> (PATH_BITS - 1 - depth_i)) & 1:
            index -= 1
            sibling = siblings[index]
        else:
            sibling = EMPTY
        if path_bit(path, depth_i):
            node = internal_hash(sibling, node)
        else:
            node = internal_hash(node, sibling)
    return node == root
