"""The matching index: per (datanet, fingerprint hash), its document frequency and its earliest holders.

One small record per (datanet, hash) under ``keys.fp_postings_key`` holds what an inference needs,
so matching costs one read per (relevant datanet, distinct output shingle) and never touches the
contributions themselves:

    value   = msgpack [doc_freq: uint64, holders: bin(48 * n)]
    holder  = u64be(commit_height) || u32be(commit_index) || u32be(position) || contribution id (32)

``doc_freq`` counts the ACCEPTED contributions of the datanet whose fingerprint holds the hash.
``holders`` lists, sorted by commitment place ``(commit_height, commit_index)``, the
``POSTINGS_CAP`` earliest-committed of them with ``position``, the shingle index of the hash's
first occurrence in that contribution (span matching aligns output and contribution with it).
A later-committed holder beyond the cap is only counted; an earlier-committed one that arrives
later (a curator accepted it late) takes its place in the list and the latest listed one drops
out. So there is no saturation cliff: the earliest holders of a common text stay listed and keep
earning at a weight that falls smoothly with ``doc_freq`` (issue 14; the old rule dropped every
holder once a ninth arrived). A voided holder leaves the list; a dropped one cannot come back
(that would need a scan), which only ever concerns holders committed after eight others.
"""

from __future__ import annotations

import struct

from state import keys
from state.codec import pack, unpack_stored
from state.store import StateView

POSTINGS_CAP = 8
HOLDER_SIZE = 48
_HOLDER = struct.Struct(">QII32s")


def holder_entry(commit_height: int, commit_index: int, position: int, contribution_id: bytes) -> bytes:
    return _HOLDER.pack(commit_height, commit_index, position, contribution_id)


def iter_holders(holders: bytes) -> list[tuple[int, int, int, bytes]]:
    """(commit_height, commit_index, position, contribution id) of each listed holder, in order."""
    return list(_HOLDER.iter_unpack(holders))


def decode_postings(raw: bytes) -> tuple[int, bytes]:
    """Decode a posting record this module wrote (``codec.unpack_stored``: own state bytes, so
    no canonical re-encoding check; an inference reads up to thousands of them)."""
    df, holders = unpack_stored(raw)
    return df, holders


def read_postings(view: StateView, datanet_id: bytes, fp_hash: int) -> tuple[int, bytes] | None:
    """(doc_freq, holders) of a hash in a datanet, or None if no accepted holder."""
    raw = view.get(keys.fp_postings_key(datanet_id, fp_hash))
    if raw is None:
        return None
    return decode_postings(raw)


def add_postings(view: StateView, datanet_id: bytes, contribution_id: bytes, fingerprint: tuple[int, ...],
                 positions: tuple[int, ...], place: tuple[int, int]) -> None:
    """An accepted contribution joins the posting record of each of its fingerprint hashes;
    ``place`` is its commitment's (height, index), ``positions`` its first shingle index per hash."""
    get, put, key = view.get, view.put, keys.fp_postings_key
    sort_key = place[0].to_bytes(8, "big") + place[1].to_bytes(4, "big")
    for h, pos in zip(fingerprint, positions, strict=True):
        k = key(datanet_id, h)
        entry = holder_entry(place[0], place[1], pos, contribution_id)
        raw = get(k)
        if raw is None:
            put(k, pack([1, entry]))
            continue
        df, holders = decode_postings(raw)
        at = len(holders)
        for i in range(0, len(holders), HOLDER_SIZE):
            if holders[i : i + 12] > sort_key:
                at = i
                break
        holders = (holders[:at] + entry + holders[at:])[: POSTINGS_CAP * HOLDER_SIZE]
        put(k, pack([df + 1, holders]))


def remove_postings(view: StateView, datanet_id: bytes, contribution_id: bytes, fingerprint: tuple[int, ...]) -> None:
    """A voided contribution leaves the posting records of its fingerprint hashes."""
    get, put, key = view.get, view.put, keys.fp_postings_key
    for h in fingerprint:
        k = key(datanet_id, h)
        raw = get(k)
        if raw is None:  # cannot happen for an accepted contribution; nothing to undo
            continue
        df, holders = decode_postings(raw)
        if df <= 1:
            view.delete(k)
        else:
            put(k, pack([df - 1, _without(holders, contribution_id)]))


def _without(holders: bytes, contribution_id: bytes) -> bytes:
    for i in range(0, len(holders), HOLDER_SIZE):
        if holders[i + 16 : i + HOLDER_SIZE] == contribution_id:
            return holders[:i] + holders[i + HOLDER_SIZE :]
    return holders
