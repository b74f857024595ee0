"""Normalisation and word splitting read only pinned Unicode data, never the running Python's
(issue 13, point 3; docs/attribution.md "Unicode version")."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import unicodedata2

from state.attribution import unicode_data as ucd
from state.attribution.fingerprint import FingerprintParams, unicode_version_number, words_of
from state.attribution.normalise import normalise

ROOT = Path(__file__).resolve().parent.parent
# What reads the running Python's Unicode database: the stdlib module, the str methods that consult
# it, regex classes that do, and strip/split without arguments (Unicode whitespace).
PYTHON_UNICODE = re.compile(
    r"^\s*(import unicodedata\s*$|from unicodedata import)"
    r"|\.(casefold|isalnum|isalpha|isdigit|isnumeric|isdecimal|isspace|isidentifier|isprintable"
    r"|istitle|isupper|islower|upper|title|capitalize|swapcase)\("
    r"|\.(strip|lstrip|rstrip|split|rsplit)\(\)"
    r"|\\[wWdDsSbB]",
    re.M,
)
# Not part of the state transition: read-only RPC answers (display offsets of receipts).
NOT_CONSENSUS = {"state/queries.py"}
# Parses its own ASCII data files; `lower` only on ASCII text.
ALLOWED = {"state/attribution/unicode_data.py": {".split()"}}


def test_no_consensus_module_reads_pythons_unicode_database() -> None:
    found = []
    for path in sorted([*ROOT.glob("state/**/*.py"), *ROOT.glob("consensus/**/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel in NOT_CONSENSUS or rel.endswith("_doc.py"):
            continue
        for m in PYTHON_UNICODE.finditer(path.read_text(encoding="utf-8")):
            if m.group(0).strip() not in ALLOWED.get(rel, set()):
                line = path.read_text(encoding="utf-8").count("\n", 0, m.start()) + 1
                found.append(f"{rel}:{line}: {m.group(0).strip()}")
    assert found == [], "reads the running Python's Unicode data:\n" + "\n".join(found)


def test_the_scan_sees_what_it_forbids() -> None:
    for snippet in ("import unicodedata\n", "x.casefold()", "s.split()", r're.compile(r"\w+")', "t.isalnum()"):
        assert PYTHON_UNICODE.search(snippet), snippet
    for snippet in ("import unicodedata2\n", "s.split('\\t')", "t.isascii()", "s.strip(' ')"):
        assert not PYTHON_UNICODE.search(snippet), snippet


def test_genesis_pins_the_installed_unicodedata2() -> None:
    assert ucd.running_version == ucd.UNICODE_VERSION == unicodedata2.unidata_version
    assert FingerprintParams().unicode_version == unicode_version_number(ucd.UNICODE_VERSION)


def test_a_character_newer_than_pythons_database_is_a_word_character() -> None:
    """U+1E030 (Unicode 15.0, Lm, NFKC to Cyrillic a, skeleton a) is one word with its neighbours
    under the pinned data; under CPython 3.11's database (14.0) it is unassigned, a separator."""
    assert unicodedata2.category("\U0001E030") == "Lm"
    assert words_of("b\U0001E030c") == ["bac"]
    assert normalise("B\U0001E030C") == "bac"


def test_case_folding_table_agrees_with_python_where_python_knows_the_letter() -> None:
    """The shipped table (Unicode 15.0.0) never contradicts str.casefold: on CPython 3.11-3.13
    (Unicode 14.0-15.1) the two are equal for every code point; a newer Python may fold letters the
    table does not know (cased letters added after 15.0), which the table leaves as they are."""
    differing = [cp for cp in range(0x110000) if ucd.fold_case(chr(cp)) != chr(cp).casefold()]
    if tuple(int(p) for p in unicodedata.unidata_version.split(".")) <= (15, 1, 0):
        assert differing == []
    else:
        assert all(ucd.fold_case(chr(cp)) == chr(cp) for cp in differing), [hex(cp) for cp in differing[:10]]
        assert len(differing) < 300
    assert ucd.fold_case("Straße ΣΑΣ ﬁ") == "strasse σασ fi"
    assert ucd.fold_case("ASCII Only") == "ascii only"
