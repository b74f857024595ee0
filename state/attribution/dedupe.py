"""Duplicate control for contributions: the exact content-hash index and the LSH band index.

Both indexes span every datanet (the same text in another datanet is still a duplicate) and hold
only PENDING and ACCEPTED contributions: a rejected or voided contribution frees its entries, so it
never blocks a later (corrected) submission.

- ``keys.content_hash_key(content_hash)`` -> msgpack [contribution id].
- ``keys.lsh_band_key(band, band_hash)`` -> msgpack [bin(32 * n)], the ids of the
  contributions whose MinHash band ``band`` hashes to ``band_hash``, in submission order, at most
  LSH_BUCKET_CAP of them (a full bucket takes no more ids; the other bands still index the
  contribution).

A near-duplicate check reads the contribution's ``lsh_bands`` buckets, ranks the ids found by the
number of bands they share with the new contribution (more first), then by id (ascending bytes),
and compares the MinHash of at most MAX_NEAR_DUP_CANDIDATES of them; those whose estimated Jaccard
similarity reaches ``near_duplicate_bps`` conflict with the new contribution (the earliest
commitment among them wins, state/attribution/commitments.py).
"""

from __future__ import annotations

from state import keys
from state.attribution.records import Sketch, join_ids, split_ids, unpack_u64s
from state.codec import pack, unpack
from state.attribution.fingerprint import FingerprintParams, is_near_duplicate
from state.store import StateView

LSH_BUCKET_CAP = 16
MAX_NEAR_DUP_CANDIDATES = 32


def find_exact_duplicate(view: StateView, content_hash: bytes) -> bytes | None:
    """The pending or accepted contribution (of any datanet) with this content hash, if any."""
    raw = view.get(keys.content_hash_key(content_hash))
    if raw is None:
        return None
    original: bytes = unpack(raw)[0]
    return original


def near_duplicate_candidates(view: StateView, band_hashes: list[bytes]) -> list[bytes]:
    """Ids sharing at least one LSH band, most shared bands first, then by id; bounded."""
    shared: dict[bytes, int] = {}
    for band, band_hash in enumerate(band_hashes):
        raw = view.get(keys.lsh_band_key(band, band_hash))
        if raw is None:
            continue
        for cid in split_ids(unpack(raw)[0]):
            shared[cid] = shared.get(cid, 0) + 1
    ranked = sorted(shared, key=lambda cid: (-shared[cid], cid))
    return ranked[:MAX_NEAR_DUP_CANDIDATES]


def find_near_duplicates(
    view: StateView,
    minhash: tuple[int, ...],
    band_hashes: list[bytes],
    params: FingerprintParams,
) -> list[bytes]:
    """Every candidate whose estimated Jaccard with ``minhash`` reaches the threshold, in rank order."""
    found = []
    for cid in near_duplicate_candidates(view, band_hashes):
        sketch = view.get_obj(keys.contribution_sketch_key(cid), Sketch)
        if sketch is None:  # index entries and sketches live and die together
            continue
        if is_near_duplicate(minhash, unpack_u64s(sketch.minhash), params):
            found.append(cid)
    return found


def index_contribution(view: StateView, contribution_id: bytes, content_hash: bytes, band_hashes: list[bytes]) -> None:
    view.put(keys.content_hash_key(content_hash), pack([contribution_id]))
    for band, band_hash in enumerate(band_hashes):
        k = keys.lsh_band_key(band, band_hash)
        raw = view.get(k)
        ids = unpack(raw)[0] if raw is not None else b""
        if len(ids) < LSH_BUCKET_CAP * len(contribution_id):
            view.put(k, pack([ids + contribution_id]))


def unindex_contribution(view: StateView, contribution_id: bytes, content_hash: bytes, band_hashes: list[bytes]) -> None:
    if find_exact_duplicate(view, content_hash) == contribution_id:
        view.delete(keys.content_hash_key(content_hash))
    for band, band_hash in enumerate(band_hashes):
        k = keys.lsh_band_key(band, band_hash)
        raw = view.get(k)
        if raw is None:
            continue
        held = split_ids(unpack(raw)[0])
        if contribution_id not in held:  # its bucket was full when it was indexed
            continue
        ids = [cid for cid in held if cid != contribution_id]
        if ids:
            view.put(k, pack([join_ids(ids)]))
        else:
            view.delete(k)
