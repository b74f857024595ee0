"""Property: any sequence of staking operations, fees, missed signatures and double-sign evidence
conserves the supply at every block, keeps every pool equal to the records it backs, and keeps the
validator set within its bounds."""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from staking_support import (
    CHAIN_ID,
    V0,
    V1,
    assert_staking_invariants,
    double_sign,
    make_genesis,
    next_block,
    open_chain,
    set_powers,
)
from state.staking import handlers as staking
from state.accounts import get_account
from state.crypto import PrivateKey, from_hex
from state.tx import CreateValidator, Delegate, Transfer, Undelegate, Unjail, sign_tx

ACTORS = [PrivateKey.from_int(40 + i) for i in range(4)]
CONSENSUS = [PrivateKey.from_int(700 + i) for i in range(4)]
ALL_SIGNERS = [V0, V1, *CONSENSUS]
OPERATORS = [V0.address, V1.address] + [a.address for a in ACTORS]
MAX_VALIDATORS = 3

op = st.one_of(
    st.tuples(st.just("create"), st.integers(0, 3), st.integers(0, 3), st.integers(500, 400_000)),
    st.tuples(st.just("delegate"), st.integers(0, 3), st.integers(0, 5), st.integers(0, 300_000)),
    st.tuples(st.just("delegate"), st.integers(0, 3), st.integers(0, 1), st.integers(1, 300_000)),
    st.tuples(st.just("undelegate"), st.integers(0, 3), st.integers(0, 5), st.integers(0, 10_000)),  # bps
    st.tuples(st.just("unjail"), st.integers(0, 3), st.just(0), st.just(0)),
    st.tuples(st.just("fee"), st.integers(0, 3), st.just(0), st.integers(1, 50_000)),
)
block = st.tuples(
    st.lists(op, max_size=4, unique_by=lambda o: o[1]),  # one tx per actor: no nonce gaps
    st.sets(st.integers(0, len(ALL_SIGNERS) - 1)),  # who signs the previous block
    st.one_of(st.none(), st.tuples(st.integers(0, len(ALL_SIGNERS) - 1), st.integers(1, 4))),  # evidence
)


def build_tx(view, kind: str, actor: int, target: int, amount: int, nonce: int):  # type: ignore[no-untyped-def]
    key = ACTORS[actor]
    if kind == "create":
        body = CreateValidator(CONSENSUS[target].public_key, amount, f"n{actor}")
    elif kind == "delegate":
        body = Delegate(OPERATORS[target], amount)
    elif kind == "undelegate":  # a share (``amount`` bps) of one of the actor's delegations, if any
        mine = staking.delegations(view, delegator=key.address)
        if not mine:
            body = Undelegate(OPERATORS[target], amount)
        else:
            d = mine[target % len(mine)]
            body = Undelegate(from_hex(d["validator"]), d["amount"] * amount // 10_000)
    elif kind == "unjail":
        body = Unjail()
    else:
        return sign_tx(key, CHAIN_ID, nonce, Transfer(key.address, 1), amount)
    return sign_tx(key, CHAIN_ID, nonce, body, 1 + amount % 7)


@settings(max_examples=25, deadline=None)
@given(st.lists(block, min_size=1, max_size=10))
def test_random_staking_conserves_and_keeps_pools_consistent(tmp_path_factory, blocks) -> None:  # type: ignore[no-untyped-def]
    overrides = {"staking": {"unbonding_blocks": 3, "signed_blocks_window": 4, "min_signed_bps": 5000,
                             "jail_blocks": 2, "evidence_max_age_blocks": 6, "max_validators": MAX_VALIDATORS,
                             "downtime_slash_bps": 1000, "double_sign_slash_bps": 3000}}
    genesis = make_genesis({a.address: 1_000_000 for a in ACTORS}, [(V0, 3_000_000), (V1, 1_000_000)], overrides)
    chain = open_chain(tmp_path_factory.mktemp("staking"), genesis)
    try:
        seen: set[bytes] = set()
        for ops, signer_ids, ev in blocks:
            nonces = [get_account(chain.db.view(), a.address).nonce for a in ACTORS]
            txs = []
            for kind, actor, target, amount in ops:
                txs.append(build_tx(chain.db.view(), kind, actor, target, amount, nonces[actor]))
                nonces[actor] += 1
            evidence = ()
            if ev is not None and chain.height >= 2:
                key, back = ALL_SIGNERS[ev[0]], ev[1]
                offence = max(1, chain.height - back)
                candidate = double_sign(key, offence, round_=chain.height)
                if key.address in set_powers(chain, offence) and candidate.hash() not in seen:
                    evidence = (candidate,)
                    seen.add(candidate.hash())
            signers = [ALL_SIGNERS[i] for i in sorted(signer_ids)]
            _, results = next_block(chain, txs, signers=signers, evidence=evidence)
            for (kind, *_), r in zip(ops, results):
                event(f"{kind}: {r.reason or 'ok'}")
            if evidence:
                event("evidence included")
            view = chain.db.view()
            assert_staking_invariants(view)
            for a in ACTORS:
                assert get_account(view, a.address).balance >= 0
            if any(v["jailed"] and not v["tombstoned"] for v in staking.list_validators(view)):
                event("a validator is jailed for downtime")
            nxt = set_powers(chain, chain.height + 2)
            assert 1 <= len(nxt) <= MAX_VALIDATORS and all(p > 0 for p in nxt.values())
    finally:
        chain.db.close()
