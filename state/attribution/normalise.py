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


non_ascii_chars = ucd.non_ascii_chars
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
    for ch in _char_tables()[0].intersection(non_ascii_chars(text)):
        text = text.replace(ch, "")
    return text


def _skeleton(text: str) -> str:
    """``text.translate(confusables)``, each character the text holds replaced once (C-speed scans
    instead of a dictionary lookup per character)."""
    _, skeleton, ascii_keys = _char_tables()
    present = [ch for ch in ascii_keys if ch in text]
    if not text.isascii():
        present += skeleton.keys() & non_ascii_chars(text)
    for ch in present:
        text = text.replace(ch, skeleton[ch])
    return text


@functools.lru_cache(maxsize=4096)
def _is_word(ch: str) -> bool:
    return ucd.category(ch)[0] in "LMN"


# Byte classes for the joiner: ASCII word characters -> "a", apostrophe and hyphen -> "'", other
# ASCII -> " ", every byte of a multi-byte UTF-8 sequence -> "u" (its character is looked up).
ASCII_WORD_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_JOIN_CLASSES = bytes(
    ord("a") if b in ASCII_WORD_BYTES else ord("'") if b in b"'-" else ord(" ") if b < 0x80 else ord("u")
    for b in range(256)
)
# After b"a'" -> b"aJ" and b"u'" -> b"uJ": a run that follows a (possible) word character starts
# with J; it joins when a (possible) word character follows it.
_MARKED_RUN = re.compile(rb"J'*(?=[au])")


def _join_inner(text: str) -> str:
    """``_joiner().sub("", text)``: a maximal run of apostrophes and hyphens goes when a word
    character is on each side. Works on the UTF-8 bytes: the runs next to a possible word character
    are found by C-speed byte translation and replacement, and only a neighbour outside ASCII is
    looked up (the regex's lookbehind against the whole word class would try every position)."""
    if "'" not in text and "-" not in text:
        return text
    data = text.encode("utf-8", "surrogatepass")
    classes = data.translate(_JOIN_CLASSES)
    marked = classes.replace(b"a'", b"aJ").replace(b"u'", b"uJ")
    if b"J" not in marked:
        return text
    parts, at = [], 0
    for m in _MARKED_RUN.finditer(marked):
        a, b = m.span()
        if marked[a - 1] == 0x75 and not _is_word(_char_ending_at(data, a)):  # "u"
            continue
        if marked[b] == 0x75 and not _is_word(_char_starting_at(data, b)):
            continue
        parts.append(data[at:a])
        at = b
    if not parts:
        return text
    parts.append(data[at:])
    return b"".join(parts).decode("utf-8", "surrogatepass")


def _char_ending_at(data: bytes, end: int) -> str:
    start = end - 1
    while data[start] & 0xC0 == 0x80:  # continuation byte
        start -= 1
    return data[start:end].decode("utf-8", "surrogatepass")


def _char_starting_at(data: bytes, start: int) -> str:
    lead = data[start]
    size = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return data[start : start + size].decode("utf-8", "surrogatepass")


def _translate_steps(text: str) -> str:
    """One pass without its last step (the joiner)."""
    nf = ucd.normalize
    text = ucd.fold_case(nf("NFKC", _drop_ignorables(text)))
    text = nf("NFD", _skeleton(nf("NFD", text)))
    return nf("NFKC", ucd.fold_case(nf("NFKC", text)))


AsciiSteps = tuple[dict[int, str], tuple[tuple[str, str], ...]]
_ascii_steps_cache: list[tuple[CharTables, AsciiSteps | None]] = []


def _ascii_steps() -> AsciiSteps | None:
    """``_translate_steps`` of each ASCII character, where that is not the character itself: the
    one-character results as a ``str.translate`` table, the longer ones (``m`` -> ``rn``, ...) as
    replacements done after it; None unless every result is ASCII and none holds a character
    that is replaced. On an ASCII text the steps then act character by character (no ASCII
    character decomposes, composes or reorders, nor does anything one is mapped to:
    tests/test_fingerprint.py checks every pair), so translating equals them. (A table with a
    longer result takes ``str.translate``'s slow path: ten times slower.) Derived once per loaded
    table."""
    tables = _char_tables()
    if _ascii_steps_cache and _ascii_steps_cache[0][0] is tables:
        return _ascii_steps_cache[0][1]
    steps = {chr(cp): out for cp in range(128) if (out := _translate_steps(chr(cp))) != chr(cp)}
    longer = tuple((ch, out) for ch, out in steps.items() if len(out) != 1)
    replaced = {ch for ch, _ in longer}
    sound = all(out.isascii() and replaced.isdisjoint(out) for out in steps.values())
    derived = ({ord(ch): out for ch, out in steps.items() if len(out) == 1}, longer) if sound else None
    _ascii_steps_cache[:] = [(tables, derived)]
    return derived


def _pass(text: str) -> str:
    if text.isascii() and (steps := _ascii_steps()) is not None:
        single, longer = steps
        text = text.translate(single)
        for ch, out in longer:
            if ch in text:
                text = text.replace(ch, out)
        return _join_inner(text)
    return _join_inner(_translate_steps(text))


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
    chars = non_ascii_chars(out)
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
