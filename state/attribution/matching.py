"""Matching an inference output against accepted contributions (the matched part of the data share).

For each output-fingerprint hash ``h`` examined, with ``R`` the relevant datanets (the mixes of the
model, of its ancestors in the lineage chain, and of the adapter):

    df(h)  = sum over d in R of doc_freq(d, h)                        (accepted holders)
    weight = idf_scale // df(h)
    score(c) = sum of weight over the examined hashes c holds (and is listed for: see postings)

The ``max_matched`` best scores are kept, ordered by score descending then contribution id
ascending (bytes); contributions whose score is 0 are not matched.

Bound: at most MATCH_READ_BUDGET (relevant datanet, hash) records are read per inference; with
``n`` relevant datanets only the first ``MATCH_READ_BUDGET // n`` hashes of the (ascending) output
fingerprint are examined. That keeps an inference's cost bounded whatever its lineage.
"""

from __future__ import annotations

from state.attribution.records import ID_SIZE
from state.attribution.postings import decode_postings
from state.store import StateView

MATCH_READ_BUDGET = 8192


def hashes_examined(output_fingerprint: tuple[int, ...], relevant_datanets: int) -> tuple[int, ...]:
    if relevant_datanets == 0:
        return ()
    return output_fingerprint[: MATCH_READ_BUDGET // relevant_datanets]


def score_contributions(
    view: StateView, datanets: list[bytes], output_fingerprint: tuple[int, ...], idf_scale: int
) -> dict[bytes, int]:
    """Score of every accepted, listed holder of an examined output hash (scores may be 0)."""
    hashes = hashes_examined(output_fingerprint, len(datanets))
    doc_freq = [0] * len(hashes)
    listed: list[tuple[int, bytes]] = []  # (hash position, holders) of unsaturated records
    for d in datanets:
        for i, raw in enumerate(view.get_postings(d, hashes)):
            if raw is None:
                continue
            df, saturated, holders = decode_postings(raw)
            doc_freq[i] += df
            if not saturated:
                listed.append((i, holders))
    scores: dict[bytes, int] = {}
    for i, holders in listed:
        weight = idf_scale // doc_freq[i]
        for j in range(0, len(holders), ID_SIZE):
            cid = holders[j : j + ID_SIZE]
            scores[cid] = scores.get(cid, 0) + weight
    return scores


def top_matches(scores: dict[bytes, int], max_matched: int) -> list[tuple[bytes, int]]:
    """The best positive scores, score descending then id ascending, at most ``max_matched``."""
    positive = [(cid, s) for cid, s in scores.items() if s > 0]
    positive.sort(key=lambda item: (-item[1], item[0]))
    return positive[:max_matched]
