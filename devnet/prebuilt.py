"""Building a chain offline: blocks executed on a store, each signed off by a real commit.

By default a single validator key signs every commit; with ``signers`` every member of the height's
validator set whose key is given signs it (a chain whose set changes). Either way the result is a
chain any node can block-sync and verify exactly as one produced by consensus (the benchmark's
10,000-block chain, sync and state-sync tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from consensus.bft_time import next_block_time
from node.executor import validator_set_at
from state.block import EMPTY_COMMIT, PRECOMMIT, Block, Commit, CommitSig, Vote
from state.chain import Chain, Executed
from state.crypto import PrivateKey

COMMIT_DELAY_MS = 1000  # the precommit's timestamp after the block time


@dataclass
class ChainTip:
    """What the next block needs from the previous one."""

    last_commit: Commit = EMPTY_COMMIT
    time_ms: int = 0


def precommit_sig(chain_id: str, validator: PrivateKey, height: int, block_hash: bytes, time_ms: int) -> CommitSig:
    vote = Vote(PRECOMMIT, height, 0, block_hash, time_ms, validator.address)
    return CommitSig(validator.address, time_ms, validator.sign(vote.sign_bytes(chain_id)))


def append_block(chain: Chain, validator: PrivateKey, tip: ChainTip, txs: tuple[bytes, ...],
                 txs_verified: frozenset[bytes] | set[bytes] = frozenset(),
                 signers: Mapping[bytes, PrivateKey] | None = None) -> tuple[Executed, ChainTip]:
    """Execute ``txs`` as the next block proposed by ``validator``, commit it with the precommits of
    ``signers`` (consensus address -> key; default: ``validator`` alone) that are in the height's
    validator set, in set order, and return the executed block and the new tip."""
    view = chain.db.view()
    height = chain.height + 1
    if height == 1:
        time_ms = chain.genesis_time_ms + 1
    else:
        time_ms = next_block_time(tip.time_ms, tip.last_commit, validator_set_at(view, height - 1))
    executed = chain.build_block(
        txs, time_ms, validator.address, last_commit=tip.last_commit,
        validators_hash=validator_set_at(view, height).hash(),
        next_validators_hash=validator_set_at(view, height + 1).hash(),
        txs_verified=txs_verified,
    )
    block: Block | None = executed.block
    assert block is not None
    block_hash = block.hash()
    keys = signers if signers is not None else {validator.address: validator}
    sigs = tuple(precommit_sig(chain.chain_id, keys[m.address], height, block_hash, time_ms + COMMIT_DELAY_MS)
                 for m in validator_set_at(view, height).validators if m.address in keys)
    commit = Commit(height, 0, block_hash, sigs)
    chain.commit(block, executed, seen_commit=commit)
    return executed, ChainTip(commit, time_ms)
