"""Normalisation v2 (docs/attribution.md, "Normalisation"): what makes look-alike texts one text.

    text --drop Default_Ignorable--> --NFKC, casefold--> --UTS #39 skeleton--> --NFKC, casefold-->
         --apostrophes and hyphens inside words removed--> (repeated until nothing changes, <= 4 passes)

Every table comes from state/attribution/unicode_data.py (pinned data, none of it the running
Python's own Unicode database):
- Default_Ignorable_Code_Point (zero-width space and joiners, soft hyphen, bidi controls, variation
  selectors, tags, ...);
- NFKC and NFD: unicodedata2 at the pinned version; casefold: the shipped full case folding table;
- skeleton: each character of the NFD form replaced by its prototype from UTS #39 confusables;
- apostrophes and hyphens (after the skeleton every variant is ``'`` or ``-``) between two word
  characters (General Category L*, M*, N*) are removed: "don't" = "dont", "well-known" = "wellknown".
"""

from __future__ import annotations

import functools
import re

from state.attribution import unicode_data as ucd

MAX_PASSES = 4

_ASCII_JOINER = re.compile(r"(?<=[A-Za-z0-9])['\-]+(?=[A-Za-z0-9])")


@functools.cache
def word_ranges() -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    """(narrow, wide) word characters as code point ranges: General Category L*, M* or N*, split by
    East Asian Width W or F (wide: scripts written without spaces). One scan of the pinned database,
    about 0.2 s, once per process."""
    narrow: list[tuple[int, int]] = []
    wide: list[tuple[int, int]] = []
    for cp in range(0x110000):
        ch = chr(cp)
        if ucd.category(ch)[0] in "LMN":
            _extend(wide if ucd.east_asian_width(ch) in ("W", "F") else narrow, cp)
    return tuple(narrow), tuple(wide)


def _extend(ranges: list[tuple[int, int]], cp: int) -> None:
    if ranges and ranges[-1][1] == cp - 1:
        ranges[-1] = (ranges[-1][0], cp)
    else:
        ranges.append((cp, cp))


def as_class(ranges: tuple[tuple[int, int], ...]) -> str:
    """The ranges as the inside of a regular-expression character class."""
    return "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges)


@functools.cache
def _joiner() -> re.Pattern[str]:
    narrow, wide = word_ranges()
    word = as_class(narrow) + as_class(wide)
    return re.compile(f"(?<=[{word}])['\\-]+(?=[{word}])")


def _pass(text: str) -> str:
    nf = ucd.normalize
    text = ucd.fold_case(nf("NFKC", text.translate(ucd.default_ignorable())))
    text = nf("NFD", nf("NFD", text).translate(ucd.confusables()))
    text = nf("NFKC", ucd.fold_case(nf("NFKC", text)))
    return (_ASCII_JOINER if text.isascii() else _joiner()).sub("", text)


def normalise(text: str) -> str:
    """Normalisation v2 of a text: one pass, repeated until it changes nothing (at most MAX_PASSES)."""
    for _ in range(MAX_PASSES):
        out = _pass(text)
        if out == text:
            break
        text = out
    return text
