"""The `attrchain keys | tx | query` client against a real RPC server over a real Chain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from node.cli import main
from node.rpc.standalone import StandaloneContext
from rpckit import standalone_node
from state.accounts import get_account
from state.crypto import PrivateKey, sha256, to_hex
from state.tx import KIND_BY_NAME, TX_KINDS, decode_tx

ALICE = PrivateKey.from_int(1)
BOB = PrivateKey.from_int(2)
BALANCES = {ALICE.address: 10**12, BOB.address: 10**12}
H32 = "0x" + "ab" * 32
A20 = "0x" + "cd" * 20


@pytest.fixture
def keyfiles(tmp_path: Path) -> dict[str, str]:
    files = {}
    for name, key in (("alice", ALICE), ("bob", BOB)):
        files[name] = str(tmp_path / f"{name}.json")
        key.save(files[name])
    return files


class CLI:
    def __init__(self, capsys: Any, url: str = "") -> None:
        self.capsys, self.url = capsys, url

    async def run(self, *argv: str, rpc: bool = True) -> tuple[int, str, str]:
        self.capsys.readouterr()
        args = list(argv) + (["--rpc", self.url] if rpc and self.url else [])
        rc = await trio.to_thread.run_sync(main, args)
        out, err = self.capsys.readouterr()
        return rc, out, err

    async def json(self, *argv: str) -> Any:
        rc, out, err = await self.run(*argv, "--json")
        assert rc == 0, err
        return json.loads(out)


@pytest.fixture
async def node(new_chain, chain_id):  # type: ignore[no-untyped-def]
    async with standalone_node(new_chain(BALANCES), chain_id, BALANCES) as ctx:
        yield ctx


async def test_keys_new_and_show(tmp_path: Path, capsys: Any) -> None:
    cli = CLI(capsys)
    path = tmp_path / "k.json"
    rc, out, _ = await cli.run("keys", "new", "--out", str(path))
    key = PrivateKey.load(path)
    assert rc == 0 and to_hex(key.address) in out
    info = await cli.json("keys", "show", str(path))
    assert info == {"address": to_hex(key.address), "public_key": to_hex(key.public_key)}
    rc, _, err = await cli.run("keys", "new", "--out", str(path))
    assert rc == 2 and "exists" in err and PrivateKey.load(path) == key
    rc, out, _ = await cli.run("keys", "new")
    printed = json.loads(out)
    assert PrivateKey(bytes.fromhex(printed["seed"][2:])).public_key.hex() == printed["public_key"][2:]
    (tmp_path / "bad.json").write_text("{}")
    rc, _, err = await cli.run("keys", "show", str(tmp_path / "bad.json"))
    assert rc == 2 and "not a valid attrchain key file" in err


# minimal options of every kind whose fields are not computed from files
KIND_ARGS: dict[str, list[str]] = {
    "transfer": ["--to", A20, "--amount", "5"],
    "create_datanet": ["--name", "d", "--bond-required", "3"],
    "add_curator": ["--datanet", H32, "--curator", A20],
    "remove_curator": ["--datanet", H32, "--curator", A20],
    "review": ["--contribution", H32, "--reject"],
    "transfer_contribution": ["--contribution", H32, "--new-owner", A20],
    "commit_contribution": ["--commitment", H32],
    "register_model": ["--name", "m", "--datanet", H32 + ":6000", "--datanet", "0x" + "01" * 32 + ":4000",
                       "--parent", H32, "--lineage-bps", "500"],
    "register_adapter": ["--name", "a", "--base-model", H32, "--datanet", H32 + ":10000"],
    "register_agent": ["--name", "g", "--model", H32, "--stake", "9"],
    "agent_action": ["--action-hash", H32, "--outcome-hash", "0x" + "02" * 32],
    "infer": ["--model", H32, "--payment", "7", "--output-hash", "0x" + "03" * 32],
    "claim_rewards": ["--contribution", H32, "--contribution", "0x" + "04" * 32],
    "create_validator": ["--consensus-public-key", "0x" + "05" * 32, "--self-stake", "10", "--moniker", "v"],
    "delegate": ["--validator", A20, "--amount", "11"],
    "undelegate": ["--validator", A20, "--amount", "12"],
    "unjail": [],
    "submit_proposal": ["--type", "param_change", "--change", "attribution.matched_bps=7000", "--title", "t",
                        "--deposit", "100"],
    "deposit": ["--proposal", "3", "--amount", "13"],
    "vote": ["--proposal", "3", "--option", "no_with_veto"],
}


def test_every_transaction_kind_has_a_command() -> None:
    assert set(KIND_ARGS) | {"contribute"} == {name for name, _ in TX_KINDS.values()}


@pytest.mark.parametrize("kind", sorted(KIND_ARGS))
async def test_offline_signing_of_each_kind(kind: str, keyfiles: dict[str, str], capsys: Any) -> None:
    cli = CLI(capsys)
    res = await cli.json("tx", kind, *KIND_ARGS[kind], "--key", keyfiles["alice"], "--dry-run",
                         "--chain-id", "c1", "--nonce", "4", "--fee", "2")
    tx = decode_tx(bytes.fromhex(res["tx"][2:]))
    assert tx.unsigned.kind == KIND_BY_NAME[kind] and tx.sender == ALICE.address
    assert (tx.unsigned.nonce, tx.unsigned.fee) == (4, 2) and tx.has_valid_signature("c1")
    assert res["hash"] == to_hex(tx.hash)
    body = tx.body
    if kind == "register_model":
        assert body.datanets == ((bytes.fromhex("ab" * 32), 6000), (b"\x01" * 32, 4000))
        assert (body.parent, body.lineage_bps) == (bytes.fromhex("ab" * 32), 500)
    elif kind == "infer":
        assert (body.payment, body.output, body.output_hash, body.adapter, body.agent) == (7, b"", b"\x03" * 32, b"", b"")
    elif kind == "register_agent":
        assert body.owner == ALICE.address and body.stake == 9 and body.adapter == b""
    elif kind == "review":
        assert body.accept == 0
    elif kind == "create_datanet":
        assert (body.name, body.metadata_uri, body.bond_required) == ("d", "", 3)


async def test_bad_input_is_a_usage_error(keyfiles: dict[str, str], capsys: Any) -> None:
    cli = CLI(capsys)
    with pytest.raises(SystemExit):  # argparse: a malformed address
        await cli.run("tx", "transfer", "--to", "0x12", "--amount", "5", "--key", keyfiles["alice"])
    rc, _, err = await cli.run("tx", "register_model", "--name", "m", "--datanet", H32 + ":70000",
                               "--key", keyfiles["alice"], "--dry-run", "--chain-id", "c", "--nonce", "0", "--fee", "1")
    assert rc == 2 and "invalid register_model" in err
    rc, _, err = await cli.run("query", "status", "--rpc", "http://127.0.0.1:9")
    assert rc == 3 and "cannot reach" in err


async def test_transfer_and_queries_against_a_node(node: StandaloneContext, keyfiles: dict[str, str],
                                                   capsys: Any) -> None:
    cli = CLI(capsys, node.rpc_addr)
    carol = PrivateKey.from_int(3)
    res = await cli.json("tx", "transfer", "--to", to_hex(carol.address), "--amount", "250",
                         "--key", keyfiles["alice"], "--wait")
    assert res["committed"] is True and res["result"]["code"] == 0 and res["nonce"] == 0 and res["fee"] == 1
    assert get_account(node.chain.db.view(), carol.address).balance == 250
    acct = await cli.json("query", "account", f"address={to_hex(carol.address)}")
    assert acct["balance"] == 250
    rc, out, _ = await cli.run("query", "account", to_hex(ALICE.address))  # by position, human-readable
    assert rc == 0 and f"balance: {10**12 - 251}" in out and "nonce: 1" in out
    blk = await cli.json("query", "block", f"height={res['height']}")
    assert blk["block"]["txs"] == [to_hex(node.chain.get_block(res["height"]).txs[0])]
    # a transaction the node refuses: the reason is shown and the exit code is 1
    rc, _, err = await cli.run("tx", "transfer", "--to", to_hex(carol.address), "--amount", str(10**15),
                               "--key", keyfiles["alice"])
    assert rc == 1 and "-32003" in err and "insufficient_balance" in err
    rc, _, err = await cli.run("query", "block", "height=99999")
    assert rc == 1 and "-32001" in err
    rc, _, err = await cli.run("query", "block", "height=1", "2")
    assert rc == 2


async def test_attribution_flow_through_the_cli(node: StandaloneContext, keyfiles: dict[str, str],
                                                capsys: Any, tmp_path: Path) -> None:
    cli = CLI(capsys, node.rpc_addr)
    alice, bob = keyfiles["alice"], keyfiles["bob"]
    dn = await cli.json("tx", "create_datanet", "--name", "poems", "--bond-required", "5", "--key", alice, "--wait")
    datanet = dn["datanet_id"]
    text = b"whose woods these are I think I know his house is in the village though he will not see me stopping"
    (tmp_path / "poem.txt").write_bytes(text)
    c = await cli.json("tx", "contribute", "--datanet", datanet, "--file", str(tmp_path / "poem.txt"),
                       "--bond", "5", "--key", bob, "--wait")
    assert c["result"]["code"] == 0, c
    contribution = c["contribution_id"]
    r = await cli.json("tx", "review", "--contribution", contribution, "--accept", "--key", alice, "--wait")
    assert r["result"]["code"] == 0
    m = await cli.json("tx", "register_model", "--name", "m", "--datanet", f"{datanet}:10000", "--key", alice,
                       "--wait")
    assert m["result"]["code"] == 0
    (tmp_path / "out.txt").write_bytes(text)
    inf = await cli.json("tx", "infer", "--model", m["model_id"], "--payment", "1000", "--output-file",
                         str(tmp_path / "out.txt"), "--key", bob, "--wait")
    assert inf["result"]["code"] == 0, inf

    info = await cli.json("query", "contribution", f"id={contribution}")
    assert (info["status"], info["owner"], info["content_hash"]) == ("accepted", to_hex(BOB.address),
                                                                     to_hex(sha256(text)))
    receipt = (await cli.json("query", "attribution", f"inference={inf['inference_id']}"))["receipts"][0]
    assert sum(e["amount"] for e in receipt["entries"]) == 1000
    assert [x["contribution"] for x in receipt["matched"]] == [contribution]
    rw = await cli.json("query", "rewards", f"contribution={contribution}")
    assert rw["unclaimed"] >= receipt["matched"][0]["amount"] > 0
    rc, out, _ = await cli.run("query", "datanet", datanet)
    assert rc == 0 and "name: poems" in out and f"owner: {to_hex(ALICE.address)}" in out
    claim = await cli.json("tx", "claim_rewards", "--contribution", contribution, "--key", bob, "--wait")
    assert claim["result"]["code"] == 0
    assert (await cli.json("query", "rewards", f"contribution={contribution}"))["unclaimed"] == 0


def test_the_cli_does_not_load_the_network_stack_to_parse_a_command() -> None:
    # `attrchain tx ...`, `query ...`, `keys ...` and `--help` build the whole parser; libp2p alone
    # took ~0.6 s to import, paid by every command (1.35 s per `attrchain query` before).
    import subprocess
    import sys

    code = ("import sys; from node.cli import build_parser; build_parser().parse_args(['query', 'status']); "
            "print(sorted(m for m in ('libp2p', 'hypercorn', 'gateway.app') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent, check=True)
    assert done.stdout.strip() == "[]", done.stdout
