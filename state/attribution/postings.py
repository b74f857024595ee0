"""The matching index: per (datanet, fingerprint hash), its document frequency and its holders.

One small record per (datanet, hash) under ``keys.fp_postings_key`` holds both numbers an inference
needs, so matching costs one read per (relevant datanet, output hash) and never touches the
contributions themselves:

    value = msgpack [doc_freq: uint64, saturated: 0 | 1, holders: bin(32 * n)]

``doc_freq`` counts the ACCEPTED contributions of the datanet whose fingerprint holds the hash.
``holders`` lists their ids in acceptance order while ``doc_freq <= POSTINGS_CAP``. A hash held by
more than POSTINGS_CAP contributions is *saturated*: the list is dropped (the record stays small)
and the flag stays set until the count falls back to zero, because the list could no longer be
rebuilt without a scan. A saturated hash still counts in the document frequency but pays nobody in
that datanet: its weight ``idf_scale // doc_freq`` would be below ``idf_scale / POSTINGS_CAP``
anyway, and common phrases (licence headers, boilerplate) are exactly what should not attribute.
(``keys.doc_freq_key`` is therefore unused: one record instead of two halves the reads.)
"""

from __future__ import annotations

from state import keys
from state.attribution.records import ID_SIZE
from state.codec import pack, unpack_stored
from state.store import StateView

POSTINGS_CAP = 8


def decode_postings(raw: bytes) -> tuple[int, int, bytes]:
    """Decode a posting record this module wrote (``codec.unpack_stored``: own state bytes, so
    no canonical re-encoding check; an inference reads up to a thousand of them)."""
    df, saturated, holders = unpack_stored(raw)
    return df, saturated, holders


def read_postings(view: StateView, datanet_id: bytes, fp_hash: int) -> tuple[int, int, bytes] | None:
    """(doc_freq, saturated, holders) of a hash in a datanet, or None if no accepted holder."""
    raw = view.get(keys.fp_postings_key(datanet_id, fp_hash))
    if raw is None:
        return None
    return decode_postings(raw)


def add_postings(view: StateView, datanet_id: bytes, contribution_id: bytes, fingerprint: tuple[int, ...]) -> None:
    """An accepted contribution joins the posting record of each of its fingerprint hashes."""
    get, put, key = view.get, view.put, keys.fp_postings_key
    for h in fingerprint:
        k = key(datanet_id, h)
        raw = get(k)
        if raw is None:
            put(k, pack([1, 0, contribution_id]))
            continue
        df, saturated, holders = decode_postings(raw)
        df += 1
        if saturated or df > POSTINGS_CAP:
            put(k, pack([df, 1, b""]))
        else:
            put(k, pack([df, 0, holders + contribution_id]))


def remove_postings(view: StateView, datanet_id: bytes, contribution_id: bytes, fingerprint: tuple[int, ...]) -> None:
    """A voided contribution leaves the posting records of its fingerprint hashes."""
    get, put, key = view.get, view.put, keys.fp_postings_key
    for h in fingerprint:
        k = key(datanet_id, h)
        raw = get(k)
        if raw is None:  # cannot happen for an accepted contribution; nothing to undo
            continue
        df, saturated, holders = decode_postings(raw)
        df -= 1
        if df <= 0:
            view.delete(k)
        elif saturated:
            put(k, pack([df, 1, b""]))
        else:
            put(k, pack([df, 0, _without(holders, contribution_id)]))


def _without(holders: bytes, contribution_id: bytes) -> bytes:
    for i in range(0, len(holders), ID_SIZE):
        if holders[i : i + ID_SIZE] == contribution_id:
            return holders[:i] + holders[i + ID_SIZE :]
    return holders
