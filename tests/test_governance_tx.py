"""Governance rules one by one (docs/governance.md): each test builds a chain on LevelDB, applies
real signed transactions in blocks and checks the exact post-state or the exact rejection.
Attacks: voting twice, voting without stake, depositing after the period, a parameter change that
breaks an invariant, spending more than the pool, replaying a transaction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from governance_support import (
    assert_governance_invariants,
    block,
    content,
    deposit,
    gov_chain,
    ok,
    param_change,
    proposal,
    sign,
    submit,
    vote,
)
from staking_support import CHAIN_ID, V0, V1, double_sign, next_block
from state import keys
from state.accounts import FEE_COLLECTOR, STAKING_POOL, get_account, get_chain_meta
from state.chain import Chain
from state.crypto import PrivateKey
from state.governance import records as R
from state.governance.upgrade import UpgradeNeeded
from state.params import BPS
from state.staking.records import get_signing_info
from state.transition import load_params
from state.tx import Delegate, SubmitProposal, Transfer, Undelegate, sign_tx

ANN = PrivateKey.from_int(31)  # delegates 1_000_000 to V0
BOB = PrivateKey.from_int(32)  # delegates 2_000_000 to V1
CAT = PrivateKey.from_int(33)  # proposer, no stake
DAN = PrivateKey.from_int(34)  # depositor, no stake
EVE = PrivateKey.from_int(35)  # no stake at all
BALANCES = {k.address: 10_000_000 for k in (ANN, BOB, CAT, DAN, EVE)}
YES, ABSTAIN, NO, VETO = R.YES, R.ABSTAIN, R.NO, R.NO_WITH_VETO


@pytest.fixture
def chain(tmp_path) -> Iterator[Chain]:  # type: ignore[no-untyped-def]
    """V0 (4M self + ANN 1M) and V1 (3M self + BOB 2M): 10M bonded from height 1."""
    c = gov_chain(tmp_path / "db", BALANCES)
    ok(c, sign(c, ANN, Delegate(V0.address, 1_000_000)), sign(c, BOB, Delegate(V1.address, 2_000_000)))
    yield c
    c.db.close()


def balance(chain: Chain, key: PrivateKey | bytes) -> int:
    address = key.address if isinstance(key, PrivateKey) else key
    return get_account(chain.db.view(), address).balance


def tally(chain: Chain, proposal_id: int) -> tuple[int, int, int, int, int]:
    t = proposal(chain, proposal_id).final_tally
    return t.yes, t.abstain, t.no, t.no_with_veto, t.bonded


def reasons(results) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.reason for r in results]


def run_to(chain: Chain, height: int) -> None:
    while chain.height < height:
        block(chain)


# ---- the worked example of docs/governance.md ----------------------------------------------------
def test_worked_example_of_the_docs(chain: Chain) -> None:
    """docs/governance.md "Worked example": every number there is asserted here."""
    assert chain.height == 1 and load_params(chain.db.view()).attribution.matched_bps == 6000
    cat_before, dan_before = balance(chain, CAT), balance(chain, DAN)
    ok(chain, sign(chain, CAT, param_change(("attribution.matched_bps", 7000), deposit=2_500)))  # height 2
    p = proposal(chain, 1)
    assert (p.status, p.total_deposit, p.deposit_end_height) == (R.DEPOSIT_PERIOD, 2_500, 6)
    ok(chain, sign(chain, DAN, deposit(1, 7_500)))  # height 3: 10_000 reached, voting 3..6
    p = proposal(chain, 1)
    assert (p.status, p.voting_start_height, p.voting_end_height) == (R.VOTING_PERIOD, 3, 6)
    ok(chain, sign(chain, V0, vote(1, YES)), sign(chain, ANN, vote(1, NO)),
       sign(chain, BOB, vote(1, YES)), sign(chain, V1, vote(1, ABSTAIN)))  # height 4
    ok(chain, sign(chain, BOB, Undelegate(V1.address, 500_000)))  # height 5: stake moves while voting
    ok(chain)  # height 6: the tally, in end_block
    assert tally(chain, 1) == (5_500_000, 3_000_000, 1_000_000, 0, 9_500_000)
    p = proposal(chain, 1)
    assert p.status == R.PASSED and p.deposit_fate == R.DEPOSITS_REFUNDED
    assert balance(chain, CAT) == cat_before - 1 - 2_500 + 2_500  # fee 1; the deposit comes back
    assert balance(chain, DAN) == dan_before - 1
    # in force for block 7 on: the state after block 6 holds it
    assert load_params(chain.db.view()).attribution.matched_bps == 7000


# ---- deposits ----------------------------------------------------------------------------------
def test_min_deposit_at_submission_starts_voting_at_once(chain: Chain) -> None:
    ok(chain, sign(chain, CAT, submit(R.TEXT, R.TextContent(), 10_000)))
    p = proposal(chain, 1)
    assert (p.status, p.voting_start_height, p.voting_end_height) == (R.VOTING_PERIOD, 2, 5)


def test_initial_deposit_below_the_minimum_share_is_refused(chain: Chain) -> None:
    assert reasons(block(chain, sign(chain, CAT, submit(R.TEXT, R.TextContent(), 2_499)))) == ["deposit_too_low"]
    assert R.get_proposal(chain.db.view(), 1) is None


def test_deposit_period_that_expires_refunds_everyone_and_deletes_the_proposal(chain: Chain) -> None:
    cat, dan = balance(chain, CAT), balance(chain, DAN)
    ok(chain, sign(chain, CAT, submit(R.TEXT, R.TextContent(), 3_000)))  # height 2, ends at 6
    ok(chain, sign(chain, DAN, deposit(1, 4_000)))
    run_to(chain, 5)
    assert proposal(chain, 1).total_deposit == 7_000
    block(chain)  # height 6: expired
    assert R.get_proposal(chain.db.view(), 1) is None
    assert balance(chain, CAT) == cat - 1 and balance(chain, DAN) == dan - 1
    assert get_account(chain.db.view(), R.GOVERNANCE_ESCROW).balance == 0


def test_deposits_during_voting_are_accepted_and_share_the_fate(chain: Chain) -> None:
    ok(chain, sign(chain, CAT, submit(R.TEXT, R.TextContent(), 10_000)))  # voting 2..5
    ok(chain, sign(chain, DAN, deposit(1, 500)))
    run_to(chain, 5)  # nobody votes: quorum missed, deposits burned
    p = proposal(chain, 1)
    assert p.status == R.REJECTED and p.deposit_fate == R.DEPOSITS_BURNED and p.total_deposit == 10_500
    assert get_chain_meta(chain.db.view()).burned == 10_500


def test_attack_deposit_after_the_period_is_refused(chain: Chain) -> None:
    ok(chain, sign(chain, CAT, submit(R.TEXT, R.TextContent(), 10_000)))  # voting ends at 5
    run_to(chain, 5)
    dan = balance(chain, DAN)
    results = block(chain, sign(chain, DAN, deposit(1, 1_000)))
    assert reasons(results) == ["proposal_inactive"] and balance(chain, DAN) == dan
    ok(chain, sign(chain, CAT, submit(R.TEXT, R.TextContent(), 2_500)))  # id 2, deposit period ends at 11
    run_to(chain, 11)  # expired and deleted
    assert reasons(block(chain, sign(chain, DAN, deposit(2, 1_000)))) == ["unknown_proposal"]
    assert reasons(block(chain, sign(chain, DAN, deposit(1, 0)))) == ["zero_amount"]


# ---- votes -------------------------------------------------------------------------------------
def test_attack_vote_twice_counts_once_and_the_last_vote_wins(chain: Chain) -> None:
    ok(chain, sign(chain, CAT, submit(R.TEXT, R.TextContent(), 10_000)))  # voting 2..5
    ok(chain, sign(chain, V0, vote(1, YES)))
    n = get_account(chain.db.view(), V0.address).nonce
    ok(chain, sign_tx(V0, CHAIN_ID, n, vote(1, YES), 1), sign_tx(V0, CHAIN_ID, n + 1, vote(1, NO), 1))
    run_to(chain, 5)
    assert tally(chain, 1) == (0, 0, 5_000_000, 0, 10_000_000)  # V0's 5M once, as no
    assert len(R.votes_of(chain.db.view(), 1)) == 1


def test_attack_vote_without_stake_is_refused(chain: Chain) -> None:
    ok(chain, sign(chain, CAT, submit(R.TEXT, R.TextContent(), 10_000)))
    eve = balance(chain, EVE)
    assert reasons(block(chain, sign(chain, EVE, vote(1, YES)))) == ["no_stake"]
    assert balance(chain, EVE) == eve and R.get_vote(chain.db.view(), 1, EVE.address) is None


def test_a_vote_weighs_the_stake_at_the_tally_not_when_cast(chain: Chain) -> None:
    ok(chain, sign(chain, CAT, submit(R.TEXT, R.TextContent(), 10_000)))  # voting 2..5
    ok(chain, sign(chain, ANN, vote(1, VETO)), sign(chain, V0, vote(1, YES)))
    ok(chain, sign(chain, ANN, Undelegate(V0.address, 1_000_000)))  # ANN leaves: her vote weighs 0
    ok(chain, sign(chain, DAN, Delegate(V0.address, 2_000_000)))  # DAN joins V0 without voting: inherits yes
    assert chain.height == 5
    assert tally(chain, 1) == (6_000_000, 0, 0, 0, 11_000_000)
    assert proposal(chain, 1).status == R.PASSED


def test_votes_only_in_the_voting_period_and_with_a_known_option(chain: Chain) -> None:
    ok(chain, sign(chain, CAT, submit(R.TEXT, R.TextContent(), 2_500)))
    assert reasons(block(chain, sign(chain, V0, vote(1, YES)))) == ["not_voting_period"]
    assert reasons(block(chain, sign(chain, V0, vote(9, YES)))) == ["unknown_proposal"]
    ok(chain, sign(chain, DAN, deposit(1, 7_500)))
    assert reasons(block(chain, sign(chain, V0, vote(1, 5)))) == ["invalid_option"]


def test_delegations_to_a_slashed_and_jailed_validator_do_not_vote(chain: Chain) -> None:
    """Double-sign evidence against V1 during the vote: V1 is no longer bonded at the tally."""
    ok(chain, sign(chain, CAT, submit(R.TEXT, R.TextContent(), 10_000)))  # voting 2..5
    ok(chain, sign(chain, V1, vote(1, NO)), sign(chain, BOB, vote(1, NO)), sign(chain, V0, vote(1, YES)))
    next_block(chain, [], signers=[V0, V1], evidence=(double_sign(V1, 2),))  # height 4
    block(chain)  # height 5: tally
    assert tally(chain, 1) == (5_000_000, 0, 0, 0, 5_000_000)
    assert proposal(chain, 1).status == R.PASSED


# ---- outcomes and deposits ----------------------------------------------------------------------
@pytest.mark.parametrize("votes, status, fate, result", [
    ([(V0, ABSTAIN)], R.REJECTED, R.DEPOSITS_REFUNDED, "every vote abstained"),
    ([(ANN, YES)], R.REJECTED, R.DEPOSITS_BURNED, "quorum not reached"),  # 1M of 10M < 33.4%
    ([(V0, YES), (V1, VETO)], R.REJECTED, R.DEPOSITS_BURNED, "vetoed"),  # 5M of 10M > 33.4%
    ([(V0, NO), (V1, YES)], R.REJECTED, R.DEPOSITS_REFUNDED, "threshold not reached"),
    ([(V0, YES), (V1, NO), (ANN, NO)], R.REJECTED, R.DEPOSITS_REFUNDED, "threshold not reached"),  # 4 vs 6
    ([(V0, YES), (BOB, VETO), (V1, ABSTAIN)], R.PASSED, R.DEPOSITS_REFUNDED, "passed"),  # veto 20%, yes 5/7
])
def test_outcome_and_the_fate_of_the_deposits(chain: Chain, votes, status, fate, result) -> None:  # type: ignore[no-untyped-def]
    cat = balance(chain, CAT)
    burned = get_chain_meta(chain.db.view()).burned
    ok(chain, sign(chain, CAT, submit(R.TEXT, R.TextContent(), 10_000)))
    ok(chain, *[sign(chain, k, vote(1, o)) for k, o in votes])
    run_to(chain, 5)
    p = proposal(chain, 1)
    assert (p.status, p.deposit_fate) == (status, fate) and p.result.startswith(result), p.result
    lost = 10_000 if fate == R.DEPOSITS_BURNED else 0
    assert balance(chain, CAT) == cat - 1 - lost
    assert get_chain_meta(chain.db.view()).burned == burned + lost


# ---- parameter changes ----------------------------------------------------------------------------
def test_param_change_is_in_force_from_the_block_after_the_tally(chain: Chain) -> None:
    ok(chain, sign(chain, CAT, param_change(("fees.min_fee", 5))))  # voting 2..5
    ok(chain, sign(chain, V0, vote(1, YES)), sign(chain, V1, vote(1, YES)))
    block(chain)  # 4
    ok(chain, sign(chain, ANN, Transfer(EVE.address, 1), fee=1))  # 5: tally; this block still at fee 1
    assert load_params(chain.db.view()).fees.min_fee == 5
    assert reasons(block(chain, sign(chain, ANN, Transfer(EVE.address, 1), fee=1))) == ["fee_too_low"]
    ok(chain, sign(chain, ANN, Transfer(EVE.address, 1), fee=5))


@pytest.mark.parametrize("changes, message", [
    ((("attribution.matched_bps", BPS + 1),), "matched_bps exceeds"),
    ((("attribution.model_bps", 3000),), "fee split sums to 10500"),
    ((("attribution.no_such", 1),), "unknown params in attribution"),
    ((("nothing.min_fee", 1),), "unknown params sections"),
    ((("min_fee", 1),), "section.field"),
    ((("fees.min_fee", 1), ("fees.min_fee", 2)), "changed twice"),
    ((("attribution.shingle_k", 5),), "cannot change on a live chain"),
    ((("attribution.lsh_bands", 16), ("attribution.lsh_rows", 8)), "cannot change on a live chain"),
    ((("fees.max_block_txs", 0),), "max_block_txs must be at least 1"),
    ((("fees.max_block_txs", 1 << 32),), "expected uint32"),
    ((("staking.max_validators", 0),), "max_validators and signed_blocks_window must be > 0"),
    ((("staking.unbonding_blocks", 0),), "unbonding_blocks must be at least 1"),
    ((("timeouts.propose_ms", 0),), "propose_ms must be in"),
    ((("governance.threshold_bps", BPS),), "nothing can pass again"),
    ((("governance.voting_period_blocks", 0),), "must be > 0"),
    ((("governance.min_deposit", 10**15),), "tokens in circulation"),
    ((("attribution.fingerprint_max", 5000),), "wire limit"),
    ((), "at least one change"),
])
def test_attack_param_change_that_breaks_an_invariant_is_refused_at_submission(
        chain: Chain, changes, message) -> None:  # type: ignore[no-untyped-def]
    cat = balance(chain, CAT)
    results = block(chain, sign(chain, CAT, param_change(*changes)))
    assert reasons(results) == ["invalid_param_change"] and message in results[0].message, results[0].message
    assert balance(chain, CAT) == cat and R.get_proposal(chain.db.view(), 1) is None


def test_param_change_that_breaks_an_invariant_after_another_passed_fails_whole(chain: Chain) -> None:
    """Both valid alone; after the first, the second's fee split sums to 11000: it FAILS, nothing of
    it applies, and its deposit is refunded (it passed)."""
    first = param_change(("attribution.validators_bps", 2000), ("attribution.data_bps", 4000))
    second = param_change(("attribution.model_bps", 3500), ("attribution.data_bps", 4000))
    ok(chain, sign(chain, CAT, first), sign(chain, DAN, second))
    ok(chain, sign(chain, V0, vote(1, YES)), sign(chain, V1, vote(1, YES)),
       sign(chain, V0, vote(2, YES), nonce=get_account(chain.db.view(), V0.address).nonce + 1),
       sign(chain, V1, vote(2, YES), nonce=get_account(chain.db.view(), V1.address).nonce + 1))
    dan = balance(chain, DAN)
    run_to(chain, 5)
    a = load_params(chain.db.view()).attribution
    assert (a.validators_bps, a.model_bps, a.data_bps) == (2000, 2500, 4000)
    assert proposal(chain, 1).status == R.PASSED
    p2 = proposal(chain, 2)
    assert p2.status == R.FAILED and "fee split sums to 11000" in p2.result
    assert p2.deposit_fate == R.DEPOSITS_REFUNDED and balance(chain, DAN) == dan + 10_000


def test_a_new_signed_blocks_window_restarts_every_liveness_window(chain: Chain) -> None:
    next_block(chain, [], signers=[V0])  # V1 misses: it now has a window
    assert get_signing_info(chain.db.view(), V1.address) is not None
    ok(chain, sign(chain, CAT, param_change(("staking.signed_blocks_window", 50))))
    ok(chain, sign(chain, V0, vote(1, YES)), sign(chain, V1, vote(1, YES)))
    run_to(chain, chain.height + 2)
    assert load_params(chain.db.view()).staking.signed_blocks_window == 50
    assert get_signing_info(chain.db.view(), V1.address) is None
    next_block(chain, [], signers=[V0])  # a miss under the new window works
    assert len(get_signing_info(chain.db.view(), V1.address).bitmap) == 7


# ---- the community pool ---------------------------------------------------------------------------
def test_fees_fund_the_pool_and_a_passed_spend_pays_from_it(chain: Chain) -> None:
    pool = get_account(chain.db.view(), R.COMMUNITY_POOL).balance
    ok(chain, sign(chain, DAN, Transfer(EVE.address, 1), fee=100_000))
    assert get_account(chain.db.view(), R.COMMUNITY_POOL).balance == pool + 2_000  # 200 bps of 100_000
    assert get_account(chain.db.view(), FEE_COLLECTOR).balance == 0
    pool += 2_000
    spend = submit(R.COMMUNITY_POOL_SPEND, R.CommunityPoolSpendContent(EVE.address, 1_500), 10_000)
    ok(chain, sign(chain, CAT, spend))
    ok(chain, sign(chain, V0, vote(1, YES)), sign(chain, V1, vote(1, YES)))
    eve = balance(chain, EVE)
    run_to(chain, chain.height + 2)
    assert proposal(chain, 1).status == R.PASSED
    assert balance(chain, EVE) == eve + 1_500
    # fees of 1 or 2 per block since: their 200 bps round to 0
    assert get_account(chain.db.view(), R.COMMUNITY_POOL).balance == pool - 1_500


def test_attack_spend_more_than_the_pool(chain: Chain) -> None:
    ok(chain, sign(chain, DAN, Transfer(EVE.address, 1), fee=100_000))  # pool: 2_000 (+ the fee dust)
    pool = get_account(chain.db.view(), R.COMMUNITY_POOL).balance
    too_much = submit(R.COMMUNITY_POOL_SPEND, R.CommunityPoolSpendContent(EVE.address, pool + 1), 10_000)
    assert reasons(block(chain, sign(chain, CAT, too_much))) == ["insufficient_pool"]
    module = submit(R.COMMUNITY_POOL_SPEND, R.CommunityPoolSpendContent(STAKING_POOL, 10), 10_000)
    assert reasons(block(chain, sign(chain, CAT, module))) == ["invalid_recipient"]
    # two spends that each fit but not together: the second FAILS at execution, the pool never goes negative
    half = pool * 3 // 4
    ok(chain, sign(chain, CAT, submit(R.COMMUNITY_POOL_SPEND, R.CommunityPoolSpendContent(EVE.address, half), 10_000)),
       sign(chain, DAN, submit(R.COMMUNITY_POOL_SPEND, R.CommunityPoolSpendContent(ANN.address, half), 10_000)))
    n0, n1 = (get_account(chain.db.view(), k.address).nonce for k in (V0, V1))
    ok(chain, sign(chain, V0, vote(1, YES), nonce=n0), sign(chain, V0, vote(2, YES), nonce=n0 + 1),
       sign(chain, V1, vote(1, YES), nonce=n1), sign(chain, V1, vote(2, YES), nonce=n1 + 1))
    run_to(chain, chain.height + 2)
    assert proposal(chain, 1).status == R.PASSED
    p2 = proposal(chain, 2)
    assert p2.status == R.FAILED and "insufficient_pool" in p2.result
    assert get_account(chain.db.view(), R.COMMUNITY_POOL).balance < half


# ---- software upgrades ----------------------------------------------------------------------------
def pass_proposal(chain: Chain, body: SubmitProposal) -> int:
    """Submit with the full deposit, both validators vote yes, run to the tally; returns the id."""
    ok(chain, sign(chain, CAT, body))
    proposal_id = R.next_proposal_id(chain.db.view()) - 1
    ok(chain, sign(chain, V0, vote(proposal_id, YES)), sign(chain, V1, vote(proposal_id, YES)))
    run_to(chain, proposal(chain, proposal_id).voting_end_height)
    assert proposal(chain, proposal_id).status == R.PASSED, proposal(chain, proposal_id).result
    return proposal_id


def test_software_upgrade_stops_a_node_without_it_and_resumes_with_it(chain: Chain) -> None:
    upgrade = submit(R.SOFTWARE_UPGRADE, R.SoftwareUpgradeContent("v2", 8, "get v2"), 10_000)
    proposal_id = pass_proposal(chain, upgrade)  # tallied at 5
    assert R.get_upgrade_plan(chain.db.view()) == R.UpgradePlan("v2", 8, "get v2", proposal_id)
    chain.upgrades = frozenset({"0.1.0"})
    run_to(chain, 7)
    with pytest.raises(UpgradeNeeded, match='UPGRADE "v2" NEEDED at height 8'):
        block(chain)
    assert chain.height == 7  # nothing of block 8 was written
    chain.upgrades = frozenset({"0.1.0", "v2"})  # restarted on software that provides v2
    block(chain)
    assert chain.height == 8 and R.get_upgrade_plan(chain.db.view()) is None
    assert R.get_upgrade_done(chain.db.view(), "v2") == R.UpgradeDone(8)
    again = submit(R.SOFTWARE_UPGRADE, R.SoftwareUpgradeContent("v2", 20, ""), 10_000)
    assert reasons(block(chain, sign(chain, CAT, again))) == ["upgrade_done"]


@pytest.mark.parametrize("name, height, reason", [
    ("v3", 1, "upgrade_height_passed"), ("", 50, "invalid_upgrade_name"), ("a b", 50, "invalid_upgrade_name"),
    ("-v3", 50, "invalid_upgrade_name"),
])
def test_software_upgrade_refusals(chain: Chain, name: str, height: int, reason: str) -> None:
    body = submit(R.SOFTWARE_UPGRADE, R.SoftwareUpgradeContent(name, height, ""), 10_000)
    assert reasons(block(chain, sign(chain, CAT, body))) == [reason]


def test_cancel_software_upgrade_removes_the_plan(chain: Chain) -> None:
    pass_proposal(chain, submit(R.SOFTWARE_UPGRADE, R.SoftwareUpgradeContent("v2", 100, ""), 10_000))
    assert R.get_upgrade_plan(chain.db.view()) is not None
    pass_proposal(chain, submit(R.CANCEL_SOFTWARE_UPGRADE, R.CancelSoftwareUpgradeContent(), 10_000))
    assert R.get_upgrade_plan(chain.db.view()) is None


def test_an_upgrade_whose_height_passed_while_voting_fails(chain: Chain) -> None:
    ok(chain, sign(chain, CAT, submit(R.SOFTWARE_UPGRADE, R.SoftwareUpgradeContent("v2", 4, ""), 10_000)))
    ok(chain, sign(chain, V0, vote(1, YES)), sign(chain, V1, vote(1, YES)))
    run_to(chain, 5)
    p = proposal(chain, 1)
    assert p.status == R.FAILED and "upgrade_height_passed" in p.result
    assert R.get_upgrade_plan(chain.db.view()) is None


# ---- bad input, replay --------------------------------------------------------------------------
def test_bad_proposals_are_refused_with_a_reason(chain: Chain) -> None:
    bad = [
        SubmitProposal(9, "t", "", content(R.TextContent()), 10_000),
        SubmitProposal(R.TEXT, " ", "", content(R.TextContent()), 10_000),
        SubmitProposal(R.PARAM_CHANGE, "t", "", content(R.TextContent()), 10_000),
        SubmitProposal(R.TEXT, "t", "", b"\xc0", 10_000),
        SubmitProposal(R.COMMUNITY_POOL_SPEND, "t", "", content(R.CommunityPoolSpendContent(EVE.address, 0)), 10_000),
        SubmitProposal(R.TEXT, "t", "", content(R.TextContent()), 10**9),
    ]
    n = get_account(chain.db.view(), CAT.address).nonce
    results = block(chain, *[sign_tx(CAT, CHAIN_ID, n + i, b, 1) for i, b in enumerate(bad[:1])])
    assert reasons(results) == ["unknown_proposal_kind"]
    for body, reason in zip(bad[1:], ["empty_title", "invalid_content", "invalid_content", "zero_amount",
                                      "insufficient_balance"]):
        assert reasons(block(chain, sign(chain, CAT, body))) == [reason]
    assert R.next_proposal_id(chain.db.view()) == 1


def test_attack_replay_of_a_vote_or_a_deposit(chain: Chain) -> None:
    ok(chain, sign(chain, CAT, submit(R.TEXT, R.TextContent(), 2_500)))
    dep = sign(chain, DAN, deposit(1, 1_000))
    ok(chain, dep)
    assert reasons(block(chain, dep)) == ["stale_nonce"]
    assert proposal(chain, 1).total_deposit == 3_500
    other_chain = sign_tx(DAN, "another-chain", get_account(chain.db.view(), DAN.address).nonce, deposit(1, 1), 1)
    assert reasons(block(chain, other_chain)) == ["invalid_signature"]
    assert_governance_invariants(chain.db.view())


def test_text_proposal_changes_nothing_but_its_record(chain: Chain) -> None:
    before = load_params(chain.db.view())
    pass_proposal(chain, submit(R.TEXT, R.TextContent(), 10_000))
    assert load_params(chain.db.view()) == before
    assert chain.db.view().get(keys.upgrade_plan_key()) is None


def test_governance_changes_its_own_params(chain: Chain) -> None:
    """A passed change of the governance section governs the proposals that come after it."""
    pass_proposal(chain, param_change(("governance.voting_period_blocks", 6), ("governance.min_deposit", 20_000)))
    g = load_params(chain.db.view()).governance
    assert (g.voting_period_blocks, g.min_deposit) == (6, 20_000)
    ok(chain, sign(chain, CAT, submit(R.TEXT, R.TextContent(), 10_000)))  # no longer enough to start voting
    p = proposal(chain, 2)
    assert p.status == R.DEPOSIT_PERIOD
    ok(chain, sign(chain, DAN, deposit(2, 10_000)))
    p = proposal(chain, 2)
    assert (p.status, p.voting_end_height - p.voting_start_height) == (R.VOTING_PERIOD, 6)
