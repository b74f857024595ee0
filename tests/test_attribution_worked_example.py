"""The worked example of docs/attribution.md, replayed on a chain: its tables are the expectations.

The numbers in the document were worked out by hand (the steps are printed there); this test
reads the tables between their markers, so the document and the code cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

from attribution_kit import KEYS, World, crafted, world_fixture  # noqa: F401

from state import queries
from state.accounts import FEE_COLLECTOR, REWARD_POOL
from state.crypto import sha256, to_hex
from state.tx import ClaimRewards, CreateDatanet, Infer, RegisterAgent, RegisterModel, Review

DOC = Path(__file__).resolve().parent.parent / "docs" / "attribution.md"
OLIVIA, DAN, MIA, BOT, ADA, CONTRIBUTOR = KEYS[:6]


def doc_table(marker: str) -> list[list[str]]:
    """Rows (cells stripped) of the Markdown table between <!-- marker --> and <!-- /marker -->."""
    text = DOC.read_text()
    block = re.search(rf"<!-- {marker} -->\n(.*?)<!-- /{marker} -->", text, re.S)
    assert block is not None, f"docs/attribution.md has no {marker} table"
    lines = [ln.strip() for ln in block.group(1).strip().splitlines()]  # (indented tables too)
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def test_worked_example_reproduces_the_documented_numbers(world: World) -> None:
    d1 = world.ok(OLIVIA, CreateDatanet("D1", "", 0)).hash
    d2 = world.ok(OLIVIA, CreateDatanet("D2", "", 0)).hash
    d3 = world.ok(DAN, CreateDatanet("D3", "", 0)).hash
    contributions = {}
    for name, d, seed, fp, size in (("c1", d1, 1, (11, 12, 13), 1000), ("c2", d1, 2, (12, 14), 3000),
                                    ("c3", d2, 3, (13, 15), 2000)):
        cid = world.ok(CONTRIBUTOR, crafted(world, d, seed, fp, size)).hash
        world.ok(OLIVIA, Review(cid, 1))
        contributions[name] = cid
    m0 = world.ok(MIA, RegisterModel("M0", ((d2, 10_000),), b"", 0)).hash
    m1 = world.ok(MIA, RegisterModel("M1", ((d1, 7000), (d3, 3000)), m0, 2000)).hash
    world.ok(BOT, RegisterAgent("Bot", m1, b"", ADA.address, 0))
    output = world.quote(12, 13, 15, 99)
    tx = world.ok(BOT, Infer(m1, b"", BOT.address, 1_000_003, 10, 20, sha256(output), output))

    names = {
        "fee collector": FEE_COLLECTOR, "Mia": MIA.address, "Ada": ADA.address, "Dan": DAN.address,
        "D1": d1, "D2": d2, **contributions,
    }
    expected = [(to_hex(names[who]), role, int(amount)) for who, role, amount in doc_table("worked-example:receipt")]
    receipt = queries.get_receipt(world.chain.db, tx.hash)
    assert receipt is not None
    got = [(e["recipient"], e["role"], e["amount"]) for e in receipt["entries"]]
    fixed = sum(1 for _, role, _ in expected if role not in ("datanet_pool", "datanet_owner"))
    assert got[:fixed] == expected[:fixed]
    assert sorted(got[fixed:]) == sorted(expected[fixed:])  # datanet entries are stored in id order
    spans = [(to_hex(names[who]), *map(int, rest)) for who, *rest in doc_table("worked-example:spans")]
    assert [(m["contribution"], s["output_shingle"], s["contribution_shingle"], s["shingles"], s["credited"],
             s["weight"]) for m in receipt["matched"] for s in m["spans"]] == spans
    assert sum(amount for _, _, amount in got) == 1_000_003
    pools = [(to_hex(names[who]), *map(int, rest)) for who, *rest in doc_table("worked-example:pools")]
    assert sorted((p["datanet"], p["amount"], p["total_units"], p["accepted"], int(p["reward_per_unit_added"]))
                  for p in receipt["pools"]) == sorted(pools)

    claims = {row[0]: int(row[1]) for row in doc_table("worked-example:claims")}
    for name, cid in contributions.items():
        owed = queries.pending_rewards(world.chain.db, cid)
        assert owed is not None and owed["unclaimed"] == claims[name], name
    before = world.balance(CONTRIBUTOR.address)
    world.ok(CONTRIBUTOR, ClaimRewards(tuple(contributions.values())))
    assert world.balance(CONTRIBUTOR.address) == before - 1 + sum(claims[n] for n in contributions)
    assert world.balance(REWARD_POOL) == claims["left in pool"]
    assert world.conserved()
