"""`attrchain tx submit_proposal | deposit | vote` and `attrchain query proposals | proposal | votes |
tally | params | community_pool | upgrade_plan` against a real RPC server over a real Chain making
blocks, and the clear refusals of bad governance options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from conftest import VALIDATOR_KEY, make_genesis
from node.cli import main
from node.mempool import Mempool
from node.rpc.standalone import StandaloneContext, serving
from state.crypto import PrivateKey, to_hex

ALICE = PrivateKey.from_int(1)
BALANCES = {ALICE.address: 10**12, VALIDATOR_KEY.address: 10**9}
GOV = {"governance": {"voting_period_blocks": 100_000, "min_deposit": 10_000}}


async def cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = await trio.to_thread.run_sync(main, list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


async def cli_json(capsys: Any, *argv: str) -> Any:
    rc, out, err = await cli(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


@pytest.fixture
async def url(new_chain, chain_id):  # type: ignore[no-untyped-def]
    chain = new_chain(BALANCES, overrides=GOV)
    ctx = StandaloneContext(chain, make_genesis(chain_id, BALANCES, overrides=GOV), Mempool(chain),
                            proposer=VALIDATOR_KEY.address)
    async with serving(ctx) as served, trio.open_nursery() as nursery:
        nursery.start_soon(ctx.run_blocks, 0.02)
        yield served
        nursery.cancel_scope.cancel()


async def test_every_governance_transaction_and_query_through_the_cli(url: str, tmp_path: Path, capsys: Any) -> None:
    alice, validator = str(tmp_path / "alice.json"), str(tmp_path / "validator.json")
    ALICE.save(alice)
    VALIDATOR_KEY.save(validator)
    rpc = ("--rpc", url)
    out = await cli_json(capsys, "tx", "submit_proposal", "--type", "param_change", "--change",
                         "attribution.matched_bps=7000", "--change", "fees.min_fee=2", "--title", "two changes",
                         "--deposit", "2500", "--key", alice, "--wait", *rpc)
    assert out["result"]["code"] == 0 and out["proposal_id"] == 1
    out = await cli_json(capsys, "tx", "submit_proposal", "--type", "software_upgrade", "--name", "v2", "--height",
                         "100000", "--title", "v2", "--deposit", "10000", "--key", alice, "--wait", *rpc)
    assert out["proposal_id"] == 2
    out = await cli_json(capsys, "tx", "deposit", "--proposal", "1", "--amount", "7500", "--key", alice, "--wait", *rpc)
    assert out["result"]["code"] == 0
    out = await cli_json(capsys, "tx", "vote", "--proposal", "1", "--option", "no_with_veto", "--key", validator,
                         "--wait", *rpc)
    assert out["result"]["code"] == 0
    listed = await cli_json(capsys, "query", "proposals", "status=voting_period", *rpc)
    assert [p["id"] for p in listed["proposals"]] == [1, 2]
    p = await cli_json(capsys, "query", "proposal", "id=1", *rpc)
    assert p["content"]["changes"] == [{"path": "attribution.matched_bps", "value": 7000},
                                       {"path": "fees.min_fee", "value": 2}]
    assert p["total_deposit"] == 10_000
    votes = await cli_json(capsys, "query", "votes", "proposal=1", *rpc)
    assert votes["votes"] == [{"voter": to_hex(VALIDATOR_KEY.address), "option": "no_with_veto",
                               "height": votes["votes"][0]["height"]}]
    tally = await cli_json(capsys, "query", "tally", "proposal=1", *rpc)
    assert tally["tally"]["no_with_veto"] == tally["tally"]["bonded"] == 1_000_000
    assert "vetoed" in tally["result"]
    params = await cli_json(capsys, "query", "params", *rpc)
    assert params["params"]["governance"]["min_deposit"] == 10_000
    pool = await cli_json(capsys, "query", "community_pool", *rpc)
    assert pool["escrowed_deposits"] == 20_000
    rc, out, _ = await cli(capsys, "query", "upgrade_plan", *rpc)  # human-readable form
    assert rc == 0 and "plan: -" in out  # still being voted on: nothing scheduled
    # refused by the chain, with the reason
    rc, _, err = await cli(capsys, "tx", "vote", "--proposal", "1", "--option", "yes", "--key", alice, *rpc)
    assert rc == 1 and "no_stake" in err
    rc, _, err = await cli(capsys, "tx", "submit_proposal", "--type", "param_change", "--change",
                           "attribution.shingle_k=5", "--title", "t", "--deposit", "10000", "--key", alice, *rpc)
    assert rc == 1 and "invalid_param_change" in err and "cannot change on a live chain" in err


@pytest.mark.parametrize("argv, message", [
    (["submit_proposal", "--type", "param_change", "--title", "t", "--deposit", "1"], "needs --change"),
    (["submit_proposal", "--type", "param_change", "--change", "fees.min_fee", "--title", "t", "--deposit", "1"],
     "SECTION.FIELD=VALUE"),
    (["submit_proposal", "--type", "community_pool_spend", "--recipient", A20 := "0x" + "cd" * 20, "--title", "t",
      "--deposit", "1"], "needs --amount"),
    (["submit_proposal", "--type", "community_pool_spend", "--recipient", A20, "--amount", "-3", "--title", "t",
      "--deposit", "1"], "invalid submit_proposal transaction"),
    (["submit_proposal", "--type", "software_upgrade", "--name", "v2", "--title", "t", "--deposit", "1"],
     "needs --height"),
    (["submit_proposal", "--type", "bribe", "--title", "t", "--deposit", "1"], "invalid choice"),
    (["vote", "--proposal", "1", "--option", "maybe"], "invalid choice"),
])
async def test_bad_governance_options_are_refused_offline(argv: list[str], message: str, tmp_path: Path,
                                                          capsys: Any) -> None:
    key = str(tmp_path / "k.json")
    ALICE.save(key)
    offline = ["--key", key, "--dry-run", "--chain-id", "c", "--nonce", "0", "--fee", "1"]
    try:
        rc, _, err = await cli(capsys, "tx", *argv, *offline)
    except SystemExit as exc:  # argparse refuses before the command runs
        rc, err = int(exc.code or 0), capsys.readouterr().err
    assert rc == 2 and message in err, err
