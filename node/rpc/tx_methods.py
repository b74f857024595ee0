"""Handlers that submit transactions: broadcast_tx_sync, broadcast_tx_async, broadcast_tx_commit."""

from __future__ import annotations

import logging
from typing import Any

import trio

from node.rpc.env import RPCEnv
from node.rpc.door import refusal
from node.rpc.errors import InternalError, LimitExceeded, TxRejectedError
from state.chain import TxLocation
from state.codec import CodecError
from state.crypto import sha256, to_hex
from state.errors import TxRejected
from state.tx import decode_tx

log = logging.getLogger(__name__)

ASYNC_QUEUE = 4096  # accepted-but-not-yet-checked async submissions


async def _submit(env: RPCEnv, raw: bytes) -> bytes:
    """Through the intake (node/tx_intake.py): the door, the budget, the signature workers, the pool."""
    try:
        return await env.intake.submit(raw)
    except TxRejected as exc:
        raise refusal(exc, to_hex(sha256(raw))) from None


def _committed(tx_hash: bytes, loc: TxLocation) -> dict[str, Any]:
    return {
        "hash": to_hex(tx_hash),
        "committed": True,
        "height": loc.height,
        "index": loc.index,
        "result": {"code": loc.code, "reason": loc.reason, "message": loc.message},
    }


async def broadcast_tx_sync(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    tx_hash = await _submit(env, p["tx"])
    return {"hash": to_hex(tx_hash), "code": 0}


class AsyncSubmitter:
    """A bounded queue of async submissions checked by one task, in arrival order."""

    def __init__(self, env: RPCEnv) -> None:
        self.env = env
        self.send, self.receive = trio.open_memory_channel[bytes](ASYNC_QUEUE)

    def offer(self, raw: bytes) -> None:
        try:
            self.send.send_nowait(raw)
        except trio.WouldBlock:
            self.env.metrics.drop("rpc_tx", "async_queue_full")
            raise LimitExceeded(f"{ASYNC_QUEUE} async submissions are already waiting") from None

    async def run(self) -> None:
        async for raw in self.receive:
            try:
                await self.env.intake.submit(raw)
            except TxRejected as exc:
                log.debug("async tx %s rejected: %s", sha256(raw).hex()[:12], exc.reason)
            except Exception:  # a mempool bug must not take the RPC server (and the node) down
                log.exception("async submission of %s failed", sha256(raw).hex()[:12])
            await trio.lowlevel.checkpoint()


def broadcast_tx_async(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    """Returns the hash at once; only the stateless decoding is checked before answering."""
    raw = p["tx"]
    try:
        tx = decode_tx(raw)
    except CodecError as exc:
        raise TxRejectedError("malformed", str(exc), to_hex(sha256(raw))) from None
    submitter = env.submitter
    if submitter is None:
        raise InternalError("async submission is not running")
    submitter.offer(raw)
    return {"hash": to_hex(tx.hash)}


async def broadcast_tx_commit(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    """Submit, then wait until a block commits the transaction or the timeout passes.

    A transaction in a block may still have failed: see ``result.code`` and ``result.reason``.
    On timeout the answer is ``committed: false`` (the transaction may still be committed later:
    poll `tx`).
    """
    raw = p["tx"]
    tx_hash = sha256(raw)
    cap = env.config.commit_timeout_s
    timeout = min(p["timeout"], cap) if p["timeout"] is not None else cap
    chain = env.chain
    loc = chain.get_tx_location(tx_hash)
    if loc is not None:
        return _committed(tx_hash, loc)
    events = env.ctx.events
    waiter = events.tx_waiter(tx_hash)  # registered before submitting: a fast commit is not missed
    try:
        try:
            await env.intake.submit(raw)
        except TxRejected as exc:
            if exc.reason != "duplicate":  # already pooled: wait for it like the first sender
                raise refusal(exc, to_hex(tx_hash)) from None
        with trio.move_on_after(timeout):
            await waiter.wait()
    finally:
        events.drop_waiter(tx_hash, waiter)
    loc = chain.get_tx_location(tx_hash)
    if loc is None:
        return {"hash": to_hex(tx_hash), "committed": False, "timeout_s": timeout}
    return _committed(tx_hash, loc)
