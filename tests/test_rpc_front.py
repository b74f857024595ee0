"""The RPC front process answers door refusals without the node process (node/rpc/front.py, issue 15).

The proof is structural, not timed: the node's process is stopped (SIGSTOP), so no thread of it
runs and an answer can only come from the front process. On the RPC thread the same request
would wait for the node process (and its GIL) to run again.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from conftest import VALIDATOR_KEY, make_genesis
from netkit import wait_until
from node.metrics import Metrics
from node.rpc.front import DoorBoard
from node.tx_intake import DoorSnapshot, IntakeSettings
from state.crypto import PrivateKey, sha256, to_hex
from state.tx import Transfer, sign_tx

pytestmark = pytest.mark.multinode

CHAIN_ID = "attrchain-front"
ALICE = PrivateKey.from_int(1)
BOB = PrivateKey.from_int(2)
ANSWER_TIMEOUT_S = 30  # a refusal that needed the stopped node would never come: fail, not hang


def _node_main(db: str, out: Any) -> None:
    """(A child process.) A chain served by serve_rpc with the RPC front process; every client
    transaction is refused at the door (an intake budget that holds nothing)."""
    from node.mempool import Mempool
    from node.rpc.standalone import StandaloneContext, serving
    from node.tx_intake import TxIntake
    from state.chain import Chain
    from state.store import StateDB

    balances = {ALICE.address: 10**12}
    chain = Chain(StateDB(Path(db)))
    chain.init_genesis(make_genesis(CHAIN_ID, balances))
    ctx = StandaloneContext(chain, make_genesis(CHAIN_ID, balances), Mempool(chain), proposer=VALIDATOR_KEY.address)
    metrics = Metrics()
    ctx.intake = TxIntake(ctx.mempool, metrics, IntakeSettings(verify_workers=0, burst_s=0.0))  # type: ignore[attr-defined]

    async def serve() -> None:
        async with serving(ctx, metrics=metrics, front=True) as url:
            out.put(url)
            await trio.sleep_forever()

    trio.run(serve)


def tx_request(rid: Any, raw: bytes) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": "broadcast_tx_sync", "params": {"tx": to_hex(raw)}}


def children_of(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as fh:
            out += [int(p) for p in fh.read().split()]
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_refusals_are_answered_while_the_node_process_is_stopped_and_the_front_ends_with_it(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    node = ctx.Process(target=_node_main, args=(str(tmp_path / "db"), out), daemon=True)
    node.start()
    assert node.pid is not None
    stopped = False
    try:
        url = out.get(timeout=120)
        fronts = children_of(node.pid)
        assert len(fronts) == 1, fronts  # the front process, a child of the node's
        txs = [sign_tx(ALICE, CHAIN_ID, n, Transfer(BOB.address, 1), 1).raw for n in range(3)]
        with httpx.Client(base_url=url, timeout=ANSWER_TIMEOUT_S) as http:
            os.kill(node.pid, signal.SIGSTOP)
            stopped = True
            one = http.post("/", json=tx_request(1, txs[0])).json()
            assert one == {"jsonrpc": "2.0", "id": 1, "error": {
                "code": -32005, "message": "transaction refused: intake_busy",
                "data": {"reason": "intake_busy", "message": one["error"]["data"]["message"],
                         "hash": to_hex(sha256(txs[0]))}}}
            batch = http.post("/", json=[tx_request(2, txs[1]), tx_request(3, txs[2])]).json()
            assert [(a["id"], a["error"]["data"]["reason"]) for a in batch] == [(2, "intake_busy"), (3, "intake_busy")]
            os.kill(node.pid, signal.SIGCONT)
            stopped = False

            # what the door cannot refuse goes to the node; the front's refusals reach its /metrics
            status = http.post("/", json={"jsonrpc": "2.0", "id": 4, "method": "status"}).json()
            assert status["result"]["node_info"]["network"] == CHAIN_ID

            def counted() -> bool:
                return 'attrchain_dropped_total{reason="intake_busy",where="rpc_tx"} 3.0' in http.get("/metrics").text

            wait_until(counted, 10, "the front's refusals in the node's /metrics")
            text = http.get("/metrics").text
            assert 'attrchain_rpc_requests_total{method="broadcast_tx_sync"} 3.0' in text
            assert 'attrchain_rpc_errors_total{code="-32005"} 3.0' in text
        node.kill()  # no goodbye: the front sees its link close and exits
        node.join(10)
        wait_until(lambda: not any(alive(p) for p in fronts), 30, "the front process to exit with its node")
    finally:
        if stopped:
            os.kill(node.pid, signal.SIGCONT)
        if node.is_alive():
            node.kill()
            node.join(10)


def test_the_door_board_carries_the_snapshot_between_processes() -> None:
    board = DoorBoard()
    try:
        reader = DoorBoard(os.dup(board.fd))  # another mapping of the same memory, as in the front
        assert reader.read() is None  # nothing written: the node decides
        board.write(DoorSnapshot(0.25, 12.5, None, 7, 3))
        assert reader.read() == DoorSnapshot(0.25, 12.5, None, 7, 3)
        board.write(DoorSnapshot(0.0, 13.0, 500, 600, 4))
        door = reader.read()
        assert door == DoorSnapshot(0.0, 13.0, 500, 600, 4)
        refused = door.refusal(IntakeSettings(share_pct=50, burst_s=0.05), now=13.0)
        assert refused is not None and refused.reason == "intake_busy"
        # 0.1 s later the budget has refilled past the clients' reserve: the bound refuses now
        refused = door.refusal(IntakeSettings(share_pct=50, burst_s=0.05), now=13.1)
        assert refused is not None and refused.reason == "mempool_full" and "(500," in refused.message
        reader.close()
    finally:
        board.close()
