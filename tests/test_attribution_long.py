"""Long contributions keep every anchor (issue 14's "long contributions lose anchors past the
fingerprint cap"): a contribution holds all of its winnowed hashes, up to genesis
``fingerprint_max`` (4,096: every hash of 64 KiB of English), and one holding more is refused
``content_too_long`` (split it), never silently cut. So a passage quoted from the end of a
maximum-size contribution pays like one quoted from its start."""

from __future__ import annotations

import random

from attribution_kit import KEYS, World, rejected, world_fixture  # noqa: F401
from english_corpus import build_corpus

from state.attribution.contributions import fingerprint_params
from state.attribution.fingerprint import fingerprint_text
from state.tx import CreateDatanet, Review

from test_attribution_evidence import Setup

OWNER, ALICE = KEYS[0], KEYS[2]
QUOTE_WORDS = 40  # 37 shingles; a span keeps at least 37 - 2 * (winnow_window - 1) = 29 of them


def max_size_english(limit: int) -> str:
    """Real English (CPython reference topics and docstrings) cut at a word to at most ``limit`` bytes."""
    text = " ".join(t for name, t in build_corpus(max_words=100_000, limit=1000) if not name.startswith("licence:"))
    raw = text.encode()[:limit]
    return raw[: raw.rindex(b" ")].decode()


def test_a_quote_from_the_end_of_a_maximum_size_contribution_pays_like_one_from_its_start(world: World) -> None:
    s = Setup(world)
    a = world.a
    text = max_size_english(a.max_content_bytes)
    assert len(text.encode()) > a.max_content_bytes - 100
    fp = fingerprint_text(text.encode(), fingerprint_params(a))
    assert 2 * 1024 < fp.winnowed <= a.fingerprint_max and len(fp.fingerprint) == fp.winnowed  # nothing cut
    d = s.datanet()
    cid = s.contribute(d, text)
    m = s.model(d)
    words = text.split()
    rng = random.Random(4)
    filler = " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) + str(i) for i in range(30))
    credited = {}
    for where, at in (("start", 100), ("middle", len(words) // 2), ("end", len(words) - QUOTE_WORDS - 5)):
        quote = " ".join(words[at : at + QUOTE_WORDS])
        r = s.infer(m, f"{filler} {quote} {filler}")
        (match,) = [x for x in r["matched"] if x["contribution"] == "0x" + cid.hex()]
        credited[where] = sum(span["credited"] for span in match["spans"])
        assert s.paid(r, cid) > 0, where
    assert min(credited.values()) >= QUOTE_WORDS - 3 - 2 * (a.winnow_window - 1), credited
    assert max(credited.values()) - min(credited.values()) <= 2 * (a.winnow_window - 1), credited


def test_content_with_more_winnowed_hashes_than_fingerprint_max_is_refused_not_cut(world: World) -> None:
    """64 KiB of short distinct words hold about 7,000 winnowed hashes: refused, naming the limit."""
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz"
    raw = " ".join(rng.choice(letters) + rng.choice(letters) for _ in range(22_000)).encode()[:65_536]
    a = world.a
    assert fingerprint_text(raw, fingerprint_params(a)).winnowed > a.fingerprint_max
    d = world.ok(OWNER, CreateDatanet("d", "", 0)).hash
    result = rejected(world, ALICE, world.contribute_body(d, raw), "content_too_long")
    assert f"fingerprint_max {a.fingerprint_max}" in result.message and "split" in result.message
    # half of it is fine, and is accepted whole
    half = raw[: len(raw) // 2]
    cid = world.ok(ALICE, world.contribute_body(d, half)).hash
    world.ok(OWNER, Review(cid, 1))
