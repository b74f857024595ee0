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

import pytest
import trio

from conftest import VALIDATOR_KEY, make_genesis
from node.metrics import Metrics
from node.mempool import Mempool
from node.rpc.standalone import StandaloneContext, serving
from node.rpc.door import FORWARD, Door
from node.tx_intake import FRONT_ADMITTED, MIN_BACKLOG, SHARE_SLACK, IntakeSettings, TxIntake
from state.errors import TxRejected
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
        self.local_size = 0
        self.commit_log: deque[tuple[float, int, int]] = deque()
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


class RoomIntake:
    """The door's view of the node for the reserve rule: open, with ``room`` before the bound."""

    def __init__(self, room: int | None) -> None:
        self.room = room
        self.closed: TxRejected | None = None

    def door_refusal(self) -> TxRejected | None:
        return self.closed

    def door_room(self) -> int | None:
        return self.room

    def over_room(self, held: int) -> TxRejected:
        return TxRejected("mempool_full", f"the pool holds {held} more than its room")


def test_the_front_door_holds_forwarded_transactions_against_the_room_and_refuses_past_it() -> None:
    """Without the reserve, a request forwarded while the door was open could be refused later by
    the node's loop (slowly) after peers' gossip filled the pool; the front now counts what it
    forwarded until answered and refuses at once what would not fit."""
    intake = RoomIntake(room=3)
    door = Door(intake, Metrics(), max_batch=10, max_page=10, reserve=True)  # type: ignore[arg-type]
    txs = [sign_tx(ALICE, "x", n, Transfer(BOB.address, 1), 1).raw for n in range(4)]
    lone, held = door.admit(json.dumps(tx_request(1, "broadcast_tx_sync", txs[0])).encode())
    assert (lone, held) == (FORWARD, 1) and door.held == 1
    pair = json.dumps([tx_request(2, "broadcast_tx_sync", txs[1]), tx_request(3, "broadcast_tx_sync", txs[2])])
    assert door.admit(pair.encode()) == (FORWARD, 2) and door.held == 3  # exactly the room
    answer, held = door.admit(json.dumps(tx_request(4, "broadcast_tx_sync", txs[3])).encode())
    assert held == 0 and json.loads(answer)["error"]["data"]["reason"] == "mempool_full"
    # other methods and mixed batches go to the node and hold nothing
    assert door.admit(b'{"jsonrpc": "2.0", "id": 5, "method": "status"}') == (FORWARD, 0)
    door.release(2)  # the pair was answered: its transactions are in the pool's size now
    intake.room = 2
    assert door.admit(pair.encode()) == (FORWARD, 0)  # room for one of two: the node decides each
    assert door.admit(json.dumps(tx_request(6, "broadcast_tx_sync", txs[3])).encode()) == (FORWARD, 1)
    intake.closed = TxRejected("intake_busy", "busy")  # a closed door refuses whatever the room
    answer, held = door.admit(json.dumps(tx_request(7, "broadcast_tx_sync", txs[3])).encode())
    assert held == 0 and json.loads(answer)["error"]["data"]["reason"] == "intake_busy"
    intake.closed, intake.room = None, None  # no bound: nothing to hold
    assert door.admit(json.dumps(tx_request(8, "broadcast_tx_sync", txs[3])).encode()) == (FORWARD, 0)


async def test_a_transaction_the_front_held_against_the_room_is_admitted_past_the_bound(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    senders = [PrivateKey.from_int(100 + i) for i in range(MIN_BACKLOG + 2)]
    chain = new_chain({k.address: 10**12 for k in senders})
    pool = Mempool(chain)
    intake = TxIntake(pool, Metrics(), IntakeSettings(verify_workers=0, share_pct=100))
    raws = [sign_tx(k, chain_id, 0, Transfer(BOB.address, 1), 1).raw for k in senders]
    for raw in raws[:MIN_BACKLOG]:  # peers' transactions filled the pool to the bound
        pool.admit_from_peer(raw)
    assert pool.size == MIN_BACKLOG
    with pytest.raises(TxRejected) as refused:
        await intake.submit(raws[MIN_BACKLOG])
    assert refused.value.reason == "mempool_full"

    async def held_by_the_front() -> None:
        FRONT_ADMITTED.set(True)
        await intake.submit(raws[MIN_BACKLOG + 1])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(held_by_the_front)
    assert pool.size == MIN_BACKLOG + 1 and not FRONT_ADMITTED.get()  # set in that task only


async def test_each_node_admits_its_clients_only_up_to_their_share_of_the_backlog_bound(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    """Every node reads the backlog bound from its own pool and its peers' transactions reach it
    a gossip round later: 16 validators each admitted up to the whole bound (500) before they saw
    each other's, pools of 1,600 and p95 latency 6-7 s at 2x load. Now a node's clients may fill
    their share of the bound: at first SHARE_SLACK/16 of it, then what their transactions were of
    the recent blocks. Peers' transactions are not bound by it."""
    senders = [PrivateKey.from_int(100 + i) for i in range(MIN_BACKLOG + 10)]
    chain = new_chain({k.address: 10**12 for k in senders})
    pool = Mempool(chain)
    intake = TxIntake(pool, Metrics(), IntakeSettings(verify_workers=0, share_pct=100), origins=lambda: 16)
    raws = [sign_tx(k, chain_id, 0, Transfer(BOB.address, 1), 1).raw for k in senders]
    even = -(-MIN_BACKLOG * SHARE_SLACK // 16)
    assert even < MIN_BACKLOG
    assert intake.backlog_bound() == MIN_BACKLOG and intake.local_share() == even
    for raw in raws[:even]:
        await intake.submit(raw)
    with pytest.raises(TxRejected) as refused:
        await intake.submit(raws[even])
    assert refused.value.reason == "mempool_full" and f"share of the backlog bound ({even}" in refused.value.message
    assert pool.size == even < MIN_BACKLOG and pool.local_size == even
    intake.publish_door()  # the RPC thread and front refuse from the same figures
    door = intake.door_refusal()
    assert door is not None and door.reason == "mempool_full" and intake.door_room() == 0
    assert pool.admit_from_peer(raws[even + 1]) is None  # a peer's: not this node's clients'
    assert pool.size == even + 1 and pool.local_size == even
    # the next blocks hold only this node's clients' transactions: their share is the whole bound
    pool.update_after_block([])
    pool.update_after_block([sha256(raw) for raw in raws[:even]])
    assert pool.local_size == 0 and intake.local_share() == intake.backlog_bound()
    await intake.submit(raws[even])
    assert pool.local_size == 1


def test_the_door_checks_params_exactly_as_the_method_table_does() -> None:
    """The front answers refusals from DOOR_SCHEMAS without importing the method table: a request
    the table's schema would refuse as bad params must be forwarded (the dispatcher answers it),
    so each door method's schema is the table's."""
    from node.rpc.door import DOOR_SCHEMAS
    from node.rpc.methods import METHODS

    for name, schema in DOOR_SCHEMAS.items():
        assert schema == METHODS[name].schema, name


def test_the_front_imports_neither_the_dispatcher_nor_the_method_table() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, node.rpc.front; "
                          "print(' '.join(sorted(m for m in sys.modules if m.startswith(('node.rpc', 'numpy')))))"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert "node.rpc.front" in out
    assert not {"node.rpc.dispatch", "node.rpc.methods", "node.rpc.server", "numpy"} & set(out), out
