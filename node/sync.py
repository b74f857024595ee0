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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from consensus.votes import InvalidCommit, verify_commit
from node.executor import validate_and_execute, validator_set_at
from p2p.errors import P2PError
from state.block import Block, Commit, decode_block
from state.chain import Chain, Executed
from state.codec import CodecError, decode, pack, unpack
from state.errors import InvalidBlock

log = logging.getLogger(__name__)

MAX_BLOCKS_PER_RESPONSE = 200
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
REQUEST_TIMEOUT_S = 20.0


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


async def sync_from_peers(
    chain: Chain,
    peers: Callable[[], list[str]],
    request: Request,
    on_block: Callable[[Block, Executed], None],
    batch: int = 100,
    lag_threshold: int = 0,
) -> int:
    """Download and apply blocks until no peer is more than ``lag_threshold`` ahead.

    Returns the number of blocks applied. Logs progress every ~2 s.
    """
    applied = 0
    last_log = time.monotonic()
    while True:
        statuses = [s for s in [await peer_status(request, p) for p in sorted(peers())] if s]
        best = max(statuses, key=lambda s: (s.height, s.peer), default=None)
        if best is None or best.height <= chain.height + lag_threshold:
            return applied
        target = best.height
        log.info("block sync: at height %d, peer %s is at %d", chain.height, best.peer[-8:], target)
        while chain.height < target:
            try:
                resp = unpack(await request(best.peer, pack(["blocks", chain.height + 1, batch])))
            except (P2PError, CodecError) as exc:
                log.warning("block sync from %s failed: %s", best.peer[-8:], exc)
                break
            if not (isinstance(resp, list) and len(resp) == 2 and resp[0] == "blocks" and isinstance(resp[1], list)):
                log.warning("block sync: %s sent a malformed response", best.peer[-8:])
                break
            if not resp[1]:
                break
            try:
                last = len(resp[1]) - 1
                for i, item in enumerate(resp[1]):
                    if not (isinstance(item, list) and len(item) == 2):
                        raise SyncError("malformed block entry")
                    # fsync once per downloaded batch, at its last block
                    on_block(*apply_synced_block(chain, item[0], item[1], durable=i == last))
                    applied += 1
                    await trio.lowlevel.checkpoint()
            except SyncError as exc:
                log.warning("block sync: rejecting peer %s: %s", best.peer[-8:], exc)
                break
            if time.monotonic() - last_log > 2:
                last_log = time.monotonic()
                log.info("block sync: height %d of %d", chain.height, target)
        else:
            continue
        return applied
