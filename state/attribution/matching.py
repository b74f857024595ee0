"""Span matching of an inference output against accepted contributions (docs/attribution.md, "Inference").

Evidence before payment: a contribution is paid only for *spans*, runs of the output that it
holds at the same alignment, and only when a span brings at least ``min_span_shingles`` (L)
shingles nobody was credited for yet. Integers only; every order below is fixed by the output and
by state, never by dict or set iteration.

With ``H[0..n-1]`` the output's shingle hashes and ``R`` the relevant datanets (ascending):

1. *Examined prefix*: ``H[0..m-1]``, ``m = min(n, MATCH_READ_BUDGET // |R|)``; each distinct hash
   of it is read once per datanet of ``R`` (at most MATCH_READ_BUDGET posting records).
2. *Anchors*: for each output position ``i < m`` and each listed holder ``(place, c, p)`` of
   ``H[i]``, an anchor of ``c`` on the diagonal ``delta = p - i``. ``df(h)`` is the sum of the
   posting records' ``doc_freq`` over ``R``.
3. *Spans*: per (contribution, diagonal), anchors in ascending ``i`` are chained while the next
   is at most ``winnow_window`` positions after the previous; a chain ``a..b`` is the span of output
   shingles ``a..b`` (words ``a .. b+k-1``), aligned with contribution shingles ``a+delta ..
   b+delta``. Its ``weight`` (rarity per shingle) is the mean of ``idf_scale // df(h)`` over its
   anchors (floor): it falls smoothly as more contributions hold the text (no cliff).
4. *Credit, earliest holder first*: spans sorted by (commitment place, contribution id, output
   start, diagonal). A span's *new* shingles are its output positions not yet credited to any
   span and whose contribution position is not yet credited to the same contribution (quoting a
   passage twice earns once). If at least L are new, they are credited and the span scores
   ``new * weight``; otherwise it pays nothing and credits nothing.
5. A contribution's score is the sum of its spans' scores; the ``max_matched`` best scores are
   kept (score descending, then commitment place, then id).

Cost: at most MATCH_READ_BUDGET record reads, at most ``POSTINGS_CAP`` anchors per (read,
occurrence), and every span is walked once (its length is at most winnow_window times its anchors).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from state.attribution.postings import decode_postings, iter_holders
from state.store import StateView

MATCH_READ_BUDGET = 16384
# Anchors further apart than ``winnow_window`` on a diagonal start a new span: inside a verbatim shared
# run the winnowing guarantee puts one in every window, while anchors ``k`` or fewer apart overlap, so
# a span is verbatim text except for at most one unverified word per gap of exactly ``winnow_window``.

Span = tuple[int, int, int, int, int]  # (output start, contribution start, shingles, credited, weight)


@dataclass
class Matched:
    contribution: bytes
    place: tuple[int, int]
    score: int = 0
    credited: int = 0
    spans: list[Span] = field(default_factory=list)


def examined_length(n: int, relevant_datanets: int) -> int:
    if relevant_datanets == 0:
        return 0
    return min(n, MATCH_READ_BUDGET // relevant_datanets)


def collect_anchors(
    view: StateView, datanets: list[bytes], hashes: list[int]
) -> tuple[dict[tuple[int, int, bytes, int], list[int]], dict[int, int]]:
    """Anchors grouped by (commit height, commit index, contribution, diagonal) and df per hash."""
    occurrences: dict[int, list[int]] = {}
    for i, h in enumerate(hashes):
        occurrences.setdefault(h, []).append(i)
    distinct = list(occurrences)  # first-occurrence order: fixed by the output
    df = dict.fromkeys(distinct, 0)
    anchors: dict[tuple[int, int, bytes, int], list[int]] = {}
    for d in datanets:
        for h, raw in zip(distinct, view.get_postings(d, distinct), strict=True):
            if raw is None:
                continue
            count, holders = decode_postings(raw)
            df[h] += count
            for height, index, pos, cid in iter_holders(holders):
                for i in occurrences[h]:
                    anchors.setdefault((height, index, cid, pos - i), []).append(i)
    return anchors, df


def find_spans(
    anchors: dict[tuple[int, int, bytes, int], list[int]], df: dict[int, int], hashes: list[int], idf_scale: int,
    max_gap: int,
) -> list[tuple[tuple[int, int], bytes, int, int, int, int]]:
    """Every chain: (place, contribution, output start, diagonal, shingles, weight), credit order.
    A chain's weight is the mean of ``idf_scale // df`` over its anchors (floor)."""
    spans = []
    for (height, index, cid, delta), positions in anchors.items():
        positions.sort()
        start = prev = positions[0]
        total, count = idf_scale // df[hashes[start]], 1
        for i in positions[1:]:
            if i - prev > max_gap:
                spans.append(((height, index), cid, start, delta, prev - start + 1, total // count))
                start, total, count = i, 0, 0
            total += idf_scale // df[hashes[i]]
            count += 1
            prev = i
        spans.append(((height, index), cid, start, delta, prev - start + 1, total // count))
    spans.sort(key=lambda s: (s[0], s[1], s[2], s[3]))
    return spans


def credit_spans(
    spans: list[tuple[tuple[int, int], bytes, int, int, int, int]], m: int, min_span: int
) -> dict[bytes, Matched]:
    """Step 4: credit spans earliest holder first; only spans with at least ``min_span`` new shingles pay."""
    taken = bytearray(m)
    seen: dict[bytes, set[int]] = {}
    out: dict[bytes, Matched] = {}
    for place, cid, start, delta, length, weight in spans:
        if length < min_span:
            continue
        src = seen.setdefault(cid, set())
        new = [i for i in range(start, start + length) if not taken[i] and i + delta not in src]
        if len(new) < min_span:
            continue
        for i in new:
            taken[i] = 1
            src.add(i + delta)
        got = out.get(cid)
        if got is None:
            got = out[cid] = Matched(cid, place)
        got.score += len(new) * weight
        got.credited += len(new)
        got.spans.append((start, start + delta, length, len(new), weight))
    return out


def match_output(
    view: StateView, datanets: list[bytes], hashes: list[int], min_span: int, idf_scale: int, max_matched: int,
    max_gap: int,
) -> list[Matched]:
    """The paid contributions of an output, best first (at most ``max_matched``)."""
    m = examined_length(len(hashes), len(datanets))
    if m == 0:
        return []
    examined = hashes[:m]
    anchors, df = collect_anchors(view, datanets, examined)
    credited = credit_spans(find_spans(anchors, df, examined, idf_scale, max_gap), m, min_span)
    ranked = sorted(credited.values(), key=lambda x: (-x.score, x.place, x.contribution))
    return [x for x in ranked if x.score > 0][:max_matched]


def chains_with(hashes: list[int], fingerprint: tuple[int, ...], positions: tuple[int, ...],
                min_span: int, max_gap: int) -> list[tuple[int, int, int]]:
    """Spans (output start, contribution start, shingles) of one contribution's fingerprint in an
    output, at least ``min_span`` long; no credit, rarity or listing rules. Not consensus: the RPC
    uses it to say which *pending* contributions an output quotes (they are paid nothing)."""
    first = dict(zip(fingerprint, positions, strict=True))
    by_diagonal: dict[int, list[int]] = {}
    for i, h in enumerate(hashes):
        p = first.get(h)
        if p is not None:
            by_diagonal.setdefault(p - i, []).append(i)
    out = []
    for delta in sorted(by_diagonal):
        pos = by_diagonal[delta]
        start = prev = pos[0]
        for i in pos[1:] + [None]:  # type: ignore[list-item]
            if i is not None and i - prev <= max_gap:
                prev = i
                continue
            if prev - start + 1 >= min_span:
                out.append((start, start + delta, prev - start + 1))
            if i is not None:
                start = prev = i
    return sorted(out)
