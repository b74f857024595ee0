"""Validating a received block against the chain, then executing it (without writing).

Used by the consensus driver for proposals and by block sync for downloaded blocks. Every rule a
block header must satisfy is checked here, in one place, before any state is touched; the state
transition then runs on a fresh view and its root and results must match the header.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from consensus.bft_time import InvalidBlockTime, is_valid_block_time
from state.staking.validator_set import ValidatorSet
from consensus.votes import InvalidCommit, Verifier, verify_commit
from state.crypto import verify as ed25519_verify
from state import keys
from state.block import BLOCK_VERSION, EMPTY_COMMIT, MAX_BLOCK_BYTES, Block, evidence_list_hash, list_hash
from state.chain import Chain, Executed
from state.errors import InvalidBlock
from state.store import StateView

# Proposer checks walk the priority rounds one by one; a round number beyond this (only a hostile
# message names one: the machine rejects rounds past its lookahead) is checked for membership only.
MAX_PROPOSER_ROUNDS = 1_000


def validator_set_at(view: StateView, height: int) -> ValidatorSet:
    """The validator set that signs block ``height`` (stored by staking at least one height ahead)."""
    try:
        # through the store's decoded-object cache: the same stored bytes are decoded once (~90 us
        # for 16 validators), not at each of the several uses per height
        found = view.get_obj(keys.validator_set_key(height), ValidatorSet)
    except ValueError as exc:  # msgpack's errors and CodecError (a ValueError)
        raise InvalidBlock(f"stored validator set for height {height} is corrupt: {exc}") from exc
    if found is None:
        raise InvalidBlock(f"no validator set is known for height {height}")
    return found


def proposers_up_to(valset: ValidatorSet, last_round: int) -> set[bytes]:
    """The addresses that propose in rounds 0..last_round of the height ``valset`` belongs to."""
    found = {valset.get_proposer().address}
    for r in range(1, min(last_round, MAX_PROPOSER_ROUNDS) + 1):
        found.add(valset.proposer_after(r).address)
    return found


def check_header(chain: Chain, block: Block, block_size: int, proposer_round: int | None = None,
                 verify: Verifier = ed25519_verify) -> None:
    """Every header rule that does not need execution. Raises InvalidBlock.

    ``verify`` checks the last commit's signatures (the consensus driver passes its cache of
    precommit signatures it already verified as votes: the same bytes, not checked twice).

    ``header.proposer`` must be a member of the height's validator set; with ``proposer_round``
    (the round of the proposal carrying the block, or of the commit deciding it) it must be the
    proposer of one of the rounds 0..proposer_round (a block re-proposed with a proof of lock was
    built by the proposer of an earlier round).
    """
    h = block.header
    height = chain.height + 1
    if block_size > MAX_BLOCK_BYTES:
        raise InvalidBlock(f"block of {block_size} bytes exceeds {MAX_BLOCK_BYTES}")
    if h.version != BLOCK_VERSION:
        raise InvalidBlock(f"unknown block version {h.version}")
    if h.chain_id != chain.chain_id:
        raise InvalidBlock(f"block is for chain {h.chain_id!r}")
    if h.height != height:
        raise InvalidBlock(f"block height {h.height}, expected {height}")
    view = chain.db.view()
    params = chain.params()
    if len(block.txs) > params.fees.max_block_txs:
        raise InvalidBlock(f"{len(block.txs)} transactions exceed max_block_txs")
    tx_bytes = sum(len(tx) for tx in block.txs)
    if tx_bytes > params.fees.max_block_bytes:
        raise InvalidBlock(f"{tx_bytes} bytes of transactions exceed max_block_bytes ({params.fees.max_block_bytes})")
    if h.txs_hash != list_hash(block.txs):
        raise InvalidBlock("txs_hash does not match the transactions")
    if h.evidence_hash != evidence_list_hash(block.evidence):
        raise InvalidBlock("evidence_hash does not match the evidence")
    if h.last_commit_hash != block.last_commit.hash():
        raise InvalidBlock("last_commit_hash does not match the last commit")
    valset = validator_set_at(view, height)
    if h.validators_hash != valset.hash():
        raise InvalidBlock("validators_hash is not the hash of this height's validator set")
    if not valset.has_address(h.proposer):
        raise InvalidBlock("the block's proposer is not in this height's validator set")
    if proposer_round is not None and h.proposer not in proposers_up_to(valset, proposer_round):
        raise InvalidBlock(f"the block's proposer proposes in none of the rounds 0..{proposer_round}")
    if h.next_validators_hash != validator_set_at(view, height + 1).hash():
        raise InvalidBlock("next_validators_hash is not the hash of the next height's validator set")
    prev = chain.get_header(height - 1)
    if prev is None:
        if h.last_block_hash != b"" or block.last_commit != EMPTY_COMMIT:
            raise InvalidBlock("the first block has no previous block or commit")
        genesis_time = chain.genesis_time_ms
        if h.time_ms <= genesis_time:
            raise InvalidBlock("the first block's time must be after genesis time")
        return
    if h.last_block_hash != prev.hash():
        raise InvalidBlock("last_block_hash is not the previous block's hash")
    prev_set = validator_set_at(view, height - 1)
    try:
        verify_commit(h.chain_id, prev_set, block.last_commit, height - 1, prev.hash(), verify)
    except InvalidCommit as exc:
        raise InvalidBlock(f"last commit: {exc}") from exc
    try:
        ok = is_valid_block_time(h.time_ms, prev.time_ms, block.last_commit, prev_set)
    except InvalidBlockTime as exc:
        raise InvalidBlock(f"block time: {exc}") from exc
    if not ok:
        raise InvalidBlock("block time is not the BFT time of its last commit")


def validate_and_execute(chain: Chain, block: Block, block_size: int,
                         verified: frozenset[bytes] | set[bytes] = frozenset(),
                         proposer_round: int | None = None, verify: Verifier = ed25519_verify,
                         known_tx: Callable[[bytes], Any] | None = None) -> Executed:
    """Check the header, execute the block on a fresh view, and compare root and results."""
    check_header(chain, block, block_size, proposer_round, verify)
    executed = chain.execute(block, verified, known_tx)
    if executed.state_root != block.header.state_root:
        raise InvalidBlock("state_root differs from the result of executing the block")
    if executed.result.results_hash() != block.header.results_hash:
        raise InvalidBlock("results_hash differs from the result of executing the block")
    return executed
