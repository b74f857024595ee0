"""Fingerprints (state/attribution/fingerprint.py) against an independent, deliberately naive reference
implementation of docs/attribution.md, the doc's own test vectors, and the properties the state
transition relies on."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import time
import unicodedata2
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state.codec import CodecError, decode
from state.attribution.fingerprint import (
    DEFAULT_FINGERPRINT_PARAMS,
    MERSENNE_61,
    FingerprintError,
    FingerprintParams,
    estimated_jaccard_bps,
    fingerprint_file_report,
    fingerprint_output,
    fingerprint_text,
    is_near_duplicate,
    is_valid_fingerprint,
    is_valid_minhash,
    is_word_character,
    lsh_band_hashes,
    minhash_signature,
    normalise,
    require_pinned_unicode,
    shingle_hashes,
    split_words,
    unicode_version_number,
    winnow,
    winnowed_fingerprint,
    words_of,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "attribution.md"
P = DEFAULT_FINGERPRINT_PARAMS


# ---- reference implementation: the spec read literally, one character / window / bin at a time


REF_IGNORABLE = [(0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
                 (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
                 (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
                 (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF)]


def ref_map(name: str) -> dict[str, str]:
    path = ROOT / "state" / "attribution" / "data" / name
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            src, dst = line.split("\t")
            out[chr(int(src, 16))] = "".join(chr(int(x, 16)) for x in dst.split())
    return out


@functools.cache
def ref_skeleton_map() -> dict[str, str]:
    return ref_map("confusables-13.0.0.tsv")


def ref_casefold(text: str) -> str:
    """Full case folding from the shipped CaseFolding-15.0.0 table (never Python's str.casefold)."""
    table = ref_casefold_map()
    return "".join(table.get(ch, ch) for ch in text)


@functools.cache
def ref_casefold_map() -> dict[str, str]:
    return ref_map("casefolding-15.0.0.tsv")


def ref_is_word(ch: str) -> bool:
    return unicodedata2.category(ch)[0] in ("L", "M", "N")


def ref_pass(text: str) -> str:
    nf = unicodedata2.normalize
    kept = "".join(ch for ch in text if not any(lo <= ord(ch) <= hi for lo, hi in REF_IGNORABLE))
    folded = ref_casefold(nf("NFKC", kept))
    skeleton = nf("NFD", "".join(ref_skeleton_map().get(ch, ch) for ch in nf("NFD", folded)))
    norm = nf("NFKC", ref_casefold(nf("NFKC", skeleton)))
    out = []
    for i, ch in enumerate(norm):  # an apostrophe or hyphen run between two word characters goes
        if ch in "'-":
            j, k = i, i
            while j > 0 and norm[j - 1] in "'-":
                j -= 1
            while k + 1 < len(norm) and norm[k + 1] in "'-":
                k += 1
            if j > 0 and k + 1 < len(norm) and ref_is_word(norm[j - 1]) and ref_is_word(norm[k + 1]):
                continue
        out.append(ch)
    return "".join(out)


def ref_normalise(text: str) -> str:
    for _ in range(4):
        nxt = ref_pass(text)
        if nxt == text:
            break
        text = nxt
    return text


def ref_words(text: str) -> list[str]:
    norm = ref_normalise(text)
    words: list[str] = []
    run = ""
    for ch in norm:
        is_word = ref_is_word(ch)
        is_wide = unicodedata2.east_asian_width(ch) in ("W", "F")
        if is_word and is_wide:
            if run:
                words.append(run)
                run = ""
            words.append(ch)
        elif is_word:
            run += ch
        elif run:
            words.append(run)
            run = ""
    if run:
        words.append(run)
    return words


def ref_shingle_hashes(words: list[str], k: int, seed: int) -> list[int]:
    grams = [words] if len(words) < k else [words[i : i + k] for i in range(len(words) - k + 1)]
    out = []
    for gram in grams:
        digest = hashlib.sha256(struct.pack(">Q", seed) + " ".join(gram).encode("utf-8")).digest()
        out.append(struct.unpack(">Q", digest[:8])[0])
    return out


def ref_windows(hashes: list[int], w: int) -> list[list[int]]:
    if not hashes:
        return []
    if len(hashes) <= w:
        return [hashes]
    return [hashes[i : i + w] for i in range(len(hashes) - w + 1)]


def ref_fingerprint(hashes: list[int], w: int, cap: int) -> list[int]:
    return sorted({min(window) for window in ref_windows(hashes, w)})[:cap]


def ref_winnow_positions(hashes: list[int], w: int) -> list[int]:
    if not hashes:
        return []
    w = min(w, len(hashes))
    selected: list[int] = []
    for start in range(len(hashes) - w + 1):
        m = min(hashes[start : start + w])
        if selected and selected[-1] >= start and hashes[selected[-1]] == m:
            continue
        selected.append(max(j for j in range(start, start + w) if hashes[j] == m))
    return selected


def ref_minhash(hashes: list[int], size: int, seed: int) -> list[int]:
    p = 2**61 - 1
    seed8 = struct.pack(">Q", seed)
    d = hashlib.sha256(seed8 + b"coefficients").digest()
    a = 1 + struct.unpack(">Q", d[0:8])[0] % (p - 1)
    b = struct.unpack(">Q", d[8:16])[0] % p
    bins: dict[int, int] = {}
    for x in hashes:
        y = (a * x + b) % p
        bins[y % size] = min(bins.get(y % size, y), y)
    signature = []
    for j in range(size):
        if j in bins:
            signature.append(bins[j])
            continue

        def probe_key(c: int, j: int = j) -> bytes:
            return hashlib.sha256(seed8 + b"probe" + struct.pack(">HH", j, c)).digest()

        first = next(c for c in sorted(range(size), key=probe_key) if c != j and c in bins)
        signature.append(bins[first])
    return signature


def ref_bands(signature: list[int], bands: int, rows: int) -> list[str]:
    out = []
    for band in range(bands):
        part = signature[band * rows : (band + 1) * rows]
        data = struct.pack(">H", band) + struct.pack(f">{rows}Q", *part)
        out.append("0x" + hashlib.sha256(data).hexdigest())
    return out


def ref_vector(name: str, text: str, params: FingerprintParams = P) -> dict[str, Any]:
    """Every value docs/attribution.md lists for one input, from the reference alone."""
    data = text.encode("utf-8")
    words = ref_words(text)
    hashes = ref_shingle_hashes(words, params.shingle_k, params.shingle_seed)
    signature = ref_minhash(hashes, params.minhash_size, params.minhash_seed)
    return {
        "name": name,
        "text": text,
        "size": len(data),
        "content_hash": "0x" + hashlib.sha256(data).hexdigest(),
        "words": words,
        "shingle_hashes": hashes,
        "fingerprint": ref_fingerprint(hashes, params.winnow_window, params.fingerprint_max),
        "minhash": signature,
        "lsh_band_hashes": ref_bands(signature, params.lsh_bands, params.lsh_rows),
    }


def module_vector(name: str, text: str, params: FingerprintParams = P) -> dict[str, Any]:
    data = text.encode("utf-8")
    fp = fingerprint_text(data, params)
    words = words_of(text)
    return {
        "name": name,
        "text": text,
        "size": fp.size,
        "content_hash": "0x" + fp.content_hash.hex(),
        "words": words,
        "shingle_hashes": shingle_hashes(words, params),
        "fingerprint": list(fp.fingerprint),
        "minhash": list(fp.minhash),
        "lsh_band_hashes": ["0x" + h.hex() for h in lsh_band_hashes(fp.minhash, params)],
    }


VECTOR_TEXTS = {
    "pangram": "The quick brown fox jumps over the lazy dog.",
    "one-word": "Hi!",
    "normalisation": "Straße, ÉCOLE & naïve café — ＡＢＣ１２３; x² ½ foo_bar!",
    "wide-and-marks": "中文字符测试 日本語のテキスト 한국어 हिन्दी पाठ",
    "paragraph": (
        "Attribution is the record of who contributed the data, the models and the adapters behind "
        "an output. The fee paid for that output flows back to each of them, and every node "
        "computes the same split from the same fingerprints. The fee paid for that output flows "
        "back to each of them."
    ),
    "paragraph-edited": (
        "Attribution is the record of who contributed the data, the models and the adapters behind "
        "an answer. The fee paid for that output flows back to each of them, and every node "
        "computes the same split from the same fingerprints. The fee paid for this output flows "
        "back to each of them."
    ),
}


@pytest.mark.parametrize("name", sorted(VECTOR_TEXTS))
def test_module_agrees_with_the_reference_on_the_vectors(name: str) -> None:
    assert module_vector(name, VECTOR_TEXTS[name]) == ref_vector(name, VECTOR_TEXTS[name])


def _doc_blocks() -> list[dict[str, Any]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Test vectors", 1)[1].split("\n## ", 1)[0]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", section, re.S)]


def test_doc_vectors_match_the_code_and_the_reference() -> None:
    blocks = _doc_blocks()
    vectors = {b["name"]: b for b in blocks if "text" in b}
    pairs = [b for b in blocks if "pair" in b]
    assert set(vectors) == set(VECTOR_TEXTS)
    assert pairs
    for name, vector in vectors.items():
        assert vector["text"] == VECTOR_TEXTS[name]
        assert module_vector(name, vector["text"]) == vector, name
        assert ref_vector(name, vector["text"]) == vector, name
    for pair in pairs:
        a, b = (vectors[n]["minhash"] for n in pair["pair"])
        assert estimated_jaccard_bps(a, b) == pair["estimated_jaccard_bps"]
        assert sum(x == y for x, y in zip(a, b)) * 10000 // len(a) == pair["estimated_jaccard_bps"]
        assert is_near_duplicate(a, b, P) == pair["is_near_duplicate"]


# ---- params ------------------------------------------------------------------------------


def test_doc_constants_match_the_reference() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert f"Encoded: `{P.encode().hex()}`" in doc  # type: ignore[attr-defined]
    d = hashlib.sha256(struct.pack(">Q", P.minhash_seed) + b"coefficients").digest()
    a = 1 + struct.unpack(">Q", d[0:8])[0] % (2**61 - 2)
    b = struct.unpack(">Q", d[8:16])[0] % (2**61 - 1)
    assert f"`a = {a}`, `b = {b}`" in doc
    seed8 = struct.pack(">Q", P.minhash_seed)
    for j in (0, 1):
        keys = {c: hashlib.sha256(seed8 + b"probe" + struct.pack(">HH", j, c)).digest() for c in range(128)}
        order = sorted((c for c in range(128) if c != j), key=keys.__getitem__)
        assert f"bin {j} probes `{', '.join(map(str, order[:4]))}" in doc


def test_default_params_are_consistent_and_round_trip() -> None:
    assert P.lsh_bands * P.lsh_rows == P.minhash_size
    assert P.max_content_bytes == 65536
    assert P.unicode_version == unicode_version_number("17.0.0")
    assert decode(FingerprintParams, P.encode()) == P  # type: ignore[attr-defined]
    with pytest.raises(CodecError, match="lsh_bands"):
        replace(P, lsh_bands=16)
    with pytest.raises(CodecError, match="minhash_size"):
        FingerprintParams(minhash_size=512, lsh_bands=128, lsh_rows=4)
    with pytest.raises(CodecError, match="fingerprint_max"):
        replace(P, fingerprint_max=5000)
    with pytest.raises(CodecError, match="near_duplicate_bps"):
        replace(P, near_duplicate_bps=10001)


def test_unicode_pinning() -> None:
    running = unicode_version_number(unicodedata2.unidata_version)
    require_pinned_unicode(replace(P, unicode_version=running))
    with pytest.raises(FingerprintError, match="differs from the version pinned"):
        require_pinned_unicode(replace(P, unicode_version=running + 1))


# ---- normalisation and words ---------------------------------------------------------------


def test_every_code_point_tokenises_by_the_predicates_and_normalises_idempotently() -> None:
    # Every code point between spaces: each word character must come out as its own word.
    code_points = [cp for cp in range(0x110000) if not 0xD800 <= cp < 0xE000]
    expected = [chr(cp) for cp in code_points if is_word_character(chr(cp))]
    spaced = " ".join(chr(cp) for cp in code_points)
    assert split_words(spaced) == expected
    # Spaces are normalisation boundaries, so this checks each code point on its own; in slices of
    # 4,096 code points (the whole text at once costs 20 s: each confusable present is one scan).
    for at in range(0, len(code_points), 4096):
        once = normalise(" ".join(chr(cp) for cp in code_points[at : at + 4096]))
        assert normalise(once) == once, f"not idempotent in U+{code_points[at]:04X} .. (4,096 code points)"
    # Adjacent: narrow word characters join, wide ones stand alone, the rest separate.
    expected_words = ["ab\u0301c", "\u4e2d", "\u6587", "d1", "e", "f", "g"]
    assert split_words("ab\u0301c\u4e2d\u6587d1_e-f\u3002g") == expected_words


def test_normalisation_examples() -> None:
    assert words_of("STRASSE") == words_of("Straße") == ["strasse"]
    assert words_of("ＡＢＣ１２３") == ["abcl23"]  # full width (NFKC); "1" -> "l" (skeleton)
    assert words_of("ﬁne") == ["fine"]  # ligature (NFKC)
    assert words_of("e\u0301cole") == words_of("\u00e9cole") == ["\u00e9cole"]  # composed
    assert words_of("x²") == ["x2"]
    # issue 13's evasions: each edited word is the word again
    assert words_of("don't well-known") == words_of("dont wellknown") == words_of("don’t well‐known")
    assert words_of("pro\u200bgram\u00adming") == words_of("pro\u2060gram\ufe0fming") == ["prograrnrning"]
    assert words_of("сору ехаmрlе") == words_of("copy example")  # Cyrillic look-alikes
    assert words_of("stop—now") == ["stop", "\u30fc", "now"]  # the em dash's prototype is a letter
    assert words_of("snake_case\tand\r\nlines") == ["snake", "case", "and", "lines"]
    assert "\u01f0".casefold() != "\u01f0" and normalise(normalise("\u01f0")) == normalise("\u01f0")
    assert words_of("") == [] and words_of("!? ...") == []


ascii_words = st.lists(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8), min_size=1, max_size=40
)
separators = st.lists(
    st.sampled_from([" ", "  ", "\n", "\t", ", ", " -- ", "!? ", " (", ") ", "_", "…"]), min_size=1
)


@settings(max_examples=60, deadline=None)
@given(words=ascii_words, seps=separators, flips=st.lists(st.booleans(), min_size=1))
def test_case_punctuation_and_whitespace_do_not_change_the_fingerprint(
    words: list[str], seps: list[str], flips: list[bool]
) -> None:
    plain = " ".join(words)
    noisy_parts = []
    for i, w in enumerate(words):
        noisy_parts.append(w.upper() if flips[i % len(flips)] else w)
        noisy_parts.append(seps[i % len(seps)])
    noisy = "¡" + "".join(noisy_parts)
    a = fingerprint_text(plain.encode(), P)
    b = fingerprint_text(noisy.encode(), P)
    assert (a.fingerprint, a.minhash) == (b.fingerprint, b.minhash)
    assert fingerprint_output(noisy.encode(), P) == a.fingerprint


SMALL = FingerprintParams(
    shingle_k=3, winnow_window=4, fingerprint_max=5, minhash_size=8, lsh_bands=2, lsh_rows=4
)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=400))
def test_arbitrary_text_matches_the_reference_and_is_well_formed(text: str) -> None:
    assert normalise(normalise(text)) == normalise(text)
    words = ref_words(text)
    if not words:
        with pytest.raises(FingerprintError, match="no words"):
            fingerprint_text(text.encode(), SMALL)
        return
    fp = fingerprint_text(text.encode(), SMALL)
    hashes = ref_shingle_hashes(words, SMALL.shingle_k, SMALL.shingle_seed)
    assert list(fp.fingerprint) == ref_fingerprint(hashes, SMALL.winnow_window, SMALL.fingerprint_max)
    assert list(fp.minhash) == ref_minhash(hashes, SMALL.minhash_size, SMALL.minhash_seed)
    assert list(fp.fingerprint) == sorted(set(fp.fingerprint))
    assert 1 <= len(fp.fingerprint) <= SMALL.fingerprint_max
    assert is_valid_fingerprint(fp.fingerprint, SMALL.fingerprint_max)
    assert is_valid_minhash(fp.minhash, SMALL)
    assert estimated_jaccard_bps(fp.minhash, fp.minhash) == 10000
    assert is_near_duplicate(fp.minhash, fp.minhash, SMALL)


# Characters where the fast paths of normalise/split_words could part from the spec: confusable
# keys (ASCII ones map to several characters: m -> rn, % -> º/₀), Default_Ignorables, apostrophe
# and hyphen variants, combining marks, wide characters, full width letters, underscores.
TRICKY = ("abmIl10%|`\"'-_ .,\n\u2019\u2018\u201c\u2014\u2013\u2010\u00ad\u200b\u200d\ufeff\u0301\u0308"
          "\u0430\u0435\u043e\u0440\u0441\u00df\u00e9\u4e2d\u30fc\u3002\uff21\uff4d\u00b2\u2126\u212a\u0391\u039c")


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(TRICKY), max_size=120))
def test_fast_paths_agree_with_the_reference_on_tricky_text(text: str) -> None:
    from state.attribution import normalise as n

    assert normalise(text) == ref_normalise(text)
    once = n._pass(text)
    if n._is_fixed_point(once):  # the shortcut that skips the confirming pass is sound
        assert n._pass(once) == once
    assert words_of(text) == ref_words(text)


def test_split_words_small_and_whole_table_patterns_agree() -> None:
    from state.attribution.fingerprint import SMALL_CLASS_MAX, _word_pattern

    few = "caf\u00e9 \u4e2d\u6587 na\u0308ive \u30fcx \u00b0 \u2126"
    many = " ".join(chr(cp) + "a" + chr(cp + 1) for cp in range(0x400, 0x400 + 3 * SMALL_CLASS_MAX, 3))
    for text in (few, many, few + many):
        assert split_words(text) == _word_pattern().findall(text)
        assert words_of(text) == ref_words(text)


# ---- winnowing -----------------------------------------------------------------------------

small_hashes = st.lists(st.integers(0, 6), max_size=60)


@settings(max_examples=200, deadline=None)
@given(hashes=small_hashes, w=st.integers(1, 8))
def test_robust_winnowing_positions(hashes: list[int], w: int) -> None:
    positions = winnow(hashes, w)
    assert positions == ref_winnow_positions(hashes, w)
    assert positions == sorted(set(positions))
    assert list(winnowed_fingerprint(hashes, w, 10**6)) == ref_fingerprint(hashes, w, 10**6)


@settings(max_examples=150, deadline=None)
@given(
    a=small_hashes,
    b=small_hashes,
    shared=st.lists(st.integers(0, 1000), min_size=8, max_size=20),
    w=st.integers(1, 8),
)
def test_winnowing_guarantee(a: list[int], b: list[int], shared: list[int], w: int) -> None:
    """A run of at least w shared hashes always yields a shared fingerprint value."""
    x = winnowed_fingerprint(a + shared + b, w, 10**6)
    y = winnowed_fingerprint(b + shared + a, w, 10**6)
    assert set(x) & set(y)


def test_robust_winnowing_keeps_one_position_in_a_flat_run() -> None:
    # Plain winnowing would move to the rightmost 1 in every window; robust keeps the first pick.
    assert winnow([5, 1, 1, 1, 1, 1, 1, 1, 4], 3) == [2, 5, 7]
    assert winnow([3, 2, 1], 10) == [2]
    assert winnow([], 4) == []


# ---- MinHash, LSH and validity checks ------------------------------------------------------


def test_estimated_jaccard_counts_equal_positions() -> None:
    a = list(range(128))
    for changed in (0, 1, 63, 64, 128):
        b = [v + 1000 if i < changed else v for i, v in enumerate(a)]
        assert estimated_jaccard_bps(a, b) == (128 - changed) * 10000 // 128
    at_threshold = [v + 1000 if i < 64 else v for i, v in enumerate(a)]  # exactly 5000 bps
    assert is_near_duplicate(a, at_threshold, P)
    assert not is_near_duplicate(a, [v + 1000 if i < 65 else v for i, v in enumerate(a)], P)
    with pytest.raises(FingerprintError):
        estimated_jaccard_bps(a, a[:-1])
    with pytest.raises(FingerprintError):
        estimated_jaccard_bps([], [])
    with pytest.raises(FingerprintError):
        is_near_duplicate(a[:8], a[:8], P)


def test_lsh_bands_isolate_changes() -> None:
    sig = list(fingerprint_text(VECTOR_TEXTS["paragraph"].encode()).minhash)
    bands = lsh_band_hashes(sig, P)
    assert len(bands) == P.lsh_bands and all(len(h) == 32 for h in bands)
    assert len(set(bands)) == P.lsh_bands  # the band index is hashed in
    changed = list(sig)
    changed[P.lsh_rows * 3 + 1] ^= 1
    diff = [i for i, (x, y) in enumerate(zip(bands, lsh_band_hashes(changed, P))) if x != y]
    assert diff == [3]
    with pytest.raises(FingerprintError):
        lsh_band_hashes(sig[:-1], P)


def test_validity_checks_reject_tampered_signatures() -> None:
    fp = fingerprint_text(VECTOR_TEXTS["paragraph"].encode())
    assert is_valid_minhash(fp.minhash, P) and is_valid_fingerprint(fp.fingerprint, P.fingerprint_max)
    sig = list(fp.minhash)
    assert not is_valid_minhash(sig[:-1], P)
    assert not is_valid_minhash([MERSENNE_61] + sig[1:], P)
    assert not is_valid_minhash([sig[1] + P.minhash_size] + sig[1:], P)  # not its bin's value
    values = list(fp.fingerprint)
    assert not is_valid_fingerprint(values[::-1], P.fingerprint_max)
    assert not is_valid_fingerprint(values + values[-1:], P.fingerprint_max)
    assert not is_valid_fingerprint(values, len(values) - 1)
    assert not is_valid_fingerprint([1 << 64], 10)
    assert is_valid_fingerprint((), 10)


def test_densification_fills_every_bin_for_one_shingle() -> None:
    sig = minhash_signature([12345], P)
    assert len(set(sig)) == 1 and is_valid_minhash(sig, P)
    with pytest.raises(FingerprintError):
        minhash_signature([], P)


# ---- whole documents, errors and the CLI report ---------------------------------------------


def test_rejects_non_utf8_empty_and_oversize_content() -> None:
    for bad in (b"\xff", b"abc \xc3", b"\xc0\xaf overlong", b"\xed\xa0\x80 surrogate"):
        with pytest.raises(FingerprintError, match="not valid UTF-8"):
            fingerprint_text(bad)
        with pytest.raises(FingerprintError, match="not valid UTF-8"):
            fingerprint_output(bad)
    for empty in (b"", b"   ", b"... -- !!! \n\t", "¿¡…\u200b\u00ad".encode()):
        with pytest.raises(FingerprintError, match="no words"):
            fingerprint_text(empty)
        assert fingerprint_output(empty) == ()
    limit = b"ab " * (65536 // 3) + b"c"
    assert len(limit) == 65536
    assert fingerprint_text(limit).size == 65536
    with pytest.raises(FingerprintError, match="over the limit of 65536"):
        fingerprint_text(limit + b"d")
    with pytest.raises(FingerprintError, match="over the limit"):
        fingerprint_output(b"a" * (P.max_output_bytes + 1))


def test_output_fingerprint_uses_its_own_cap() -> None:
    text = " ".join(f"w{i}" for i in range(600)).encode()
    full = fingerprint_output(text, replace(P, output_fingerprint_max=4096))
    assert len(full) > 100
    capped = fingerprint_output(text, replace(P, output_fingerprint_max=100))
    assert capped == full[:100]
    assert fingerprint_text(text, replace(P, fingerprint_max=4096)).fingerprint == full


def test_fingerprint_file_report(tmp_path: Path) -> None:
    path = tmp_path / "row.txt"
    data = VECTOR_TEXTS["paragraph"].encode()
    path.write_bytes(data)
    report = fingerprint_file_report(str(path))
    assert report == json.loads(json.dumps(report))
    assert report["content_hash"] == "0x" + hashlib.sha256(data).hexdigest()
    assert report["size"] == len(data)
    expected = ref_vector("paragraph", VECTOR_TEXTS["paragraph"])
    assert report["fingerprint"] == expected["fingerprint"]
    assert report["minhash"] == expected["minhash"]

    missing = tmp_path / "missing.txt"
    with pytest.raises(FingerprintError, match=f"cannot read {re.escape(str(missing))}"):
        fingerprint_file_report(str(missing))
    with pytest.raises(FingerprintError, match="cannot read"):
        fingerprint_file_report(str(tmp_path))
    big = tmp_path / "big.txt"
    big.write_bytes(b"a " * 40000)
    too_big = f"{re.escape(str(big))}: content is 65537 bytes, over the limit"
    with pytest.raises(FingerprintError, match=too_big):
        fingerprint_file_report(str(big))
    binary = tmp_path / "image.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(FingerprintError, match="not valid UTF-8"):
        fingerprint_file_report(str(binary))


def test_results_do_not_depend_on_the_process(tmp_path: Path) -> None:
    """Same bytes, fresh interpreter with another hash seed: same report."""
    path = tmp_path / "doc.txt"
    path.write_text(VECTOR_TEXTS["wide-and-marks"] + " " + VECTOR_TEXTS["paragraph"], encoding="utf-8")
    code = (
        "import json, sys; from state.attribution.fingerprint import fingerprint_file_report as r; "
        "print(json.dumps(r(sys.argv[1])))"
    )
    env = dict(os.environ, PYTHONHASHSEED="4242", PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout) == fingerprint_file_report(str(path))
    assert fingerprint_file_report(str(path)) == fingerprint_file_report(str(path))


def test_64_kib_fingerprints_quickly() -> None:
    """Guard against accidental quadratic work: a 64 KiB text takes ~15 ms here; allow 0.5 s."""
    words = [f"{w}{i % 97}" for i, w in enumerate(["alpha", "beta", "gamma", "delta", "x"] * 3000)]
    data = " ".join(words).encode()[:65536]
    fingerprint_text(data)  # warm caches
    best = min(_timed(lambda: fingerprint_text(data)) for _ in range(3))
    assert best < 0.5, f"64 KiB took {best * 1000:.1f} ms"


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@pytest.mark.parametrize("path_attr, cache, edit, sample", [
    ("CONFUSABLES_PATH", "confusables", (b"0430\t0061", b"0430\t0062"), ("сору", "copy")),
    ("CASEFOLDING_PATH", "_casefolding", (b"00DF\t0073 0073", b"00DF\t0073"), ("Straße", "strasse")),
])
def test_a_table_other_than_the_pinned_one_is_refused(tmp_path: Path, monkeypatch: Any, path_attr: str,
                                                      cache: str, edit: tuple[bytes, bytes],
                                                      sample: tuple[str, str]) -> None:
    """A node with an edited shipped table refuses to start (and to fingerprint), one line naming it."""
    from state.attribution import normalise as n
    from state.attribution import unicode_data as ucd

    original = getattr(ucd, path_attr).read_bytes()
    assert edit[0] in original
    tampered = tmp_path / "table.tsv"
    tampered.write_bytes(original.replace(edit[0], edit[1]))
    monkeypatch.setattr(ucd, path_attr, tampered)
    getattr(ucd, cache).cache_clear()
    try:
        with pytest.raises(FingerprintError, match=f"{tampered} has sha256 .*, not the pinned"):
            require_pinned_unicode(P)
        with pytest.raises(ucd.UnicodeDataError, match="not the pinned"):
            n.normalise(sample[0])
    finally:
        monkeypatch.undo()
        getattr(ucd, cache).cache_clear()
    assert n.normalise(sample[0]) == sample[1]
