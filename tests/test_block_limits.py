"""The block limits of the genesis params hold in block validation: a proposer cannot make a block
larger than ``fees.max_block_bytes`` of transactions (before, only the 8 MiB decode cap did, so
governance's byte limit bound nobody but honest proposers)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

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
