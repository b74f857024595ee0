"""The governance RPC methods against a real server over a real Chain on LevelDB: proposals,
proposal, votes, tally (live and final), params, community_pool, upgrade_plan, bad params, and a
proof of a proposal record against the state root."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from governance_support import GOV, content, param_change, sign, submit, vote
from node.config import RPCConfig
from node.mempool import Mempool
from node.rpc.standalone import StandaloneContext, serving
from staking_support import V0, V1, make_genesis, next_block, open_chain
from state import keys
from state.codec import unpack
from state.crypto import PrivateKey, to_hex
from state.governance import records as R
from state.tree.proof import Proof, verify_proof
from state.tx import Delegate

ANN = PrivateKey.from_int(41)
CAT = PrivateKey.from_int(43)


async def call(http: httpx.AsyncClient, method: str, params: Any = None) -> Any:
    body = (await http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}})).json()
    return body


@pytest.fixture
def chain(tmp_path):  # type: ignore[no-untyped-def]
    vals = [(V0, 4_000_000), (V1, 3_000_000)]
    genesis = make_genesis({k.address: 10_000_000 for k in (ANN, CAT, V0, V1)}, vals, {"governance": GOV})
    c = open_chain(tmp_path / "db", genesis)
    yield c, genesis
    c.db.close()


async def test_governance_methods(chain) -> None:  # type: ignore[no-untyped-def]
    c, genesis = chain
    next_block(c, [sign(c, ANN, Delegate(V0.address, 1_000_000)),
                   sign(c, CAT, param_change(("attribution.matched_bps", 7000), deposit=10_000))])
    next_block(c, [sign(c, V0, vote(1, R.YES)), sign(c, ANN, vote(1, R.NO)),
                   sign(c, CAT, submit(R.TEXT, R.TextContent(), 2_500, title="signal"))])
    ctx = StandaloneContext(c, genesis, Mempool(c), proposer=V0.address)
    async with serving(ctx, RPCConfig(max_page=50)) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        listed = (await call(http, "proposals"))["result"]
        assert listed["total"] == 2 and [p["id"] for p in listed["proposals"]] == [1, 2]
        only = (await call(http, "proposals", {"status": "deposit_period"}))["result"]
        assert [p["title"] for p in only["proposals"]] == ["signal"]
        mine = (await call(http, "proposals", {"proposer": to_hex(ANN.address)}))["result"]
        assert mine["total"] == 0
        p = (await call(http, "proposal", {"id": 1}))["result"]
        assert p["kind"] == "param_change" and p["status"] == "voting_period"
        assert p["content"] == {"changes": [{"path": "attribution.matched_bps", "value": 7000}]}
        assert p["escrowed_deposits"] == [{"depositor": to_hex(CAT.address), "amount": 10_000}]
        assert (p["voting_start_height"], p["voting_end_height"]) == (1, 4)
        votes = (await call(http, "votes", {"proposal": 1}))["result"]
        assert {(v["voter"], v["option"]) for v in votes["votes"]} == {
            (to_hex(V0.address), "yes"), (to_hex(ANN.address), "no")}
        live = (await call(http, "tally", {"proposal": 1}))["result"]
        assert live["final"] is False and live["tally"] == {
            "yes": 4_000_000, "abstain": 0, "no": 1_000_000, "no_with_veto": 0, "voted": 5_000_000, "bonded": 8_000_000}
        assert live["result"].startswith("if the voting period ended now: passed")
        params = (await call(http, "params"))["result"]["params"]
        assert params["attribution"]["matched_bps"] == 6000 and params["governance"]["min_deposit"] == 10_000
        pool = (await call(http, "community_pool"))["result"]
        assert pool["address"] == to_hex(R.COMMUNITY_POOL) and pool["escrowed_deposits"] == 12_500
        assert (await call(http, "upgrade_plan", {"name": "v2"}))["result"]["plan"] is None
        # errors: unknown proposal, bad params
        assert (await call(http, "proposal", {"id": 99}))["error"]["code"] == -32001
        assert (await call(http, "tally", {"proposal": 0}))["error"]["code"] == -32602
        assert (await call(http, "proposals", {"status": "won"}))["error"]["code"] == -32602
        assert (await call(http, "votes", {"proposal": "1"}))["error"]["code"] == -32602
        assert (await call(http, "upgrade_plan", {"name": "x" * 65}))["error"]["code"] == -32602
        # the proposal record with a proof against the state root
        q = (await call(http, "abci_query", {"key": to_hex(keys.proposal_key(1)), "prove": True}))["result"]
        root = bytes.fromhex(q["state_root"][2:])
        value = bytes.fromhex(q["value"][2:])
        proof = Proof.from_wire(unpack(bytes.fromhex(q["proof"][2:])))  # type: ignore[attr-defined]
        assert verify_proof(root, keys.proposal_key(1), value, proof)
        assert R.Proposal.from_wire(unpack(value)).title == "a proposal"  # type: ignore[attr-defined]
        # the tally block: final tally, new params in force for the next block
        ctx.produce_block()
        ctx.produce_block()
        final = (await call(http, "tally", {"proposal": 1}))["result"]
        assert final["final"] is True and final["status"] == "passed" and final["tally"]["bonded"] == 8_000_000
        assert (await call(http, "params"))["result"]["params"]["attribution"]["matched_bps"] == 7000
        assert (await call(http, "proposal", {"id": 1}))["result"]["deposits"] == "refunded"
    assert content(R.TextContent()) == b"\x90"
