"""Content fingerprints for attribution and duplicate control (DESIGN section 3, "Contributions").

Pure and deterministic: the same bytes and the same ``FingerprintParams`` give the same result on
every node. The byte-exact specification, with test vectors, is ``docs/attribution.md``:

    bytes --strict UTF-8--> text --normalisation v2 (normalise.py)--> words --k-grams--> 64-bit shingle hashes
    shingle hashes --robust winnowing, smallest ``fingerprint_max``--> fingerprint
    distinct shingle hashes --one-permutation MinHash, optimal densification--> minhash
    minhash --sha256 per band--> LSH band keys

Integers only. Unicode data (NFKC, casefold, General Category, East Asian Width) is pinned, none
of it the running Python's (unicode_data.py); ``require_pinned_unicode`` lets a node refuse to run
with a Unicode version other than the one genesis pins.
"""

from __future__ import annotations

import functools
import hashlib
import re
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from state.attribution import unicode_data as ucd
from state.attribution.normalise import ASCII_WORD_BYTES, as_class, non_ascii_chars, word_ranges
from state.attribution.normalise import normalise as normalise_v2
from state.codec import U16, U32, U64, CodecError, canonical, f
from state.tx import MAX_CONTENT, MAX_FINGERPRINT, MAX_MINHASH

MERSENNE_61 = (1 << 61) - 1
U64_LIMIT = 1 << 64
U32_MAX = (1 << 32) - 1
BPS = 10_000


def unicode_version_number(version: str) -> int:
    """'14.0.0' -> 14_000_000 (major * 10**6 + minor * 10**3 + micro), the form genesis stores."""
    major, minor, micro = (int(part) for part in version.split("."))
    return major * 1_000_000 + minor * 1_000 + micro


def _ascii_seed(tag: bytes) -> int:
    return int.from_bytes(tag, "big")


@canonical
class FingerprintParams:
    """Every constant of the fingerprint algorithm; genesis carries one copy (field order is wire
    order)."""

    shingle_k: int = f(U16, default=4)
    winnow_window: int = f(U16, default=5)
    fingerprint_max: int = f(U16, default=4096)
    output_fingerprint_max: int = f(U16, default=1024)
    minhash_size: int = f(U16, default=128)
    lsh_bands: int = f(U16, default=32)
    lsh_rows: int = f(U16, default=4)
    near_duplicate_bps: int = f(U16, default=5000)
    max_content_bytes: int = f(U32, default=MAX_CONTENT)
    max_output_bytes: int = f(U32, default=256 * 1024)
    unicode_version: int = f(U32, default=17_000_000)
    shingle_seed: int = f(U64, default=_ascii_seed(b"shingle1"))
    minhash_seed: int = f(U64, default=_ascii_seed(b"minhash1"))

    def validate(self, path: str) -> None:
        ranges = (
            ("shingle_k", 1, 64),
            ("winnow_window", 1, 1024),
            ("fingerprint_max", 1, MAX_FINGERPRINT),
            ("output_fingerprint_max", 1, MAX_FINGERPRINT),
            ("minhash_size", 2, MAX_MINHASH),
            ("lsh_bands", 1, MAX_MINHASH),
            ("lsh_rows", 1, MAX_MINHASH),
            ("near_duplicate_bps", 1, BPS),
            ("max_content_bytes", 1, MAX_CONTENT),
            ("max_output_bytes", 1, U32_MAX),
        )
        for name, low, high in ranges:
            if not low <= getattr(self, name) <= high:
                raise CodecError(f"{path}: {name} must be in {low}..{high}")
        if self.lsh_bands * self.lsh_rows != self.minhash_size:
            raise CodecError(f"{path}: lsh_bands * lsh_rows must equal minhash_size")


DEFAULT_FINGERPRINT_PARAMS = FingerprintParams()


class FingerprintError(ValueError):
    """Content that cannot be fingerprinted (not UTF-8, no words, too large, unreadable) or
    signatures that cannot be compared."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Fingerprint:
    """What a contributor registers for one piece of content."""

    content_hash: bytes  # sha256 of the raw bytes
    size: int  # byte length of the raw bytes
    fingerprint: tuple[int, ...]  # sorted unique winnowed shingle hashes, at most fingerprint_max
    minhash: tuple[int, ...]  # minhash_size values, each below 2**61 - 1
    # per fingerprint value, the index of the first shingle with that hash (span matching, issue 14)
    positions: tuple[int, ...] = ()
    winnowed: int = 0  # distinct winnowed hashes before the cap (a contribution must keep them all)


# ---- Unicode pinning -----------------------------------------------------------------------


def require_pinned_unicode(params: FingerprintParams) -> None:
    """Raise unless the installed unicodedata2 is the Unicode version genesis pins, and every
    shipped table is the pinned one.

    Normalisation and word boundaries depend on them; two nodes on different versions could
    fingerprint a text differently, so a node must refuse to start instead.
    """
    running = unicode_version_number(ucd.running_version)
    if running != params.unicode_version:
        raise FingerprintError(
            f"Unicode database {ucd.running_version} (unicodedata2) differs from the version "
            f"pinned in genesis ({params.unicode_version}); install the version pyproject.toml pins"
        )
    try:
        ucd.load()
    except ucd.UnicodeDataError as exc:
        raise FingerprintError(str(exc)) from None


def warm_caches(params: FingerprintParams) -> None:
    """Build the word-character classes and the probe orders now rather than on first use."""
    _word_pattern()
    ucd.load()  # the shipped tables, each checked against its pinned sha256
    densification_order(params.minhash_size, params.minhash_seed)


# ---- normalisation and words ---------------------------------------------------------------


def normalise(text: str) -> str:
    """Normalisation v2 (state/attribution/normalise.py): drop Default_Ignorable code points, NFKC,
    casefold, UTS #39 skeleton, NFKC and casefold again, join apostrophes and hyphens inside words."""
    return normalise_v2(text)


def is_word_character(ch: str) -> bool:
    """Word characters are letters, marks and numbers: General Category L*, M* or N*."""
    return ucd.category(ch)[0] in "LMN"


def is_wide_character(ch: str) -> bool:
    """East Asian Width W or F: scripts written without spaces, where one character is one word."""
    return ucd.east_asian_width(ch) in ("W", "F")


@functools.cache
def _word_pattern() -> re.Pattern[str]:
    # The word-character ranges (one scan of the pinned database, once per process) as classes,
    # so tokenising runs at regex speed.
    narrow, wide = word_ranges()
    return re.compile(f"[{as_class(wide)}]|[{as_class(narrow)}]+")


_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")
_ASCII_WORD_CLASS = "A-Za-z0-9"  # the ASCII word characters; none of them wide
SMALL_CLASS_MAX = 256  # distinct non-ASCII characters up to which a text gets its own pattern
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


@functools.lru_cache(maxsize=4096)
def _char_class(ch: str) -> int:
    """0: not a word character, 1: narrow word character, 2: wide word character."""
    return (2 if is_wide_character(ch) else 1) if is_word_character(ch) else 0


def _words_pattern_for(chars: frozenset[str]) -> re.Pattern[str]:
    """``_word_pattern()`` cut down to the non-ASCII characters ``chars`` (all of a text's): on
    that text both find the same words, and a small class is matched many times faster than the
    whole Unicode range list (sre tests a character against a long range list one by one)."""
    narrow = "".join(re.escape(ch) for ch in sorted(chars) if _char_class(ch) == 1)
    wide = "".join(re.escape(ch) for ch in sorted(chars) if _char_class(ch) == 2)
    pattern = f"[{_ASCII_WORD_CLASS}{narrow}]+"
    return re.compile(f"[{wide}]|{pattern}" if wide else pattern)


def split_words(normalised: str) -> list[str]:
    """Each wide word character alone, and each maximal run of other word characters, is a word;
    every other character separates words."""
    if normalised.isascii():
        # Fast path: the ASCII word characters are [A-Za-z0-9], none of them wide.
        return _ASCII_WORD.findall(normalised)
    extra = frozenset(_NON_ASCII.findall(normalised))
    if len(extra) > SMALL_CLASS_MAX:  # many scripts at once: the whole table
        return _word_pattern().findall(normalised)
    return _words_pattern_for(extra).findall(normalised)


def words_of(text: str) -> list[str]:
    """The words of a text: ``split_words(normalise(text))``."""
    return split_words(normalise(text))


# Bytes that separate words in the UTF-8 of a normalised text: every ASCII byte but [A-Za-z0-9]
# becomes a space; the bytes of a non-ASCII character (all >= 0x80) are kept.
_SEPARATE_ASCII = bytes(b if b >= 0x80 or b in ASCII_WORD_BYTES else 0x20 for b in range(256))


def word_bytes(normalised: str) -> list[bytes]:
    """``[w.encode() for w in split_words(normalised)]``, by C-speed byte translation and split:
    each non-ASCII character the text holds is replaced first, by a space if it is not a word
    character, by itself between spaces if it is a wide one (a word of its own)."""
    if not normalised.isascii():
        chars = non_ascii_chars(normalised)
        if len(chars) > SMALL_CLASS_MAX:  # many scripts at once: one replacement per character is slower
            words = split_words(normalised)
            return " ".join(words).encode("utf-8", "surrogatepass").split(b" ") if words else []
        for ch in chars:
            kind = _char_class(ch)
            if kind != 1:
                normalised = normalised.replace(ch, f" {ch} " if kind == 2 else " ")
    # split at every space; the empty pieces between adjacent spaces dropped
    return list(filter(None, normalised.encode("utf-8", "surrogatepass").translate(_SEPARATE_ASCII).split(b" ")))


# ---- shingles ------------------------------------------------------------------------------


def shingle_texts(words: Sequence[str], k: int) -> list[str]:
    """Every run of k consecutive words joined by one space; fewer than k words make one shingle."""
    if not words:
        return []
    if len(words) < k:
        return [" ".join(words)]
    # zip of k shifted views yields every k-gram without Python-level slicing.
    return list(map(" ".join, zip(*(words[i:] for i in range(k)))))


_U64_BE = struct.Struct(">Q").unpack_from


def shingle_hashes(words: Sequence[str], params: FingerprintParams) -> list[int]:
    """Shingle hash = first 8 bytes, big-endian, of sha256(u64be(shingle_seed) || UTF-8 shingle)."""
    seeded = hashlib.sha256(params.shingle_seed.to_bytes(8, "big"))
    first8 = _U64_BE
    shingles = shingle_texts(words, params.shingle_k)
    # Repetitive text repeats shingles; hash each distinct one once (from a copy of the hash
    # state that has already taken the seed).
    value: dict[str, int] = {}
    for s in set(shingles):
        h = seeded.copy()
        h.update(s.encode())
        value[s] = first8(h.digest())[0]
    return list(map(value.__getitem__, shingles))


# ---- winnowing -----------------------------------------------------------------------------


def winnow(hashes: Sequence[int], window: int) -> list[int]:
    """Robust winnowing (Schleimer, Wilkerson, Aiken 2003): the selected positions, ascending.

    In each window of ``window`` consecutive hashes select the minimum; on ties keep the position
    selected for the previous window if it is still a minimum of this one, else take the rightmost
    minimum. A sequence shorter than the window is one window.
    """
    n = len(hashes)
    if n == 0:
        return []
    w = min(window, n)
    selected: list[int] = []
    candidates: deque[int] = deque()  # positions with strictly increasing hashes; front = rightmost min
    for right in range(n):
        h = hashes[right]
        while candidates and hashes[candidates[-1]] >= h:
            candidates.pop()
        candidates.append(right)
        left = right - w + 1
        if left < 0:
            continue
        if candidates[0] < left:
            candidates.popleft()
        best = candidates[0]
        last = selected[-1] if selected else -1
        if last >= left and hashes[last] == hashes[best]:
            continue
        selected.append(best)
    return selected


def winnowed_fingerprint(hashes: Sequence[int], window: int, cap: int) -> tuple[int, ...]:
    """The sorted unique hash values at the winnowed positions, capped to the ``cap`` smallest."""
    return winnowed_values(hashes, window)[:cap]


def winnowed_values(hashes: Sequence[int], window: int) -> tuple[int, ...]:
    """The sorted unique hash values at the winnowed positions, all of them."""
    # Only values are kept, so the tie rule cannot matter: the values at the positions winnow()
    # selects are exactly the window minima, which C-level min over shifted views computes fast.
    h = list(hashes)
    if not h:
        return ()
    w = min(window, len(h))
    if w == 1:
        return tuple(sorted(set(h)))
    return tuple(sorted(set(map(min, *(h[i:] for i in range(w))))))


# ---- MinHash -------------------------------------------------------------------------------


def minhash_coefficients(params: FingerprintParams) -> tuple[int, int]:
    """(a, b) of the permutation y = (a*x + b) mod (2**61 - 1), from sha256(seed || "coefficients")."""
    d = hashlib.sha256(params.minhash_seed.to_bytes(8, "big") + b"coefficients").digest()
    a = 1 + int.from_bytes(d[0:8], "big") % (MERSENNE_61 - 1)
    b = int.from_bytes(d[8:16], "big") % MERSENNE_61
    return a, b


@functools.lru_cache(maxsize=8)
def densification_order(size: int, seed: int) -> tuple[tuple[int, ...], ...]:
    """For each bin j, the other bins c sorted by sha256(u64be(seed) || "probe" || u16be(j) || u16be(c))."""
    prefix = seed.to_bytes(8, "big") + b"probe"
    orders = []
    for j in range(size):
        head = prefix + j.to_bytes(2, "big")
        others = [c for c in range(size) if c != j]
        others.sort(key=lambda c: hashlib.sha256(head + c.to_bytes(2, "big")).digest())
        orders.append(tuple(others))
    return tuple(orders)


def minhash_signature(hashes: Sequence[int], params: FingerprintParams) -> tuple[int, ...]:
    """One-permutation MinHash with optimal densification (Shrivastava 2017) of a set of hashes.

    Each distinct hash x maps to y = (a*x + b) mod (2**61 - 1) and falls in bin y mod size; a bin
    keeps its smallest y. An empty bin copies the value of the first non-empty bin in its fixed
    probe order, so two signatures agree at a position with probability equal to the Jaccard
    similarity of the two sets.
    """
    size = params.minhash_size
    if not hashes:
        raise FingerprintError("no shingles to sign")
    a, b = minhash_coefficients(params)
    p = MERSENNE_61
    empty = p  # every y is below p, so p marks a bin nothing fell into
    bins = [empty] * size
    for y in [(a * x + b) % p for x in set(hashes)]:
        j = y % size
        if y < bins[j]:
            bins[j] = y
    orders = densification_order(size, params.minhash_seed)
    signature: list[int] = []
    for j in range(size):
        value = bins[j]
        if value == empty:
            value = next(v for v in (bins[c] for c in orders[j]) if v != empty)
        signature.append(value)
    return tuple(signature)


def is_valid_minhash(minhash: Sequence[int], params: FingerprintParams) -> bool:
    """A signature has minhash_size values below 2**61 - 1, each sitting in (or copied from) its bin."""
    size = params.minhash_size
    if len(minhash) != size:
        return False
    if not all(type(v) is int and 0 <= v < MERSENNE_61 for v in minhash):
        return False
    return all(minhash[v % size] == v for v in minhash)


def is_valid_fingerprint(fingerprint: Sequence[int], cap: int) -> bool:
    """A fingerprint is strictly ascending uint64 values, at most ``cap`` of them."""
    if len(fingerprint) > cap:
        return False
    if not all(type(v) is int and 0 <= v < U64_LIMIT for v in fingerprint):
        return False
    return all(fingerprint[i] < fingerprint[i + 1] for i in range(len(fingerprint) - 1))


# ---- LSH and similarity --------------------------------------------------------------------


def lsh_band_hashes(minhash: Sequence[int], params: FingerprintParams) -> list[bytes]:
    """Band b's key = sha256(u16be(b) || u64be of the band's lsh_rows values), 32 bytes each."""
    if len(minhash) != params.minhash_size:
        raise FingerprintError(f"minhash has {len(minhash)} values, expected {params.minhash_size}")
    rows = params.lsh_rows
    keys = []
    for band in range(params.lsh_bands):
        chunk = minhash[band * rows : (band + 1) * rows]
        data = band.to_bytes(2, "big") + b"".join(v.to_bytes(8, "big") for v in chunk)
        keys.append(hashlib.sha256(data).digest())
    return keys


def estimated_jaccard_bps(minhash_a: Sequence[int], minhash_b: Sequence[int]) -> int:
    """Equal positions * 10000 // size, rounded down."""
    if len(minhash_a) != len(minhash_b) or not minhash_a:
        raise FingerprintError(
            f"cannot compare minhash signatures of lengths {len(minhash_a)} and {len(minhash_b)}"
        )
    equal = sum(1 for x, y in zip(minhash_a, minhash_b) if x == y)
    return equal * BPS // len(minhash_a)


def is_near_duplicate(
    minhash_a: Sequence[int], minhash_b: Sequence[int], params: FingerprintParams
) -> bool:
    """Two signatures are near duplicates when their estimated Jaccard reaches near_duplicate_bps."""
    if len(minhash_a) != params.minhash_size or len(minhash_b) != params.minhash_size:
        raise FingerprintError(f"minhash signatures must have {params.minhash_size} values")
    return estimated_jaccard_bps(minhash_a, minhash_b) >= params.near_duplicate_bps


# ---- whole documents -----------------------------------------------------------------------


def _decode(data: bytes, limit: int, what: str) -> str:
    if len(data) > limit:
        raise FingerprintError(f"{what} is {len(data)} bytes, over the limit of {limit}")
    try:
        return data.decode("utf-8", "strict")
    except UnicodeDecodeError as exc:
        raise FingerprintError(f"{what} is not valid UTF-8 (byte {exc.start})") from exc


def fingerprint_text(data: bytes, params: FingerprintParams = DEFAULT_FINGERPRINT_PARAMS) -> Fingerprint:
    """Fingerprint and MinHash of a contribution; rejects non-UTF-8, oversize and wordless input.

    The same values as ``shingle_hashes(words_of(text))`` put through ``winnowed_values``,
    ``minhash_signature`` and ``first_positions`` (tests/test_fingerprint.py compares them on
    varied texts), computed on arrays: the shingles as bytes, their hashes as one uint64 array."""
    text = _decode(data, params.max_content_bytes, "content")
    hashes = _shingle_hash_array(word_bytes(normalise(text)), params)
    if hashes is None:
        raise FingerprintError("content has no words after normalisation")
    winnowed = _winnowed_array(hashes, params.winnow_window)
    fingerprint = winnowed[: params.fingerprint_max]
    distinct, first = _distinct_and_first(hashes)
    return Fingerprint(
        content_hash=hashlib.sha256(data).digest(),
        size=len(data),
        fingerprint=tuple(fingerprint.tolist()),
        minhash=_minhash_of_distinct(distinct, params),
        positions=tuple(first[np.searchsorted(distinct, fingerprint)].tolist()),
        winnowed=len(winnowed),
    )


# ---- the same on arrays (fingerprint_text): uint64 throughout, no floating point ---------------

_BIG_ENDIAN_U64 = np.dtype(">u8")
_P61 = np.uint64(MERSENNE_61)
_LOW32 = np.uint64(0xFFFFFFFF)
_LOW29 = np.uint64((1 << 29) - 1)


def _shingle_hash_array(words: list[bytes], params: FingerprintParams) -> np.ndarray | None:
    """``shingle_hashes`` of the (UTF-8) words as a uint64 array; None without words."""
    if not words:
        return None
    seed = params.shingle_seed.to_bytes(8, "big")
    k, n = params.shingle_k, len(words)
    if n < k:
        shingles: Any = [seed + b" ".join(words)]
    else:  # seed || k words joined by spaces, the seed put in front of each first word
        shingles = map(b" ".join, zip(map(seed.__add__, words[: n - k + 1]), *(words[i:] for i in range(1, k))))
    sha256 = hashlib.sha256
    digests = b"".join([sha256(s).digest() for s in shingles])
    # each digest's first 8 bytes, big-endian: every 4th big-endian uint64 of the 32-byte digests
    return np.frombuffer(digests, dtype=_BIG_ENDIAN_U64)[::4].astype(np.uint64)


def _winnowed_array(hashes: np.ndarray, window: int) -> np.ndarray:
    """``winnowed_values``: the sorted distinct minima of the windows."""
    n = len(hashes)
    w = min(window, n)
    minima = hashes[: n - w + 1].copy()
    for i in range(1, w):
        np.minimum(minima, hashes[i : n - w + 1 + i], out=minima)
    ordered = np.sort(minima)  # (np.unique costs four times more on 3,000 values)
    return ordered[_run_starts(ordered)]


def _run_starts(ordered: np.ndarray) -> np.ndarray:
    """Of a sorted, non-empty array: True where a value differs from the one before."""
    starts = np.empty(len(ordered), dtype=bool)
    starts[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    return starts


def _distinct_and_first(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct hashes ascending, and for each the index of its first occurrence."""
    order = np.argsort(hashes, kind="stable")  # equal hashes keep their order: the first comes first
    starts = _run_starts(hashes[order])
    return hashes[order][starts], order[starts]


def _reduce61(v: np.ndarray) -> np.ndarray:
    """v mod 2**61 - 1 for uint64 v (2**61 = 1 mod 2**61 - 1)."""
    r = (v & _P61) + (v >> np.uint64(61))  # <= 2**61 - 1 + 7
    return np.where(r >= _P61, r - _P61, r)


def permute61(x: np.ndarray, a: int, b: int) -> np.ndarray:
    """(a*x + b) mod 2**61 - 1 for uint64 x and 1 <= a, b < 2**61 - 1, exactly, in uint64: the
    product split in 32-bit halves so no partial result reaches 2**64."""
    x = _reduce61(x)  # < 2**61
    a1, a0 = np.uint64(a >> 32), np.uint64(a & 0xFFFFFFFF)  # a1 < 2**29
    x1, x0 = x >> np.uint64(32), x & _LOW32  # x1 < 2**29
    high = a1 * x1 * np.uint64(8)  # a1*x1 * 2**64, and 2**64 = 8 (mod p): < 2**61
    mid = a1 * x0 + a0 * x1  # < 2**62; mid * 2**32 = (mid >> 29) * 2**61 + (mid & (2**29 - 1)) * 2**32
    mid = (mid >> np.uint64(29)) + ((mid & _LOW29) << np.uint64(32))  # < 2**61 + 2**33
    low = _reduce61(a0 * x0)  # a0*x0 < 2**64
    return _reduce61(_reduce61(high + mid) + low + np.uint64(b))  # the last sum < 3 * 2**61


def _minhash_of_distinct(distinct: np.ndarray, params: FingerprintParams) -> tuple[int, ...]:
    """``minhash_signature`` of the distinct hashes (ascending uint64 array, not empty)."""
    size = params.minhash_size
    a, b = minhash_coefficients(params)
    y = permute61(distinct, a, b)
    bins = np.full(size, MERSENNE_61, dtype=np.uint64)  # 2**61 - 1: nothing fell in
    np.minimum.at(bins, y % np.uint64(size), y)
    values = bins.tolist()
    if MERSENNE_61 not in values:
        return tuple(values)
    orders = densification_order(size, params.minhash_seed)
    return tuple(
        v if v != MERSENNE_61 else next(x for x in (values[c] for c in orders[j]) if x != MERSENNE_61)
        for j, v in enumerate(values)
    )


def first_positions(hashes: Sequence[int], values: Sequence[int]) -> tuple[int, ...]:
    """For each of ``values`` (all present in ``hashes``), the index of its first occurrence."""
    # Built from the end, so the index a hash keeps is its first one.
    n = len(hashes)
    first = dict(zip(reversed(hashes), range(n - 1, -1, -1)))
    return tuple(map(first.__getitem__, values))


def fingerprint_output(
    text: bytes, params: FingerprintParams = DEFAULT_FINGERPRINT_PARAMS
) -> tuple[int, ...]:
    """An inference output's fingerprint: same winnowing, capped to output_fingerprint_max.

    An output without words has the empty fingerprint (it matches nothing); non-UTF-8 and outputs
    over max_output_bytes are rejected.
    """
    hashes = _shingle_hash_array(word_bytes(normalise(_decode(text, params.max_output_bytes, "output"))), params)
    if hashes is None:
        return ()
    return tuple(_winnowed_array(hashes, params.winnow_window)[: params.output_fingerprint_max].tolist())


def fingerprint_file_report(
    path: str, params: FingerprintParams = DEFAULT_FINGERPRINT_PARAMS
) -> dict[str, Any]:
    """What `attrchain fingerprint FILE` prints: the values a `contribute` transaction carries."""
    try:
        with open(path, "rb") as fh:
            # One byte over the limit is enough to reject without reading a huge file.
            data = fh.read(params.max_content_bytes + 1)
    except OSError as exc:
        raise FingerprintError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        fp = fingerprint_text(data, params)
    except FingerprintError as exc:
        raise FingerprintError(f"{path}: {exc.reason}") from exc
    return {
        "content_hash": "0x" + fp.content_hash.hex(),
        "size": fp.size,
        "fingerprint": list(fp.fingerprint),
        "minhash": list(fp.minhash),
    }
