"""WebSocket subscriptions with a real WebSocket client (trio-websocket) against a real server,
blocks committed to a real Chain on LevelDB and published as the node publishes them."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from trio_websocket import WebSocketConnection, open_websocket_url

from conftest import VALIDATOR_KEY, make_genesis
from node.config import RPCConfig
from node.events import NEW_BLOCK, EventBus
from node.mempool import Mempool
from node.rpc.server import serve_rpc
from node.rpc.standalone import StandaloneContext, serving
from state.crypto import PrivateKey, to_hex
from state.tx import Transfer, sign_tx

ALICE = PrivateKey.from_int(1)
BOB = PrivateKey.from_int(2)
BALANCES = {ALICE.address: 10**12, BOB.address: 10**12}


@pytest.fixture(params=[False, True], ids=["thread", "front"])
def front(request: pytest.FixtureRequest) -> bool:
    """Served from the RPC thread and from the RPC front process (node/rpc/front.py)."""
    return bool(request.param)


@pytest.fixture
def ctx(new_chain, chain_id):  # type: ignore[no-untyped-def]
    chain = new_chain(BALANCES)
    return StandaloneContext(chain, make_genesis(chain_id, BALANCES), Mempool(chain), proposer=VALIDATOR_KEY.address)


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/websocket"


async def rpc(ws: WebSocketConnection, method: str, params: Any = None, rid: int = 1) -> dict[str, Any]:
    await ws.send_message(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}}))
    return json.loads(await ws.get_message())  # type: ignore[no-any-return]


async def test_every_block_and_tx_arrives_in_order(ctx: StandaloneContext, front: bool, chain_id: str) -> None:
    blocks = 30
    async with serving(ctx, front=front) as url, open_websocket_url(ws_url(url)) as ws:
        sub_blocks = (await rpc(ws, "subscribe", {"event": "new_block"}, 1))["result"]["subscription"]
        sub_txs = (await rpc(ws, "subscribe", {"event": "tx"}, 2))["result"]["subscription"]
        assert sub_blocks != sub_txs
        sent = []

        async def produce() -> None:
            for h in range(1, blocks + 1):
                for i in range(h % 3):  # 0, 1 or 2 transactions per block
                    tx = sign_tx(ALICE, chain_id, len(sent), Transfer(BOB.address, 1 + i), 1)
                    ctx.mempool.submit(tx.raw)
                    sent.append(tx)
                ctx.produce_block()
                await trio.lowlevel.checkpoint()

        got_blocks: list[dict[str, Any]] = []
        got_txs: list[dict[str, Any]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            with trio.fail_after(20):
                while len(got_blocks) < blocks or len(got_txs) < len(sent) or len(sent) < sum(h % 3 for h in range(1, blocks + 1)):
                    note = json.loads(await ws.get_message())
                    assert note["method"] == "event", note
                    p = note["params"]
                    (got_blocks if p["subscription"] == sub_blocks else got_txs).append(p)
    chain = ctx.chain
    assert [b["data"]["height"] for b in got_blocks] == list(range(1, blocks + 1))
    for b in got_blocks:
        block = chain.get_block(b["data"]["height"])
        assert b["event"] == "new_block"
        assert b["data"]["hash"] == to_hex(block.header.hash())
        assert b["data"]["num_txs"] == len(block.txs)
        assert b["data"]["header"]["state_root"] == to_hex(block.header.state_root)
    assert [t["data"]["hash"] for t in got_txs] == [to_hex(tx.hash) for tx in sent]
    for t in got_txs:
        loc = chain.get_tx_location(bytes.fromhex(t["data"]["hash"][2:]))
        assert (t["data"]["height"], t["data"]["index"], t["data"]["code"], t["data"]["reason"]) == (
            loc.height, loc.index, 0, "")


async def test_unsubscribe_stops_events_and_methods_work_over_ws(ctx: StandaloneContext, front: bool) -> None:
    async with serving(ctx, RPCConfig(max_subscriptions_per_client=2), front=front) as url, \
            open_websocket_url(ws_url(url)) as ws:
        status = await rpc(ws, "status")
        assert status["result"]["sync_info"]["latest_block_height"] == 0
        s1 = (await rpc(ws, "subscribe", {"event": "new_block"}))["result"]["subscription"]
        ctx.produce_block()
        note = json.loads(await ws.get_message())
        assert note["params"]["data"]["height"] == 1
        assert (await rpc(ws, "unsubscribe", {"subscription": s1}))["result"] == {"unsubscribed": True}
        ctx.produce_block()
        # the next message is the answer to this request, not an event of the closed subscription
        assert (await rpc(ws, "health", rid=7)) == {"jsonrpc": "2.0", "id": 7, "result": {}}
        assert (await rpc(ws, "unsubscribe", {"subscription": s1}))["error"]["code"] == -32602
        assert (await rpc(ws, "subscribe", {"event": "nothing"}))["error"]["code"] == -32602
        await rpc(ws, "subscribe", {"event": "tx"})
        await rpc(ws, "subscribe", ["new_block"])
        assert (await rpc(ws, "subscribe", {"event": "tx"}))["error"]["code"] == -32005
        assert (await rpc(ws, "unsubscribe_all"))["result"] == {"unsubscribed": 2}
        assert ctx.events.subscriber_count == 0
        await ws.send_message("{not json")
        assert json.loads(await ws.get_message())["error"]["code"] == -32700
        batch = [{"jsonrpc": "2.0", "id": 1, "method": "health"}, {"jsonrpc": "2.0", "method": "health"}]
        await ws.send_message(json.dumps(batch))
        assert json.loads(await ws.get_message()) == [{"jsonrpc": "2.0", "id": 1, "result": {}}]


async def test_closing_the_socket_releases_subscriptions(ctx: StandaloneContext, front: bool) -> None:
    async with serving(ctx, front=front) as url:
        async with open_websocket_url(ws_url(url)) as ws:
            await rpc(ws, "subscribe", {"event": "new_block"})
            await rpc(ws, "subscribe", {"event": "tx"})
            assert ctx.events.subscriber_count == 2
        # the close reaches the node's loop from the RPC thread or front process: wait for it
        with trio.fail_after(5):
            while ctx.events.subscriber_count:
                await trio.sleep(0.01)
        assert ctx.events.subscriber_count == 0


async def test_a_client_that_falls_behind_is_told_and_dropped(new_chain, chain_id, front) -> None:  # type: ignore[no-untyped-def]
    chain = new_chain(BALANCES)
    ctx = StandaloneContext(chain, make_genesis(chain_id, BALANCES), Mempool(chain),
                            events=EventBus(queue_size=4), proposer=VALIDATOR_KEY.address)
    async with serving(ctx, front=front) as url, open_websocket_url(ws_url(url)) as ws:
        sid = (await rpc(ws, "subscribe", {"event": "new_block"}))["result"]["subscription"]
        for h in range(10):  # no checkpoint in between: the subscriber cannot keep up
            ctx.events.publish(NEW_BLOCK, {"height": h})
        got = []
        with trio.fail_after(5):
            while True:
                note = json.loads(await ws.get_message())
                if note["method"] == "subscription_dropped":
                    break
                got.append(note["params"]["data"]["height"])
        # what fitted (the queue, plus the one handed straight to the waiting forwarder), in order
        assert got == list(range(len(got))) and 4 <= len(got) <= 5
        assert note["params"]["subscription"] == sid and "behind" in note["params"]["reason"]
        assert ctx.events.subscriber_count == 0
        assert (await rpc(ws, "unsubscribe", {"subscription": sid}))["error"]["code"] == -32602


async def test_cancellation_closes_listener_and_connections(ctx: StandaloneContext, front: bool) -> None:
    cancel = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        with cancel:
            await serve_rpc(ctx, RPCConfig(front_process=front), host="127.0.0.1", port=0, task_status=task_status)

    with trio.fail_after(10):
        async with trio.open_nursery() as outer:  # exits only once serve_rpc has returned
            url = await outer.start(run)
            port = int(url.rsplit(":", 1)[1])
            async with httpx.AsyncClient(base_url=url) as http, open_websocket_url(ws_url(url)) as ws:
                r = await http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "health"})
                assert r.status_code == 200
                await rpc(ws, "subscribe", {"event": "new_block"})
                cancel.cancel()  # with a keep-alive connection and a subscribed WebSocket open
    assert ctx.events.subscriber_count == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def test_an_oversized_message_closes_with_1009_as_documented(ctx: StandaloneContext, front: bool) -> None:
    from trio_websocket import ConnectionClosed

    limit = 16 * 1024
    async with serving(ctx, RPCConfig(max_body_bytes=limit), front=front) as url:
        async with open_websocket_url(ws_url(url)) as ws:  # at the limit: answered
            pad = " " * (limit - 80)
            await ws.send_message('{"jsonrpc": "2.0", "id": 1, "method": "health"}' + pad)
            assert json.loads(await ws.get_message()) == {"jsonrpc": "2.0", "id": 1, "result": {}}
        async with open_websocket_url(ws_url(url)) as ws:
            await ws.send_message('{"jsonrpc": "2.0", "id": 1, "method": "health"}' + " " * limit)
            with pytest.raises(ConnectionClosed) as closed:
                with trio.fail_after(10):
                    await ws.get_message()
            assert closed.value.reason.code == 1009
        async with open_websocket_url(ws_url(url)) as ws:  # the server is still up
            assert (await rpc(ws, "health")) == {"jsonrpc": "2.0", "id": 1, "result": {}}
