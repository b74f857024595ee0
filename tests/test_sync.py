"""Block sync between two real chains on LevelDB: the pipelined download with worker-thread
signature checks reproduces the source chain exactly, including transactions whose signature
fails, and a peer serving a tampered block or garbage is rejected without changing anything."""

from __future__ import annotations

import pytest

from devnet.prebuilt import ChainTip, append_block
from node.sync import MAX_BLOCKS_PER_RESPONSE, handle_sync_request, sync_from_peers, verified_tx_hashes
from state.block import Block, decode_block
from state.chain import Chain
from state.codec import pack, unpack
from state.crypto import PrivateKey
from state.tx import Transfer, sign_tx
from tests.conftest import VALIDATOR_KEY

SENDERS = [PrivateKey.from_int(700 + i) for i in range(4)]
N_BLOCKS = 9


def build_source(new_chain, chain_id: str) -> tuple[Chain, list[bytes]]:  # type: ignore[no-untyped-def]
    """N_BLOCKS blocks of transfers; block 4 also holds one transfer signed for another chain id
    (recorded as failed with invalid_signature). Returns the chain and that bad tx's bytes."""
    src = new_chain({k.address: 10**12 for k in SENDERS})
    tip = ChainTip()
    nonces = [0] * len(SENDERS)
    bad: list[bytes] = []
    for height in range(1, N_BLOCKS + 1):
        txs = []
        for i, key in enumerate(SENDERS):
            txs.append(sign_tx(key, chain_id, nonces[i], Transfer(SENDERS[(i + 1) % 4].address, height), fee=1).raw)
            nonces[i] += 1
        if height == 4:
            bad.append(sign_tx(SENDERS[0], "another-chain", nonces[0], Transfer(SENDERS[1].address, 5), fee=1).raw)
            txs.append(bad[-1])
        executed, tip = append_block(src, VALIDATOR_KEY, tip, tuple(txs))
        assert [r.reason for r in executed.result.tx_results][-1] == ("invalid_signature" if height == 4 else "")
    return src, bad


def serve(chain: Chain):  # type: ignore[no-untyped-def]
    async def request(peer: str, payload: bytes) -> bytes:
        return handle_sync_request(chain, payload)
    return request


def tampering(chain: Chain, height: int):  # type: ignore[no-untyped-def]
    """A peer that serves ``height`` with one transfer replaced by a differently signed one."""
    async def request(peer: str, payload: bytes) -> bytes:
        resp = unpack(handle_sync_request(chain, payload))
        if resp[0] == "blocks":
            for item in resp[1]:
                block = decode_block(item[0])
                if block.header.height == height:
                    forged = sign_tx(SENDERS[2], chain.chain_id, 999, Transfer(SENDERS[3].address, 1), fee=1).raw
                    item[0] = Block(block.header, (forged,) + block.txs[1:], block.evidence,
                                    block.last_commit).encode()  # type: ignore[attr-defined]
        return pack(resp)
    return request


def assert_same_chain(a: Chain, b: Chain) -> None:
    assert a.height == b.height
    for h in range(1, a.height + 1):
        assert a.get_block_bytes(h) == b.get_block_bytes(h)
        assert a.get_results(h) == b.get_results(h)
    assert a.db.root() == b.db.root()


def test_verified_tx_hashes_excludes_bad_signatures(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    src, bad = build_source(new_chain, chain_id)
    raws = [src.get_block_bytes(h) for h in range(1, N_BLOCKS + 1)]
    all_txs = [tx for raw in raws for tx in decode_block(raw).txs]
    got = verified_tx_hashes(chain_id, raws + [b"\xc1garbage"])
    from state.crypto import sha256
    assert got == {sha256(tx) for tx in all_txs if tx not in bad}
    assert verified_tx_hashes("another-chain", raws) == {sha256(tx) for tx in bad}


@pytest.mark.trio
@pytest.mark.parametrize("batch", [1, 2, MAX_BLOCKS_PER_RESPONSE])
async def test_sync_reproduces_the_chain(new_chain, chain_id, batch) -> None:  # type: ignore[no-untyped-def]
    src, _ = build_source(new_chain, chain_id)
    dst = new_chain({k.address: 10**12 for k in SENDERS})
    seen: list[int] = []
    applied = await sync_from_peers(dst, lambda: ["peer-a"], serve(src), lambda b, ex: seen.append(b.header.height),
                                    batch=batch)
    assert applied == N_BLOCKS
    assert seen == list(range(1, N_BLOCKS + 1))
    assert_same_chain(src, dst)
    assert dst.get_results(4)[-1][1] == "invalid_signature"  # type: ignore[index]


@pytest.mark.trio
async def test_tampered_block_is_rejected_then_good_peer_completes(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    src, _ = build_source(new_chain, chain_id)
    dst = new_chain({k.address: 10**12 for k in SENDERS})
    applied = await sync_from_peers(dst, lambda: ["peer-bad"], tampering(src, 6), lambda b, ex: None, batch=2)
    assert applied == 5 and dst.height == 5  # blocks before the tampered one verify and stay
    for h in range(1, 6):
        assert dst.get_block_bytes(h) == src.get_block_bytes(h)
    applied = await sync_from_peers(dst, lambda: ["peer-good"], serve(src), lambda b, ex: None, batch=2)
    assert applied == N_BLOCKS - 5
    assert_same_chain(src, dst)


@pytest.mark.trio
@pytest.mark.parametrize("answer", [b"", b"\xc1", pack(["blocks", [[b"x"]]]), pack(["blocks", [[b"x", b"y"]]]),
                                    pack(["blocks", "no"]), pack(["error", "nope"])])
async def test_garbage_from_a_peer_changes_nothing(new_chain, chain_id, answer) -> None:  # type: ignore[no-untyped-def]
    src, _ = build_source(new_chain, chain_id)
    dst = new_chain({k.address: 10**12 for k in SENDERS})
    root = dst.db.root()

    async def request(peer: str, payload: bytes) -> bytes:
        if unpack(payload) == ["status"]:
            return handle_sync_request(src, payload)
        return answer

    assert await sync_from_peers(dst, lambda: ["peer-x"], request, lambda b, ex: None) == 0
    assert dst.height == 0 and dst.db.root() == root
