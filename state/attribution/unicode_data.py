"""The pinned Unicode data of normalisation and word splitting (docs/attribution.md, "Unicode data").

Nothing here reads the running Python's own Unicode database, so a text normalises and splits into
words the same way on every Python version:
- NFKC and NFD, General Category, East Asian Width: the PyPI package ``unicodedata2`` at exactly
  UNICODE_VERSION (pyproject.toml pins it); a node refuses to start on another
  (``fingerprint.require_pinned_unicode`` against genesis ``unicode_version``).
- Full case folding (CaseFolding.txt statuses C and F) of Unicode 15.0.0, shipped as
  ``data/casefolding-15.0.0.tsv`` (from Debian's unicode-data 15.0.0) and checked against
  CASEFOLDING_SHA256 when loaded. Characters with case added after 15.0 keep their case.
- Confusables: UTS #39 ``confusables.txt`` 13.0.0, ``data/confusables-13.0.0.tsv``, checked
  against CONFUSABLES_SHA256.
- Default_Ignorable_Code_Point: the ranges of DerivedCoreProperties.txt, written out below.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import unicodedata2

UNICODE_VERSION = "17.0.0"
DATA = Path(__file__).resolve().parent / "data"
CASEFOLDING_PATH = DATA / "casefolding-15.0.0.tsv"
CASEFOLDING_SHA256 = "021ded83daaf8948e9489a450ceb04a6a649b462c711affd35611184608a54bd"
CASEFOLDING_VERSION = "15.0.0"
CONFUSABLES_PATH = DATA / "confusables-13.0.0.tsv"
CONFUSABLES_SHA256 = "6c7d5f5fae65453a5cf806ed4b6424b9dae383107286ebbfcd6ab087f63d2350"
CONFUSABLES_VERSION = "13.0.0"

# DerivedCoreProperties.txt, Default_Ignorable_Code_Point (identical in Unicode 9.0 through 17.0)
DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)

normalize = unicodedata2.normalize
category = unicodedata2.category
east_asian_width = unicodedata2.east_asian_width
running_version: str = unicodedata2.unidata_version


class UnicodeDataError(RuntimeError):
    """A shipped table is missing or is not the pinned one."""


def load_table(path: Path, sha256: str) -> dict[int, str]:
    """A shipped mapping table (lines: source code point <TAB> target code points, hex; # comments),
    refused unless its bytes hash to ``sha256``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnicodeDataError(f"cannot read {path}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise UnicodeDataError(f"{path} has sha256 {digest}, not the pinned {sha256}")
    table: dict[int, str] = {}
    for line in raw.decode("utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        source, target = line.split("\t")
        table[int(source, 16)] = "".join(chr(int(cp, 16)) for cp in target.split())
    return table


@functools.cache
def confusables() -> dict[int, str]:
    return load_table(CONFUSABLES_PATH, CONFUSABLES_SHA256)


@functools.cache
def _casefolding() -> dict[int, str]:
    return load_table(CASEFOLDING_PATH, CASEFOLDING_SHA256)


@functools.cache
def default_ignorable() -> dict[int, None]:
    """str.translate table that deletes every Default_Ignorable code point."""
    return {cp: None for lo, hi in DEFAULT_IGNORABLE for cp in range(lo, hi + 1)}


_ASCII_BYTES = bytes(range(128))


def non_ascii_chars(text: str) -> set[str]:
    """The distinct non-ASCII characters of ``text`` (its ASCII bytes deleted at C speed; a regex
    scan costs about ten times more)."""
    rest = text.encode("utf-8", "surrogatepass").translate(None, _ASCII_BYTES)
    return set(rest.decode("utf-8", "surrogatepass")) if rest else set()


_folding_cache: list[tuple[dict[int, str], dict[str, str] | None]] = []


def non_ascii_folding() -> dict[str, str] | None:
    """The table's non-ASCII entries by character, if ``fold_case`` may apply it by replacing the
    characters a text holds: ASCII entries exactly A-Z -> a-z and no target holding a source
    (full case folding is closed); None otherwise (then it translates). Derived once per loaded
    table."""
    table = _casefolding()  # loads and checks the pinned file (cached)
    if _folding_cache and _folding_cache[0][0] is table:
        return _folding_cache[0][1]
    ascii_ok = {cp: t for cp, t in table.items() if cp < 0x80} == {cp: chr(cp + 32) for cp in range(65, 91)}
    closed = not any(ord(ch) in table for t in table.values() for ch in t)
    rest = {chr(cp): t for cp, t in table.items() if cp >= 0x80} if ascii_ok and closed else None
    _folding_cache[:] = [(table, rest)]
    return rest


def fold_case(text: str) -> str:
    """Full case folding from the pinned table (for ASCII text, which it maps as ``lower``, the
    same without the table)."""
    if text.isascii():
        return text.lower()
    rest = non_ascii_folding()
    if rest is None:
        return text.translate(_casefolding())
    # bytes.lower maps only A-Z (every byte of a multi-byte UTF-8 sequence is >= 0x80)
    text = text.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")
    for ch in rest.keys() & non_ascii_chars(text):
        text = text.replace(ch, rest[ch])
    return text


def load() -> None:
    """Load and check every shipped table now (a node does at start-up) rather than on first use."""
    confusables()
    _casefolding()
    default_ignorable()
