"""Issue 14: inference attribution with evidence. Span matching under attack, and the stand-alone
receipt verifier (docs/verify_receipt.py) against receipts the chain wrote.

Each attack test states the bound it checks; with the rule before issue 14 (the payer declared the
output fingerprint, any shared winnowed hash paid, a ninth holder zeroed a hash) each one fails.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from typing import Any

from attribution_kit import KEYS, World, make_text, world_fixture  # noqa: F401

from state import queries
from state.attribution.pools import PRECISION
from state.attribution.split import split_fee
from state.crypto import sha256, to_hex
from state.tx import CreateDatanet, Infer, RegisterAdapter, RegisterAgent, RegisterModel, Review

OWNER, DEV, ALICE, BOB, USER, MALLORY, CAROL = KEYS[:7]
ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("verify_receipt", ROOT / "docs" / "verify_receipt.py")
verify_receipt = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(verify_receipt)  # type: ignore[union-attr]


def words(seed: int, n: int) -> str:
    return make_text(seed, n).decode()


class Setup:
    """Datanets, contributions (texts kept) and models on one chain, plus helpers to infer."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.texts: dict[bytes, tuple[bytes, bytes]] = {}  # id -> (datanet, text)

    def datanet(self, name: str = "d") -> bytes:
        return self.w.ok(OWNER, CreateDatanet(name, "", 0)).hash

    def contribute(self, d: bytes, text: str, key: Any = ALICE, accept: bool = True) -> bytes:
        content = text.encode()
        cid = self.w.ok(key, self.w.contribute_body(d, content)).hash
        if accept:
            self.w.ok(OWNER, Review(cid, 1))
        self.texts[cid] = (d, content)
        return cid

    def contribute_bonded(self, d: bytes, text: str, bond: int, key: Any = ALICE) -> bytes:
        content = text.encode()
        cid = self.w.ok(key, self.w.contribute_body(d, content, bond=bond)).hash
        self.w.ok(OWNER, Review(cid, 1))
        self.texts[cid] = (d, content)
        return cid

    def model(self, *datanets: bytes) -> bytes:
        share = 10_000 // len(datanets)
        mix = tuple((d, share + (10_000 - share * len(datanets) if i == 0 else 0)) for i, d in enumerate(datanets))
        return self.w.ok(DEV, RegisterModel("m", mix, b"", 0)).hash

    def infer(self, model: bytes, output: str, payment: int = 1_000_000, key: Any = USER) -> dict[str, Any]:
        data = output.encode()
        tx = self.w.ok(key, Infer(model, b"", b"", payment, 1, 1, sha256(data), data))
        receipt = queries.get_receipt(self.w.chain.db, tx.hash)
        assert receipt is not None and sum(e["amount"] for e in receipt["entries"]) == payment
        receipt["inference"] = queries.get_inference(self.w.chain.db, tx.hash)
        receipt["output"] = data
        return receipt

    def paid(self, receipt: dict[str, Any], cid: bytes) -> int:
        return sum(m["amount"] for m in receipt["matched"] if m["contribution"] == to_hex(cid))

    def bundle(self, receipt: dict[str, Any], datanets: list[bytes]) -> dict[str, Any]:
        """What docs/verify_receipt.py needs: texts of the accepted contributions of ``datanets``."""
        a = self.w.a
        fee = split_fee(receipt["payment"], a, False, False)
        contributions = []
        for cid, (d, text) in self.texts.items():
            c = queries.get_contribution(self.w.chain.db, cid)
            assert c is not None
            if d in datanets and c["status"] == "accepted":
                contributions.append({"id": cid, "datanet": d, "text": text,
                                      "place": (c["commit_height"], c["commit_index"])})
        matched = [{"contribution": bytes.fromhex(m["contribution"][2:]), "score": m["score"],
                    "amount": m["amount"],
                    "spans": [(s["output_shingle"], s["contribution_shingle"], s["shingles"], s["credited"],
                               s["weight"]) for s in m["spans"]]} for m in receipt["matched"]]
        params = {name: getattr(a, name) for name in ("shingle_k", "winnow_window", "fingerprint_max",
                                                      "max_content_bytes", "min_span_shingles", "idf_scale",
                                                      "max_matched", "matched_bps")}
        return {"params": params, "receipt": {"matched": matched}, "output": receipt["output"],
                "data_share": fee.data, "relevant_datanets": len(datanets), "contributions": contributions}


def test_a_span_is_located_in_both_texts_and_short_phrases_pay_nothing(world: World) -> None:
    s = Setup(world)
    d = s.datanet()
    source = words(1, 30) + " " + words(2, 40) + " " + words(3, 30)
    cid = s.contribute(d, source)
    m = s.model(d)
    quote = words(2, 40)  # words 30..69 of the contribution
    r = s.infer(m, words(4, 10) + " " + quote + " " + words(5, 10))
    (match,) = r["matched"]
    for span in match["spans"]:  # output word o is contribution word o + 20 on this diagonal
        assert span["contribution_shingle"] - span["output_shingle"] == 20
        assert 10 <= span["output_shingle"] and span["output_shingle"] + span["shingles"] + 3 <= 50
    assert s.paid(r, cid) > 0
    # 7 shared words (4 shingles) and 8 shared words (5 shingles): below L = 6, nothing is paid
    for n in (7, 8):
        short = s.infer(m, words(6, 20) + " " + " ".join(quote.split()[:n]) + " " + words(7, 20))
        assert short["matched"] == [] and short["inference"]["covered_shingles"] == 0


def test_phrase_fragment_contribution_earns_nothing_from_unrelated_outputs(world: World) -> None:
    """Bound: 0 for an output that does not repeat 9 consecutive words of the attacker's text."""
    s = Setup(world)
    d = s.datanet()
    rng = random.Random(5)
    common = "the of and to in is that for it as with on was by at be this from or an".split()
    phrases = sorted({" ".join(rng.choices(common, k=4)) for _ in range(400)})
    mallory = s.contribute(d, " ".join(rng.sample(phrases, len(phrases))), key=MALLORY)
    honest = s.contribute(d, words(10, 200))
    m = s.model(d)
    paid_mallory = 0
    for i in range(30):  # outputs made of the same common phrases, some of them adjacent
        picked = rng.sample(phrases, 12)
        out = " ".join(p + (" " + words(100 + i * 12 + j, 2) if j % 3 else "") for j, p in enumerate(picked))
        r = s.infer(m, out, payment=10_000)
        paid_mallory += s.paid(r, mallory)
    assert paid_mallory == 0
    r = s.infer(m, words(10, 200)[:600])  # the honest text quoted: paid, the fragments still not
    assert s.paid(r, honest) > 0 and s.paid(r, mallory) == 0


def test_boilerplate_pays_its_earliest_holder_at_a_weight_falling_with_holders(world: World) -> None:
    """Bound: a text held by h contributions is credited once, to its earliest holder, at about
    1/h of the weight of a text held once; the ninth and later holders do not zero it (no cliff)."""
    s = Setup(world)
    d = s.datanet()
    header = words(20, 40)
    holders = [s.contribute(d, header + " " + words(21 + i, 120), key=KEYS[i % 4]) for i in range(12)]
    m = s.model(d)
    body7 = " ".join(words(28, 120).split()[:40])  # 40 words of the body of holder 7 only
    r = s.infer(m, header + " " + body7)
    first, seventh = s.paid(r, holders[0]), s.paid(r, holders[7])
    assert first > 0 and seventh > 0  # no cliff: twelve holders, the earliest still earns
    assert all(s.paid(r, h) == 0 for i, h in enumerate(holders) if i not in (0, 7))
    assert first * 6 < seventh  # the header's weight is about 1/12 of the rare body's
    header_spans = [sp for mm in r["matched"] if mm["contribution"] == to_hex(holders[0]) for sp in mm["spans"]]
    assert header_spans and all(sp["weight"] < 1_000_000 // 6 for sp in header_spans)


def test_saturation_griefing_leaves_the_victim_paid_and_the_copies_unpaid(world: World) -> None:
    """Bound: copies embedding a victim's passage (committed after it) earn 0 for it; the victim,
    the only source quoted, keeps the whole matched part whatever the number of copies."""
    s = Setup(world)
    d = s.datanet()
    passage = words(30, 60)  # a fifth of each text: below containment, so the copies are accepted
    victim = s.contribute(d, words(31, 120) + " " + passage + " " + words(32, 120))
    m = s.model(d)
    before = s.infer(m, passage)
    junk = [s.contribute(d, words(40 + i, 150) + " " + passage + " " + words(60 + i, 150), key=MALLORY)
            for i in range(12)]
    after = s.infer(m, passage)
    assert s.paid(before, victim) > 0
    assert s.paid(after, victim) == s.paid(before, victim)
    assert all(s.paid(after, j) == 0 for j in junk)
    assert after["inference"]["covered_shingles"] == before["inference"]["covered_shingles"]


def test_copies_across_datanets_earn_nothing_even_when_accepted_first(world: World) -> None:
    """Bound: a later-committed copy in another datanet earns 0 for the copied text, even if its
    curator accepted it before the original was accepted."""
    s = Setup(world)
    d1, d2 = s.datanet("original"), s.datanet("copies")
    passage = words(70, 60)  # a fifth of each text: below containment, so the copy is accepted
    original = s.contribute(d1, words(72, 120) + " " + passage + " " + words(73, 120), accept=False)
    copy = s.contribute(d2, words(71, 240) + " " + passage, key=MALLORY)  # accepted at once
    world.ok(OWNER, Review(original, 1))
    m = s.model(d1, d2)
    r = s.infer(m, passage)
    assert s.paid(r, original) > 0 and s.paid(r, copy) == 0


def test_sybil_splitting_never_pays_more_than_the_whole(world: World) -> None:
    """Bound: the parts of a split document together earn at most what the whole earns for the
    same quotation (a cut can only lose the spans crossing it)."""
    s = Setup(world)
    d_whole, d_split = s.datanet("whole"), s.datanet("split")
    whole_text, split_text = words(80, 150), words(81, 150)
    whole = s.contribute(d_whole, whole_text)
    ws = split_text.split()
    parts = [s.contribute(d_split, " ".join(ws[i : i + 50]), key=MALLORY) for i in range(0, 150, 50)]
    m_whole, m_split = s.model(d_whole), s.model(d_split)
    r_whole = s.infer(m_whole, whole_text)
    r_split = s.infer(m_split, split_text)
    assert sum(s.paid(r_split, p) for p in parts) <= s.paid(r_whole, whole)
    assert r_split["inference"]["covered_shingles"] <= r_whole["inference"]["covered_shingles"]


def test_a_payer_steering_its_own_outputs_recovers_at_most_the_data_share(world: World) -> None:
    """Bound: a payer quoting its own contribution gets back, through it, at most the data share
    of what it pays (65 % without adapter and agent; validators and the model owner keep the
    rest), of which at most matched_bps (60 %) through the match. Without quoting it, it gets
    nothing from matching (the old rule let the payer declare any fingerprint); quoting a passage
    twice earns once."""
    s = Setup(world)
    d = s.datanet()
    own = s.contribute(d, words(90, 120), key=MALLORY)
    other = s.contribute(d, words(91, 120), key=CAROL)
    m = s.model(d)
    a = world.a
    payment = 1_000_000
    data = split_fee(payment, a, False, False).data
    owed_before = queries.pending_rewards(world.chain.db, own)["unclaimed"]  # type: ignore[index]
    r = s.infer(m, words(90, 120), payment=payment, key=MALLORY)
    got = s.paid(r, own)
    assert 0 < got <= data * a.matched_bps // 10_000
    owed = queries.pending_rewards(world.chain.db, own)["unclaimed"] - owed_before  # type: ignore[index]
    assert got <= owed <= data < payment
    assert s.paid(r, other) == 0
    unrelated = s.infer(m, words(92, 120), key=MALLORY)
    assert s.paid(unrelated, own) == 0 and unrelated["matched"] == []
    # padding: the own passage repeated five times next to one quotation of another contributor
    own_quote = " ".join(words(90, 120).split()[:40])
    other_quote = " ".join(words(91, 120).split()[:40])
    padded = s.infer(m, " ".join([own_quote] * 5 + [other_quote]))
    once = s.infer(m, own_quote + " " + other_quote)
    assert s.paid(padded, own) <= s.paid(once, own)
    assert padded["inference"]["covered_shingles"] == once["inference"]["covered_shingles"]


def test_verifier_recomputes_chain_receipts_and_catches_a_forged_one(world: World) -> None:
    s = Setup(world)
    d1, d2 = s.datanet("a"), s.datanet("b")
    shared = words(120, 25)  # held by two contributions (a fifth of each: no containment)
    for i in range(6):
        s.contribute(d1 if i % 2 else d2, words(121 + i, 100) + (" " + shared if i % 3 == 0 else ""),
                     key=KEYS[i % 5])
    m = s.model(d1, d2)
    rng = random.Random(9)
    texts = [t.decode() for _, t in s.texts.values()]
    checked = 0
    for _ in range(6):
        pieces = [" ".join(rng.choice(texts).split()[rng.randrange(20):][:rng.randrange(10, 60)]) for _ in range(3)]
        r = s.infer(m, " ".join(pieces + [words(rng.randrange(10**6), 10)]))
        bundle = s.bundle(r, [d1, d2])
        assert verify_receipt.verify(bundle) == [], r
        checked += bool(r["matched"])
        receipt = dict(r, matched=bundle["receipt"]["matched"])
        by_id = {c["id"]: c["text"] for c in bundle["contributions"]}
        assert verify_receipt.check_spans(r["output"], receipt, r["inference"], by_id, bundle["params"]) == []
    assert checked >= 4
    forged = s.bundle(r, [d1, d2])
    forged["receipt"]["matched"][0]["amount"] += 1
    assert verify_receipt.verify(forged)
    # a receipt claiming a span where the texts differ, or more credit than its spans hold, is caught
    receipt = dict(r, matched=s.bundle(r, [d1, d2])["receipt"]["matched"])
    o, c, n, cr, wt = receipt["matched"][0]["spans"][0]
    receipt["matched"][0]["spans"][0] = (o, c + 1, n, cr, wt)
    assert verify_receipt.check_spans(r["output"], receipt, r["inference"], by_id, bundle["params"])


def test_evidence_locates_paid_spans_and_names_quoted_pending_contributions(world: World) -> None:
    s = Setup(world)
    d = s.datanet()
    accepted_text, pending_text = words(140, 60), words(141, 60)
    accepted = s.contribute(d, accepted_text)
    pending = s.contribute(d, pending_text, key=BOB, accept=False)  # nobody reviewed it
    m = s.model(d)
    intro = "Here is what I found:"
    output = intro + " " + accepted_text + "\n" + pending_text
    r = s.infer(m, output)
    assert [mm["contribution"] for mm in r["matched"]] == [to_hex(accepted)]  # the pending one is not paid
    ev = queries.inference_evidence(world.chain.db, bytes.fromhex(r["inference"]["id"][2:]), output.encode())
    assert ev is not None
    (span,) = ev["output_spans"]
    assert span["contribution"] == to_hex(accepted)
    assert len(intro) < span["start"] and span["end"] <= len(intro) + 1 + len(accepted_text)
    assert output[span["start"]:span["end"]] in accepted_text  # the highlighted text is the quote
    (note,) = ev["pending_matches"]
    assert (note["contribution"], note["status"]) == (to_hex(pending), "pending") and "not accepted" in note["note"]
    assert all(output[sp["start"]:sp["end"]] in pending_text for sp in note["spans"])
    # accepted afterwards: that receipt still says why it paid nothing (the quote came before acceptance)
    world.ok(OWNER, Review(pending, 1))
    ev = queries.inference_evidence(world.chain.db, bytes.fromhex(r["inference"]["id"][2:]), output.encode())
    assert ev is not None
    (note,) = ev["pending_matches"]
    assert (note["contribution"], note["status"]) == (to_hex(pending), "accepted_later")
    assert "after this inference" in note["note"]
    later = s.infer(m, output)  # and a new output quoting it pays it, with nothing left to explain
    assert sorted(mm["contribution"] for mm in later["matched"]) == sorted([to_hex(accepted), to_hex(pending)])
    ev = queries.inference_evidence(world.chain.db, bytes.fromhex(later["inference"]["id"][2:]), output.encode())
    assert ev is not None and ev["pending_matches"] == []


def test_pool_part_weighs_contributions_by_size_up_to_the_cap(world: World) -> None:
    """Bound: in the pool part a contribution weighs min(size, pool_unit_cap), so a document
    larger than the cap earns no more from the pool than one of exactly the cap."""
    s = Setup(world)
    d = s.datanet()
    cap = world.a.pool_unit_cap
    small = s.contribute(d, words(150, 300)[: cap // 4])
    big = s.contribute(d, (words(151, 12_000) + " ")[: cap * 3], key=BOB)
    size_small = len(s.texts[small][1])
    assert len(s.texts[big][1]) > cap > size_small
    m = s.model(d)
    r = s.infer(m, "", payment=1_000_000)  # unattributed: the whole data share to the pool
    pool = sum(e["amount"] for e in r["entries"] if e["role"] == "datanet_pool")
    owed = {c: queries.pending_rewards(world.chain.db, c)["unclaimed"] for c in (small, big)}  # type: ignore[index]
    assert owed[big] == pool * cap // (cap + size_small)  # by size it would be 3 * cap / (3 * cap + size)
    assert owed[small] == pool * size_small // (cap + size_small)
    # the receipt names the datanet, the rule and the pool's state, so each share can be recomputed
    (p,) = r["pools"]
    assert (p["datanet"], p["amount"], p["total_units"], p["accepted"]) == (to_hex(d), pool, cap + size_small, 2)
    assert r["pool_unit_cap"] == cap and "min(size, pool_unit_cap)" in r["pool_rule"]
    added = int(p["reward_per_unit_added"])
    assert (owed[big], owed[small]) == (cap * added // PRECISION, size_small * added // PRECISION)


def test_verifier_checks_the_pool_part_against_lineage_mixes_and_the_cap(world: World) -> None:
    """docs/verify_receipt.py check_pool: the pool part follows lineage and mixes to each datanet,
    the receipt's pools rows fit their deposits, and a contribution's pool share is
    min(size, pool_unit_cap) * reward_per_unit_added / 10**18; a moved token, a forged accumulator
    step or a misstated cap is caught."""
    s = Setup(world)
    d1, d2, d3 = s.datanet("a"), s.datanet("b"), s.datanet("c")  # d3 stays empty: its owner is paid
    small = s.contribute(d1, words(130, 100))
    big = s.contribute(d1, words(131, 2_500), key=BOB)  # over the cap
    other = s.contribute(d2, words(132, 100), key=KEYS[4])
    cap = world.a.pool_unit_cap
    assert len(s.texts[big][1]) > cap
    m0 = world.ok(DEV, RegisterModel("m0", ((d2, 10_000),), b"", 0)).hash
    m1 = world.ok(DEV, RegisterModel("m1", ((d1, 6_000), (d3, 4_000)), m0, 2_500)).hash

    def chain_of(model: bytes) -> list[tuple[list[tuple[str, int]], int]]:
        out = []
        while model:
            info = queries.get_model(world.chain.db, model)
            assert info is not None
            out.append(([(x["datanet"], x["weight_bps"]) for x in info["datanets"]], info["lineage_bps"]))
            model = bytes.fromhex(info["parent"][2:]) if info["parent"] else b""
        return out

    owners = {to_hex(d): queries.get_datanet(world.chain.db, d)["owner"] for d in (d1, d2, d3)}  # type: ignore[index]
    unattributed = s.infer(m1, "", payment=999_983)
    assert verify_receipt.check_pool(unattributed, chain_of(m1), owners, cap) == []
    assert {e["role"] for e in unattributed["entries"]} >= {"datanet_pool", "datanet_owner"}
    for cid in (small, big, other):  # first deposit after acceptance: the share is exact
        d, text = s.texts[cid]
        owed = queries.pending_rewards(world.chain.db, cid)["unclaimed"]  # type: ignore[index]
        assert verify_receipt.pool_share(unattributed, to_hex(d), len(text), cap) == owed > 0
    quoting = s.infer(m1, " ".join(s.texts[small][1].decode().split()[10:60]), payment=777_777)
    assert quoting["matched"] and verify_receipt.check_pool(quoting, chain_of(m1), owners, cap) == []

    moved = {**quoting, "entries": [dict(e) for e in quoting["entries"]]}
    pools = [e for e in moved["entries"] if e["role"] == "datanet_pool"]
    pools[0]["amount"] += 1
    pools[1]["amount"] -= 1
    assert verify_receipt.check_pool(moved, chain_of(m1), owners, cap)
    forged = {**quoting, "pools": [dict(p) for p in quoting["pools"]]}
    forged["pools"][0]["reward_per_unit_added"] = str(int(forged["pools"][0]["reward_per_unit_added"]) * 2)
    assert verify_receipt.check_pool(forged, chain_of(m1), owners, cap)
    assert verify_receipt.check_pool(quoting, chain_of(m1), owners, cap * 2)


def test_no_overlap_receipt_says_where_the_data_share_and_absent_parties_shares_went(world: World) -> None:
    """An output that overlaps nothing: the data share (with the shares of an absent adapter and
    agent in it, and nothing else) all goes to the pool part, weighted min(size, pool_unit_cap), and
    the receipt says so: data_share names the absent parties, the matched part 0 and why."""
    s = Setup(world)
    d = s.datanet()
    small = s.contribute(d, words(140, 100))
    big = s.contribute(d, words(141, 2_500), key=BOB)  # over the cap
    m = s.model(d)
    a = world.a
    payment = 1_000_000
    unrelated = words(142, 80)
    bare = s.infer(m, unrelated, payment=payment)
    ds = bare["data_share"]
    assert bare["matched"] == [] and ds["matched_part"] == 0 and ds["covered_shingles"] == 0
    assert ds["absent_parties"] == ["adapter", "agent"] and "stays in the data share" in ds["absent_note"]
    assert "no span" in ds["why"]
    # exactly validators + model are taken out; adapter and agent bps stay in data, and all of it pools
    expected = payment - payment * a.validators_bps // 10_000 - payment * a.model_bps // 10_000
    assert ds["amount"] == ds["pool_part"] == expected
    assert sum(e["amount"] for e in bare["entries"] if e["role"] == "datanet_pool") == expected
    (pool,) = bare["pools"]
    cap = a.pool_unit_cap
    assert pool["total_units"] == len(s.texts[small][1]) + cap  # the big text weighs the cap, not its size
    # with an adapter and an agent named, their shares go to their owners and the data share shrinks by them
    adapter = world.ok(CAROL, RegisterAdapter("ad", m, ((d, 10_000),))).hash
    world.ok(MALLORY, RegisterAgent("bot", m, adapter, CAROL.address, 0))
    data = unrelated.encode()
    tx = world.ok(MALLORY, Infer(m, adapter, MALLORY.address, payment, 1, 1, sha256(data), data))
    full = queries.get_receipt(world.chain.db, tx.hash)
    assert full is not None and full["data_share"]["absent_parties"] == [] and full["data_share"]["absent_note"] == ""
    assert expected - full["data_share"]["amount"] == payment * a.adapter_bps // 10_000 + payment * a.agent_bps // 10_000
    unattributed = s.infer(m, "", payment=payment)
    assert "unattributed" in unattributed["data_share"]["why"]


def test_splitting_past_the_pool_cap_earns_at_most_the_by_size_share_and_costs_a_bond_per_part(world: World) -> None:
    """Bound for the pool part: min(size, cap) is subadditive, so cutting a text longer than the
    cap into parts of at most the cap recovers (only) the by-size weight: the parts together earn
    at most what their total size would earn without a cap, and each part pays its own bond and
    must pass the duplicate and containment checks as a text of its own."""
    s = Setup(world)
    cap = world.a.pool_unit_cap
    d_whole = world.ok(OWNER, CreateDatanet("whole", "", 100)).hash
    d_split = world.ok(OWNER, CreateDatanet("split", "", 100)).hash
    ref_whole = s.contribute_bonded(d_whole, words(150, 300), 100)
    ref_split = s.contribute_bonded(d_split, words(151, 300), 100, key=CAROL)
    whole_words, split_words = words(152, 4_000).split(), words(153, 4_000).split()
    whole = s.contribute_bonded(d_whole, " ".join(whole_words), 100, key=MALLORY)
    third = len(split_words) // 3
    parts = [s.contribute_bonded(d_split, " ".join(split_words[i * third:(i + 1) * third]), 100, key=MALLORY)
             for i in range(3)]
    part_sizes = [len(s.texts[p][1]) for p in parts]
    assert len(s.texts[whole][1]) > 2 * cap and all(size <= cap for size in part_sizes)
    r = s.infer(s.model(d_whole, d_split), "", payment=2_000_000)  # unattributed: all to the two pools
    pool = {p["datanet"]: p["amount"] for p in r["pools"]}
    owed = {c: queries.pending_rewards(world.chain.db, c)["unclaimed"] for c in (whole, *parts)}  # type: ignore[index]
    ref = len(s.texts[ref_split][1])
    by_size = pool[to_hex(d_split)] * sum(part_sizes) // (sum(part_sizes) + ref)
    assert sum(owed[p] for p in parts) <= by_size
    assert owed[whole] <= pool[to_hex(d_whole)] * cap // (cap + len(s.texts[ref_whole][1]))  # the whole is capped
    assert all(queries.pending_rewards(world.chain.db, p)["bond"] == 100 for p in parts)  # type: ignore[index]
    assert sum(owed[p] for p in parts) > owed[whole]  # what the cap alone does not stop: recorded, bounded above
