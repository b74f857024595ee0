"""Real English documents any fresh machine can rebuild (no download), and the edits an attacker
makes to pass one off as new: the corpus of issue 13's duplicate and containment measurements
(bench/attribution_catch.py, tests/test_attribution_containment.py).

- the licence texts of /usr/share/common-licenses (Debian's base-files; every Debian machine),
  including versions of one family (GPL-1/2/3, LGPL-2/2.1/3, GFDL 1.2/1.3 when present);
- the Python language reference topics shipped with CPython (``pydoc_data.topics``);
- per standard-library module, its docstrings (module, classes, functions) joined in source order.

Python is pinned (3.11), so the last two are the same text on every machine. Documents keep
300..``max_words`` words (licences up to 6,000); identical texts are kept once.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
import sysconfig
from collections.abc import Callable
from pathlib import Path

LICENCES = Path("/usr/share/common-licenses")


def _words(text: str) -> int:
    return len(text.split())


def build_corpus(max_words: int = 3000, limit: int = 400) -> list[tuple[str, str]]:
    """[(name, text)], deterministic order, at most ``limit`` documents."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(name: str, text: str, most: int) -> None:
        digest = hashlib.sha256(text.encode()).hexdigest()
        if 300 <= _words(text) <= most and digest not in seen:
            seen.add(digest)
            out.append((name, text))

    if LICENCES.is_dir():
        for p in sorted(LICENCES.iterdir()):
            if p.is_file() and not p.is_symlink():
                add(f"licence:{p.name}", p.read_text(encoding="utf-8", errors="replace"), 6000)
    from pydoc_data.topics import topics

    for name in sorted(topics):
        add(f"topic:{name}", topics[name], max_words)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for p in sorted(stdlib.glob("*.py")) + sorted(stdlib.glob("*/*.py")):
        if "test" in p.parts[-2:-1] or p.parts[-2] in ("idlelib", "lib2to3", "site-packages"):
            continue
        try:
            tree = ast.parse(p.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        parts = [d for node in ast.walk(tree)
                 if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                 and (d := ast.get_docstring(node, clean=True))]
        text = "\n\n".join(parts)
        while _words(text) > max_words and len(parts) > 1:  # long modules: their first docstrings
            parts = parts[: len(parts) * 3 // 4]
            text = "\n\n".join(parts)
        add(f"stdlib:{p.relative_to(stdlib)}", text, max_words)
    return out[:limit]


# ---- evasions of an accepted document ------------------------------------------------------

CYRILLIC = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "i": "і"}


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def substitute(rng: random.Random, text: str, share: float, vocab: list[str]) -> str:
    words = text.split(" ")
    for i in rng.sample(range(len(words)), int(len(words) * share)):
        words[i] = rng.choice(vocab)
    return " ".join(words)


def reorder(rng: random.Random, text: str) -> str:
    s = sentences(text)
    rng.shuffle(s)
    return " ".join(s)


def per_word(rng: random.Random, text: str, share: float, edit) -> str:  # type: ignore[no-untyped-def]
    words = text.split(" ")
    for i in range(len(words)):
        if len(words[i]) > 1 and rng.random() < share:
            words[i] = edit(words[i])
    return " ".join(words)


def excerpt(rng: random.Random, text: str, share: float) -> str:
    words = text.split(" ")
    n = max(1, int(len(words) * share))
    start = rng.randrange(len(words) - n + 1)
    return " ".join(words[start:start + n])


def evasion_material(corpus: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(words to substitute, sentences to insert), drawn from the corpus itself."""
    vocab = sorted({w for _, t in corpus for w in t.split() if w.isalpha()})
    foreign = [s for _, t in corpus[::7] for s in sentences(t) if 8 <= len(s.split()) <= 40]
    return vocab, foreign


def evasions(vocab: list[str], foreign: list[str]) -> dict[str, Callable[[random.Random, str], str]]:
    """The evasion classes of issue 13, each an edit (rng, text) -> copy; ``vocab`` supplies
    substituted words, ``foreign`` inserted sentences."""
    def insert_foreign(rng: random.Random, text: str) -> str:
        s = sentences(text)
        goal = sum(len(x.split()) for x in s) * rng.uniform(0.10, 0.30)
        added = 0
        while added < goal:
            f = rng.choice(foreign)
            s.insert(rng.randrange(len(s) + 1), f)
            added += len(f.split())
        return " ".join(s)

    return {
        "whitespace, case, punctuation; full-width letters": lambda r, t: per_word(
            r, re.sub(r"[,;:]", "", t.upper().replace(" ", "  ")), 0.3,
            lambda w: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in w)),
        "5% of words substituted": lambda r, t: substitute(r, t, 0.05, vocab),
        "sentences reordered": reorder,
        "10-30% foreign sentences inserted": insert_foreign,
        "apostrophes/hyphens removed, words joined": lambda r, t: re.sub(r"(?<=\w)['’\-‐](?=\w)", "", t),
        "10% of words substituted": lambda r, t: substitute(r, t, 0.10, vocab),
        "5% substituted and sentences reordered": lambda r, t: reorder(r, substitute(r, t, 0.05, vocab)),
        "50% contiguous excerpt": lambda r, t: excerpt(r, t, 0.5),
        "25% contiguous excerpt": lambda r, t: excerpt(r, t, 0.25),
        "zero-width space in 30% of words": lambda r, t: per_word(r, t, 0.3, lambda w: w[:1] + "\u200b" + w[1:]),
        "soft hyphen in 30% of words": lambda r, t: per_word(r, t, 0.3, lambda w: w[:1] + "\u00ad" + w[1:]),
        "Cyrillic look-alike letters in 30% of words": lambda r, t: per_word(
            r, t, 0.3, lambda w: "".join(CYRILLIC.get(c, c) for c in w)),
    }
