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


_NON_ASCII = re.compile(r"[^\x00-\x7f]")
CharTables = tuple[frozenset[str], dict[str, str], tuple[str, ...]]
_char_tables_cache: list[tuple[tuple[object, object], CharTables]] = []


def _char_tables() -> CharTables:
    """The pinned tables as characters: (Default_Ignorables, skeleton map, the ASCII characters
    that have a prototype: ``m`` -> ``rn``, ``0`` -> ``O``, ...), derived once per loaded table.

    ``_skeleton`` replaces one character after another with ``str.replace``, which equals one
    ``str.translate`` only because no prototype holds a character that has a prototype itself
    (UTS #39 skeletons are closed); checked here, so another table could not silently differ.
    """
    sources = (ucd.default_ignorable(), ucd.confusables())
    if _char_tables_cache and all(a is b for a, b in zip(_char_tables_cache[0][0], sources)):
        return _char_tables_cache[0][1]
    skeleton = {chr(cp): target for cp, target in sources[1].items()}
    if any(ch in skeleton for target in skeleton.values() for ch in target):
        raise ucd.UnicodeDataError(f"{ucd.CONFUSABLES_PATH}: a prototype has a prototype of its own")
    derived = (frozenset(chr(cp) for cp in sources[0]), skeleton, tuple(ch for ch in skeleton if ch.isascii()))
    _char_tables_cache[:] = [(sources, derived)]
    return derived


def _drop_ignorables(text: str) -> str:
    """``text.translate(default_ignorable)``: only the few characters the text holds are looked at
    (every Default_Ignorable code point is outside ASCII)."""
    if text.isascii():
        return text
    for ch in _char_tables()[0].intersection(_NON_ASCII.findall(text)):
        text = text.replace(ch, "")
    return text


def _skeleton(text: str) -> str:
    """``text.translate(confusables)``, each character the text holds replaced once (C-speed scans
    instead of a dictionary lookup per character)."""
    _, skeleton, ascii_keys = _char_tables()
    present = [ch for ch in ascii_keys if ch in text]
    if not text.isascii():
        present += skeleton.keys() & set(_NON_ASCII.findall(text))
    for ch in present:
        text = text.replace(ch, skeleton[ch])
    return text


_JOINER_RUN = re.compile(r"['\-]+")


@functools.lru_cache(maxsize=4096)
def _is_word(ch: str) -> bool:
    return ucd.category(ch)[0] in "LMN"


def _join_inner(text: str) -> str:
    """``_joiner().sub("", text)``: a maximal run of apostrophes and hyphens goes when a word
    character is on each side; the regex's lookbehind against the whole word class would try
    every position, this looks only at the runs."""
    cuts: list[tuple[int, int]] = []
    end = len(text)
    is_word = _is_word
    for m in _JOINER_RUN.finditer(text):
        a, b = m.span()
        if a > 0 and b < end and is_word(text[a - 1]) and is_word(text[b]):
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
    nf = ucd.normalize
    text = ucd.fold_case(nf("NFKC", _drop_ignorables(text)))
    text = nf("NFD", _skeleton(nf("NFD", text)))
    text = nf("NFKC", ucd.fold_case(nf("NFKC", text)))
    return _ASCII_JOINER.sub("", text) if text.isascii() else _join_inner(text)


_ASCII_UPPER = re.compile(r"[A-Z]")


def _is_fixed_point(out: str) -> bool:
    """True only if ``_pass(out) == out`` for an ``out`` that ``_pass`` returned (a cheap test,
    so the confirming pass is skipped; False means: run it). Such an ``out`` holds no joinable
    apostrophe or hyphen run (the joiner was its last step, and removing a run never makes
    another one joinable). If also no character has a case folding, a prototype or is
    Default_Ignorable, and the text is NFD and NFKC already, every step of ``_pass`` leaves it as
    it is."""
    if _ASCII_UPPER.search(out):
        return False
    _, skeleton, ascii_keys = _char_tables()
    if any(ch in out for ch in ascii_keys):
        return False
    if out.isascii():
        return True  # ASCII: already NFD and NFKC, nothing to drop
    folding = ucd.non_ascii_folding()
    if folding is None:
        return False
    chars = set(_NON_ASCII.findall(out))
    if not (chars.isdisjoint(skeleton) and chars.isdisjoint(folding) and _char_tables()[0].isdisjoint(chars)):
        return False
    return ucd.normalize("NFD", out) == out and ucd.normalize("NFKC", out) == out


def normalise(text: str) -> str:
    """Normalisation v2 of a text: one pass, repeated until it changes nothing (at most MAX_PASSES)."""
    for _ in range(MAX_PASSES):
        out = _pass(text)
        if out == text or _is_fixed_point(out):
            return out
        text = out
    return text
