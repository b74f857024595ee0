"""Near-duplicate control on a synthetic corpus: an in-memory LSH band index built with
state/attribution/fingerprint.py must never reject a distinct document and must catch lightly edited copies.

The corpus is generated here from a fixed seed: a vocabulary of 3000 synthetic words drawn with a
Zipf (1/rank) law, as natural text is, so common words and short phrases recur across documents.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Callable

from state.attribution.fingerprint import (
    DEFAULT_FINGERPRINT_PARAMS,
    Fingerprint,
    FingerprintParams,
    estimated_jaccard_bps,
    fingerprint_text,
    is_near_duplicate,
    lsh_band_hashes,
    shingle_hashes,
    words_of,
)

P = DEFAULT_FINGERPRINT_PARAMS
EDIT_FRACTION_PERCENT = 5
N_DOCUMENTS = 240


def make_vocabulary(rng: random.Random, size: int) -> list[str]:
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(1, 4))))
    return sorted(words)


@dataclass
class Corpus:
    rng: random.Random
    vocabulary: list[str]
    cum_weights: list[float] = field(init=False)

    def __post_init__(self) -> None:
        zipf = (1 / (rank + 1) for rank in range(len(self.vocabulary)))
        self.cum_weights = list(itertools.accumulate(zipf))

    def words(self, n: int) -> list[str]:
        return self.rng.choices(self.vocabulary, cum_weights=self.cum_weights, k=n)

    def document(self, low: int = 150, high: int = 600) -> list[str]:
        return self.words(self.rng.randint(low, high))

    def random_edits(self, words: list[str]) -> list[str]:
        """Exactly 5% of the length in edits, each a substitution, insertion or deletion."""
        out = list(words)
        for _ in range(len(words) * EDIT_FRACTION_PERCENT // 100):
            op, i = self.rng.randrange(3), self.rng.randrange(len(out))
            if op == 0:
                out[i] = self.rng.choice(self.vocabulary)
            elif op == 1:
                out.insert(i, self.rng.choice(self.vocabulary))
            else:
                del out[i]
        return out


def spread_substitutions(words: list[str]) -> list[str]:
    """5% of words substituted at even spacing: each edit breaks the most shingles (worst case)."""
    out = list(words)
    edits = len(words) * EDIT_FRACTION_PERCENT // 100
    step = len(words) // edits
    for t in range(edits):
        i = t * step + step // 2
        out[i] = out[i] + "q"
    return out


def render(words: list[str], rng: random.Random) -> bytes:
    """Sentences with capitals and punctuation, which normalisation must see through."""
    parts = []
    for i, word in enumerate(words):
        parts.append(word.capitalize() if i % 11 == 0 else word)
        parts.append(". " if i % 11 == 10 else rng.choice([" ", " ", " ", ", ", "\n"]))
    return "".join(parts).encode()


class LshIndex:
    """What the state keeps per datanet: (band, band hash) -> documents, plus each signature."""

    def __init__(self, params: FingerprintParams) -> None:
        self.params = params
        self.buckets: dict[tuple[int, bytes], list[int]] = {}
        self.signatures: list[tuple[int, ...]] = []

    def candidates(self, minhash: tuple[int, ...]) -> list[int]:
        found: set[int] = set()
        for band, key in enumerate(lsh_band_hashes(minhash, self.params)):
            found.update(self.buckets.get((band, key), ()))
        return sorted(found)

    def near_duplicates(self, minhash: tuple[int, ...]) -> list[int]:
        return [
            c
            for c in self.candidates(minhash)
            if is_near_duplicate(minhash, self.signatures[c], self.params)
        ]

    def add(self, minhash: tuple[int, ...]) -> int:
        doc_id = len(self.signatures)
        self.signatures.append(minhash)
        for band, key in enumerate(lsh_band_hashes(minhash, self.params)):
            self.buckets.setdefault((band, key), []).append(doc_id)
        return doc_id


def build_index(docs: list[bytes]) -> tuple[LshIndex, list[Fingerprint], list[int]]:
    """Admit documents one by one as the state would; returns the ids of any rejected."""
    index = LshIndex(P)
    fps = [fingerprint_text(d, P) for d in docs]
    rejected = []
    for i, fp in enumerate(fps):
        if index.near_duplicates(fp.minhash):
            rejected.append(i)
        index.add(fp.minhash)
    return index, fps, rejected


def catch_rate(
    index: LshIndex,
    originals: list[list[str]],
    edit: Callable[[list[str]], list[str]],
    rng: random.Random,
) -> tuple[float, list[int]]:
    """Share of edited copies whose original is flagged, and every copy's estimate (sorted)."""
    caught = 0
    estimates = []
    for i, words in enumerate(originals):
        copy = fingerprint_text(render(edit(words), rng), P)
        estimates.append(estimated_jaccard_bps(copy.minhash, index.signatures[i]))
        if i in index.near_duplicates(copy.minhash):
            caught += 1
    return caught / len(originals), sorted(estimates)


def test_distinct_documents_pass_and_edited_copies_are_caught() -> None:
    rng = random.Random(20240601)
    corpus = Corpus(rng, make_vocabulary(rng, 3000))
    originals = [corpus.document() for _ in range(N_DOCUMENTS)]
    index, fps, rejected = build_index([render(w, rng) for w in originals])
    assert rejected == [], f"{len(rejected)} of {N_DOCUMENTS} distinct documents falsely rejected"
    distinct_max = max(
        estimated_jaccard_bps(fps[i].minhash, fps[j].minhash) for i in range(len(fps)) for j in range(i)
    )
    assert distinct_max < P.near_duplicate_bps // 2, f"distinct pairs reach {distinct_max} bps"

    random_rate, random_est = catch_rate(index, originals, corpus.random_edits, rng)
    spread_rate, spread_est = catch_rate(index, originals, spread_substitutions, rng)
    summary = (
        f"random 5% edits caught {random_rate:.1%} (estimated Jaccard min {random_est[0]}, "
        f"5th pct {random_est[len(random_est) // 20]} bps); evenly spread 5% substitutions caught "
        f"{spread_rate:.1%} (min {spread_est[0]}, 5th pct {spread_est[len(spread_est) // 20]} bps); "
        f"threshold {P.near_duplicate_bps} bps; distinct pairs max {distinct_max} bps"
    )
    assert random_rate >= 0.95, summary
    assert spread_rate >= 0.95, summary
    # Margin: the typical edited copy sits well above the threshold.
    assert spread_est[len(spread_est) // 20] >= P.near_duplicate_bps + 500, summary


def test_shared_boilerplate_does_not_make_documents_duplicates() -> None:
    rng = random.Random(77)
    corpus = Corpus(rng, make_vocabulary(rng, 3000))
    header = corpus.words(30)  # a licence paragraph every row repeats
    footer = corpus.words(12)
    docs = [render(header + corpus.document(120, 300) + footer, rng) for _ in range(120)]
    index, fps, rejected = build_index(docs)
    assert rejected == [], f"{len(rejected)} documents sharing only boilerplate were rejected"
    worst = max(
        estimated_jaccard_bps(fps[i].minhash, fps[j].minhash) for i in range(len(fps)) for j in range(i)
    )
    assert worst < P.near_duplicate_bps // 2, f"boilerplate pairs reach {worst} bps"
    # The boilerplate is still visible to attribution: every fingerprint shares some hash with it.
    boilerplate = set(fingerprint_text(render(header, rng), P).fingerprint)
    assert sum(1 for fp in fps if boilerplate & set(fp.fingerprint)) == len(fps)


def _true_jaccard_bps(a: bytes, b: bytes) -> int:
    x = set(shingle_hashes(words_of(a.decode()), P))
    y = set(shingle_hashes(words_of(b.decode()), P))
    return len(x & y) * 10000 // len(x | y)


def test_estimated_jaccard_tracks_true_jaccard() -> None:
    """Densified one-permutation MinHash is unbiased, from tiny texts (most bins empty) to long ones."""
    rng = random.Random(5)
    corpus = Corpus(rng, make_vocabulary(rng, 3000))
    errors = []
    for _ in range(300):
        shared = corpus.words(rng.randint(5, 400))
        a = render(corpus.words(rng.randint(0, 200)) + shared, rng)
        b = render(shared + corpus.words(rng.randint(0, 200)), rng)
        est = estimated_jaccard_bps(fingerprint_text(a, P).minhash, fingerprint_text(b, P).minhash)
        errors.append(est - _true_jaccard_bps(a, b))
    bias = sum(errors) // len(errors)
    mean_abs = sum(abs(e) for e in errors) // len(errors)
    assert abs(bias) <= 150 and mean_abs <= 500, f"bias {bias} bps, mean absolute error {mean_abs} bps"
