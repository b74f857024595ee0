"""Recompute an inference's matched spans and payouts from the texts alone (docs/attribution.md, "Inference").

Stand-alone on purpose: it re-implements the span rule from its description and shares only the
text-to-shingles steps with the node (``state.attribution.fingerprint``: normalisation v2, words,
shingle hashes, winnowing; they are specified byte for byte in docs/attribution.md).

Usage:
    python docs/verify_receipt.py --rpc http://127.0.0.1:26657 INFERENCE_ID

asks a node for the inference, its output text, its receipt, the model's lineage mixes and the
text of every accepted contribution of the relevant datanets, recomputes everything and prints
``OK`` or the first difference. ``verify(bundle)`` does the same on a dict (the tests use it).

What it cannot see from texts alone: a posting list that dropped a holder which was later voided
(see "Inference" in docs/attribution.md); it assumes the listed holders of a hash are the
``POSTINGS_CAP`` earliest-committed accepted holders.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from state.attribution.fingerprint import FingerprintParams, shingle_hashes, winnowed_fingerprint, words_of  # noqa: E402

BPS = 10_000
POSTINGS_CAP = 8
READ_BUDGET = 16384
MAX_GAP = 16


def contribution_index(text: bytes, fp: FingerprintParams) -> dict[int, int]:
    """{fingerprint value: shingle index of its first occurrence} of one contribution."""
    hashes = shingle_hashes(words_of(text.decode("utf-8")), fp)
    kept = set(winnowed_fingerprint(hashes, fp.winnow_window, fp.fingerprint_max))
    first: dict[int, int] = {}
    for i, h in enumerate(hashes):
        if h in kept and h not in first:
            first[h] = i
    return first


def matched_spans(output: bytes, contributions: list[dict[str, Any]], n_datanets: int, fp: FingerprintParams,
                  min_span: int, idf_scale: int, max_matched: int) -> tuple[int, list[dict[str, Any]]]:
    """(output shingles, matches best first). ``contributions``: the accepted contributions of the
    relevant datanets, each {"id": bytes, "datanet": bytes, "place": (height, index), "text": bytes}."""
    out = shingle_hashes(words_of(output.decode("utf-8")), fp)
    m = min(len(out), READ_BUDGET // n_datanets) if n_datanets else 0
    out_m = out[:m]
    index = {c["id"]: contribution_index(c["text"], fp) for c in contributions}
    # document frequency over everything given; listed holders: the POSTINGS_CAP earliest committed
    holders: dict[int, list[dict[str, Any]]] = {}
    listed: dict[tuple[bytes, int], list[bytes]] = {}  # per (datanet, hash)
    for c in sorted(contributions, key=lambda c: (tuple(c["place"]), c["id"])):
        for h in index[c["id"]]:
            holders.setdefault(h, []).append(c)
            listed.setdefault((c["datanet"], h), []).append(c["id"])
    spans = []
    for c in contributions:
        first = index[c["id"]]
        by_diagonal: dict[int, list[int]] = {}
        for i, h in enumerate(out_m):
            if h in first and c["id"] in listed[(c["datanet"], h)][:POSTINGS_CAP]:
                by_diagonal.setdefault(first[h] - i, []).append(i)
        for delta, pos in by_diagonal.items():
            run = [pos[0]]
            for i in pos[1:] + [None]:  # type: ignore[list-item]
                if i is not None and i - run[-1] <= MAX_GAP:
                    run.append(i)
                    continue
                weight = sum(idf_scale // len(holders[out_m[j]]) for j in run) // len(run)
                spans.append((tuple(c["place"]), c["id"], run[0], delta, run[-1] - run[0] + 1, weight))
                if i is not None:
                    run = [i]
    spans.sort(key=lambda s: (s[0], s[1], s[2], s[3]))
    taken: set[int] = set()
    used: dict[bytes, set[int]] = {}
    result: dict[bytes, dict[str, Any]] = {}
    for place, cid, start, delta, length, weight in spans:
        src = used.setdefault(cid, set())
        new = [i for i in range(start, start + length) if i not in taken and i + delta not in src]
        if length < min_span or len(new) < min_span:
            continue
        taken.update(new)
        src.update(i + delta for i in new)
        r = result.setdefault(cid, {"contribution": cid, "place": place, "score": 0, "credited": 0, "spans": []})
        r["score"] += len(new) * weight
        r["credited"] += len(new)
        r["spans"].append((start, start + delta, length, len(new), weight))
    ranked = sorted(result.values(), key=lambda r: (-r["score"], r["place"], r["contribution"]))[:max_matched]
    return len(out), ranked


def matched_payouts(data: int, matched_bps: int, shingles: int, ranked: list[dict[str, Any]]) -> int:
    """Fill each match's ``amount``; returns the matched part (coverage-scaled)."""
    covered = sum(r["credited"] for r in ranked)
    if not covered:
        return 0
    part = data * matched_bps * covered // (BPS * shingles)
    total = sum(r["score"] for r in ranked)
    for r in ranked:
        r["amount"] = part * r["score"] // total
    ranked[0]["amount"] += part - sum(r["amount"] for r in ranked)
    return part


def verify(bundle: dict[str, Any]) -> list[str]:
    """Differences between a receipt and its recomputation (empty: the receipt holds)."""
    p = bundle["params"]
    fp = FingerprintParams(shingle_k=p["shingle_k"], winnow_window=p["winnow_window"],
                           fingerprint_max=p["fingerprint_max"], max_content_bytes=p["max_content_bytes"])
    receipt, output = bundle["receipt"], bundle["output"]
    data = bundle["data_share"]
    shingles, ranked = matched_spans(output, bundle["contributions"], bundle["relevant_datanets"], fp,
                                     p["min_span_shingles"], p["idf_scale"], p["max_matched"])
    matched_payouts(data, p["matched_bps"], shingles, ranked)
    want = [(r["contribution"], r["score"], r["amount"], [tuple(s) for s in r["spans"]]) for r in ranked]
    got = [(m["contribution"], m["score"], m["amount"], [tuple(s) for s in m["spans"]]) for m in receipt["matched"]]
    problems = []
    for i, (w, g) in enumerate(zip(want, got)):
        if w != g:
            problems.append(f"match {i}: receipt says {g}, the texts give {w}")
    if len(want) != len(got):
        problems.append(f"receipt lists {len(got)} matches, the texts give {len(want)}")
    return problems


# ---- against a node ------------------------------------------------------------------------------


def _rpc(url: str, method: str, **params: Any) -> Any:
    req = urllib.request.Request(url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                                  "params": params}).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        reply = json.loads(resp.read())
    if "error" in reply:
        raise SystemExit(f"{method}: {reply['error'].get('message')}")
    return reply["result"]


def _hex(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def bundle_from_node(url: str, inference_id: str) -> dict[str, Any]:
    explained = _rpc(url, "receipt_evidence", id=inference_id)
    receipt = explained["receipt"]
    for m in receipt["matched"]:
        m["contribution"] = _hex(m["contribution"])
        m["spans"] = [(s["output_shingle"], s["contribution_shingle"], s["shingles"], s["credited"], s["weight"])
                      for s in m["spans"]]
    return {
        "params": explained["params"],
        "receipt": receipt,
        "output": explained["output"].encode(),
        "data_share": explained["data_share"],
        "relevant_datanets": len(explained["relevant_datanets"]),
        "contributions": [{"id": _hex(c["id"]), "datanet": _hex(c["datanet"]), "place": tuple(c["place"]),
                           "text": c["text"].encode()}
                          for c in explained["contributions"]],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rpc", default="http://127.0.0.1:26657")
    ap.add_argument("inference")
    args = ap.parse_args()
    problems = verify(bundle_from_node(args.rpc, args.inference))
    for line in problems:
        print(line)
    print("OK" if not problems else f"{len(problems)} difference(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
