"""Helpers shared by the staking tests: genesis with several validators, blocks with commits and
evidence signed by real keys, and the staking bookkeeping invariants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from state import keys
from state.accounts import FEE_COLLECTOR, STAKING_POOL, UNBONDING_POOL, get_account, supply_check
from state.block import EMPTY_COMMIT, PRECOMMIT, Commit, CommitSig, DuplicateVoteEvidence, SignedVote, Vote
from state.chain import Chain, Executed
from state.crypto import PrivateKey, to_hex
from state.genesis import Genesis, parse_genesis
from state.staking.records import (
    Delegation,
    decode_record,
    delegations_of,
    get_validator,
    iter_unbondings,
    iter_validators,
)
from state.store import StateDB, StateView
from state.transition import BlockContext, TxResult, apply_tx, load_params
from state.tx import Tx

CHAIN_ID = "attrchain-staking"
V0 = PrivateKey.from_int(500)  # genesis validator: operator and consensus key are the same
V1 = PrivateKey.from_int(501)


def make_genesis(
    balances: dict[bytes, int],
    validators: list[tuple[PrivateKey, int]] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Genesis:
    vals = validators if validators is not None else [(V0, 1_000_000)]
    return parse_genesis({
        "chain_id": CHAIN_ID,
        "genesis_time_ms": 1_000,
        "params_preset": "devnet",
        "params": overrides or {},
        "accounts": [{"address": to_hex(a), "balance": b} for a, b in balances.items()],
        "validators": [
            {"operator": to_hex(k.address), "consensus_public_key": to_hex(k.public_key),
             "stake": stake, "moniker": f"v{i}"}
            for i, (k, stake) in enumerate(vals)
        ],
    })


def open_chain(path: Path, genesis: Genesis) -> Chain:
    chain = Chain(StateDB(path))
    chain.init_genesis(genesis)
    return chain


def sign_vote(key: PrivateKey, vote: Vote) -> SignedVote:
    return SignedVote(vote, key.sign(vote.sign_bytes(CHAIN_ID)))


def commit_for(chain: Chain, signers: list[PrivateKey]) -> Commit:
    """A commit for the latest block signed by ``signers`` (real precommit signatures)."""
    h = chain.height
    header = chain.get_header(h)
    assert header is not None
    sigs = []
    for key in sorted(signers, key=lambda k: k.address):
        vote = Vote(PRECOMMIT, h, 0, header.hash(), 5_000 + h, key.address)
        sigs.append(CommitSig(key.address, vote.time_ms, key.sign(vote.sign_bytes(CHAIN_ID))))
    return Commit(h, 0, header.hash(), tuple(sigs))


def next_block(
    chain: Chain,
    txs: list[Tx] | tuple[Tx, ...] = (),
    signers: list[PrivateKey] | None = None,
    evidence: tuple[DuplicateVoteEvidence, ...] = (),
    proposer: bytes | None = None,
) -> tuple[Executed, list[TxResult]]:
    """Build, execute and commit the next block. ``signers=None`` sends no commit (no liveness)."""
    last_commit = EMPTY_COMMIT if signers is None or chain.height == 0 else commit_for(chain, signers)
    ex = chain.build_block(
        tuple(tx.raw for tx in txs),
        2_000 + chain.height * 1000,
        proposer if proposer is not None else V0.address,
        last_commit=last_commit,
        evidence=evidence,
    )
    assert ex.block is not None
    chain.commit(ex.block, ex)
    return ex, ex.result.tx_results


def double_sign(key: PrivateKey, height: int, chain_id: str = CHAIN_ID, round_: int = 0) -> DuplicateVoteEvidence:
    """Two precommits by ``key`` at one height and round for different blocks."""
    votes = []
    for block_hash in (b"\x01" * 32, b"\x02" * 32):
        vote = Vote(PRECOMMIT, height, round_, block_hash, 7_000, key.address)
        votes.append(SignedVote(vote, key.sign(vote.sign_bytes(chain_id))))
    return DuplicateVoteEvidence(votes[0], votes[1])


def apply_alone(chain: Chain, tx: Tx) -> tuple[TxResult, dict[bytes, bytes | None]]:
    """Apply one transaction on a fresh view at the next height; (result, pending writes)."""
    view = chain.db.view()
    ctx = BlockContext(CHAIN_ID, chain.height + 1, 10_000, load_params(view), V0.address)
    result = apply_tx(view, tx, ctx)
    return result, dict(view.block_writes)


def balance(chain: Chain, address: bytes) -> int:
    return get_account(chain.db.view(), address).balance


def set_powers(chain: Chain, height: int) -> dict[bytes, int]:
    """{consensus address: power} of the stored set of ``height``."""
    from state.staking.validator_updates import load_validator_set

    vset = load_validator_set(chain.db.view(), height)
    assert vset is not None, f"no set stored for {height}"
    return {v.address: v.power for v in vset.validators}


def assert_staking_invariants(view: StateView) -> None:
    """Conservation, and every pool equals the records it backs."""
    total, burned, supply = supply_check(view)
    assert total + burned == supply, f"balances {total} + burned {burned} != supply {supply}"
    tokens = 0
    for v in iter_validators(view):
        delegated = sum(amount for _, amount in delegations_of(view, v.operator))
        assert delegated == v.tokens, f"validator {to_hex(v.operator)}: {delegated} != {v.tokens}"
        tokens += v.tokens
    all_delegations = sum(decode_record(Delegation, raw).amount
                          for _, raw in view.iter_prefix(keys.delegation_key(b"", b"")))
    assert all_delegations == tokens == get_account(view, STAKING_POOL).balance
    unbonding = 0
    for completion, validator, delegator, entry in iter_unbondings(view):
        assert entry.amount > 0
        assert view.get(keys.unbonding_by_validator_key(validator, completion, delegator)) is not None
        assert get_validator(view, validator) is not None
        unbonding += entry.amount
    assert unbonding == get_account(view, UNBONDING_POOL).balance
    assert get_account(view, FEE_COLLECTOR).balance >= 0
