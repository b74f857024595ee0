"""State sync across a validator-set change (real LevelDB chains, real signatures).

The chain starts with validators A0..A3 (power 1000 each). In block 4 two new validators join with
3,000,000 stake each (power 3000) and A2 and A3 undelegate all their stake, so the set of height 6
on is {A0, A1, N0, N1} with total power 8000: what is left of the trusted set (A0, A1) holds a
quarter of it. A node trusting header 2 state-syncs to the snapshot at 10, so its light client must
follow the change: each header's set is the previous header's ``next_validators_hash``, and each
commit must carry > 2/3 of that header's own set. A peer forging headers or commits across the
change is refused, scored down, and nothing is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from staking_support import CHAIN_ID, make_genesis, open_chain
from test_statesync import peer, syncer

from devnet.prebuilt import ChainTip, append_block, precommit_sig
from node.executor import validator_set_at
from node.statesync import SnapshotStore, StateSyncError, Trust, handle_statesync_request
from node.sync import sync_from_peers
from p2p.scoring import Offence
from state.block import Commit, Header
from state.chain import Chain
from state.codec import decode, pack, unpack
from state.crypto import PrivateKey
from state.staking.validator_set import ValidatorSet
from state.tx import CreateValidator, Transfer, Undelegate, sign_tx

OLD = [PrivateKey.from_int(1600 + i) for i in range(4)]  # genesis validators (operator = consensus key)
NEW_OPERATORS = [PrivateKey.from_int(1610 + i) for i in range(2)]
NEW = [PrivateKey.from_int(1620 + i) for i in range(2)]  # their consensus keys
SENDER = PrivateKey.from_int(1630)
ATTACKER = [PrivateKey.from_int(1640 + i) for i in range(3)]
KEYS = {k.address: k for k in OLD + NEW}
CHANGE_TX_HEIGHT = 4
CHANGED_FROM = CHANGE_TX_HEIGHT + 2  # set changes take effect two heights later
N_BLOCKS = 14
INTERVAL = 5
TRUST_HEIGHT = 2


def genesis():  # type: ignore[no-untyped-def]
    return make_genesis({k.address: 10**12 for k in OLD + NEW_OPERATORS + [SENDER]},
                        validators=[(k, 1_000_000) for k in OLD])


def build(tmp: Path) -> tuple[Chain, SnapshotStore]:
    chain = open_chain(tmp / "source", genesis())
    store = SnapshotStore(tmp / "snapshots", INTERVAL, keep=2)
    tip = ChainTip()
    nonces: dict[bytes, int] = {}

    def sign(key: PrivateKey, body: object) -> bytes:
        n = nonces.get(key.address, 0)
        nonces[key.address] = n + 1
        return sign_tx(key, CHAIN_ID, n, body, fee=1).raw

    for height in range(1, N_BLOCKS + 1):
        txs = [sign(SENDER, Transfer(PrivateKey.from_int(1700 + height).address, height))]
        if height == CHANGE_TX_HEIGHT:
            txs += [sign(op, CreateValidator(key.public_key, 3_000_000, f"new{i}"))
                    for i, (op, key) in enumerate(zip(NEW_OPERATORS, NEW))]
            txs += [sign(k, Undelegate(k.address, 1_000_000)) for k in OLD[2:]]
        executed, tip = append_block(chain, OLD[0], tip, tuple(txs), signers=KEYS)
        failed = [r for r in executed.result.tx_results if not r.ok]
        assert not failed, failed
        if store.due(height):
            store.write(store.take(chain.db.raw, height, executed.state_root), height, executed.state_root)
    return chain, store


def set_of(chain: Chain, height: int) -> ValidatorSet:
    return validator_set_at(chain.db.view(), height)


@pytest.fixture
def source(tmp_path):  # type: ignore[no-untyped-def]
    chain, store = build(tmp_path)
    yield chain, store
    chain.db.close()


@pytest.fixture
def joiner(tmp_path):  # type: ignore[no-untyped-def]
    made: list[Chain] = []

    def make() -> Chain:
        made.append(open_chain(tmp_path / f"joiner{len(made)}", genesis()))
        return made[-1]
    yield make
    for chain in made:
        chain.db.close()


def trusted(src: Chain) -> Trust:
    return Trust(TRUST_HEIGHT, src.get_header(TRUST_HEIGHT).hash())  # type: ignore[union-attr]


def test_the_chain_changes_its_set_between_the_trusted_header_and_the_snapshot(source) -> None:  # type: ignore[no-untyped-def]
    src, store = source
    assert sorted(store.manifests) == [5, 10]
    before, after = set_of(src, TRUST_HEIGHT), set_of(src, 10)
    assert {v.address for v in before.validators} == {k.address for k in OLD}
    assert {v.address for v in after.validators} == {k.address for k in OLD[:2] + NEW}
    kept = sum(v.power for v in after.validators if before.has_address(v.address))
    assert kept * 3 < after.total_power  # the trusted set's survivors alone cannot sign after the change
    assert src.get_header(CHANGED_FROM - 1).validators_hash == before.hash()  # type: ignore[union-attr]
    assert src.get_header(CHANGED_FROM).validators_hash == after.hash()  # type: ignore[union-attr]


@pytest.mark.trio
async def test_state_sync_follows_the_set_change_then_block_syncs(source, joiner) -> None:  # type: ignore[no-untyped-def]
    src, store = source
    # the light answer carries the new set exactly where a header's validators_hash changes
    items = unpack(handle_statesync_request(src, store, pack(["light", TRUST_HEIGHT, 10])))[1]
    with_set = [decode(Header, it[0]).height for it in items if it[2]]
    assert with_set == [TRUST_HEIGHT, CHANGED_FROM]
    dst = joiner()
    reports: list = []  # type: ignore[type-arg]
    assert await syncer(dst, {"honest": peer(src, store)}, trusted(src), reports).run() == 10
    assert reports == [] and dst.db.root() == src.get_header(10).state_root  # type: ignore[union-attr]
    applied = await sync_from_peers(dst, lambda: ["honest"], peer(src, store)[1], lambda b, ex: None)
    assert applied == N_BLOCKS - 10 and dst.db.root() == src.db.root()


def resign(src: Chain, item: list[bytes], signers: list[PrivateKey], header: Header | None = None) -> None:
    """Replace the item's commit by precommits of ``signers`` for its (possibly forged) header, in the
    order of the height's real set (signers outside it last)."""
    header = header or decode(Header, item[0])
    vset = set_of(src, header.height)
    order = sorted(signers, key=lambda k: (vset.index_of(k.address) is None, vset.index_of(k.address) or 0, k.address))
    time_ms = decode(Commit, item[1]).signatures[0].time_ms
    sigs = tuple(precommit_sig(CHAIN_ID, k, header.height, header.hash(), time_ms) for k in order)
    item[0] = header.encode()  # type: ignore[attr-defined]
    item[1] = Commit(header.height, 0, header.hash(), sigs).encode()  # type: ignore[attr-defined]


def on_items(src: Chain, change: Callable[[list[bytes], int], None]) -> Callable[[bytes], bytes]:
    """A light-answer hook applying ``change(item, height)`` to every item."""
    def hook(answer: bytes) -> bytes:
        tag, items = unpack(answer)
        for item in items:
            change(item, decode(Header, item[0]).height)
        return pack([tag, items])
    return hook


def removed_validators_sign(src: Chain) -> Callable[[bytes], bytes]:
    """The trusted set (A0..A3, including the two that left) keeps signing after the change."""
    def change(item: list[bytes], height: int) -> None:
        if height >= CHANGED_FROM:
            resign(src, item, OLD)
    return on_items(src, change)


def survivors_alone_sign(src: Chain) -> Callable[[bytes], bytes]:
    """Only the trusted validators still in the set (A0, A1: 2000 of 8000) sign after the change."""
    def change(item: list[bytes], height: int) -> None:
        if height >= CHANGED_FROM:
            resign(src, item, OLD[:2])
    return on_items(src, change)


def under_two_thirds_of_the_new_set(src: Chain) -> Callable[[bytes], bytes]:
    """A0, A1 and N0 sign height 7: 5000 of 8000 is not more than 2/3."""
    def change(item: list[bytes], height: int) -> None:
        if height == CHANGED_FROM + 1:
            resign(src, item, OLD[:2] + NEW[:1])
    return on_items(src, change)


def forged_set_at_the_change(src: Chain) -> Callable[[bytes], bytes]:
    """Header 6 is real, but the set sent with it is the attacker's, who signs commit 6."""
    forged = ValidatorSet.new([(k.public_key, 3000) for k in ATTACKER])

    def change(item: list[bytes], height: int) -> None:
        if height == CHANGED_FROM:
            item[2] = pack(forged.to_wire())  # type: ignore[attr-defined]
            resign(src, item, ATTACKER)
    return on_items(src, change)


def forged_header_announcing_the_attackers(src: Chain) -> Callable[[bytes], bytes]:
    """Header 6 forged to name the attacker's set (its validators_hash), sent with that set and a
    commit of the attacker's keys: self-consistent, but not what header 5 announced."""
    forged = ValidatorSet.new([(k.public_key, 3000) for k in ATTACKER])

    def change(item: list[bytes], height: int) -> None:
        if height == CHANGED_FROM:
            header = dataclasses.replace(decode(Header, item[0]), validators_hash=forged.hash())
            item[2] = pack(forged.to_wire())  # type: ignore[attr-defined]
            resign(src, item, ATTACKER, header)
    return on_items(src, change)


@pytest.mark.trio
@pytest.mark.parametrize("lie, reason", [
    (removed_validators_sign, "commit 6: commit signature from a validator outside the set"),
    (survivors_alone_sign, "commit 6: commit power 2000 is not more than 2/3 of 8000"),
    (under_two_thirds_of_the_new_set, "commit 7: commit power 5000 is not more than 2/3 of 8000"),
    (forged_set_at_the_change, "header 6: validator set missing or wrong"),
    (forged_header_announcing_the_attackers, "header 6: validator set differs from the one announced"),
])
async def test_forged_headers_or_commits_across_the_change_are_refused(source, joiner, lie, reason,  # type: ignore[no-untyped-def]
                                                                       caplog) -> None:
    src, store = source
    after_only = SnapshotStore(store.root, 0, keep=2)  # the liar offers only the snapshot after the change
    after_only.manifests = {10: store.manifests[10]}
    dst = joiner()
    root_before = dst.db.root()
    reports: list = []  # type: ignore[type-arg]
    with pytest.raises(StateSyncError):
        await syncer(dst, {"liar": peer(src, after_only, light_hook=lie(src))}, trusted(src), reports).run()
    assert reports == [("liar", Offence.BAD_SYNC_ANSWER)]
    assert f"peer liar refused: {reason}" in caplog.text
    assert dst.height == 0 and dst.db.root() == root_before  # nothing written


@pytest.mark.trio
async def test_a_resigned_commit_with_enough_of_the_new_set_is_accepted(source, joiner) -> None:  # type: ignore[no-untyped-def]
    """Control for the forgeries above: the same re-signing, by N0, N1 and A0 (7000 of 8000), verifies;
    what the light client refused there was the signers, not the re-signing."""
    src, store = source

    def change(item: list[bytes], height: int) -> None:
        if height >= CHANGED_FROM:
            resign(src, item, NEW + OLD[:1])
    dst = joiner()
    reports: list = []  # type: ignore[type-arg]
    assert await syncer(dst, {"peer": peer(src, store, light_hook=on_items(src, change))}, trusted(src),
                        reports).run() == 10
    assert reports == []
