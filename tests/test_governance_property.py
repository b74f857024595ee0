"""Property: under any sequence of proposals, deposits, votes, delegations, undelegations, fees and
double-sign slashing, (1) every final tally equals an independent recomputation from the state
after its block (each delegation to a bonded validator follows its delegator's vote, else its
validator's), and the outcome follows the rules of docs/governance.md; (2) the supply is conserved
and the escrow holds exactly the recorded deposits, at every block."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import event, given, settings
from hypothesis import strategies as st

from governance_support import assert_governance_invariants, gov_chain, submit
from staking_support import CHAIN_ID, V0, V1, double_sign, next_block
from state import keys
from state.accounts import get_account, supply_check
from state.crypto import PrivateKey
from state.governance import records as R
from state.params import BPS
from state.staking.records import Delegation, decode_record, get_delegation
from state.staking.validator_updates import bonded_validators
from state.transition import load_params
from state.tx import Delegate, ProposalDeposit, ProposalVote, Transfer, Undelegate, sign_tx

ACTORS = [PrivateKey.from_int(60 + i) for i in range(4)]
SIGNERS = [*ACTORS, V0, V1]  # validators vote (and pay fees) too
VALIDATORS = [V0.address, V1.address]
GOV = {"deposit_period_blocks": 3, "voting_period_blocks": 3, "quorum_bps": 3000, "veto_bps": 3000}

op = st.one_of(
    st.tuples(st.just("delegate"), st.integers(0, 3), st.integers(0, 1), st.integers(1, 2_000_000)),
    st.tuples(st.just("undelegate"), st.integers(0, 3), st.integers(0, 1), st.integers(1, 10_000)),  # bps
    st.tuples(st.just("vote"), st.integers(0, 5), st.integers(0, 3), st.integers(1, 4)),
    st.tuples(st.just("vote"), st.integers(4, 5), st.integers(0, 3), st.integers(1, 4)),  # validators, often
    st.tuples(st.just("vote"), st.integers(0, 5), st.integers(0, 3), st.sampled_from([1, 1, 2, 3])),
    st.tuples(st.just("deposit"), st.integers(0, 3), st.integers(0, 3), st.integers(1, 8_000)),
    st.tuples(st.just("submit"), st.integers(0, 3), st.just(0), st.integers(2_500, 12_000)),
    st.tuples(st.just("fee"), st.integers(0, 5), st.just(0), st.integers(1, 40_000)),
)
blocks = st.lists(st.tuples(st.lists(op, max_size=5, unique_by=lambda o: o[1]), st.booleans()),
                  min_size=4, max_size=14)


def build(chain, kind: str, who: int, target: int, amount: int, proposals: list[int]):  # type: ignore[no-untyped-def]
    key = SIGNERS[who]
    view = chain.db.view()
    nonce = get_account(view, key.address).nonce
    pid = proposals[target % len(proposals)] if proposals else 1
    if kind == "delegate":
        body = Delegate(VALIDATORS[target], amount)
    elif kind == "undelegate":
        have = get_delegation(view, VALIDATORS[target], key.address)
        body = Undelegate(VALIDATORS[target], max(have * amount // BPS, 1))
    elif kind == "vote":
        body = ProposalVote(pid, amount)
    elif kind == "deposit":
        body = ProposalDeposit(pid, amount)
    elif kind == "submit":
        body = submit(R.TEXT, R.TextContent(), amount)
    else:
        return sign_tx(key, CHAIN_ID, nonce, Transfer(key.address, 1), amount)
    return sign_tx(key, CHAIN_ID, nonce, body, 1)


def recomputed(view, proposal_id: int) -> tuple[dict[int, int], int]:  # type: ignore[no-untyped-def]
    """Stake behind each option, one delegation at a time, straight from the records."""
    votes = {voter: v.option for voter, v in R.votes_of(view, proposal_id)}
    sums: dict[int, int] = defaultdict(int)
    bonded = bonded_validators(view, load_params(view).staking)
    for v in bonded:
        for key, raw in view.iter_prefix(keys.delegation_key(v.operator, b"")):
            option = votes.get(key[-20:], votes.get(v.operator))
            if option is not None:
                sums[option] += decode_record(Delegation, raw).amount
    return sums, sum(v.tokens for v in bonded)


def expected_outcome(sums: dict[int, int], bonded: int, quorum: int, threshold: int, veto: int) -> tuple[int, int]:
    voted = sum(sums.values())
    yes, abstain, vetoes = sums[R.YES], sums[R.ABSTAIN], sums[R.NO_WITH_VETO]
    if bonded == 0:
        return R.REJECTED, R.DEPOSITS_REFUNDED
    if voted * BPS < quorum * bonded:
        return R.REJECTED, R.DEPOSITS_BURNED
    if voted == abstain:
        return R.REJECTED, R.DEPOSITS_REFUNDED
    if vetoes * BPS > veto * voted:
        return R.REJECTED, R.DEPOSITS_BURNED
    return (R.PASSED if yes * BPS > threshold * (voted - abstain) else R.REJECTED), R.DEPOSITS_REFUNDED


@settings(max_examples=30, deadline=None)
@given(blocks)
def test_tally_matches_an_independent_recount_and_tokens_are_conserved(tmp_path_factory, plan) -> None:  # type: ignore[no-untyped-def]
    chain = gov_chain(tmp_path_factory.mktemp("gov"), {a.address: 20_000_000 for a in ACTORS},
                      gov=GOV, extra={"staking": {"double_sign_slash_bps": 2000}})
    try:
        supply = supply_check(chain.db.view())[2]
        # one proposal in its voting period from the start, so that most examples reach a tally
        next_block(chain, [sign_tx(ACTORS[0], CHAIN_ID, 0, submit(R.TEXT, R.TextContent(), 10_000), 1)])
        slashed = False
        for ops, evidence in plan:
            proposals = [p.id for p in R.iter_proposals(chain.db.view())] or [1]
            txs = [build(chain, *o, proposals) for o in ops]
            ev = ()
            if evidence and not slashed and chain.height >= 2:
                ev, slashed = (double_sign(V1, chain.height),), True
            next_block(chain, txs, signers=[V0, V1], evidence=ev)
            view = chain.db.view()
            assert_governance_invariants(view)
            total, burned, same_supply = supply_check(view)
            assert same_supply == supply and total + burned == supply
            g = load_params(view).governance
            for p in R.iter_proposals(view):
                if p.voting_end_height != chain.height:
                    event("no tally in this block")
                    continue
                sums, bonded = recomputed(view, p.id)
                t = p.final_tally
                assert (t.yes, t.abstain, t.no, t.no_with_veto, t.bonded) == (
                    sums[R.YES], sums[R.ABSTAIN], sums[R.NO], sums[R.NO_WITH_VETO], bonded)
                assert (p.status, p.deposit_fate) == expected_outcome(
                    sums, bonded, g.quorum_bps, g.threshold_bps, g.veto_bps)
                event(f"proposal {R.STATUS_NAMES[p.status]}, deposits {R.DEPOSIT_FATE_NAMES[p.deposit_fate]}")
    finally:
        chain.db.close()
