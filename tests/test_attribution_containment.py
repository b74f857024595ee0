"""Near duplicates and containment across the whole chain, on real English text (issue 13 point 4).

The corpus (tests/english_corpus.py) is Debian's licence texts, CPython's reference topics and
stdlib docstrings: real text any fresh machine has. Every test plays an attacker who passes an
accepted document off as new; each assertion fails if the evasion got through. The per-class
rates over the whole corpus are bench/attribution_catch.py's (docs/attribution.md).
"""

from __future__ import annotations

import dataclasses
import functools
import random

from attribution_kit import KEYS, World, rejected, world_fixture  # noqa: F401
from english_corpus import build_corpus, evasion_material, evasions, excerpt

from state import keys
from state.attribution.commitments import contribution_commitment
from state.attribution.contributions import fingerprint_params
from state.attribution.dedupe import (
    CONTAINMENT_BUCKET_CAP,
    containment_candidates,
    index_containment,
    pair_conflict,
    unindex_containment,
)
from state.attribution.fingerprint import fingerprint_text, shingle_texts, words_of
from state.attribution.records import PENDING, VOIDED, Contribution
from state.crypto import sha256, to_hex
from state.params import DEFAULT
from state.tx import CommitContribution, CreateDatanet, Review

OWNER, ALICE, MALLORY = KEYS[0], KEYS[1], KEYS[2]
BOND = 500
# one licence, one language-reference topic, one stdlib module: 300..3,000 words each
SAMPLES = ("licence:MPL-2.0", "topic:import", "stdlib:heapq.py")
# distinct versions of one licence family, and other close pairs: well under half of either
# text's 4-word shingles is in the other (bench/attribution_catch.py prints the exact shares)
DISTINCT_PAIRS = (
    ("licence:GPL-2", "licence:GPL-3"),
    ("licence:LGPL-2.1", "licence:LGPL-3"),
    ("licence:MPL-1.1", "licence:MPL-2.0"),
    ("licence:GPL-3", "licence:LGPL-3"),
    ("stdlib:threading.py", "stdlib:asyncio/locks.py"),
    ("stdlib:json/__init__.py", "stdlib:json/decoder.py"),
)
KEY_CHOICES = 20


@functools.cache
def corpus_list() -> list[tuple[str, str]]:
    return build_corpus()


def corpus() -> dict[str, str]:
    return dict(corpus_list())


def _datanet(world: World, name: str) -> bytes:
    return world.ok(OWNER, CreateDatanet(name, "", BOND)).hash


def _contribution(world: World, cid: bytes) -> Contribution:
    c = world.view().get_obj(keys.contribution_key(cid), Contribution)
    assert c is not None
    return c


def _keyed(i: int):  # type: ignore[no-untyped-def]
    """The i-th choice of shingle and MinHash keys (seeds)."""
    return dataclasses.replace(fingerprint_params(DEFAULT.attribution), shingle_seed=(0x5EED0000 + i) * 7919,
                               minhash_seed=(0xA11CE000 + i) * 104729)


def test_the_corpus_is_real_text_rebuilt_the_same_way() -> None:
    docs = corpus()
    assert len(docs) >= 200
    assert all(name in docs for pair in DISTINCT_PAIRS for name in pair) and all(s in docs for s in SAMPLES)
    assert "GNU GENERAL PUBLIC LICENSE" in docs["licence:GPL-3"]
    assert all(300 <= len(text.split()) for text in docs.values())


def test_every_evasion_of_an_accepted_document_is_refused_in_any_datanet(world: World) -> None:
    vocab, foreign = evasion_material(corpus_list())
    d1, d2 = _datanet(world, "first"), _datanet(world, "second")
    originals = {}
    for name in SAMPLES:
        originals[name] = world.ok(ALICE, world.contribute_body(d1, corpus()[name].encode(), BOND)).hash
        world.ok(OWNER, Review(originals[name], 1))
    copies = {(evasion, name): world.contribute_body(d2, edit(random.Random(f"{evasion}/{name}"),
                                                                corpus()[name]).encode(), BOND)
              for evasion, edit in evasions(vocab, foreign).items() for name in SAMPLES}
    commits = [world.sign(MALLORY, CommitContribution(contribution_commitment(
        MALLORY.address, body.datanet, sha256(body.content), body.salt))) for body in copies.values()]
    assert all(r.ok for r in world.block(*commits))  # one block commits to every copy
    world.auto_commit = False
    for (evasion, name), body in copies.items():
        result, writes, _ = world.try_alone(MALLORY, body)
        assert not result.ok, f"{evasion} of {name} was accepted"
        assert result.reason in ("duplicate_content", "near_duplicate", "containment"), (evasion, name, result)
        assert f"{to_hex(originals[name])} (datanet {to_hex(d1)})" in result.message, (evasion, name, result)
        if "25%" in evasion:
            assert result.reason == "containment", result
        assert writes == {}


def true_containment_bps(a: str, b: str) -> int:
    """The larger share of one text's distinct 4-word shingles found in the other (exact sets)."""
    x, y = (set(shingle_texts(words_of(corpus()[n]), 4)) for n in (a, b))
    return max(len(x & y) * 10_000 // len(x), len(x & y) * 10_000 // len(y))


@functools.cache
def licence_pairs() -> tuple[list[tuple[str, str]], list[tuple[str, str, int]]]:
    """Every pair of the licences of /usr/share/common-licenses in the corpus: (pairs under half
    contained, which the chain must accept; pairs at least half contained, a containment by the
    issue's definition, with their true containment in bps)."""
    names = sorted(n for n in corpus() if n.startswith("licence:"))
    distinct, contained = [], []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            true = true_containment_bps(a, b)
            if true < 5000:
                distinct.append((a, b))
            else:
                contained.append((a, b, true))
    return distinct, contained


def test_every_licence_pair_under_half_contained_is_accepted_under_every_key_choice() -> None:
    """Versions of one licence family (GPL-1/GPL-3, GPL-2/GPL-3, LGPL-2/LGPL-3, LGPL-2.1/LGPL-3,
    MPL-1.1/MPL-2.0, ...) and every other licence pair: no key choice rejects one. The pairs at
    least half contained in each other (GPL-1 in GPL-2 81%, LGPL-2 in LGPL-2.1 87%, GFDL-1.2 in
    GFDL-1.3 98%, GPL-2 in LGPL-2 69% ...) are containments by the issue's own definition."""
    distinct, contained = licence_pairs()
    names = sorted({n for pair in distinct for n in pair})
    assert len(names) >= 12 and len(distinct) >= 60  # Apache, Artistic, CC0, GFDL, GPL, LGPL, MPL
    for family in (("licence:GPL-2", "licence:GPL-3"), ("licence:GPL-1", "licence:GPL-3"),
                   ("licence:LGPL-2", "licence:LGPL-3"), ("licence:LGPL-2.1", "licence:LGPL-3"),
                   ("licence:MPL-1.1", "licence:MPL-2.0")):
        assert family in distinct, family
    assert ("licence:GPL-1", "licence:GPL-2", true_containment_bps("licence:GPL-1", "licence:GPL-2")) in contained
    a = DEFAULT.attribution
    for i in range(KEY_CHOICES):
        p = _keyed(i)
        fps = {n: fingerprint_text(corpus()[n].encode(), p) for n in names}
        for x, y in distinct:
            reason = pair_conflict(fps[x], fps[y], p, a.containment_bps, a.containment_sample_mod)
            assert reason is None, f"key {i}: {x} / {y} refused as {reason}"


def test_gpl_1_in_gpl_2_is_a_containment_under_every_key_choice() -> None:
    """GPL-2 holds 81% of GPL-1's 4-word shingles: more than a 10%-substituted copy holds of its
    original (~66%), so the rule that catches 10% substitution refuses GPL-2 after GPL-1."""
    a = DEFAULT.attribution
    assert true_containment_bps("licence:GPL-1", "licence:GPL-2") >= 8000
    for i in range(KEY_CHOICES):
        p = _keyed(i)
        gpl1, gpl2 = (fingerprint_text(corpus()[n].encode(), p) for n in ("licence:GPL-1", "licence:GPL-2"))
        assert pair_conflict(gpl1, gpl2, p, a.containment_bps, a.containment_sample_mod) is not None, i


def test_distinct_licences_of_one_family_and_close_pairs_are_all_accepted(world: World) -> None:
    """On the chain, in one datanet: every licence that is not half contained in, or half
    containing, one contributed before it (in name order), and the close non-licence pairs."""
    _, contained = licence_pairs()
    blocked = {(x, y) for x, y, _ in contained} | {(y, x) for x, y, _ in contained}
    names: list[str] = []
    for n in sorted(n for n in corpus() if n.startswith("licence:")):
        if not any((m, n) in blocked for m in names):
            names.append(n)
    assert {"licence:Apache-2.0", "licence:Artistic", "licence:GPL-1", "licence:GPL-3", "licence:LGPL-3",
            "licence:MPL-1.1", "licence:MPL-2.0"} <= set(names)
    names += sorted({n for pair in DISTINCT_PAIRS for n in pair if not n.startswith("licence:")})
    d = _datanet(world, "licences")
    ids = [world.ok(ALICE, world.contribute_body(d, corpus()[name].encode(), BOND)).hash for name in names]
    assert all(_contribution(world, cid).status == PENDING for cid in ids)


def test_an_earlier_committed_original_voids_an_accepted_excerpt(world: World) -> None:
    """Mallory publishes a quarter of Alice's text before Alice reveals it: Alice's earlier
    commitment voids the excerpt and Mallory's stake goes to her."""
    world.auto_commit = False
    d = _datanet(world, "d")
    text = corpus()["licence:MPL-2.0"]
    author = world.contribute_body(d, text.encode(), BOND, salt=b"\x01" * 32)
    world.block(world.sign(ALICE, CommitContribution(
        contribution_commitment(ALICE.address, d, sha256(author.content), author.salt))))
    part = world.contribute_body(d, excerpt(random.Random(1), text, 0.25).encode(), BOND, salt=b"\x02" * 32)
    world.block(world.sign(MALLORY, CommitContribution(
        contribution_commitment(MALLORY.address, d, sha256(part.content), part.salt)), 50))
    part_id = world.ok(MALLORY, part).hash
    world.ok(OWNER, Review(part_id, 1))
    author_id = world.ok(ALICE, author).hash
    assert _contribution(world, part_id).status == VOIDED
    assert _contribution(world, author_id).status == PENDING
    # the excerpt's index entries are gone with it: a new excerpt conflicts with Alice's text only
    again = world.contribute_body(d, excerpt(random.Random(2), text, 0.25).encode(), BOND)
    world.block(world.sign(MALLORY, CommitContribution(
        contribution_commitment(MALLORY.address, d, sha256(again.content), again.salt))))
    result = rejected(world, MALLORY, again, "containment")
    assert to_hex(author_id) in result.message and to_hex(part_id) not in result.message
    assert world.conserved()


def test_a_rejected_original_frees_its_containment_entries(world: World) -> None:
    d = _datanet(world, "d")
    text = corpus()["topic:import"]
    original = world.ok(ALICE, world.contribute_body(d, text.encode(), BOND)).hash
    part = world.contribute_body(d, excerpt(random.Random(3), text, 0.25).encode(), BOND)
    rejected(world, MALLORY, part, "containment")  # commits to ``part`` first
    world.ok(OWNER, Review(original, 0))
    world.auto_commit = False
    assert _contribution(world, world.ok(MALLORY, part).hash).status == PENDING


def test_containment_buckets_are_bounded_and_unindexing_restores_them(world: World) -> None:
    """Boilerplate shared by many texts cannot grow a bucket or the work of a check without bound."""
    fp = fingerprint_text(corpus()["stdlib:heapq.py"].encode(), fingerprint_params(world.a)).fingerprint
    view = world.view()
    ids = [sha256(b"%d" % i) for i in range(CONTAINMENT_BUCKET_CAP + 5)]
    for cid in ids:
        index_containment(view, cid, fp, 4)
    found = containment_candidates(view, fp, 4)
    assert sorted(found) == sorted(ids[:CONTAINMENT_BUCKET_CAP])  # the first ones; later ones not held
    for cid in ids:
        unindex_containment(view, cid, fp, 4)
    assert containment_candidates(view, fp, 4) == []


def test_find_containments_agrees_with_the_pairwise_rule(world: World) -> None:
    """The index lookup's shortcut (whole sets when neither fingerprint is cut) finds exactly the
    texts ``containment_bps`` puts at or over the threshold, cut or not."""
    from state.attribution.dedupe import containment_bps, find_containments

    view = world.view()
    texts = [corpus()[n] for n in ("topic:import", "stdlib:heapq.py", "licence:MPL-2.0", "licence:GPL-3")]
    rng = random.Random(9)
    stored = []  # every cap's sketches stay in the index
    for cap in (64, 4096):
        p = dataclasses.replace(fingerprint_params(world.a), fingerprint_max=cap)
        for i, text in enumerate(texts):
            for share in (0.25, 0.5, 1.0):
                part = excerpt(rng, text, share)
                fp = fingerprint_text(part.encode(), p).fingerprint
                cid = sha256(b"%d/%d/%s" % (cap, i, str(share).encode()))
                view.put_obj(keys.contribution_sketch_key(cid), _sketch(fp))
                index_containment(view, cid, fp, 4)
                stored.append((cid, fp))
        for text in texts:
            new = fingerprint_text(text.encode(), p).fingerprint
            found = set(find_containments(view, new, 4, cap, 5000))
            candidates = set(containment_candidates(view, new, 4))
            assert found == {cid for cid, fp in stored if cid in candidates and containment_bps(new, fp, cap) >= 5000}
            assert found  # each text's own excerpts


def _sketch(fp: tuple[int, ...]):  # type: ignore[no-untyped-def]
    from state.attribution.records import Sketch, pack_u64s

    return Sketch(pack_u64s(fp), pack_u64s((1,) * 128), b"\x00" * 4 * len(fp))
