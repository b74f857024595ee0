"""The block limits of the genesis params hold in block validation: a proposer cannot make a block
larger than ``fees.max_block_bytes`` of transactions (before, only the 8 MiB decode cap did, so
governance's byte limit bound nobody but honest proposers)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from staking_support import V0, V1, make_genesis, next_block, open_chain

from node.executor import check_header
from state.block import Block, list_hash
from state.chain import Chain
from state.errors import InvalidBlock

LIMIT = 100_000


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    genesis = make_genesis({V0.address: 10**9, V1.address: 10**9}, [(V0, 3_000_000), (V1, 1_000_000)],
                           {"fees": {"max_block_bytes": LIMIT}})
    c = open_chain(tmp_path / "db", genesis)
    next_block(c)
    yield c
    c.db.close()


def with_txs(block: Block, txs: tuple[bytes, ...]) -> Block:
    return dataclasses.replace(block, txs=txs, header=dataclasses.replace(block.header, txs_hash=list_hash(txs)))


def test_transactions_over_max_block_bytes_make_the_block_invalid(chain: Chain) -> None:
    ex = chain.build_block((), 9_000, V0.address)
    assert ex.block is not None
    at_limit = with_txs(ex.block, (b"\x00" * (LIMIT // 2), b"\x00" * (LIMIT // 2)))
    over = with_txs(ex.block, (b"\x00" * (LIMIT // 2), b"\x00" * (LIMIT // 2 + 1)))
    with pytest.raises(InvalidBlock, match="exceed max_block_bytes"):
        check_header(chain, over, LIMIT + 1_000)
    # at the limit the size rule passes; what fails next is the junk itself, not its size
    with pytest.raises(InvalidBlock) as caught:
        check_header(chain, at_limit, LIMIT + 1_000)
    assert "max_block_bytes" not in str(caught.value)


def test_genesis_and_governance_cannot_allow_blocks_over_the_decode_cap() -> None:
    """A max_block_bytes whose blocks no node could decode (MAX_BLOCK_BYTES) would halt the chain at
    its first full block; such params are refused wherever they are built."""
    from state.block import MAX_BLOCK_TX_BYTES
    from state.codec import CodecError
    from state.params import DEFAULT, with_overrides

    assert with_overrides(DEFAULT, {"fees": {"max_block_bytes": MAX_BLOCK_TX_BYTES}}).fees.max_block_bytes == MAX_BLOCK_TX_BYTES
    with pytest.raises(CodecError, match="max_block_bytes must be at most"):
        with_overrides(DEFAULT, {"fees": {"max_block_bytes": MAX_BLOCK_TX_BYTES + 1}})


async def test_the_proposer_fills_max_block_bytes_past_one_gossip_message(tmp_path: Path) -> None:
    """Before, the proposer stopped at 816,000 bytes of transactions (what fits one gossip message)
    whatever genesis fees.max_block_bytes said (4 MiB), so blocks full of contributions never passed
    ~12 of 64 KiB. Now it fills the genesis limit; such a proposal is gossiped without its body
    (peers fetch it by hash, tests/test_e2e_contribution_blocks.py). A real dev node in-process:
    20 reveals of 64 KiB contributions pooled at once land in one block of over 1 MiB."""
    from attribution_kit import make_text
    from nodekit import dev_home, running_node, wait_for

    import node.driver as driver_module
    from state.accounts import get_account
    from state.attribution.commitments import contribution_commitment
    from state.crypto import PrivateKey, sha256
    from state.tx import CommitContribution, Contribute, CreateDatanet, sign_tx

    home = dev_home(tmp_path)
    dev = PrivateKey.load(home.dev_key_file)
    texts = []
    for seed in range(20):
        raw = make_text(seed, words=8_000)[:65_536]
        texts.append(raw[: raw.rindex(b" ")])
    async with running_node(home) as node:
        chain_id = node.chain.chain_id

        def nonce() -> int:
            return get_account(node.chain.db.view(), dev.address).nonce

        await wait_for(lambda: node.chain.height >= 1, 30, "height 1")
        create = sign_tx(dev, chain_id, 0, CreateDatanet("big", "", 0), fee=1)
        node.mempool.submit(create.raw)
        await wait_for(lambda: nonce() == 1, 30, "the datanet")
        reveals = [Contribute(create.hash, t, sha256(b"salt" + t), 0) for t in texts]
        for i, r in enumerate(reveals):
            commitment = contribution_commitment(dev.address, create.hash, sha256(r.content), r.salt)
            node.mempool.submit(sign_tx(dev, chain_id, 1 + i, CommitContribution(commitment), fee=1).raw)
        await wait_for(lambda: nonce() == 21, 30, "the commitments")
        start = node.chain.height
        signed = [sign_tx(dev, chain_id, 21 + i, r, fee=1) for i, r in enumerate(reveals)]
        for tx in signed:  # no await in between: no proposal can take part of them
            node.mempool.submit(tx.raw)
        await wait_for(lambda: nonce() == 41, 60, "the reveals")
        blocks = [node.chain.get_block(h) for h in range(start + 1, node.chain.height + 1)]
        sizes = {b.header.height: sum(map(len, b.txs)) for b in blocks if b is not None}
        biggest = max(sizes.values())
        assert biggest > 1024 * 1024, sizes
        assert biggest > driver_module.MAX_INLINE_BYTES  # so its proposal went without its body
        assert {tx.hash for b in blocks if b is not None for tx in map(_decode, b.txs)} >= {t.hash for t in signed}


def _decode(raw: bytes) -> Any:
    from state.tx import decode_tx

    return decode_tx(raw)
