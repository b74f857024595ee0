"""Helpers shared by the governance tests: a chain with short governance periods, transactions
signed with automatic nonces, and the governance bookkeeping invariants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from staking_support import CHAIN_ID, V0, V1, assert_staking_invariants, make_genesis, next_block, open_chain
from state import keys
from state.accounts import get_account
from state.chain import Chain
from state.codec import pack
from state.crypto import PrivateKey
from state.governance import records as R
from state.store import StateView
from state.transition import TxResult
from state.tx import ProposalDeposit, ProposalVote, SubmitProposal, Tx, sign_tx

# min_deposit 10_000 (initial 2_500), deposit period 4 blocks, voting period 3 blocks
GOV = {"min_deposit": 10_000, "min_initial_deposit_bps": 2500, "deposit_period_blocks": 4,
       "voting_period_blocks": 3, "quorum_bps": 3340, "threshold_bps": 5000, "veto_bps": 3340,
       "community_pool_bps": 200}


def gov_chain(path: Path, balances: dict[bytes, int], validators: list[tuple[PrivateKey, int]] | None = None,
              gov: dict[str, int] | None = None, extra: dict[str, Any] | None = None) -> Chain:
    overrides: dict[str, Any] = {"governance": {**GOV, **(gov or {})}, **(extra or {})}
    vals = validators if validators is not None else [(V0, 4_000_000), (V1, 3_000_000)]
    funded = {**{k.address: 1_000_000 for k, _ in vals}, **balances}  # validators pay their vote fees
    return open_chain(path, make_genesis(funded, vals, overrides))


def sign(chain: Chain, key: PrivateKey, body: Any, fee: int = 1, nonce: int | None = None) -> Tx:
    """``body`` signed by ``key`` with its next committed nonce (or ``nonce``)."""
    n = get_account(chain.db.view(), key.address).nonce if nonce is None else nonce
    return sign_tx(key, CHAIN_ID, n, body, fee)


def block(chain: Chain, *txs: Tx) -> list[TxResult]:
    """Commit the next block with ``txs`` (signed by V0 and V1) and check the invariants after it."""
    _, results = next_block(chain, list(txs), signers=[V0, V1])
    assert_governance_invariants(chain.db.view())
    return results


def ok(chain: Chain, *txs: Tx) -> None:
    results = block(chain, *txs)
    assert all(r.ok for r in results), [(r.reason, r.message) for r in results]


def content(obj: Any) -> bytes:
    return pack(obj.to_wire())


def submit(kind: int, body: Any, deposit: int, title: str = "a proposal") -> SubmitProposal:
    return SubmitProposal(kind, title, "", content(body), deposit)


def param_change(*changes: tuple[str, int], deposit: int = 10_000) -> SubmitProposal:
    return submit(R.PARAM_CHANGE, R.ParamChangeContent(tuple(changes)), deposit)


def vote(proposal: int, option: int) -> ProposalVote:
    return ProposalVote(proposal, option)


def deposit(proposal: int, amount: int) -> ProposalDeposit:
    return ProposalDeposit(proposal, amount)


def proposal(chain: Chain, proposal_id: int) -> R.Proposal:
    p = R.get_proposal(chain.db.view(), proposal_id)
    assert p is not None, f"no proposal {proposal_id}"
    return p


def assert_governance_invariants(view: StateView) -> None:
    """Conservation and staking pools, and the escrow holds exactly the recorded deposits of the
    proposals still in their deposit or voting period."""
    assert_staking_invariants(view)
    escrowed = 0
    for key, raw in view.iter_prefix(keys.proposal_deposits_prefix()):
        proposal_id = int.from_bytes(key[-28:-20], "big")
        p = R.get_proposal(view, proposal_id)
        assert p is not None and p.status in (R.DEPOSIT_PERIOD, R.VOTING_PERIOD), f"stray deposit of {proposal_id}"
        escrowed += R._decode(R.DepositRecord, raw).amount
    assert escrowed == get_account(view, R.GOVERNANCE_ESCROW).balance
    for p in R.iter_proposals(view):
        if p.status in (R.DEPOSIT_PERIOD, R.VOTING_PERIOD):
            assert p.total_deposit == sum(a for _, a in R.deposits_of(view, p.id))
