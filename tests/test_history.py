"""state/history.py: the explorer's local indexes, on a real chain on LevelDB. They follow a
contribution's status moves and owner transfers (lists, counters, events), credit a receipt's
payouts to the right recipients by role, and are written in the block's own batch or not at all."""

from __future__ import annotations

from typing import Any

import pytest
from attribution_kit import KEYS, World, crafted, world_fixture  # noqa: F401

from state import history, keys, queries
from state.attribution.records import ACCEPTED, PENDING, REJECTED, ROLE_MATCHED, ROLE_MODEL_OWNER
from state.crypto import sha256
from state.tx import CreateDatanet, Infer, RegisterAdapter, RegisterModel, Review, TransferContribution

OWNER, DEV, ALICE, BOB, USER, LORA = KEYS[0], KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]


def _history(world: World) -> dict[bytes, bytes]:
    return dict(world.chain.db.raw.iterator(prefix=keys.HISTORY))


def _list(world: World, kind: bytes, parent: bytes, sub: bytes = b"") -> list[bytes]:
    page, total = history.members(world.chain.db, kind, parent, 0, 100, sub=sub)
    assert total == len(page)
    return [child[-32:] for child in page]  # ids are the last 32 bytes (after height / status)


def _earned(world: World, recipient: bytes) -> dict[int, int]:
    rows, cut = history.earnings(world.chain.db, recipient, 0, world.chain.height, 1_000)
    assert not cut
    out: dict[int, int] = {}
    for _, _, by_role in rows:
        for role, amount in by_role:
            out[role] = out.get(role, 0) + amount
    return out


def test_status_moves_owner_transfers_and_earnings(world: World) -> None:
    db = world.chain.db
    d = world.ok(OWNER, CreateDatanet("d", "", 0)).hash
    c1 = world.ok(ALICE, crafted(world, d, 1, (7,))).hash
    h_created = world.chain.height
    assert _list(world, history.DATANET_CONTRIBUTIONS, d, bytes([PENDING])) == [c1]
    assert history.counts(db, history.STATUS_COUNTS, d) == {PENDING: 1}
    assert _list(world, history.OWNER_CONTRIBUTIONS, ALICE.address) == [c1]

    world.ok(OWNER, Review(c1, 1))
    h_accepted = world.chain.height
    c2 = world.ok(BOB, crafted(world, d, 2, (8,))).hash
    world.ok(OWNER, Review(c2, 0))
    assert _list(world, history.DATANET_CONTRIBUTIONS, d, bytes([PENDING])) == []
    assert _list(world, history.DATANET_CONTRIBUTIONS, d, bytes([ACCEPTED])) == [c1]
    assert _list(world, history.DATANET_CONTRIBUTIONS, d, bytes([REJECTED])) == [c2]
    assert history.counts(db, history.STATUS_COUNTS, d) == {ACCEPTED: 1, REJECTED: 1}

    # an owner transfer moves the owner list; the datanet's list and counters stay as they were
    moved = world.ok(ALICE, TransferContribution(c1, BOB.address)).hash
    h_moved = world.chain.height
    assert _list(world, history.OWNER_CONTRIBUTIONS, ALICE.address) == []
    assert sorted(_list(world, history.OWNER_CONTRIBUTIONS, BOB.address)) == sorted([c1, c2])
    assert _list(world, history.DATANET_CONTRIBUTIONS, d, bytes([ACCEPTED])) == [c1]
    assert history.counts(db, history.STATUS_COUNTS, d) == {ACCEPTED: 1, REJECTED: 1}
    # every tx alice signed (commit, reveal, transfer), newest first; a page reads its page, the length
    # comes from the list's counter
    sent = _list(world, history.SENDER_TXS, ALICE.address)
    assert len(sent) == 3 and sent[0] == moved and c1 in sent
    page, total = history.members(db, history.SENDER_TXS, ALICE.address, 1, 1)
    assert total == 3 and [c[-32:] for c in page] == [sent[1]]
    assert history.events(db, c1, 10) == [(h_created, [PENDING, ALICE.address]),
                                          (h_accepted, [ACCEPTED, ALICE.address]), (h_moved, [ACCEPTED, BOB.address])]

    model = world.ok(DEV, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    tuned = world.ok(DEV, RegisterModel("t", ((d, 10_000),), model, 1_000)).hash
    adapter = world.ok(LORA, RegisterAdapter("lora", model, ((d, 10_000),))).hash
    assert sorted(_list(world, history.DATANET_MODELS, d)) == sorted([model, tuned])
    assert _list(world, history.MODEL_CHILDREN, model) == [tuned]
    assert _list(world, history.MODEL_ADAPTERS, model) == [adapter]

    # a receipt matching c1 pays its NEW owner (bob) and its datanet, never alice
    quote = crafted(world, d, 1, (7,)).content  # the output quotes c1's whole text
    inf = world.ok(USER, Infer(model, adapter, b"", 10_000, 3, 5, sha256(quote), quote))
    receipt = queries.get_receipt(db, inf.hash)
    assert receipt is not None
    matched = {m["contribution"]: m["amount"] for m in receipt["matched"]}
    paid_c1 = matched[f"0x{c1.hex()}"]
    assert paid_c1 > 0
    assert _earned(world, ALICE.address) == {}
    assert _earned(world, BOB.address) == {ROLE_MATCHED: paid_c1}
    assert _earned(world, DEV.address) == {ROLE_MODEL_OWNER: 2500}
    assert _earned(world, c1) == {ROLE_MATCHED: paid_c1}
    to_d = sum(e["amount"] for e in receipt["entries"] if e["recipient"] == f"0x{d.hex()}")
    assert sum(_earned(world, d).values()) == paid_c1 + to_d
    # the receipt count the recipient index pages report comes from the history's counter
    assert history.counts(db, history.RECEIPTS_PAID, BOB.address) == {0: 1}
    assert queries.receipts_by_recipient(db, BOB.address)["total"] == 1
    for kind, parent in ((history.MODEL_INFERENCES, model), (history.ADAPTER_INFERENCES, adapter),
                         (history.PAYER_INFERENCES, USER.address)):
        assert _list(world, kind, parent) == [inf.hash]


def test_history_is_written_in_the_blocks_batch_or_not_at_all(world: World, monkeypatch: Any) -> None:
    d = world.ok(OWNER, CreateDatanet("d", "", 0)).hash
    batches: list[dict[bytes, Any]] = []
    real_commit = world.chain.db.commit

    def spy(view: Any, extra: dict[bytes, Any], *args: Any, **kw: Any) -> Any:
        batches.append(dict(extra))
        return real_commit(view, extra, *args, **kw)

    monkeypatch.setattr(world.chain.db, "commit", spy)
    c = world.ok(ALICE, crafted(world, d, 1, (7,))).hash
    reveal = batches[-1]
    assert keys.block_key(world.chain.height) in reveal
    assert keys.history_member_key(history.DATANET_CONTRIBUTIONS, d,
                                   bytes([PENDING]) + keys.u64(world.chain.height) + c) in reveal
    assert set(_history(world)) >= {k for k in reveal if k.startswith(keys.HISTORY)}

    # a block the store refuses (its state root is not the executed one) leaves the history untouched
    before = _history(world)
    ex = world.chain.build_block((world.sign(OWNER, Review(c, 1)).raw,), 99_000, KEYS[0].address)
    bad = ex.block.header.__class__(**{**ex.block.header.__dict__, "state_root": b"\x00" * 32})
    with pytest.raises(ValueError, match="state root"):
        world.chain.commit(ex.block.__class__(bad, ex.block.txs, ex.block.evidence, ex.block.last_commit), ex)
    assert _history(world) == before


def test_reindex_rebuilds_the_history_of_blocks_committed_without_it(world: World, chain_id: str,
                                                                     tmp_path: Any) -> None:
    """A store whose blocks came before the history (here: its history deleted) gets exactly the
    history live commits wrote, by replaying its blocks; a foreign genesis is refused."""
    from conftest import make_genesis

    from state.history_rebuild import RebuildError, rebuild

    d = world.ok(OWNER, CreateDatanet("d", "", 0)).hash
    c1 = world.ok(ALICE, crafted(world, d, 1, (7,))).hash
    world.ok(OWNER, Review(c1, 1))
    world.ok(ALICE, TransferContribution(c1, BOB.address))
    model = world.ok(DEV, RegisterModel("m", ((d, 10_000),), b"", 0)).hash
    quote = crafted(world, d, 1, (7,)).content  # the output quotes c1's whole text
    world.ok(USER, Infer(model, b"", b"", 10_000, 3, 5, sha256(quote), quote))
    live = _history(world)
    assert len(live) > 20
    raw = world.chain.db.raw
    with raw.write_batch() as batch:
        for key in live:
            batch.delete(key)
    raw.put(keys.HISTORY + b"zz-stale", b"x")  # a leftover of older software goes too
    state_before = [kv for kv in raw.iterator() if not kv[0].startswith(keys.HISTORY)]

    with pytest.raises(RebuildError, match="genesis"):
        rebuild(world.chain, make_genesis("another-chain", {KEYS[0].address: 1}), scratch=tmp_path)
    genesis = make_genesis(chain_id, {k.address: 10**9 for k in KEYS})
    assert rebuild(world.chain, genesis, scratch=tmp_path) == len(live)
    assert _history(world) == live
    assert [kv for kv in raw.iterator() if not kv[0].startswith(keys.HISTORY)] == state_before
