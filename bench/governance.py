"""Benchmark: the governance tally over many delegations, against this machine's bare cost of
reading the same delegation records (the floor any tally from state must pay).

Usage: .venv/bin/python bench/governance.py [--delegators N] [--voters-bps B]
Builds a chain with 4 validators and N delegators spread over them (real signed delegate and vote
transactions through apply_block on LevelDB), lets B bps of the delegators vote, then times
tally_votes on the committed state, and iterating + decoding every delegation of the bonded
validators (delegations_of) in the same run. Prints progress, then LAST a JSON object with
tally_ms, floor_ms (the delegation scan), ratio = tally_ms / floor_ms, and us_per_delegation.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

# the repository root first, as in the other benchmarks (bench/state.py would shadow `state`)
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from state.chain import Chain  # noqa: E402
from state.crypto import PrivateKey, to_hex  # noqa: E402
from state.genesis import parse_genesis  # noqa: E402
from state.governance.records import TEXT, TextContent  # noqa: E402
from state.governance.tally import tally_votes  # noqa: E402
from state.store import StateDB  # noqa: E402
from state.staking.records import delegations_of  # noqa: E402
from state.staking.validator_updates import bonded_validators  # noqa: E402
from state.codec import pack  # noqa: E402
from state.tx import Delegate, ProposalVote, SubmitProposal, sign_tx  # noqa: E402

CHAIN_ID = "attrchain-bench"
BLOCK = 2000
REPEAT = 5


def build(tmp: str, n: int, voters_bps: int) -> Chain:
    validators = [PrivateKey.from_int(1 + i) for i in range(4)]
    delegators = [PrivateKey.from_int(10_000 + i) for i in range(n)]
    genesis = parse_genesis({
        "chain_id": CHAIN_ID,
        "params": {"governance": {"min_deposit": 1000, "voting_period_blocks": 1000}},
        "accounts": [{"address": to_hex(k.address), "balance": 10**9} for k in delegators + validators],
        "validators": [{"operator": to_hex(v.address), "consensus_public_key": to_hex(v.public_key),
                        "stake": 10**8} for v in validators],
    })
    chain = Chain(StateDB(Path(tmp) / "gov"))
    chain.init_genesis(genesis)
    txs = [sign_tx(k, CHAIN_ID, 0, Delegate(validators[i % 4].address, 1000 + i), 1).raw
           for i, k in enumerate(delegators)]
    txs.append(sign_tx(validators[0], CHAIN_ID, 0, SubmitProposal(TEXT, "bench", "", pack(TextContent().to_wire()),
                                                                   1000), 1).raw)
    voters = delegators[: n * voters_bps // 10_000]
    votes = [sign_tx(k, CHAIN_ID, 1, ProposalVote(1, 1 + i % 4), 1).raw for i, k in enumerate(voters)]
    votes += [sign_tx(v, CHAIN_ID, 0 if i else 1, ProposalVote(1, 1), 1).raw for i, v in enumerate(validators)]
    for label, batch in (("delegations", txs), ("votes", votes)):
        for start in range(0, len(batch), BLOCK):
            ex = chain.build_block(tuple(batch[start:start + BLOCK]), 10_000 + chain.height, validators[0].address)
            assert ex.block is not None
            failed = [r for r in ex.result.tx_results if not r.ok]
            assert not failed, failed[:3]
            chain.commit(ex.block, ex)
            print(f"{label}: block {chain.height} committed ({min(start + BLOCK, len(batch))}/{len(batch)})",
                  file=sys.stderr, flush=True)
    return chain


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--delegators", type=int, default=20_000)
    ap.add_argument("--voters-bps", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        chain = build(tmp, args.delegators, args.voters_bps)
        params = chain.params().staking
        tally_s, floor_s = [], []
        for _ in range(REPEAT):  # interleaved, so both see the same machine load
            view = chain.db.view()
            start = time.perf_counter()
            t = tally_votes(view, 1, params)
            tally_s.append(time.perf_counter() - start)
            view = chain.db.view()
            start = time.perf_counter()
            count = sum(len(delegations_of(view, v.operator)) for v in bonded_validators(view, params))
            floor_s.append(time.perf_counter() - start)
        chain.db.close()
    tally_ms, floor_ms = min(tally_s) * 1000, min(floor_s) * 1000
    print(f"tally of {count} delegations ({t.voted} of {t.bonded} bonded stake voted): {tally_ms:.1f} ms; "
          f"scanning the same delegations: {floor_ms:.1f} ms", file=sys.stderr)
    print(json.dumps({"delegations": count, "tally_ms": round(tally_ms, 2), "floor_ms": round(floor_ms, 2),
                      "ratio": round(tally_ms / floor_ms, 3), "us_per_delegation": round(tally_ms * 1000 / count, 2)}))


if __name__ == "__main__":
    main()
