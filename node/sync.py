"""Block sync: a request/response protocol to download committed blocks with their commits.

Requests and responses are canonical msgpack arrays (docs/p2p.md):
    ["status"]                         -> ["status", height, genesis_hash]
    ["blocks", from_height, max_count] -> ["blocks", [[block_bytes, commit_bytes], ...]]
    anything else                      -> ["error", message]
A response holds at most MAX_BLOCKS_PER_RESPONSE blocks and stops early at MAX_RESPONSE_BYTES.

The syncing side verifies every block before applying it: the commit proves the block (more than
2/3 of the power of that height's validator set signed its hash), then the header rules and the
execution result are checked exactly as for a proposal (node/executor.py).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import trio

from consensus.votes import InvalidCommit, verify_commit
from node.executor import validate_and_execute, validator_set_at
from p2p.errors import P2PError
from state.block import Block, Commit, decode_block
from state.chain import Chain, Executed
from state.codec import CodecError, decode, pack, unpack
from state.errors import InvalidBlock
from state.tx import decode_tx

log = logging.getLogger(__name__)

MAX_BLOCKS_PER_RESPONSE = 200
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
REQUEST_TIMEOUT_S = 20.0
PIPELINE_BATCHES = 2  # downloaded batches held ahead of the one being applied
MAX_VERIFY_WORKERS = 4


class SyncError(Exception):
    """A peer sent something that does not verify; the peer is skipped."""


def handle_sync_request(chain: Chain, payload: bytes) -> bytes:
    """Serve one block-sync request from the committed chain. Never raises on bad input."""
    try:
        req = unpack(payload, 1024)
    except CodecError as exc:
        return pack(["error", f"malformed request: {exc}"])
    if req == ["status"]:
        return pack(["status", chain.height, chain.genesis_hash or b""])
    if (
        isinstance(req, list) and len(req) == 3 and req[0] == "blocks"
        and type(req[1]) is int and type(req[2]) is int and req[1] >= 1 and req[2] >= 1
    ):
        start, count = req[1], min(req[2], MAX_BLOCKS_PER_RESPONSE)
        items: list[list[bytes]] = []
        size = 0
        for h in range(start, min(chain.height, start + count - 1) + 1):
            raw = chain.get_block_bytes(h)
            commit = chain.get_commit(h)
            if raw is None or commit is None:
                break
            commit_raw = commit.encode()  # type: ignore[attr-defined]
            size += len(raw) + len(commit_raw) + 16
            if items and size > MAX_RESPONSE_BYTES:
                break
            items.append([raw, commit_raw])
        return pack(["blocks", items])
    return pack(["error", "unknown request"])


@dataclass
class PeerStatus:
    peer: str
    height: int


Request = Callable[[str, bytes], Awaitable[bytes]]


async def peer_status(request: Request, peer: str) -> PeerStatus | None:
    try:
        resp = unpack(await request(peer, pack(["status"])))
    except (P2PError, CodecError) as exc:
        log.debug("status from %s failed: %s", peer, exc)
        return None
    if not (isinstance(resp, list) and len(resp) == 3 and resp[0] == "status" and type(resp[1]) is int):
        return None
    return PeerStatus(peer, resp[1])


def apply_synced_block(chain: Chain, block_raw: bytes, commit_raw: bytes,
                       verified: frozenset[bytes] | set[bytes] = frozenset(),
                       durable: bool = True) -> tuple[Block, Executed]:
    """Verify one downloaded block with its commit and commit it to the chain."""
    try:
        block = decode_block(block_raw)
        commit = decode(Commit, commit_raw)
    except CodecError as exc:
        raise SyncError(f"undecodable block: {exc}") from exc
    height = chain.height + 1
    if block.header.height != height:
        raise SyncError(f"peer sent height {block.header.height}, expected {height}")
    try:
        verify_commit(chain.chain_id, validator_set_at(chain.db.view(), height), commit, height,
                      block.header.hash())
        executed = validate_and_execute(chain, block, len(block_raw), verified)
    except (InvalidCommit, InvalidBlock) as exc:
        raise SyncError(f"block {height} does not verify: {exc}") from exc
    chain.commit(block, executed, seen_commit=commit, block_bytes=block_raw, sync=durable)
    return block, executed


class SignatureVerifier:
    """Verifies the transaction signatures of downloaded blocks in worker processes.

    A worker verifies the next downloaded batch on another core while the event-loop thread
    applies the current one. Processes, not threads: the workers decode in Python, and a thread
    doing that contends for the GIL with the applying thread (measured: both slowed to half).
    The result is the set of transaction hashes whose signature verifies for this chain id; the
    state transition then skips only those checks (every other rule still runs), and a transaction
    whose hash is missing is verified again inline, so a worker never decides a block's validity.
    """

    def __init__(self, chain_id: str, workers: int | None = None) -> None:
        self.chain_id = chain_id
        self.workers = workers or max(1, min(MAX_VERIFY_WORKERS, (os.cpu_count() or 2) - 1))
        # spawn: forking a process that runs trio and libp2p threads is not safe
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, block_raws: list[bytes]) -> list[Future[set[bytes]]]:
        """Start checking these blocks' transactions, split evenly over the workers."""
        step = -(-len(block_raws) // self.workers) or 1
        try:
            return [self._pool.submit(verified_tx_hashes, self.chain_id, block_raws[i:i + step])
                    for i in range(0, len(block_raws), step)]
        except (BrokenProcessPool, RuntimeError) as exc:
            log.warning("signature workers unavailable (%s); verifying inline", exc)
            return []

    @staticmethod
    async def result(futures: list[Future[set[bytes]]]) -> set[bytes]:
        """The hashes the workers verified; a failed worker only means more inline checks."""
        verified: set[bytes] = set()
        for fut in futures:
            try:
                verified |= fut.result() if fut.done() else await trio.to_thread.run_sync(fut.result)
            except (BrokenProcessPool, CancelledError, OSError) as exc:
                log.warning("a signature worker failed (%s); verifying inline", exc)
        return verified

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def verified_tx_hashes(chain_id: str, block_raws: list[bytes]) -> set[bytes]:
    """Hashes of the transactions in these blocks whose signature verifies for ``chain_id``."""
    verified: set[bytes] = set()
    for raw in block_raws:
        try:
            txs = decode_block(raw).txs
        except CodecError:
            continue  # the applying side rejects the block with the reason
        for tx_raw in txs:
            try:
                tx = decode_tx(tx_raw)
            except CodecError:
                continue
            if tx.has_valid_signature(chain_id):
                verified.add(tx.hash)
    return verified


async def fetch_blocks(request: Request, peer: str, start: int, count: int) -> list[list[bytes]] | None:
    """One ``blocks`` request; None (logged) when the peer fails or answers malformed."""
    try:
        resp = unpack(await request(peer, pack(["blocks", start, count])))
    except (P2PError, CodecError) as exc:
        log.warning("block sync from %s failed: %s", peer[-8:], exc)
        return None
    if not (isinstance(resp, list) and len(resp) == 2 and resp[0] == "blocks" and isinstance(resp[1], list)
            and all(isinstance(item, list) and len(item) == 2 and all(type(b) is bytes for b in item)
                    for item in resp[1])):
        log.warning("block sync: %s sent a malformed response", peer[-8:])
        return None
    return resp[1]


Batch = tuple[list[list[bytes]], list["Future[set[bytes]]"]]


async def download(request: Request, peer: str, start: int, target: int, count: int,
                   verifier: SignatureVerifier | None, out: trio.MemorySendChannel[Batch]) -> None:
    """Fetch blocks start..target in requests of ``count``, handing each batch (with its pending
    signature checks) to ``out``; the channel's capacity bounds how far it runs ahead."""
    async with out:
        height = start
        while height <= target:
            items = await fetch_blocks(request, peer, height, count)
            if not items:
                return
            futures = verifier.submit([item[0] for item in items]) if verifier else []
            await out.send((items, futures))
            height += len(items)


async def sync_from_peers(
    chain: Chain,
    peers: Callable[[], list[str]],
    request: Request,
    on_block: Callable[[Block, Executed], None],
    batch: int = 100,
    lag_threshold: int = 0,
) -> int:
    """Download and apply blocks until no peer is more than ``lag_threshold`` ahead.

    Pipelined: a download task fetches batches ahead (at most PIPELINE_BATCHES) and, when the
    node is more than one batch behind, has their transaction signatures verified by worker
    processes (`SignatureVerifier`) while this task applies the batch before. Each batch is
    fsynced once, at its last block. Returns the number of blocks applied. Logs progress ~2 s.
    """
    applied = 0
    last_log = time.monotonic()
    verifier: SignatureVerifier | None = None
    try:
        while True:
            statuses = [s for s in [await peer_status(request, p) for p in sorted(peers())] if s]
            best = max(statuses, key=lambda s: (s.height, s.peer), default=None)
            if best is None or best.height <= chain.height + lag_threshold:
                return applied
            target = best.height
            log.info("block sync: at height %d, peer %s is at %d", chain.height, best.peer[-8:], target)
            if verifier is None and target - chain.height > batch:
                verifier = SignatureVerifier(chain.chain_id)
            rejected = False
            async with trio.open_nursery() as nursery:
                send, receive = trio.open_memory_channel[Batch](PIPELINE_BATCHES - 1)
                nursery.start_soon(download, request, best.peer, chain.height + 1, target, batch, verifier, send)
                async with receive:
                    async for items, futures in receive:
                        verified = await SignatureVerifier.result(futures)
                        try:
                            last = len(items) - 1
                            for i, (block_raw, commit_raw) in enumerate(items):
                                # fsync once per downloaded batch, at its last block
                                on_block(*apply_synced_block(chain, block_raw, commit_raw, verified,
                                                             durable=i == last))
                                applied += 1
                                await trio.lowlevel.checkpoint()
                        except SyncError as exc:
                            log.warning("block sync: rejecting peer %s: %s", best.peer[-8:], exc)
                            rejected = True
                            nursery.cancel_scope.cancel()
                            break
                        if time.monotonic() - last_log > 2:
                            last_log = time.monotonic()
                            log.info("block sync: height %d of %d", chain.height, target)
            if rejected or chain.height < target:
                return applied
    finally:
        if verifier is not None:
            verifier.close()
