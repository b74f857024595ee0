"""Recompute an inference's matched spans and payouts from the texts alone (docs/attribution.md, "Inference").

Stand-alone on purpose: it re-implements the span rule from its description and shares only the
text-to-shingles steps with the node (``state.attribution.fingerprint``: normalisation v2, words,
shingle hashes, winnowing; they are specified byte for byte in docs/attribution.md).

Usage:
    python docs/verify_receipt.py --rpc http://127.0.0.1:26657 [--full] INFERENCE_ID

asks a node for the inference, its output text, its receipt, the params and the text of every
paid contribution (`contribution_content`), and checks every paid span, score and amount against
the texts (``check_spans``: valid whatever happened on chain since), and the pool part against
the model's lineage and mixes and the pool rule (``check_pool``); with ``--full``, the whole
matched part recomputed from every contribution accepted in the relevant datanets when the
inference ran (``full_check_from_node``: their lists and histories from the node's explorer index,
their texts from the blocks), weights and earliest-holder order included. It prints ``OK`` or each
difference. ``verify(bundle)`` recomputes the whole matched part from the output and the texts
of all accepted contributions of the relevant datanets as they were at the inference's block
(the tests use it; a node keeps no history of state).

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
                if i is not None and i - run[-1] <= fp.winnow_window:
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


# ---- against a node: what can be checked whatever happened since --------------------------------


OWNER_ROLES = ("validators", "model_owner", "adapter_owner", "agent_owner")


def data_share(receipt: dict[str, Any]) -> int:
    """The payment less the validators', model's, adapter's and agent's entries."""
    return receipt["payment"] - sum(e["amount"] for e in receipt["entries"] if e["role"] in OWNER_ROLES)


def check_spans(output: bytes, receipt: dict[str, Any], inference: dict[str, Any], texts: dict[bytes, bytes],
                p: dict[str, Any]) -> list[str]:
    """Checks that hold however the chain changed after the inference: every paid span is really in
    the output and in the contribution's text at the stated offsets (anchors at both ends on one
    diagonal, gaps of at most winnow_window), its credit is at least L, the scores, the covered count and
    every amount follow from the spans. The weights (rarity when the inference ran) and that no
    earlier holder was passed over need the state of that block: ``verify`` on all texts."""
    fp = FingerprintParams(shingle_k=p["shingle_k"], winnow_window=p["winnow_window"],
                           fingerprint_max=p["fingerprint_max"], max_content_bytes=p["max_content_bytes"])
    out = shingle_hashes(words_of(output.decode("utf-8")), fp)
    problems = []
    if len(out) != inference["output_shingles"]:
        problems.append(f"output has {len(out)} shingles, the inference says {inference['output_shingles']}")
    covered = 0
    for m in receipt["matched"]:
        cid = m["contribution"]
        first = contribution_index(texts[cid], fp)
        score = 0
        for o, c, n, credited, weight in m["spans"]:
            anchors = [i for i in range(o, o + n) if i < len(out) and first.get(out[i]) == i + c - o]
            if not anchors or anchors[0] != o or anchors[-1] != o + n - 1 or \
                    any(b - a > fp.winnow_window for a, b in zip(anchors, anchors[1:])):
                problems.append(f"{cid.hex()}: span at output shingle {o} is not in both texts as stated")
            if not p["min_span_shingles"] <= credited <= n or not 0 < weight <= p["idf_scale"]:
                problems.append(f"{cid.hex()}: span at output shingle {o} has credit {credited}, weight {weight}")
            score += credited * weight
            covered += credited
        if score != m["score"]:
            problems.append(f"{cid.hex()}: score {m['score']}, its spans give {score}")
    if covered != inference["covered_shingles"]:
        problems.append(f"spans credit {covered} shingles, the inference says {inference['covered_shingles']}")
    data = data_share(receipt)
    ranked = [dict(m, credited=sum(s[3] for s in m["spans"])) for m in receipt["matched"]]
    if ranked:
        matched_payouts(data, p["matched_bps"], max(1, len(out)), ranked)
        for m, r in zip(receipt["matched"], ranked):
            if m["amount"] != r["amount"]:
                problems.append(f"{m['contribution'].hex()}: paid {m['amount']}, the spans give {r['amount']}")
    return problems


def split_lineage(pool: int, chain: list[tuple[list[tuple[str, int]], int]]) -> dict[str, int]:
    """The pool part over the lineage chain (nearest model first: (mix, lineage_bps)), then over each
    model's mix by weight, the first datanet of a mix taking the remainder (docs "Inference")."""
    out: dict[str, int] = {}
    part = pool
    for i, (mix, lineage_bps) in enumerate(chain):
        up = part * lineage_bps // BPS if i + 1 < len(chain) else 0
        own = part - up
        amounts = [own * w // sum(w for _, w in mix) for _, w in mix]
        amounts[0] += own - sum(amounts)
        for (datanet, _), amount in zip(mix, amounts):
            out[datanet] = out.get(datanet, 0) + amount
        part = up
    return out


PRECISION = 10**18


def check_pool(receipt: dict[str, Any], chain: list[tuple[list[tuple[str, int]], int]],
               datanet_owners: dict[str, str], pool_unit_cap: int) -> list[str]:
    """The pool part: what the matched part left of the data share follows the model's lineage and
    mixes to each datanet; a datanet with accepted contributions got a ``datanet_pool`` entry and a
    ``pools`` row whose accumulator step is ``(amount * 10**18 + carry) // total_units`` for some
    carry below ``total_units``, the others paid their owner (``datanet_owner``). With a
    contribution's ``units = min(size, pool_unit_cap)`` its share of a deposit is
    ``units * reward_per_unit_added / 10**18`` (``pool_share``)."""
    problems = []
    data = data_share(receipt)
    pool_part = data - sum(m["amount"] for m in receipt["matched"])
    want = {d: a for d, a in split_lineage(pool_part, chain).items() if a > 0}
    deposits = {e["recipient"]: e["amount"] for e in receipt["entries"] if e["role"] == "datanet_pool"}
    to_owners = sorted((e["recipient"], e["amount"]) for e in receipt["entries"] if e["role"] == "datanet_owner")
    want_owners = sorted((datanet_owners[d], a) for d, a in want.items() if d not in deposits)
    for d, amount in deposits.items():
        if want.get(d) != amount:
            problems.append(f"pool {d}: deposit {amount}, lineage and mixes give {want.get(d, 0)}")
    if to_owners != want_owners:
        problems.append(f"datanet owners paid {to_owners}, lineage and mixes give {want_owners}")
    if receipt.get("pool_unit_cap") != pool_unit_cap:
        problems.append(f"receipt states pool_unit_cap {receipt.get('pool_unit_cap')}, the params say {pool_unit_cap}")
    rows = {p["datanet"]: p for p in receipt.get("pools", [])}
    if sorted(rows) != sorted(deposits):
        problems.append(f"pools rows for {sorted(rows)}, deposits to {sorted(deposits)}")
    for d, p in rows.items():
        total, added, amount = p["total_units"], int(p["reward_per_unit_added"]), deposits.get(d, 0)
        if p["amount"] != amount or total < 1 or p["accepted"] < 1 or p["accepted"] > total:
            problems.append(f"pool {d}: row {p} does not fit its deposit {amount}")
        elif not amount * PRECISION - total < added * total < amount * PRECISION + total:
            problems.append(f"pool {d}: reward_per_unit_added {added} is not {amount} * 10**18 / {total}")
    return problems


def pool_share(receipt: dict[str, Any], datanet: str, size: int, pool_unit_cap: int) -> int:
    """Whole tokens a contribution of ``size`` bytes accepted in ``datanet`` earned from this
    receipt's deposit (its fraction went to the contribution's ``reward_frac``)."""
    added = sum(int(p["reward_per_unit_added"]) for p in receipt["pools"] if p["datanet"] == datanet)
    return min(size, pool_unit_cap) * added // PRECISION


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


def lineage_from_node(url: str, model: str, max_depth: int) -> list[tuple[list[tuple[str, int]], int]]:
    """(mix, lineage_bps) of the model then its ancestors, at most ``max_depth`` ancestors (mixes
    and parents never change once registered)."""
    chain = []
    m = _rpc(url, "model", id=model)
    while True:
        chain.append(([(x["datanet"], x["weight_bps"]) for x in m["datanets"]], m["lineage_bps"]))
        if not m["parent"] or len(chain) > max_depth:
            return chain
        m = _rpc(url, "model", id=m["parent"])


def check_from_node(url: str, inference_id: str) -> list[str]:
    inference = _rpc(url, "inference", id=inference_id)
    receipt = _rpc(url, "attribution", inference=inference_id)["receipts"][0]
    params = _rpc(url, "params")["params"]["attribution"]
    chain = lineage_from_node(url, inference["model"], params["lineage_max_depth"])
    owners = {d: _rpc(url, "datanet", id=d)["owner"] for mix, _ in chain for d, _ in mix}
    problems = check_pool(receipt, chain, owners, params["pool_unit_cap"])
    if not inference["attributed"]:
        return problems  # unattributed: no text, nothing matched; the whole data share went to the pools
    for m in receipt["matched"]:
        m["contribution"] = _hex(m["contribution"])
        m["spans"] = [(s["output_shingle"], s["contribution_shingle"], s["shingles"], s["credited"], s["weight"])
                      for s in m["spans"]]
    texts = {m["contribution"]: _rpc(url, "contribution_content", id="0x" + m["contribution"].hex())["content"]
             .encode() for m in receipt["matched"]}
    return problems + check_spans(inference["output"].encode(), receipt, inference, texts, params)


def status_at(events: list[dict[str, Any]], height: int) -> str | None:
    """A contribution's status when block ``height`` ran, from its history (None: it changed in that
    very block, so the order of transactions inside it decides and this verifier does not)."""
    if any(e["height"] == height for e in events):
        return None
    before = [e for e in events if e["height"] < height]
    return before[-1]["status"] if before else "absent"


def full_check_from_node(url: str, inference_id: str, limit: int = 5000) -> list[str]:
    """``verify`` against a node: the texts of every contribution that was accepted in a relevant
    datanet when the inference ran (from the contribution lists and their histories, which the node's
    explorer index keeps), then the whole matched part recomputed from them: weights and the
    earliest-holder order included. At most ``limit`` contributions are read."""
    inference = _rpc(url, "inference", id=inference_id)
    receipt = _rpc(url, "attribution", inference=inference_id)["receipts"][0]
    params = _rpc(url, "params")["params"]["attribution"]
    if not inference["attributed"]:
        return []
    chain = lineage_from_node(url, inference["model"], params["lineage_max_depth"])
    relevant = {d for mix, _ in chain for d, _ in mix}
    if inference["adapter"]:
        relevant.update(x["datanet"] for x in _rpc(url, "adapter", id=inference["adapter"])["datanets"])
    problems: list[str] = []
    contributions = []
    read = 0
    for d in sorted(relevant):
        page = 1
        while True:
            listed = _rpc(url, "contributions", datanet=d, page=page, per_page=100)
            for c in listed["contributions"]:
                read += 1
                if read > limit:
                    return problems + [f"more than {limit} contributions to read: not checked"]
                status = status_at(_rpc(url, "contribution_history", id=c["id"])["events"], inference["height"])
                if status is None:
                    problems.append(f"{c['id']} changed status in the inference's block: order not checked")
                elif status == "accepted":
                    text = _rpc(url, "contribution_content", id=c["id"])["content"].encode()
                    contributions.append({"id": _hex(c["id"]), "datanet": _hex(d), "text": text,
                                          "place": (c["commit_height"], c["commit_index"])})
            if page * 100 >= listed["total"]:
                break
            page += 1
    matched = [{"contribution": _hex(m["contribution"]), "score": m["score"], "amount": m["amount"],
                "spans": [(s["output_shingle"], s["contribution_shingle"], s["shingles"], s["credited"], s["weight"])
                          for s in m["spans"]]} for m in receipt["matched"]]
    bundle = {"params": params, "receipt": {"matched": matched}, "output": inference["output"].encode(),
              "data_share": data_share(receipt),
              "relevant_datanets": len(relevant), "contributions": contributions}
    return problems + verify(bundle)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rpc", default="http://127.0.0.1:26657")
    ap.add_argument("--full", action="store_true",
                    help="also recompute the whole matched part from every contribution accepted at that block")
    ap.add_argument("inference")
    args = ap.parse_args()
    problems = check_from_node(args.rpc, args.inference)
    if args.full:
        problems += full_check_from_node(args.rpc, args.inference)
    for line in problems:
        print(line)
    print("OK" if not problems else f"{len(problems)} difference(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
