"""The RPC thread refuses at the door without the node's event loop (node/rpc/door.py, issue 15).

The proof is structural, not timed: the node's loop is blocked in a synchronous call (which is
itself the HTTP client), so an answer can only come from the RPC thread's own loop.
"""

from __future__ import annotations

import http.client
import json
from collections import deque
from typing import Any
from urllib.parse import urlparse

import trio

from conftest import VALIDATOR_KEY, make_genesis
from node.metrics import Metrics
from node.mempool import Mempool
from node.rpc.standalone import StandaloneContext, serving
from node.tx_intake import MIN_BACKLOG, IntakeSettings, TxIntake
from state.crypto import PrivateKey, sha256, to_hex
from state.tx import Transfer, sign_tx

ALICE = PrivateKey.from_int(1)
BOB = PrivateKey.from_int(2)
BLOCKING_CLIENT_TIMEOUT_S = 30  # a refusal that needed the blocked loop would never come: fail, not hang


def post_blocking(url: str, doc: Any) -> tuple[int, Any]:
    """A synchronous HTTP POST: called on the node's loop, it blocks that loop until answered."""
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=BLOCKING_CLIENT_TIMEOUT_S)
    try:
        conn.request("POST", "/", json.dumps(doc), {"content-type": "application/json"})
        r = conn.getresponse()
        body = r.read()
        return r.status, json.loads(body) if body else None
    finally:
        conn.close()


def tx_request(rid: Any, method: str, raw: bytes) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": {"tx": to_hex(raw)}}


async def test_a_door_refusal_is_answered_while_the_node_loop_is_blocked(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    balances = {ALICE.address: 10**12}
    chain = new_chain(balances)
    ctx = StandaloneContext(chain, make_genesis(chain_id, balances), Mempool(chain), proposer=VALIDATOR_KEY.address)
    metrics = Metrics()
    # a budget that holds nothing: every client transaction is intake_busy
    ctx.intake = TxIntake(ctx.mempool, metrics, IntakeSettings(verify_workers=0, burst_s=0.0))  # type: ignore[attr-defined]
    txs = [sign_tx(ALICE, chain_id, n, Transfer(BOB.address, 1), 1).raw for n in range(3)]
    async with serving(ctx, metrics=metrics) as url:
        # the first refusal comes from the loop (no snapshot yet); it publishes the door snapshot
        status, first = await trio.to_thread.run_sync(post_blocking, url, tx_request(1, "broadcast_tx_sync", txs[0]))
        assert status == 200 and first["error"]["data"]["reason"] == "intake_busy"
        assert ctx.intake.door is not None  # type: ignore[attr-defined]

        # now the loop is blocked inside post_blocking: only the RPC thread can answer
        status, answer = post_blocking(url, tx_request(2, "broadcast_tx_sync", txs[1]))
        assert status == 200
        assert answer == {"jsonrpc": "2.0", "id": 2, "error": {
            "code": -32005, "message": "transaction refused: intake_busy",
            "data": {"reason": "intake_busy", "message": first["error"]["data"]["message"],
                     "hash": to_hex(sha256(txs[1]))}}}
        status, batch = post_blocking(url, [tx_request(3, "broadcast_tx_sync", txs[2]),
                                            {**tx_request(4, "broadcast_tx_sync", txs[1]), "id": None},
                                            {k: v for k, v in tx_request(0, "broadcast_tx_sync", txs[0]).items()
                                             if k != "id"}])  # a notification: no answer
        assert status == 200 and [(a["id"], a["error"]["data"]["reason"]) for a in batch] == [
            (3, "intake_busy"), (None, "intake_busy")]
        status, none = post_blocking(url, {k: v for k, v in tx_request(0, "broadcast_tx_sync", txs[0]).items()
                                           if k != "id"})
        assert (status, none) == (204, None)

        # counted like the loop's refusals: 1 + 1 + 3 + 1 requests, all refused at the door
        assert metrics.drops.snapshot()[("rpc_tx", "intake_busy")] == 6
        # a request the door cannot answer goes to the loop, which answers once it runs again
        status, st = await trio.to_thread.run_sync(post_blocking, url, {"jsonrpc": "2.0", "id": 5, "method": "status"})
        assert status == 200 and st["result"]["sync_info"]["latest_block_height"] == 0
    assert ctx.mempool.size == 0


class FakePool:
    chain_id = "x"

    def __init__(self, size: int) -> None:
        self.size = size
        self.commit_log: deque[tuple[float, int]] = deque()
        self.blocks_seen = 0


def test_the_door_snapshot_refuses_at_the_backlog_bound_until_a_block_makes_it_stale() -> None:
    pool = FakePool(MIN_BACKLOG - 1)
    intake = TxIntake(pool, Metrics(), IntakeSettings(verify_workers=0))  # type: ignore[arg-type]
    assert intake.door_refusal() is None  # no snapshot: the loop decides
    intake.publish_door()
    assert intake.door_refusal() is None  # below the bound
    pool.size = MIN_BACKLOG
    assert intake.door_refusal() is None  # the snapshot still says below: the loop decides
    intake.publish_door()
    refused = intake.door_refusal()
    assert refused is not None and refused.reason == "mempool_full" and f"({MIN_BACKLOG}," in refused.message
    pool.blocks_seen += 1  # a block committed: the snapshot's size and bound are out of date
    assert intake.door_refusal() is None
