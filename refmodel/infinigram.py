"""An infini-gram-style language model over a suffix array (Liu et al. 2024, "Infini-gram").

The corpus is the accepted contributions' texts, joined by a separator byte that no text contains.
To continue a context the model finds the LONGEST suffix of the context (on word boundaries) that
occurs in the corpus, looks at every occurrence, and emits the next word that follows most often,
each occurrence counted with its datanet's weight (ties: the smallest word). With no match at all
it starts from the document sharing most words with the prompt. Generation stops at a
document's end or after ``max_tokens`` words. Deterministic: the same corpus and prompt give the
same text, so the texts it reproduces (and whom they pay) can be checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from pydivsufsort import divsufsort

SEP = b"\x00"
_WORD = re.compile(rb"[^\s\x00]+")
MAX_CONTEXT_WORDS = 64


@dataclass(frozen=True)
class Doc:
    id: str  # contribution id
    datanet: str
    start: int  # byte offset in the corpus
    end: int


class Model:
    def __init__(self, corpus: bytes, sa: np.ndarray, docs: list[Doc], weights: dict[str, int]) -> None:
        self.corpus = corpus
        self.sa = sa
        self.docs = docs
        self.weights = weights
        self._starts = np.array([d.start for d in docs], dtype=np.int64)

    @classmethod
    def build(cls, texts: list[tuple[str, str, bytes]], weights: dict[str, int]) -> "Model":
        """``texts``: (contribution id, datanet id, UTF-8 text) in a fixed order."""
        parts, docs, pos = [], [], 0
        for cid, dn, text in texts:
            text = text.replace(SEP, b" ")
            docs.append(Doc(cid, dn, pos, pos + len(text)))
            parts.append(text + SEP)
            pos += len(text) + 1
        corpus = b"".join(parts)
        sa = divsufsort(corpus) if corpus else np.zeros(0, dtype=np.int32)
        return cls(corpus, sa, docs, weights)

    # ---- suffix-array search -------------------------------------------------------------------

    def _range(self, pattern: bytes) -> tuple[int, int]:
        """[lo, hi) of the suffix array entries that start with ``pattern``."""
        corpus, sa, m = self.corpus, self.sa, len(pattern)
        lo, hi = 0, len(sa)
        while lo < hi:
            mid = (lo + hi) // 2
            if corpus[sa[mid]:sa[mid] + m] < pattern:
                lo = mid + 1
            else:
                hi = mid
        first = lo
        hi = len(sa)
        while lo < hi:
            mid = (lo + hi) // 2
            if corpus[sa[mid]:sa[mid] + m] <= pattern:
                lo = mid + 1
            else:
                hi = mid
        return first, lo

    def count(self, pattern: bytes) -> int:
        lo, hi = self._range(pattern)
        return hi - lo

    def _doc_at(self, offset: int) -> Doc:
        return self.docs[int(np.searchsorted(self._starts, offset, side="right")) - 1]

    def _next_word(self, context: list[bytes]) -> bytes | None:
        """The next word after the longest matching suffix of ``context`` (None: nothing follows)."""
        for n in range(min(len(context), MAX_CONTEXT_WORDS), 0, -1):
            pattern = b" ".join(context[-n:]) + b" "
            lo, hi = self._range(pattern)
            if lo == hi:
                continue
            votes: dict[bytes, int] = {}
            for i in range(lo, min(hi, lo + 1000)):  # bounded work per step
                at = int(self.sa[i]) + len(pattern)
                m = _WORD.match(self.corpus, at)
                if m is None or SEP in m.group(0):
                    continue
                word = m.group(0)
                w = self.weights.get(self._doc_at(at).datanet, 1)
                votes[word] = votes.get(word, 0) + w
            if votes:
                return min(votes, key=lambda k: (-votes[k], k))
        return None

    def _seed(self, prompt_words: list[bytes]) -> list[bytes]:
        """No suffix matched: the first words of the document sharing most words with the prompt."""
        if not self.docs:
            return []
        pw = {w.lower() for w in prompt_words}
        best = max(self.docs, key=lambda d: (len(pw & {w.lower() for w in _WORD.findall(self.corpus[d.start:d.end])}),
                                             -d.start))
        return _WORD.findall(self.corpus[best.start:best.end])[:2]

    def generate(self, prompt: str, max_tokens: int = 64) -> list[str]:
        """The generated words (join with spaces)."""
        context = _WORD.findall(prompt.encode())
        out: list[bytes] = []
        while len(out) < max_tokens:
            word = self._next_word(context)
            if word is None:
                if out:
                    break
                seed = self._seed(context)
                if not seed:
                    break
                out.extend(seed[: max_tokens])
                context = list(seed)
                continue
            out.append(word)
            context.append(word)
        return [w.decode("utf-8", "replace") for w in out]
