"""The Python SDK (sdk/) against a real RPC server over a real Chain: every RPC method has a typed
call, every tx kind builds and signs, commits are awaited, proofs verify (and lies do not), and the
examples of docs/sdk.md run as written."""

from __future__ import annotations

import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

import sdk
from conftest import ROOT
from node.rpc.methods import METHODS
from node.rpc.standalone import StandaloneContext
from rpckit import standalone_node
from sdk import gen
from sdk.methods import WS_ONLY
from sdk.ws import WebSocket
from state.codec import Bytes, List, Str, Tuple, UInt
from state.crypto import PrivateKey, to_hex
from state.keys import account_key
from state.tx import decode_tx

ALICE = PrivateKey.from_int(11)
BALANCES = {ALICE.address: 10**15}


@pytest.fixture
async def node(new_chain, chain_id):  # type: ignore[no-untyped-def]
    async with standalone_node(new_chain(BALANCES), chain_id, BALANCES) as ctx:
        yield ctx


def test_generated_methods_are_current_and_cover_the_table() -> None:
    assert gen.main(["--check"]) == 0, "sdk/methods.py is stale: python -m sdk.gen"
    for name, m in METHODS.items():
        if m.ws_only:
            assert name in WS_ONLY
        fn = getattr(WebSocket if m.ws_only else sdk.Client, name)
        sig = inspect.signature(fn)
        assert [p for p in sig.parameters if p != "self"] == [p.name for p in m.params], name


def _sample(wt: Any, name: str) -> Any:
    t = type(wt)
    if t is UInt:
        return 1
    if t is Str:
        return "x"
    if t is Bytes:
        size = wt.sizes[-1] if wt.sizes else 3
        return "0x" + "ab" * size
    if t is List and type(wt.item) is UInt:
        return [1, 2, 3]
    if t is List:
        return [_sample(wt.item, name)]
    if t is Tuple:
        return tuple(_sample(w, name) for w in wt.items)
    raise AssertionError(f"no sample for {name}")


@pytest.mark.parametrize("kind", sdk.kinds())
def test_every_kind_builds_and_signs_from_plain_values(kind: str, chain_id: str) -> None:
    values = {name: _sample(wt, name) for name, wt in sdk.fields(kind)}
    body = sdk.make_body(kind, **values)
    from state.tx import sign_tx

    tx = sign_tx(ALICE, chain_id, 7, body, fee=3)
    back = decode_tx(tx.raw)
    assert back.kind_name == kind and back.body == body and back.has_valid_signature(chain_id)


def test_bad_values_are_one_clear_error() -> None:
    with pytest.raises(sdk.TxBuildError, match="unknown transaction kind"):
        sdk.make_body("mint", amount=1)
    with pytest.raises(sdk.TxBuildError, match="missing field 'amount'"):
        sdk.make_body("transfer", to=bytes(20))
    with pytest.raises(sdk.TxBuildError, match="unknown field"):
        sdk.make_body("transfer", to=bytes(20), amount=1, memo="hi")
    with pytest.raises(sdk.TxBuildError, match="invalid transfer"):
        sdk.make_body("transfer", to=bytes(19), amount=1)
    with pytest.raises(sdk.TxBuildError, match="expected an integer"):
        sdk.make_body("transfer", to=bytes(20), amount="5")


def test_content_fields_are_derived_from_text() -> None:
    from state.attribution.fingerprint import fingerprint_text

    text = "the quick brown fox jumps over the lazy dog again and again"
    body = sdk.make_body("contribute", datanet=bytes(32), text=text, bond=0)
    fp = fingerprint_text(text.encode())
    assert body.content == text.encode()  # the chain computes hash, fingerprint and MinHash itself
    infer = sdk.make_body("infer", model=bytes(32), payment=5, output=text)
    assert infer.output_fingerprint and infer.output_hash == fp.content_hash


async def test_submit_wait_and_verified_state(node: StandaloneContext) -> None:
    def scenario() -> None:
        with sdk.Client(node.rpc_addr) as c:
            bob = PrivateKey.from_int(12).address
            res = c.submit(ALICE, "transfer", to=bob, amount=777)
            assert res["committed"] and res["result"]["code"] == 0
            assert c.wait_for_tx(res["hash"])["height"] == res["height"]
            assert c.verified_account(bob) == {"balance": 777, "nonce": 0, "height": c.status()["sync_info"]
                                               ["latest_block_height"]}
            absent = c.prove(account_key(bytes(20)))
            assert absent.value is None
            # refused by the mempool: an RPCError with the reason
            with pytest.raises(sdk.RPCError, match="fee_too_low"):
                c.submit(ALICE, "transfer", to=bob, amount=1, fee=0)
            # not committed in time
            with pytest.raises(sdk.TxFailed, match="not committed"):
                c.wait_for_tx(b"\x01" * 32, timeout=0.3)
            with pytest.raises(sdk.RPCError) as err:
                c.account("0x1234")
            assert err.value.code == -32602

    await trio.to_thread.run_sync(scenario)


async def test_websocket_subscriptions(node: StandaloneContext) -> None:
    def scenario() -> None:
        with sdk.Client(node.rpc_addr) as c, c.websocket() as ws:
            sub = ws.subscribe("new_block")["subscription"]
            res = c.submit(ALICE, "transfer", to=bytes(20), amount=1)
            event = ws.next_event(timeout=10)
            assert event["subscription"] == sub and event["event"] == "new_block"
            assert ws.unsubscribe(sub) == {"unsubscribed": True}
            assert ws.unsubscribe_all()["unsubscribed"] == 0
            with pytest.raises(sdk.RPCError):
                ws.subscribe("nonsense")  # type: ignore[arg-type]
            assert res["committed"]

    await trio.to_thread.run_sync(scenario)


async def test_a_lying_node_fails_the_proof(node: StandaloneContext) -> None:
    """Attack: the node answers a forged value or root; the SDK must refuse it."""

    def scenario() -> None:
        with sdk.Client(node.rpc_addr) as c:
            key = account_key(ALICE.address)
            honest = c.abci_query(key, prove=True)
            real_query = c.abci_query
            forged_value = dict(honest, value=to_hex(b"\x92\xce\x7f\xff\xff\xff\x00"))
            c.abci_query = lambda *a, **k: forged_value  # type: ignore[method-assign]
            with pytest.raises(sdk.ProofError, match="does not verify"):
                c.prove(key)
            forged_root = dict(honest, state_root="0x" + "11" * 32)
            c.abci_query = lambda *a, **k: forged_root  # type: ignore[method-assign]
            with pytest.raises(sdk.ProofError):
                c.prove(key)
            c.abci_query = real_query  # type: ignore[method-assign]
            assert c.prove(key).value is not None

    await trio.to_thread.run_sync(scenario)


def _doc_examples() -> list[str]:
    text = (ROOT / "docs" / "sdk.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_docs_have_examples() -> None:
    assert len(_doc_examples()) >= 4


async def test_docs_examples_run(node: StandaloneContext, tmp_path: Path) -> None:
    key_file = tmp_path / "alice.json"
    ALICE.save(key_file)
    env = dict(os.environ, ATTRCHAIN_RPC=node.rpc_addr, ATTRCHAIN_KEY=str(key_file), PYTHONPATH=str(ROOT))
    for i, code in enumerate(_doc_examples()):
        r = await trio.run_process([sys.executable, "-c", code], env=env, capture_stdout=True,
                                   capture_stderr=True, check=False)
        assert r.returncode == 0, f"docs/sdk.md example {i + 1} failed:\n{r.stderr.decode()[-2000:]}"
