"""Measurement: how many evasions of an accepted document the duplicate rules catch, and how many
distinct documents they wrongly reject, on real English text (issue 13, point 4).

Corpus: tests/english_corpus.py (Debian licence texts, Python reference topics, stdlib
docstrings; no download). For each evasion class every document of 300-3,000 words is edited once
(seeded) and the copy is checked against its original with the chain's pairwise rules (exact hash,
MinHash near duplicate, containment either way: state/attribution/dedupe.py), under --class-keys
choices of the shingle and MinHash seeds.

Pairs of corpus documents are classed by their TRUE containment, the larger share of one text's
distinct 4-word shingles found in the other (exact sets, no sampling): "distinct" below 40%,
"related" 40-50%, "contained" from 50% (e.g. GFDL-1.3 holds 98% of GFDL-1.2). Every pair is
checked under --keys seed choices: a rejected distinct pair is a false rejection.

    .venv/bin/python bench/attribution_catch.py --keys 20 --class-keys 2

Prints the per-class table (docs/attribution.md carries it) and the pair results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from english_corpus import build_corpus, evasion_material, evasions  # noqa: E402

from state.attribution.contributions import fingerprint_params  # noqa: E402
from state.attribution.dedupe import pair_conflict  # noqa: E402
from state.attribution.fingerprint import (  # noqa: E402
    Fingerprint,
    fingerprint_text,
    shingle_texts,
    words_of,
)
from state.params import DEFAULT  # noqa: E402

def conflict(a: Fingerprint, b: Fingerprint, p, attr) -> bool:  # type: ignore[no-untyped-def]
    """Would the chain refuse one of the two texts, the other being live? (its pairwise rule)"""
    return pair_conflict(a, b, p, attr.containment_bps, attr.containment_sample_mod) is not None


def true_containment_bps(x: set[str], y: set[str]) -> int:
    shared = len(x & y)
    return max(shared * 10_000 // len(x), shared * 10_000 // len(y))


def keyed(base, i: int):  # type: ignore[no-untyped-def]
    if i == 0:
        return base
    return dataclasses.replace(base, shingle_seed=(0x5EED0000 + i) * 7919, minhash_seed=(0xA11CE000 + i) * 104729)


BANDS = (("distinct", 0, 4000), ("related", 4000, 5000), ("contained", 5000, 10_001))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--keys", type=int, default=20, help="seed choices for the corpus pairs")
    ap.add_argument("--class-keys", type=int, default=1, help="seed choices for the evasion classes")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    attr = DEFAULT.attribution
    base = fingerprint_params(attr)
    corpus = build_corpus()
    docs = [(n, t) for n, t in corpus if len(t.split()) <= 3000]
    vocab, foreign = evasion_material(corpus)
    table = {}
    for name, edit in evasions(vocab, foreign).items():
        caught = total = 0
        for k in range(args.class_keys):
            p = keyed(base, k)
            for dname, text in docs:
                rng = random.Random(f"{name}/{dname}")
                copy = edit(rng, text)  # type: ignore[operator]
                caught += conflict(fingerprint_text(text.encode(), p), fingerprint_text(copy.encode(), p), p, attr)
                total += 1
        table[name] = (caught, total)
        print(f"  {name}: {caught}/{total}", file=sys.stderr)
    shingles = [set(shingle_texts(words_of(t), base.shingle_k)) for _, t in corpus]
    band_of = {}
    for i in range(len(corpus)):
        for j in range(i + 1, len(corpus)):
            true = true_containment_bps(shingles[i], shingles[j])
            band_of[(i, j)] = next(b for b, lo, hi in BANDS if lo <= true < hi), true
    rejected: dict[tuple[int, int], int] = {ij: 0 for ij in band_of}
    for k in range(args.keys):
        p = keyed(base, k)
        fps = [fingerprint_text(t.encode(), p) for _, t in corpus]
        for (i, j) in band_of:
            rejected[(i, j)] += conflict(fps[i], fps[j], p, attr)
        print(f"  pairs under key {k + 1}/{args.keys}", file=sys.stderr)
    bands = {}
    for b, _, _ in BANDS:
        ij = [x for x in band_of if band_of[x][0] == b]
        listed = [{"a": corpus[i][0], "b": corpus[j][0], "true_bps": band_of[(i, j)][1], "rejected_keys": rejected[(i, j)]}
                  for i, j in sorted(ij, key=lambda x: -band_of[x][1])]
        bands[b] = {"pairs": len(ij), "pair_checks": len(ij) * args.keys,
                    "rejected_checks": sum(rejected[x] for x in ij),
                    "pairs_ever_rejected": sum(1 for x in ij if rejected[x]),
                    "closest": listed[:12] if b != "distinct" else listed[:6]}
    licences = [{"a": corpus[i][0], "b": corpus[j][0], "true_bps": band_of[(i, j)][1], "rejected_keys": rejected[(i, j)]}
                for (i, j) in sorted(band_of, key=lambda x: -band_of[x][1])
                if corpus[i][0].startswith("licence:") and corpus[j][0].startswith("licence:")]
    out = {
        "licence_pairs": licences,
        "documents": len(corpus), "edited_documents_per_class": len(docs) * args.class_keys,
        "classes": {n: {"caught": c, "total": t, "pct": round(100 * c / t, 1)} for n, (c, t) in table.items()},
        "key_choices": args.keys, "pair_bands": bands, "seconds": round(time.perf_counter() - t0, 1),
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"| evasion of an accepted document | caught ({len(docs) * args.class_keys} copies) |")
    print("|---|---|")
    for n, (c, t) in table.items():
        print(f"| {n} | {100 * c / t:.1f}% |")
    print(f"\n{len(corpus)} documents, {len(band_of)} pairs, {args.keys} seed choices each:")
    print("| pairs by true containment | pairs | checks rejected |")
    print("|---|---|---|")
    for b, lo, hi in BANDS:
        d = bands[b]
        print(f"| {b} ({lo // 100}-{min(hi, 10_000) // 100}%) | {d['pairs']} | {d['rejected_checks']} of {d['pair_checks']} |")
    for b in ("related", "contained"):
        for x in bands[b]["closest"]:
            print(f"  {b}: {x['a']} / {x['b']}: true {x['true_bps']} bps, rejected under {x['rejected_keys']}/{args.keys} keys")
    print(f"\nEvery licence pair ({len(licences)}), by true containment:")
    print("| pair | true containment | rejected under |")
    print("|---|---|---|")
    for x in licences:
        if x["true_bps"] >= 2000 or x["rejected_keys"]:
            print(f"| {x['a'][8:]} / {x['b'][8:]} | {x['true_bps'] / 100:.0f}% | {x['rejected_keys']} of {args.keys} keys |")
    rest = [x for x in licences if x["true_bps"] < 2000 and not x["rejected_keys"]]
    print(f"| the other {len(rest)} pairs | < 20% | 0 of {args.keys} keys each |")
    print(f"seconds: {out['seconds']}")


if __name__ == "__main__":
    main()
