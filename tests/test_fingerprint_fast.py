"""The array and byte fast paths of fingerprint_text and normalisation against the straightforward
implementations they replace (the pure-Python functions of state/attribution/fingerprint.py, the
regex joiner, the unicodedata2 steps), on varied inputs: they must agree bit for bit."""

from __future__ import annotations

import hashlib
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from english_corpus import build_corpus
from state.attribution import normalise as n
from state.attribution.fingerprint import (
    DEFAULT_FINGERPRINT_PARAMS,
    MERSENNE_61,
    SMALL_CLASS_MAX,
    Fingerprint,
    FingerprintError,
    FingerprintParams,
    _distinct_and_first,
    _winnowed_array,
    first_positions,
    fingerprint_output,
    fingerprint_text,
    winnowed_fingerprint,
    minhash_signature,
    normalise,
    permute61,
    shingle_hashes,
    split_words,
    winnowed_values,
    word_bytes,
    words_of,
)

P = DEFAULT_FINGERPRINT_PARAMS
SMALL = FingerprintParams(shingle_k=3, winnow_window=4, fingerprint_max=5, minhash_size=8, lsh_bands=2, lsh_rows=4)
TRICKY = ("abmIl10%|`\"'-_ .,\n\u2019\u2018\u201c\u2014\u2013\u2010\u00ad\u200b\u200d\ufeff\u0301\u0308"
          "\u0430\u0435\u043e\u0440\u0441\u00df\u00e9\u4e2d\u30fc\u3002\uff21\uff4d\u00b2\u2126\u212a\u0391\u039c")


def straightforward(data: bytes, params: FingerprintParams) -> Fingerprint:
    """fingerprint_text as it was: words, shingle hashes, then each step on Python lists."""
    words = words_of(data.decode("utf-8"))
    if not words:
        raise FingerprintError("content has no words after normalisation")
    hashes = shingle_hashes(words, params)
    winnowed = winnowed_values(hashes, params.winnow_window)
    fingerprint = winnowed[: params.fingerprint_max]
    return Fingerprint(
        content_hash=hashlib.sha256(data).digest(),
        size=len(data),
        fingerprint=fingerprint,
        minhash=minhash_signature(hashes, params),
        positions=first_positions(hashes, fingerprint),
        winnowed=len(winnowed),
    )


def agree(text: str, params: FingerprintParams) -> None:
    data = text.encode("utf-8")
    hashes = shingle_hashes(words_of(text), params)
    assert fingerprint_output(data, params) == winnowed_fingerprint(hashes, params.winnow_window,
                                                                   params.output_fingerprint_max)
    try:
        expected = straightforward(data, params)
    except FingerprintError:
        try:
            fingerprint_text(data, params)
        except FingerprintError as exc:
            assert exc.reason == "content has no words after normalisation"
            return
        raise AssertionError("the fast path fingerprinted a wordless text")
    assert fingerprint_text(data, params) == expected


texts = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from(TRICKY), max_size=200),
    # repetitive: few distinct words, so shingles, window minima and first positions repeat
    st.lists(st.sampled_from(["a", "b", "c", "A", "b-c", "don't", "\u4e2d", "\u2014"]), max_size=80).map(" ".join),
)
TINY = FingerprintParams(shingle_k=1, winnow_window=1, fingerprint_max=3, output_fingerprint_max=2,
                         minhash_size=4, lsh_bands=1, lsh_rows=4)
params = st.sampled_from([P, SMALL, TINY])


@settings(max_examples=400, deadline=None)
@given(text=texts, p=params)
def test_fingerprint_text_equals_the_straightforward_steps(text: str, p: FingerprintParams) -> None:
    agree(text, p)


def test_fingerprint_text_equals_the_straightforward_steps_on_english() -> None:
    corpus = " ".join(t for _, t in build_corpus(max_words=30_000, limit=200))
    words = corpus.split(" ")
    rng = random.Random(5)
    for size in (1, 3, 4, 5, 40, 3000, 12_000):
        at = rng.randrange(max(1, len(words) - size))
        agree(" ".join(words[at : at + size]), P)
    agree(corpus[:65536].rsplit(" ", 1)[0], P)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=200), st.text(alphabet=st.sampled_from(TRICKY), max_size=120)))
def test_word_bytes_are_the_encoded_words(text: str) -> None:
    norm = normalise(text)
    assert word_bytes(norm) == [w.encode() for w in split_words(norm)]


def test_word_bytes_with_many_scripts() -> None:
    many = " ".join(chr(cp) + "a" + chr(cp + 1) + "\u4e2d" for cp in range(0x400, 0x400 + 3 * SMALL_CLASS_MAX, 3))
    for text in (many, "x" + many + "\u3002"):
        assert word_bytes(text) == [w.encode() for w in split_words(text)]


EDGES = [0, 1, 2, 7, 8, MERSENNE_61 - 1, MERSENNE_61, MERSENNE_61 + 1, 2 * MERSENNE_61, 2 * MERSENNE_61 + 1,
         (1 << 61), (1 << 62) - 1, (1 << 63), 8 * MERSENNE_61 + 7, (1 << 64) - 2, (1 << 64) - 1,
         (1 << 32) - 1, 1 << 32, ((1 << 32) - 1) << 32]


@settings(max_examples=300, deadline=None)
@given(a=st.one_of(st.integers(1, MERSENNE_61 - 1), st.sampled_from([1, 2, (1 << 32) - 1, 1 << 32, MERSENNE_61 - 2])),
       b=st.one_of(st.integers(0, MERSENNE_61 - 1), st.sampled_from([0, MERSENNE_61 - 1])),
       xs=st.lists(st.integers(0, (1 << 64) - 1), max_size=30))
def test_permute61_is_exact(a: int, b: int, xs: list[int]) -> None:
    values = EDGES + xs
    assert permute61(np.array(values, dtype=np.uint64), a, b).tolist() == [(a * x + b) % MERSENNE_61 for x in values]


@settings(max_examples=300, deadline=None)
@given(hashes=st.lists(st.one_of(st.integers(0, 6), st.sampled_from(EDGES)), min_size=1, max_size=60),
       w=st.integers(1, 8))
def test_array_steps_equal_the_list_steps(hashes: list[int], w: int) -> None:
    array = np.array(hashes, dtype=np.uint64)
    assert tuple(_winnowed_array(array, w).tolist()) == winnowed_values(hashes, w)
    distinct, first = _distinct_and_first(array)
    assert distinct.tolist() == sorted(set(hashes))
    assert tuple(first.tolist()) == first_positions(hashes, distinct.tolist())


# ---- normalisation fast paths --------------------------------------------------------------


def slow_pass(text: str) -> str:
    """One pass the way the general path does it: unicodedata2 steps, then the regex joiner."""
    return n._joiner().sub("", n._translate_steps(text))


def test_ascii_steps_act_character_by_character() -> None:
    # Every pair of ASCII characters (so any context an ASCII neighbour could give): the ASCII
    # translation equals the unicodedata2 steps.
    assert n._ascii_steps() is not None
    chars = [chr(cp) for cp in range(128)]
    for x in chars:
        for y in chars:
            assert n._pass(x + y) == slow_pass(x + y), (x, y)


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(st.text(alphabet=st.characters(max_codepoint=127), max_size=200),
                      st.text(alphabet=st.sampled_from(TRICKY), max_size=120),
                      st.text(max_size=120)))
def test_pass_and_joiner_equal_the_slow_path(text: str) -> None:
    assert n._pass(text) == slow_pass(text)
    assert n._join_inner(text) == n._joiner().sub("", text)
