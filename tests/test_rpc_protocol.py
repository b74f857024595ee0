"""JSON-RPC 2.0 protocol rules against a real hypercorn server over a real Chain on LevelDB:
error objects, batches, notifications, params by name and position, limits, hostile input."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import trio

from conftest import VALIDATOR_KEY, make_genesis
from node.config import RPCConfig
from node.mempool import Mempool
from node.rpc.standalone import StandaloneContext, serving
from state import keys
from state.crypto import PrivateKey, sha256
from state.tx import Transfer, sign_tx

ALICE = PrivateKey.from_int(1)
BOB = PrivateKey.from_int(2)
BALANCES = {ALICE.address: 10**12, BOB.address: 10**12}


@dataclass
class Node:
    ctx: StandaloneContext
    url: str
    http: httpx.AsyncClient
    config: RPCConfig

    async def call(self, method: str, params: Any = None, rid: Any = 1) -> dict[str, Any]:
        req: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            req["params"] = params
        r = await self.http.post("/", json=req)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def post_raw(self, body: bytes | str) -> httpx.Response:
        return await self.http.post("/", content=body, headers={"content-type": "application/json"})


@pytest.fixture(params=[False, True], ids=["thread", "front"])
async def node(new_chain, chain_id, request):  # type: ignore[no-untyped-def]
    """Served from the RPC thread and from the RPC front process (node/rpc/front.py)."""
    chain = new_chain(BALANCES)
    ctx = StandaloneContext(chain, make_genesis(chain_id, BALANCES), Mempool(chain), proposer=VALIDATOR_KEY.address)
    cfg = RPCConfig(max_body_bytes=64 * 1024, max_batch=10, max_page=50)
    async with serving(ctx, cfg, front=request.param) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        yield Node(ctx, url, http, cfg)


def code_of(resp: dict[str, Any]) -> int:
    assert "result" not in resp, resp
    return resp["error"]["code"]  # type: ignore[no-any-return]


def transfer(key: PrivateKey, chain_id: str, nonce: int, amount: int = 5, fee: int = 1) -> str:
    return "0x" + sign_tx(key, chain_id, nonce, Transfer(BOB.address, amount), fee).raw.hex()


# ---- the error codes, one by one ------------------------------------------------------------


async def test_parse_error_for_invalid_json(node: Node) -> None:
    for body in (b"{", b"not json", b'{"jsonrpc": "2.0", "id": 1, "method": "health",}', b"[NaN]", b"\xff\xfe"):
        r = await node.post_raw(body)
        assert r.status_code == 200
        resp = r.json()
        assert resp["id"] is None and code_of(resp) == -32700, (body, resp)


@pytest.mark.parametrize(
    "request_obj",
    [
        [1],  # a batch whose item is not an object
        {"id": 1, "method": "health"},  # no jsonrpc member
        {"jsonrpc": "1.0", "id": 1, "method": "health"},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "2.0", "id": 1, "method": "health", "params": "x"},
        {"jsonrpc": "2.0", "id": [1], "method": "health"},
        {"jsonrpc": "2.0", "id": 1.5, "method": "health"},
        "health",
    ],
)
async def test_invalid_request(node: Node, request_obj: Any) -> None:
    r = await node.post_raw(json.dumps(request_obj))
    body = r.json()
    resp = body[0] if isinstance(request_obj, list) else body
    assert code_of(resp) == -32600, resp


async def test_invalid_request_keeps_a_readable_id(node: Node) -> None:
    resp = (await node.post_raw(json.dumps({"jsonrpc": "2.0", "id": "abc", "method": 7}))).json()
    assert resp["id"] == "abc" and code_of(resp) == -32600


async def test_empty_batch_is_one_invalid_request(node: Node) -> None:
    resp = (await node.post_raw(b"[]")).json()
    assert isinstance(resp, dict) and code_of(resp) == -32600 and resp["id"] is None


async def test_method_not_found(node: Node) -> None:
    assert code_of(await node.call("no_such_method")) == -32601
    # subscriptions need the WebSocket
    assert code_of(await node.call("subscribe", {"event": "new_block"})) == -32601


@pytest.mark.parametrize(
    "method, params",
    [
        ("block", {"height": -1}),
        ("block", {"height": 0}),
        ("block", {"height": 2**63}),
        ("block", {"height": 10**30}),
        ("block", {"height": "5"}),
        ("block", {"height": 1.0}),
        ("block", {"height": True}),
        ("block", {"heigth": 1}),  # unknown name
        ("block", [1, 2]),  # too many positional params
        ("account", {}),  # required param missing
        ("account", {"address": "0x1234"}),  # wrong length
        ("account", {"address": "90be578556d64f3bf50ba6c6ae82ddd4697319fe"}),  # no 0x
        ("account", {"address": "0x" + "zz" * 20}),
        ("account", {"address": 12}),
        ("tx", {"hash": ["0x00"]}),
        ("abci_query", {"key": "0x" + keys.account_key(ALICE.address).hex(), "prove": "yes"}),
        ("abci_query", {"key": "0x" + keys.block_key(1).hex()}),  # not a state key
        ("tx_search", {"min_height": 5, "max_height": 2}),
        ("tx_search", {"order": "sideways"}),
        ("unconfirmed_txs", {"limit": 0}),
        ("attribution", {}),  # neither inference nor recipient
        ("validators", {"page": -3}),
    ],
)
async def test_invalid_params(node: Node, method: str, params: Any) -> None:
    resp = await node.call(method, params)
    assert code_of(resp) == -32602, resp
    assert resp["error"]["message"]


async def test_internal_error_when_the_store_lost_a_block(node: Node) -> None:
    node.ctx.produce_block()
    node.ctx.produce_block()
    node.ctx.chain.db.raw.delete(keys.block_key(1))  # a corrupted store: height 2 > 1 is committed
    resp = await node.call("block", {"height": 1})
    assert code_of(resp) == -32603 and "missing" in resp["error"]["message"]
    assert "result" in await node.call("health")


async def test_not_found(node: Node) -> None:
    node.ctx.produce_block()
    assert code_of(await node.call("block", {"height": 2})) == -32001
    assert code_of(await node.call("block_by_hash", {"hash": "0x" + "11" * 32})) == -32001
    assert code_of(await node.call("tx", {"hash": "0x" + "22" * 32})) == -32001
    assert code_of(await node.call("datanet", {"id": "0x" + "33" * 32})) == -32001
    assert code_of(await node.call("attribution", {"inference": "0x" + "44" * 32})) == -32001


async def test_tx_rejected_carries_reason_and_message(node: Node, chain_id: str) -> None:
    raw = transfer(ALICE, chain_id + "-other", 0)  # signed for another chain
    resp = await node.call("broadcast_tx_sync", {"tx": raw})
    assert code_of(resp) == -32003
    data = resp["error"]["data"]
    assert data["reason"] == "invalid_signature" and "chain" in data["message"]
    assert data["hash"] == "0x" + sha256(bytes.fromhex(raw[2:])).hex()
    resp = await node.call("broadcast_tx_sync", {"tx": transfer(ALICE, chain_id, 7)})
    assert code_of(resp) == -32003 and resp["error"]["data"]["reason"] == "future_nonce"
    resp = await node.call("broadcast_tx_sync", {"tx": "0x00ff"})
    assert code_of(resp) == -32003 and resp["error"]["data"]["reason"] == "malformed"
    assert node.ctx.mempool.size == 0


async def test_limit_exceeded(node: Node) -> None:
    batch = [{"jsonrpc": "2.0", "id": i, "method": "health"} for i in range(node.config.max_batch + 1)]
    resp = (await node.post_raw(json.dumps(batch))).json()
    assert isinstance(resp, dict) and code_of(resp) == -32005
    assert code_of(await node.call("tx_search", {"per_page": node.config.max_page + 1})) == -32005
    assert code_of(await node.call("unconfirmed_txs", {"limit": 10**9})) == -32005
    assert code_of(await node.call("validators", {"per_page": 10**12})) == -32005


async def test_oversized_body_is_refused_before_it_is_read(node: Node) -> None:
    big = b'{"jsonrpc": "2.0", "id": 1, "method": "health", "params": ["' + b"a" * (4 * 1024 * 1024) + b'"]}'
    with trio.fail_after(5):
        r = await node.post_raw(big)
    assert r.status_code == 413 and r.json()["error"]["code"] == -32005
    # a body just under the cap is parsed normally
    ok = b'{"jsonrpc": "2.0", "id": 1, "method": "health", "params": {}}' + b" " * (node.config.max_body_bytes - 100)
    assert (await node.post_raw(ok)).json()["result"] == {}


async def test_deeply_nested_json(node: Node) -> None:
    for depth in (2_000, 100_000):
        body = '{"jsonrpc": "2.0", "id": 1, "method": "block", "params": ' + "[" * depth + "]" * depth + "}"
        if len(body) > node.config.max_body_bytes:
            assert (await node.post_raw(body)).status_code == 413
            continue
        resp = (await node.post_raw(body)).json()
        assert code_of(resp) == -32700 and "deep" in resp["error"]["message"]
    resp = (await node.post_raw('{"jsonrpc": "2.0", "id": 1, "method": "block", "params": [[[[1]]]]}')).json()
    assert code_of(resp) == -32602


# ---- batches, notifications, params ----------------------------------------------------------


async def test_batch_answers_in_order_and_skips_notifications(node: Node, chain_id: str) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "health"},
        {"jsonrpc": "2.0", "method": "health"},  # notification: no answer
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        5,
        {"jsonrpc": "2.0", "id": 3, "method": "account", "params": ["0x" + ALICE.address.hex()]},
        {"jsonrpc": "2.0", "method": "broadcast_tx_sync", "params": {"tx": transfer(ALICE, chain_id, 0)}},
    ]
    resp = (await node.post_raw(json.dumps(batch))).json()
    assert [r["id"] for r in resp] == ["a", 2, None, 3]
    assert resp[0]["result"] == {}
    assert code_of(resp[1]) == -32601 and code_of(resp[2]) == -32600
    assert resp[3]["result"]["balance"] == 10**12
    assert node.ctx.mempool.size == 1  # the notification was executed


async def test_notifications_get_no_response(node: Node, chain_id: str) -> None:
    r = await node.post_raw(json.dumps({"jsonrpc": "2.0", "method": "broadcast_tx_sync",
                                        "params": {"tx": transfer(ALICE, chain_id, 0)}}))
    assert r.status_code == 204 and r.content == b""
    assert node.ctx.mempool.size == 1
    # even a failing notification stays silent
    r = await node.post_raw(json.dumps({"jsonrpc": "2.0", "method": "no_such_method"}))
    assert r.status_code == 204 and r.content == b""
    batch = [{"jsonrpc": "2.0", "method": "health"}, {"jsonrpc": "2.0", "method": "status"}]
    r = await node.post_raw(json.dumps(batch))
    assert r.status_code == 204 and r.content == b""


async def test_params_by_name_and_by_position_agree(node: Node) -> None:
    node.ctx.produce_block()
    by_name = await node.call("block", {"height": 1})
    by_position = await node.call("block", [1])
    latest = await node.call("block", ["latest"])
    omitted = await node.call("block")
    assert by_name["result"] == by_position["result"] == latest["result"] == omitted["result"]
    a = await node.call("tx_search", {"min_height": 1, "max_height": 1, "order": "asc"})
    b = await node.call("tx_search", [None, 1, 1, "asc"])
    assert a["result"] == b["result"]


async def test_ids_are_echoed(node: Node) -> None:
    for rid in ("x", 0, -5, 2**70, None):
        assert (await node.call("health", rid=rid))["id"] == rid


async def test_uri_calls_and_routes(node: Node) -> None:
    node.ctx.produce_block()
    r = await node.http.get("/block", params={"height": "1"})
    assert r.json()["result"]["block"]["header"]["height"] == 1
    r = await node.http.get("/account", params={"address": "0x" + ALICE.address.hex()})
    assert r.json()["result"]["balance"] == 10**12
    assert (await node.http.get("/nope/x")).status_code == 404
    page = await node.http.get("/")  # the explorer (docs/explorer.md), on by default
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (await node.http.put("/", content=b"{}")).status_code == 405
    # hostile query strings get JSON-RPC errors, not server errors
    deep = "[" * 1200 + "]" * 1200  # deeper than the JSON parser allows, shorter than the query cap
    for query in ({"height": deep}, {"height": "1" * 5000}, {"height": "NaN"}, {"x": "1"}):
        r = await node.http.get("/block", params=query)
        assert r.status_code == 200 and code_of(r.json()) == -32602, query
    assert (await node.http.get("/block?" + "a=1&" * 3000)).status_code == 413


async def test_metrics_count_requests_by_method(node: Node, chain_id: str) -> None:
    await node.call("broadcast_tx_sync", {"tx": transfer(ALICE, chain_id, 0)})
    node.ctx.produce_block()
    for _ in range(3):
        await node.call("status")
    await node.call("bogus_method_name")
    text = (await node.http.get("/metrics")).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples['attrchain_rpc_requests_total{method="status"}'] == 3
    assert samples['attrchain_rpc_requests_total{method="unknown"}'] == 1
    assert samples['attrchain_rpc_errors_total{code="-32601"}'] == 1
    assert samples["attrchain_height"] == 1
    assert samples["attrchain_mempool_size"] == 0 and samples["attrchain_mempool_bytes"] == 0
    assert "attrchain_block_processing_seconds_bucket" in text and "attrchain_committed_txs_total" in text
    assert "attrchain_peers" in samples
    assert samples["attrchain_event_loop_tasks"] > 0  # the serving loop's living tasks
