"""Normalisation v2 (docs/attribution.md, "Normalisation"): what makes look-alike texts one text.

    text --drop Default_Ignorable--> --NFKC, casefold--> --UTS #39 skeleton--> --NFKC, casefold-->
         --apostrophes and hyphens inside words removed--> (repeated until nothing changes, <= 4 passes)

- Default_Ignorable_Code_Point (zero-width space and joiners, soft hyphen, bidi controls, variation
  selectors, tags, ...): the ranges of DerivedCoreProperties.txt, unchanged since Unicode 9 and
  written out below, so they do not depend on the running Python.
- NFKC and casefold: Python's Unicode database, pinned to genesis `unicode_version` (14.0.0; a
  node refuses to start on another, `require_pinned_unicode`).
- Skeleton: each character of the NFD form replaced by its prototype from confusables.txt of
  UTS #39 version 13.0.0, shipped as ``data/confusables-13.0.0.tsv`` and checked against
  CONFUSABLES_SHA256 when loaded (a node with a different table refuses to fingerprint).
- Apostrophes and hyphens (after the skeleton every variant is ``'`` or ``-``) between two word
  characters are removed: "don't" = "dont", "well-known" = "wellknown".
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from pathlib import Path

CONFUSABLES_PATH = Path(__file__).resolve().parent / "data" / "confusables-13.0.0.tsv"
CONFUSABLES_SHA256 = "6c7d5f5fae65453a5cf806ed4b6424b9dae383107286ebbfcd6ab087f63d2350"
CONFUSABLES_VERSION = "13.0.0"
MAX_PASSES = 4

# DerivedCoreProperties.txt, Default_Ignorable_Code_Point (identical in Unicode 9.0 through 16.0)
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)

_INNER_JOINER = re.compile(r"(?<=[^\W_])['\-]+(?=[^\W_])")


class NormalisationDataError(RuntimeError):
    """The shipped confusables table is missing or is not the pinned one."""


@functools.cache
def tables() -> tuple[dict[int, None], dict[int, str]]:
    """(code points to drop, skeleton map): built once per process from pinned data."""
    try:
        raw = CONFUSABLES_PATH.read_bytes()
    except OSError as exc:
        raise NormalisationDataError(f"cannot read {CONFUSABLES_PATH}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != CONFUSABLES_SHA256:
        raise NormalisationDataError(f"{CONFUSABLES_PATH} has sha256 {digest}, not the pinned {CONFUSABLES_SHA256}")
    skeleton: dict[int, str] = {}
    for line in raw.decode("utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        source, target = line.split("\t")
        skeleton[int(source, 16)] = "".join(chr(int(cp, 16)) for cp in target.split())
    drop: dict[int, None] = {cp: None for lo, hi in DEFAULT_IGNORABLE for cp in range(lo, hi + 1)}
    return drop, skeleton


CharTables = tuple[frozenset[str], dict[str, str], tuple[str, ...]]
_char_tables_cache: list[tuple[object, CharTables]] = []


def _char_tables() -> CharTables:
    """``tables()`` as characters: (characters to drop, skeleton map, the ASCII characters that
    have a prototype: ``m`` -> ``rn``, ``0`` -> ``O``, ...), derived once per loaded table.

    ``_skeleton`` replaces one character after another with ``str.replace``, which equals one
    ``str.translate`` only because no prototype holds a character that has a prototype itself
    (UTS #39 skeletons are closed); checked here, so another table could not silently differ.
    """
    source = tables()  # loads and checks the pinned file (cached)
    if _char_tables_cache and _char_tables_cache[0][0] is source:
        return _char_tables_cache[0][1]
    drop, skeleton = source
    by_char = {chr(cp): target for cp, target in skeleton.items()}
    if any(ch in by_char for target in by_char.values() for ch in target):
        raise NormalisationDataError(f"{CONFUSABLES_PATH}: a prototype has a prototype of its own")
    derived = (frozenset(chr(cp) for cp in drop), by_char, tuple(ch for ch in by_char if ch.isascii()))
    _char_tables_cache[:] = [(source, derived)]
    return derived


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _drop_ignorables(text: str) -> str:
    """``text.translate(drop)``: only the few characters the text holds are looked at (every
    Default_Ignorable code point is outside ASCII)."""
    drop = _char_tables()[0]
    for ch in drop.intersection(_NON_ASCII.findall(text)):
        text = text.replace(ch, "")
    return text


def _skeleton(text: str) -> str:
    """``text.translate(skeleton)``, each character the text holds replaced once (C-speed scans
    instead of a dictionary lookup per character)."""
    _, skeleton, ascii_keys = _char_tables()
    present = [ch for ch in ascii_keys if ch in text]
    present += skeleton.keys() & set(_NON_ASCII.findall(text))
    for ch in present:
        text = text.replace(ch, skeleton[ch])
    return text


_JOINER_RUN = re.compile(r"['\-]+")


def _join_inner(text: str) -> str:
    """``_INNER_JOINER.sub("", text)``: a maximal run of apostrophes and hyphens goes when a word
    character (``[^\W_]``, i.e. ``str.isalnum``) is on each side; the regex's lookbehind would try
    every position, this looks only at the runs."""
    cuts: list[tuple[int, int]] = []
    end = len(text)
    for m in _JOINER_RUN.finditer(text):
        a, b = m.span()
        if a > 0 and b < end and text[a - 1].isalnum() and text[b].isalnum():
            cuts.append((a, b))
    if not cuts:
        return text
    parts, at = [], 0
    for a, b in cuts:
        parts.append(text[at:a])
        at = b
    parts.append(text[at:])
    return "".join(parts)


def _pass(text: str) -> str:
    nfkc = unicodedata.normalize
    text = nfkc("NFKC", _drop_ignorables(text)).casefold()
    text = nfkc("NFD", _skeleton(nfkc("NFD", text)))
    text = nfkc("NFKC", nfkc("NFKC", text).casefold())
    return _join_inner(text)


def normalise(text: str) -> str:
    """Normalisation v2 of a text: one pass, repeated until it changes nothing (at most MAX_PASSES)."""
    for _ in range(MAX_PASSES):
        out = _pass(text)
        if out == text:
            break
        text = out
    return text
