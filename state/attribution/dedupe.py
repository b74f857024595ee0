"""Duplicate control for contributions: the exact content-hash index, the LSH band index (near
duplicates) and the containment index.

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

- ``keys.containment_key(h)`` -> msgpack [bin(32 * n)], for each fingerprint hash ``h`` of the
  contribution with ``h % containment_sample_mod == 0``: the ids holding it (at most
  CONTAINMENT_BUCKET_CAP, in submission order).

A containment check reads the buckets of the new text's sampled hashes, ranks the ids found in at
least MIN_SAMPLED_SHARED of them by that count (more first), then by id, and compares the whole
fingerprints of at most MAX_CONTAINMENT_CANDIDATES of them (``containment_bps``): when either text
has at least ``containment_bps`` of its fingerprint in the other, they conflict. So an excerpt of
an accepted text and a text made of an accepted one plus added material are both caught.
"""

from __future__ import annotations

from bisect import bisect_right

from state import keys
from state.attribution.records import Sketch, join_ids, split_ids, unpack_u64s
from state.codec import pack, unpack_stored
from state.attribution.fingerprint import (
    BPS,
    Fingerprint,
    FingerprintParams,
    estimated_jaccard_bps,
    is_near_duplicate,
    lsh_band_hashes,
)
from state.store import StateView

LSH_BUCKET_CAP = 16
MAX_NEAR_DUP_CANDIDATES = 32
CONTAINMENT_BUCKET_CAP = 16  # ids per sampled hash; a full bucket takes no more (boilerplate)
MAX_CONTAINMENT_CANDIDATES = 32
MIN_SAMPLED_SHARED = 2  # sampled hashes a candidate shares with the new text before it is compared
MIN_SHARED = 4  # fingerprint hashes two texts must share before either can contain the other
U64_LIMIT = 1 << 64


def containment_sample(fingerprint: tuple[int, ...], mod: int) -> list[int]:
    """The fingerprint hashes the containment index holds for a text: those divisible by ``mod``."""
    return [h for h in fingerprint if h % mod == 0]


def containment_pair_bps(fp_a: tuple[int, ...], fp_b: tuple[int, ...], cap: int) -> tuple[int, int]:
    """(share of a's fingerprint found in b, share of b's found in a), in bps, rounded down.

    A fingerprint holding ``cap`` hashes was cut to its smallest ones, so both are compared only up
    to the smaller cut (bottom-k): above it one of the texts is unknown. Fewer than MIN_SHARED
    shared hashes count as nothing shared (a few common phrases do not make a containment).
    """
    cut = min(fp_a[-1] if len(fp_a) >= cap else U64_LIMIT, fp_b[-1] if len(fp_b) >= cap else U64_LIMIT)
    # Fingerprints are strictly ascending: the hashes at or below the cut are a prefix.
    a = fp_a[: bisect_right(fp_a, cut)]
    b = fp_b[: bisect_right(fp_b, cut)]
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    shared = len(set(small).intersection(large))
    if shared < MIN_SHARED:
        return 0, 0
    return shared * BPS // len(a), shared * BPS // len(b)


def containment_bps(fp_a: tuple[int, ...], fp_b: tuple[int, ...], cap: int) -> int:
    """How much of the smaller-share text lies in the other: the larger of the two shares."""
    return max(containment_pair_bps(fp_a, fp_b, cap))


def pair_conflict(a: Fingerprint, b: Fingerprint, params: FingerprintParams, containment_threshold_bps: int,
                  sample_mod: int) -> str | None:
    """What the indexes find for one pair of texts, one of them live and the other new: why the new
    one is refused (``duplicate_content``, ``near_duplicate``, ``containment``), or None. A near
    duplicate must also share an LSH band, a containment MIN_SAMPLED_SHARED sampled hashes, as
    the index lookups require (the candidate caps cannot matter with one live text)."""
    if a.content_hash == b.content_hash:
        return "duplicate_content"
    bands_a, bands_b = lsh_band_hashes(a.minhash, params), lsh_band_hashes(b.minhash, params)
    if (any(x == y for x, y in zip(bands_a, bands_b))
            and estimated_jaccard_bps(a.minhash, b.minhash) >= params.near_duplicate_bps):
        return "near_duplicate"
    sampled = set(containment_sample(a.fingerprint, sample_mod)) & set(containment_sample(b.fingerprint, sample_mod))
    if (len(sampled) >= MIN_SAMPLED_SHARED
            and containment_bps(a.fingerprint, b.fingerprint, params.fingerprint_max) >= containment_threshold_bps):
        return "containment"
    return None


def containment_candidates(view: StateView, fingerprint: tuple[int, ...], mod: int) -> list[bytes]:
    """Ids sharing at least MIN_SAMPLED_SHARED sampled hashes, most shared first, then by id; bounded."""
    shared: dict[bytes, int] = {}
    wanted = [keys.containment_key(h) for h in containment_sample(fingerprint, mod)]
    for raw in view.get_containment(wanted):
        if raw is None:
            continue
        for cid in split_ids(unpack_stored(raw)[0]):
            shared[cid] = shared.get(cid, 0) + 1
    ranked = sorted((c for c in shared if shared[c] >= MIN_SAMPLED_SHARED), key=lambda c: (-shared[c], c))
    return ranked[:MAX_CONTAINMENT_CANDIDATES]


def find_containments(view: StateView, fingerprint: tuple[int, ...], mod: int, cap: int,
                      threshold_bps: int) -> list[bytes]:
    """Live contributions (any datanet) that hold at least ``threshold_bps`` of ``fingerprint``, or
    whose own fingerprint lies at least that much in it, in candidate rank order."""
    found = []
    held = frozenset(fingerprint)  # one set for every candidate
    for cid in containment_candidates(view, fingerprint, mod):
        sketch = view.get_obj(keys.contribution_sketch_key(cid), Sketch)
        if sketch is None:
            continue
        other = unpack_u64s(sketch.fingerprint)
        if len(fingerprint) < cap and len(other) < cap:  # neither cut: whole sets (the cut below is a no-op)
            shared = len(held.intersection(other))
            share = 0 if shared < MIN_SHARED else max(shared * BPS // len(fingerprint), shared * BPS // len(other))
        else:
            share = containment_bps(fingerprint, other, cap)
        if share >= threshold_bps:
            found.append(cid)
    return found


def index_containment(view: StateView, contribution_id: bytes, fingerprint: tuple[int, ...], mod: int) -> None:
    wanted = [keys.containment_key(h) for h in containment_sample(fingerprint, mod)]
    for k, raw in zip(wanted, view.get_containment(wanted)):
        _bucket_add(view, k, contribution_id, CONTAINMENT_BUCKET_CAP, raw)


def unindex_containment(view: StateView, contribution_id: bytes, fingerprint: tuple[int, ...], mod: int) -> None:
    wanted = [keys.containment_key(h) for h in containment_sample(fingerprint, mod)]
    for k, raw in zip(wanted, view.get_containment(wanted)):
        _bucket_remove(view, k, contribution_id, raw)


def find_exact_duplicate(view: StateView, content_hash: bytes) -> bytes | None:
    """The pending or accepted contribution (of any datanet) with this content hash, if any."""
    raw = view.get(keys.content_hash_key(content_hash))
    if raw is None:
        return None
    original: bytes = unpack_stored(raw)[0]
    return original


def near_duplicate_candidates(view: StateView, band_hashes: list[bytes]) -> list[bytes]:
    """Ids sharing at least one LSH band, most shared bands first, then by id; bounded."""
    shared: dict[bytes, int] = {}
    for band, band_hash in enumerate(band_hashes):
        raw = view.get(keys.lsh_band_key(band, band_hash))
        if raw is None:
            continue
        for cid in split_ids(unpack_stored(raw)[0]):
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
        _bucket_add(view, keys.lsh_band_key(band, band_hash), contribution_id, LSH_BUCKET_CAP)


def unindex_contribution(view: StateView, contribution_id: bytes, content_hash: bytes, band_hashes: list[bytes]) -> None:
    if find_exact_duplicate(view, content_hash) == contribution_id:
        view.delete(keys.content_hash_key(content_hash))
    for band, band_hash in enumerate(band_hashes):
        _bucket_remove(view, keys.lsh_band_key(band, band_hash), contribution_id)


def _bucket_add(view: StateView, k: bytes, contribution_id: bytes, cap: int, raw: bytes | None | bool = False) -> None:
    """Append an id to a bucket (msgpack [bin(32 * n)]) unless it already holds ``cap``;
    ``raw``: the bucket's current value if the caller has read it (False: read it here)."""
    if raw is False:
        raw = view.get(k)
    ids = unpack_stored(raw)[0] if raw is not None else b""
    if len(ids) < cap * len(contribution_id):
        view.put(k, pack([ids + contribution_id]))


def _bucket_remove(view: StateView, k: bytes, contribution_id: bytes, raw: bytes | None | bool = False) -> None:
    """Take an id out of a bucket; a bucket that was full when the id came never held it."""
    if raw is False:
        raw = view.get(k)
    if raw is None:
        return
    held = split_ids(unpack_stored(raw)[0])
    if contribution_id not in held:
        return
    ids = [cid for cid in held if cid != contribution_id]
    if ids:
        view.put(k, pack([join_ids(ids)]))
    else:
        view.delete(k)
