"""State sync between real chains on LevelDB: a joining node installs a snapshot verified by light-client
checks from a trusted header, then block-syncs the rest; a lying peer (bad chunk, forged snapshot whose
chunk hashes match its own manifest, forged commit, wrong trusted hash) is refused, scored down, and
nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from devnet.prebuilt import ChainTip, append_block
from node.statesync import (
    Manifest,
    SnapshotStore,
    StateSyncer,
    StateSyncError,
    Trust,
    handle_statesync_request,
    write_snapshot,
)
from node.sync import handle_sync_request, sync_from_peers
from p2p.scoring import Offence
from state.chain import Chain
from state.codec import pack, unpack
from state.crypto import PrivateKey, sha256
from state.tx import Transfer, sign_tx
from tests.conftest import VALIDATOR_KEY

SENDERS = [PrivateKey.from_int(800 + i) for i in range(4)]
N_BLOCKS = 14
INTERVAL = 5


def balances() -> dict[bytes, int]:
    return {k.address: 10**12 for k in SENDERS}


def build_source(new_chain, chain_id: str, tmp: Path) -> tuple[Chain, SnapshotStore]:  # type: ignore[no-untyped-def]
    src = new_chain(balances())
    store = SnapshotStore(tmp / "snapshots", INTERVAL, keep=2)
    tip = ChainTip()
    nonces = [0] * len(SENDERS)
    for height in range(1, N_BLOCKS + 1):
        txs = []
        for i, key in enumerate(SENDERS):
            # fresh recipients each block: the state grows, chunks get several keys
            to = PrivateKey.from_int(10_000 + height * 10 + i).address
            txs.append(sign_tx(key, chain_id, nonces[i], Transfer(to, height), fee=1).raw)
            nonces[i] += 1
        executed, tip = append_block(src, VALIDATOR_KEY, tip, tuple(txs))
        if store.due(height):
            store.write(store.take(src.db.raw, height, executed.state_root), height, executed.state_root)
    return src, store


def peer(src: Chain, store: SnapshotStore, chunk_hook=None, light_hook=None):  # type: ignore[no-untyped-def]
    async def request(_peer: str, payload: bytes) -> bytes:
        answer = handle_statesync_request(src, store, payload)
        req = unpack(payload)
        if chunk_hook is not None and req[0] == "chunk":
            return chunk_hook(answer)
        if light_hook is not None and req[0] == "light":
            return light_hook(answer)
        return answer

    async def blocks(_peer: str, payload: bytes) -> bytes:
        return handle_sync_request(src, payload)
    return request, blocks


def syncer(dst: Chain, peers: dict[str, tuple], trust: Trust, reports: list) -> StateSyncer:  # type: ignore[type-arg]
    async def request(p: str, payload: bytes) -> bytes:
        return await peers[p][0](p, payload)

    async def blocks(p: str, payload: bytes) -> bytes:
        return await peers[p][1](p, payload)
    return StateSyncer(dst, lambda: list(peers), request, blocks,
                       lambda p, offence, detail: reports.append((p, offence)), trust, timeout_s=5)


def trusted(src: Chain, height: int = 2) -> Trust:
    return Trust(height, src.get_header(height).hash())  # type: ignore[union-attr]


@pytest.mark.trio
async def test_state_sync_then_block_sync_reproduces_the_chain(new_chain, chain_id, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src, store = build_source(new_chain, chain_id, tmp_path)
    assert sorted(store.manifests) == [5, 10]  # every INTERVAL blocks, the last 2 kept
    dst = new_chain(balances())
    reports: list = []  # type: ignore[type-arg]
    height = await syncer(dst, {"honest": peer(src, store)}, trusted(src), reports).run()
    assert height == 10 and dst.height == 10 and reports == []
    assert dst.db.root() == src.get_header(10).state_root  # type: ignore[union-attr]
    assert dst.get_block_bytes(5) is None  # blocks before the snapshot were never replayed
    applied = await sync_from_peers(dst, lambda: ["honest"], peer(src, store)[1], lambda b, ex: None)
    assert applied == N_BLOCKS - 10 and dst.height == N_BLOCKS
    assert dst.db.root() == src.db.root()
    for h in range(10, N_BLOCKS + 1):
        assert dst.get_block_bytes(h) == src.get_block_bytes(h)
    # the synced node serves light blocks from its snapshot height on (validator set archived)
    assert unpack(handle_statesync_request(dst, None, pack(["light", 10, 2])))[1]


@pytest.mark.trio
async def test_a_snapshot_pruned_meanwhile_is_not_an_offence(new_chain, chain_id, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A peer that listed a snapshot and pruned it before the chunks were asked answers
    ["error", "unknown chunk"]: honest, not scored (it was banned for this on a loaded network)."""
    src, store = build_source(new_chain, chain_id, tmp_path)
    gone = SnapshotStore(tmp_path / "snapshots", INTERVAL, keep=2)  # lists what store lists
    gone.manifests = dict(store.manifests)

    def pruned(answer: bytes) -> bytes:
        gone.manifests.clear()
        return pack(["error", "unknown chunk"])
    dst = new_chain(balances())
    reports: list = []  # type: ignore[type-arg]
    peers = {"pruned": peer(src, gone, chunk_hook=pruned), "honest": peer(src, store)}
    assert await syncer(dst, peers, trusted(src), reports).run() == 10
    assert reports == []


@pytest.mark.trio
async def test_bad_chunk_is_refused_and_scored_then_honest_peer_completes(new_chain, chain_id, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src, store = build_source(new_chain, chain_id, tmp_path)

    def corrupt(answer: bytes) -> bytes:
        tag, raw = unpack(answer)
        return pack([tag, raw[:-1] + bytes([raw[-1] ^ 1])])
    dst = new_chain(balances())
    reports: list = []  # type: ignore[type-arg]
    peers = {"liar": peer(src, store, chunk_hook=corrupt), "honest": peer(src, store)}
    assert await syncer(dst, peers, trusted(src), reports).run() == 10
    assert ("liar", Offence.BAD_SYNC_ANSWER) in reports and all(p == "liar" for p, _ in reports)
    assert dst.db.root() == src.get_header(10).state_root  # type: ignore[union-attr]


@pytest.mark.trio
async def test_forged_snapshot_with_matching_chunk_hashes_is_refused(new_chain, chain_id, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The liar builds a self-consistent snapshot (manifest hashes match its chunks) of a state with
    one balance changed: only the verified header's state root can catch it."""
    src, store = build_source(new_chain, chain_id, tmp_path)
    forged_db = new_chain(balances())  # a scratch LevelDB holding the forged state
    for k, v in src.db.raw.iterator(prefix=b"s"):
        forged_db.db.raw.put(k, v)
    acct = next(k for k, _ in src.db.raw.iterator(prefix=b"sa/"))
    forged_db.db.raw.put(acct, src.db.raw.get(acct)[:-1] + b"\x07")
    forged = write_snapshot(forged_db.db.raw.snapshot(), 10, src.get_header(10).state_root,  # type: ignore[union-attr]
                            tmp_path / "forged")
    lying_store = SnapshotStore(tmp_path / "forged", 0, keep=2)
    assert lying_store.manifests[10] == forged and forged != store.manifests[10]
    dst = new_chain(balances())
    root_before = dst.db.root()
    reports: list = []  # type: ignore[type-arg]
    with pytest.raises(StateSyncError):
        await syncer(dst, {"liar": peer(src, lying_store)}, trusted(src), reports).run()
    assert reports == [("liar", Offence.BAD_SYNC_ANSWER)]
    assert dst.height == 0 and dst.db.root() == root_before  # nothing written


@pytest.mark.trio
async def test_forged_commit_or_untrusted_header_is_refused(new_chain, chain_id, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src, store = build_source(new_chain, chain_id, tmp_path)
    impostor = PrivateKey.from_int(4242)

    def forge_commits(answer: bytes) -> bytes:
        from state.block import Commit, CommitSig
        from state.codec import decode
        tag, items = unpack(answer)
        for item in items[1:]:
            c = decode(Commit, item[1])
            sigs = tuple(CommitSig(s.validator, s.time_ms, impostor.sign(b"x" * 32)) for s in c.signatures)
            item[1] = Commit(c.height, c.round, c.block_hash, sigs).encode()  # type: ignore[attr-defined]
        return pack([tag, items])
    for lie, trust in ((forge_commits, trusted(src)), (None, Trust(2, sha256(b"not the header")))):
        dst = new_chain(balances())
        reports: list = []  # type: ignore[type-arg]
        with pytest.raises(StateSyncError):
            await syncer(dst, {"liar": peer(src, store, light_hook=lie)}, trust, reports).run()
        assert reports and reports[0] == ("liar", Offence.BAD_SYNC_ANSWER)
        assert dst.height == 0


def test_bad_requests_get_one_error_and_manifest_is_bounded(new_chain, chain_id, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src, store = build_source(new_chain, chain_id, tmp_path)
    for payload in (b"", b"\xc1", pack(["chunk", 10, 999]), pack(["chunk", "a", 0]), pack(["light", 0, 5]),
                    pack(["nope"])):
        assert unpack(handle_statesync_request(src, store, payload))[0] == "error"
    with pytest.raises(Exception):
        Manifest.from_wire([10, b"r" * 32, [b"h" * 32] * 70_000])
