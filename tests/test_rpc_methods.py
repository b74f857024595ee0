"""Every JSON-RPC method against a real server over a real Chain on LevelDB: results checked
against values computed independently from the chain's own structures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from conftest import VALIDATOR_KEY, make_genesis
from node.config import RPCConfig
from node.mempool import Mempool
from node.rpc.standalone import StandaloneContext, serving
from state import keys
from state.accounts import Account
from state.codec import CodecError, decode, pack
from state.attribution.contributions import fingerprint_params
from state.attribution.commitments import contribution_commitment
from state.attribution.content_proof import ContentProofError, verify_content_proof
from state.crypto import PrivateKey, from_hex, sha256, to_hex
from state.attribution.fingerprint import fingerprint_text
from state.tree.proof import Proof, verify_proof
from state.tx import (
    AgentAction,
    CommitContribution,
    Contribute,
    CreateDatanet,
    Infer,
    RegisterAdapter,
    RegisterAgent,
    RegisterModel,
    Review,
    Transfer,
    Tx,
    sign_tx,
)

ALICE = PrivateKey.from_int(1)
BOB = PrivateKey.from_int(2)
CAROL = PrivateKey.from_int(3)
AGENT = PrivateKey.from_int(4)
BALANCES = {k.address: 10**12 for k in (ALICE, BOB, CAROL, AGENT)}


@dataclass
class Node:
    ctx: StandaloneContext
    http: httpx.AsyncClient
    chain_id: str
    nonces: dict[bytes, int]

    async def call(self, method: str, params: Any = None) -> Any:
        r = await self.http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}})
        body = r.json()
        assert "result" in body, body
        return body["result"]

    async def error(self, method: str, params: Any = None) -> dict[str, Any]:
        r = await self.http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}})
        body = r.json()
        assert "error" in body, body
        return body["error"]  # type: ignore[no-any-return]

    def sign(self, key: PrivateKey, body: Any, fee: int = 1) -> Tx:
        nonce = self.nonces.get(key.address, 0)
        self.nonces[key.address] = nonce + 1
        return sign_tx(key, self.chain_id, nonce, body, fee)

    async def submit(self, key: PrivateKey, body: Any) -> Tx:
        tx = self.sign(key, body)
        assert (await self.call("broadcast_tx_sync", {"tx": to_hex(tx.raw)}))["hash"] == to_hex(tx.hash)
        return tx


@pytest.fixture
async def node(new_chain, chain_id):  # type: ignore[no-untyped-def]
    chain = new_chain(BALANCES)
    ctx = StandaloneContext(chain, make_genesis(chain_id, BALANCES), Mempool(chain), proposer=VALIDATOR_KEY.address)
    async with serving(ctx, RPCConfig(max_page=50)) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        yield Node(ctx, http, chain_id, {})


async def test_status_genesis_blocks_and_headers(node: Node) -> None:
    chain = node.ctx.chain
    st = await node.call("status")
    assert st["sync_info"]["latest_block_height"] == 0 and st["sync_info"]["latest_block_hash"] is None
    assert st["sync_info"]["latest_state_root"] == to_hex(chain.db.root())
    await node.submit(ALICE, Transfer(BOB.address, 10))
    for _ in range(3):
        node.ctx.produce_block()
    st = await node.call("status")
    head = chain.get_block(3).header
    assert st["sync_info"]["latest_block_height"] == 3
    assert st["sync_info"]["latest_block_hash"] == to_hex(head.hash())
    assert st["sync_info"]["latest_state_root"] == to_hex(head.state_root) == to_hex(chain.db.root())
    assert st["chain_id"] == node.chain_id and st["node_info"]["network"] == node.chain_id
    g = await node.call("genesis")
    assert g["genesis"]["genesis_hash"] == to_hex(node.ctx.genesis.hash())
    assert g["genesis"]["consensus_params"]["fees"]["min_fee"] == chain.params().fees.min_fee

    b1 = await node.call("block", {"height": 1})
    block1 = chain.get_block(1)
    assert b1["block_id"]["hash"] == to_hex(block1.header.hash())
    assert b1["block"]["txs"] == [to_hex(t) for t in block1.txs] and len(block1.txs) == 1
    hdr = b1["block"]["header"]
    assert (hdr["height"], hdr["time_ms"], hdr["state_root"], hdr["proposer"]) == (
        1, block1.header.time_ms, to_hex(block1.header.state_root), to_hex(VALIDATOR_KEY.address))
    assert await node.call("block_by_hash", {"hash": b1["block_id"]["hash"]}) == b1
    b3 = await node.call("block", {"height": 3})
    assert b3["block"]["header"]["last_block_hash"] == to_hex(chain.get_block(2).header.hash())

    bc = await node.call("blockchain", {"min_height": 1, "max_height": 3})
    assert bc["last_height"] == 3
    assert [m["header"]["height"] for m in bc["block_metas"]] == [3, 2, 1]
    assert [m["num_txs"] for m in bc["block_metas"]] == [0, 0, 1]
    assert bc["block_metas"][2]["block_size"] == len(chain.get_block_bytes(1))

    c1 = await node.call("commit", {"height": 1})
    assert c1["canonical"] is True
    assert c1["signed_header"]["header"] == hdr
    assert c1["signed_header"]["commit"]["block_hash"] == to_hex(chain.get_block(2).last_commit.block_hash)
    assert (await node.error("commit", {"height": "latest"}))["code"] == -32001  # no commit seen in this harness


async def test_blockchain_returns_at_most_twenty_headers(node: Node) -> None:
    for _ in range(25):
        node.ctx.produce_block()
    res = await node.call("blockchain")
    assert [m["header"]["height"] for m in res["block_metas"]] == list(range(25, 5, -1))
    res = await node.call("blockchain", {"min_height": 3, "max_height": 4})
    assert [m["block_id"]["hash"] for m in res["block_metas"]] == [
        to_hex(node.ctx.chain.get_block(h).header.hash()) for h in (4, 3)]
    assert (await node.call("blockchain", {"min_height": 30}))["block_metas"] == []
    assert (await node.error("blockchain", {"min_height": 5, "max_height": 4}))["code"] == -32602


async def test_validators_at_height(node: Node) -> None:
    node.ctx.produce_block()
    vs = await node.call("validators")
    assert vs["block_height"] == 1 and vs["total"] == 1
    (v,) = vs["validators"]
    assert v["address"] == to_hex(VALIDATOR_KEY.address) and v["pub_key"] == to_hex(VALIDATOR_KEY.public_key)
    assert vs["total_voting_power"] == v["voting_power"] > 0
    assert (await node.error("validators", {"height": 500}))["code"] == -32001


async def test_broadcast_sync_async_and_pending(node: Node) -> None:
    tx = await node.submit(ALICE, Transfer(BOB.address, 1))
    assert node.ctx.mempool.contains(tx.hash)
    pending = await node.call("tx", {"hash": to_hex(tx.hash)})
    assert pending["status"] == "pending" and pending["decoded"]["nonce"] == 0

    tx2 = node.sign(ALICE, Transfer(BOB.address, 2))
    res = await node.call("broadcast_tx_async", {"tx": to_hex(tx2.raw)})
    assert res == {"hash": to_hex(tx2.hash)}
    with trio.fail_after(5):
        await trio.testing.wait_all_tasks_blocked()
    assert node.ctx.mempool.contains(tx2.hash)
    err = await node.error("broadcast_tx_async", {"tx": "0x0102"})
    assert err["code"] == -32003 and err["data"]["reason"] == "malformed"

    un = await node.call("unconfirmed_txs", {"limit": 10})
    assert un["n_txs"] == 2 and un["total_bytes"] == len(tx.raw) + len(tx2.raw)
    assert [t["hash"] for t in un["txs"]] == [to_hex(tx.hash), to_hex(tx2.hash)]
    assert (await node.call("unconfirmed_txs", {"limit": 1}))["count"] == 1

    acct = await node.call("account", {"address": to_hex(ALICE.address)})
    assert (acct["balance"], acct["nonce"], acct["next_nonce"]) == (10**12, 0, 2)


async def test_broadcast_tx_commit_waits_for_the_block(node: Node) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node.ctx.run_blocks, 0.02)
        tx = node.sign(ALICE, Transfer(BOB.address, 7))
        with trio.fail_after(10):
            res = await node.call("broadcast_tx_commit", {"tx": to_hex(tx.raw)})
        loc = node.ctx.chain.get_tx_location(tx.hash)
        assert res == {"hash": to_hex(tx.hash), "committed": True, "height": loc.height, "index": loc.index,
                       "result": {"code": 0, "reason": "", "message": ""}}
        nursery.cancel_scope.cancel()
    again = await node.call("broadcast_tx_commit", {"tx": to_hex(tx.raw)})  # already committed: at once
    assert again["committed"] is True and again["height"] == loc.height
    bad = node.sign(CAROL, Transfer(BOB.address, 10**15))
    err = await node.error("broadcast_tx_commit", {"tx": to_hex(bad.raw)})
    assert err["code"] == -32003 and err["data"]["reason"] == "insufficient_balance"


async def test_broadcast_tx_commit_times_out(node: Node) -> None:
    tx = node.sign(ALICE, Transfer(BOB.address, 7))
    with trio.fail_after(5):
        res = await node.call("broadcast_tx_commit", {"tx": to_hex(tx.raw), "timeout": 1})
    assert res == {"hash": to_hex(tx.hash), "committed": False, "timeout_s": 1}
    assert node.ctx.events._tx_waiters == {}  # the waiter was cleaned up


async def test_abci_query_proofs_verify_against_the_header(node: Node) -> None:
    await node.submit(ALICE, Transfer(BOB.address, 300))
    node.ctx.produce_block()
    key = keys.account_key(BOB.address)
    q = await node.call("abci_query", {"key": to_hex(key), "prove": True})
    header = (await node.call("block", {"height": q["height"]}))["block"]["header"]
    assert q["height"] == 1 and q["state_root"] == header["state_root"]
    root = bytes.fromhex(header["state_root"][2:])
    value = bytes.fromhex(q["value"][2:])
    assert value == pack(Account(10**12 + 300, 0).to_wire())
    proof = decode(Proof, bytes.fromhex(q["proof"][2:]))
    assert verify_proof(root, key, value, proof)
    # tampering with anything breaks it
    assert not verify_proof(root, key, pack(Account(10**12 + 301, 0).to_wire()), proof)
    assert not verify_proof(root, keys.account_key(CAROL.address), value, proof)
    assert not verify_proof(root, key, None, proof)
    genesis_root = node.ctx.genesis and bytes.fromhex((await node.call("block", {"height": 1}))["block"]["header"]
                                                      ["state_root"][2:])
    assert genesis_root == root
    raw_proof = bytearray(bytes.fromhex(q["proof"][2:]))
    for pos in (len(raw_proof) - 1, len(raw_proof) // 2, 40):
        tampered = bytearray(raw_proof)
        tampered[pos] ^= 0x01
        try:
            bad = decode(Proof, bytes(tampered))
        except CodecError:
            continue  # no longer a proof at all
        assert not verify_proof(root, key, value, bad)
    # an older root does not accept the new value
    node.ctx.produce_block()
    await node.submit(BOB, Transfer(CAROL.address, 1))
    node.ctx.produce_block()
    q2 = await node.call("abci_query", {"key": to_hex(key), "prove": True, "height": 3})
    root3 = bytes.fromhex((await node.call("block", {"height": 3}))["block"]["header"]["state_root"][2:])
    assert verify_proof(root3, key, bytes.fromhex(q2["value"][2:]), decode(Proof, bytes.fromhex(q2["proof"][2:])))
    assert not verify_proof(root, key, bytes.fromhex(q2["value"][2:]), decode(Proof, bytes.fromhex(q2["proof"][2:])))
    # absence is provable too
    absent = keys.account_key(b"\x99" * 20)
    q3 = await node.call("abci_query", {"key": to_hex(absent), "prove": True})
    assert q3["value"] is None and q3["exists"] is False
    p3 = decode(Proof, bytes.fromhex(q3["proof"][2:]))
    assert verify_proof(root3, absent, None, p3)
    assert not verify_proof(root3, absent, b"\x01", p3)
    # state is not versioned: an old height is refused rather than answered wrongly
    assert (await node.error("abci_query", {"key": to_hex(key), "height": 1}))["code"] == -32602
    plain = await node.call("abci_query", {"key": to_hex(key)})
    assert "proof" not in plain and plain["value"] == q2["value"]


async def test_tx_and_tx_search_by_sender_and_height(node: Node) -> None:
    sent: dict[bytes, list[Tx]] = {ALICE.address: [], BOB.address: []}
    for block in range(4):
        for key in (ALICE, BOB, ALICE):
            sent[key.address].append(await node.submit(key, Transfer(CAROL.address, 1 + block)))
        node.ctx.produce_block()
    node.ctx.produce_block()  # an empty block on top
    chain = node.ctx.chain
    first = sent[ALICE.address][0]
    t = await node.call("tx", {"hash": to_hex(first.hash)})
    loc = chain.get_tx_location(first.hash)
    assert (t["status"], t["height"], t["index"], t["tx"]) == ("committed", loc.height, loc.index, to_hex(first.raw))
    d = t["decoded"]
    assert (d["kind"], d["sender"], d["nonce"], d["fee"]) == ("transfer", to_hex(ALICE.address), 0, 1)
    assert d["body"] == {"to": to_hex(CAROL.address), "amount": 1}

    # by sender, newest first, through `next` pages of 3
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] | None = {"sender": to_hex(ALICE.address), "per_page": 3}
    pages = 0
    while params is not None:
        res = await node.call("tx_search", params)
        assert res["count"] <= 3
        seen.extend(res["txs"])
        params = res["next"]
        pages += 1
        assert pages < 10
    expected = [(chain.get_tx_location(tx.hash).height, chain.get_tx_location(tx.hash).index, to_hex(tx.hash))
                for tx in sent[ALICE.address]]
    assert [(x["height"], x["index"], x["hash"]) for x in seen] == sorted(expected, reverse=True)
    assert all(x["decoded"]["sender"] == to_hex(ALICE.address) for x in seen)

    # by height window, oldest first
    res = await node.call("tx_search", {"min_height": 2, "max_height": 3, "order": "asc", "per_page": 50})
    want = [to_hex(sha256(raw)) for h in (2, 3) for raw in chain.get_block(h).txs]
    assert [x["hash"] for x in res["txs"]] == want and res["next"] is None and res["scanned_blocks"] == 2
    assert (await node.call("tx_search", {"sender": to_hex(b"\x07" * 20)}))["txs"] == []


async def test_attribution_domain_queries(node: Node) -> None:
    a = node.ctx.chain.params().attribution
    fp_params = fingerprint_params(a)
    dn_tx = await node.submit(ALICE, CreateDatanet("poems", "ipfs://poems", 10))
    node.ctx.produce_block()
    datanet = dn_tx.hash
    text = b"the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun all day long"
    fp = fingerprint_text(text, fp_params)
    salt = sha256(b"bob's salt")
    await node.submit(BOB, CommitContribution(contribution_commitment(BOB.address, datanet, sha256(text), salt)))
    node.ctx.produce_block()
    c_tx = await node.submit(BOB, Contribute(datanet, text, salt, 10))
    node.ctx.produce_block()
    await node.submit(ALICE, Review(c_tx.hash, 1))
    m_tx = await node.submit(ALICE, RegisterModel("m1", ((datanet, 10_000),), b"", 0))
    node.ctx.produce_block()
    ad_tx = await node.submit(CAROL, RegisterAdapter("lora", m_tx.hash, ((datanet, 10_000),)))
    ag_tx = await node.submit(AGENT, RegisterAgent("bot", m_tx.hash, b"", CAROL.address, 5))
    node.ctx.produce_block()
    await node.submit(AGENT, AgentAction(sha256(b"act"), sha256(b"out")))
    inf_tx = await node.submit(AGENT, Infer(m_tx.hash, ad_tx.hash, AGENT.address, 1_000, 10, 20,
                                            sha256(text), text))
    node.ctx.produce_block()
    for tx in (dn_tx, c_tx, m_tx, ad_tx, ag_tx, inf_tx):
        assert node.ctx.chain.get_tx_location(tx.hash).code == 0, tx.kind_name

    dn = await node.call("datanet", {"id": to_hex(datanet)})
    assert (dn["owner"], dn["name"], dn["bond_required"], dn["accepted"]) == (to_hex(ALICE.address), "poems", 10, 1)
    assert dn["curators"] == [to_hex(ALICE.address)]
    c = await node.call("contribution", {"id": to_hex(c_tx.hash), "sketch": True})
    assert (c["owner"], c["status"], c["size"], c["content_hash"]) == (
        to_hex(BOB.address), "accepted", len(text), to_hex(sha256(text)))
    assert c["sketch"]["fingerprint"] == list(fp.fingerprint) and c["sketch"]["minhash"] == list(fp.minhash)
    # the text itself, from the block that carried it, checked against the committed block hash
    served = await node.call("contribution_content", {"id": to_hex(c_tx.hash)})
    assert (served["content"], served["content_hash"]) == (text.decode(), to_hex(sha256(text)))
    height = served["proof"]["height"]
    block_hash = from_hex((await node.call("block", {"height": height}))["block_id"]["hash"])
    assert verify_content_proof(served["proof"], block_hash) == text
    forged = dict(served["proof"], tx=to_hex(sign_tx(BOB, node.chain_id, 9, Contribute(datanet, b"forged", salt, 10)).raw))
    with pytest.raises(ContentProofError, match="not at the stated index"):
        verify_content_proof(forged, block_hash)
    with pytest.raises(ContentProofError, match="not the trusted block"):
        verify_content_proof(served["proof"], sha256(b"another block"))
    m = await node.call("model", [to_hex(m_tx.hash)])
    assert (m["owner"], m["name"], m["datanets"]) == (to_hex(ALICE.address), "m1",
                                                      [{"datanet": to_hex(datanet), "weight_bps": 10_000}])
    ad = await node.call("adapter", {"id": to_hex(ad_tx.hash)})
    assert (ad["owner"], ad["base_model"]) == (to_hex(CAROL.address), to_hex(m_tx.hash))
    ag = await node.call("agent", {"address": to_hex(AGENT.address)})
    assert (ag["owner"], ag["stake"], ag["actions"]) == (to_hex(CAROL.address), 5, 1)
    assert ag["recent_actions"][0]["action_hash"] == to_hex(sha256(b"act"))
    inf = await node.call("inference", {"id": to_hex(inf_tx.hash)})
    assert (inf["payer"], inf["payment"], inf["output_hash"]) == (to_hex(AGENT.address), 1_000, to_hex(sha256(text)))
    assert inf["output"] == text.decode() and inf["attributed"] and inf["covered_shingles"] > 0

    by_inf = await node.call("attribution", {"inference": to_hex(inf_tx.hash)})
    (receipt,) = by_inf["receipts"]
    assert by_inf["pending_matches"] == []  # the quoted contribution was accepted
    assert sum(e["amount"] for e in receipt["entries"]) == 1_000  # amounts are conserved
    roles = {e["role"] for e in receipt["entries"]}
    assert {"model_owner", "adapter_owner", "agent_owner"} <= roles
    assert [mm["contribution"] for mm in receipt["matched"]] == [to_hex(c_tx.hash)]
    by_owner = await node.call("attribution", {"recipient": to_hex(ALICE.address), "per_page": 5})
    assert by_owner["total"] == 1 and by_owner["receipts"] == [receipt]
    by_contribution = await node.call("attribution", {"recipient": to_hex(c_tx.hash)})
    assert by_contribution["receipts"] == [receipt]
    rw = await node.call("rewards", {"contribution": to_hex(c_tx.hash)})
    matched_amount = receipt["matched"][0]["amount"]
    assert rw["owner"] == to_hex(BOB.address) and rw["unclaimed"] >= matched_amount > 0
    assert (await node.error("attribution", {"recipient": to_hex(ALICE.address), "per_page": 101}))["code"] == -32005
