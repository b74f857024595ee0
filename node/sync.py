"""Block sync: a request/response protocol to download committed blocks with their commits.

Requests and responses are canonical msgpack arrays (docs/p2p.md):
    ["status"]                         -> ["status", height, genesis_hash]
    ["blocks", from_height, max_count] -> ["blocks", [[block_bytes, commit_bytes], ...]]
    anything else                      -> ["error", message]
A response holds at most MAX_BLOCKS_PER_RESPONSE blocks and stops early at MAX_RESPONSE_BYTES.

The syncing side (``BlockSyncer``) verifies every block before applying it: the commit proves the
block (more than 2/3 of the power of that height's validator set signed its hash), then the header
rules and the execution result are checked exactly as for a proposal (node/executor.py). A
status height is only a claim: how peers are chosen, timed out, scored and retried is in
``BlockSyncer`` and docs/security.md.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections.abc import Awaitable, Callable
from concurrent.futures import CancelledError, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from consensus.votes import InvalidCommit, verify_commit
from node.executor import validate_and_execute, validator_set_at
from node.workers import verified_hashes_of, worker_pool
from p2p.errors import P2PError, PeerBanned, ProtocolNotSupported, RemoteError, RequestTimeout
from p2p.scoring import Offence
from state.block import Block, Commit, decode_block
from state.chain import Chain, Executed
from state.codec import CodecError, decode, pack, unpack
from state.errors import InvalidBlock

log = logging.getLogger(__name__)

MAX_BLOCKS_PER_RESPONSE = 200
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
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
        self._pool = worker_pool(self.workers)

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
        verified.update(verified_hashes_of(chain_id, list(txs)))
    return verified


# ---- the syncing side ----------------------------------------------------------------------

Request = Callable[[str, bytes], Awaitable[bytes]]
Report = Callable[[str, Offence, str], None]
Batch = tuple[int, list[list[bytes]], list["Future[set[bytes]]"]]


def _ignore_report(peer: str, offence: Offence, detail: str) -> None:
    """Default ``report`` for callers without peer scoring (tests, tools)."""


@dataclass(frozen=True)
class SyncSettings:
    """Timeouts and retry policy of block sync (config keys ``p2p.sync_*``, docs/security.md)."""

    request_timeout_s: float = 10.0
    poll_s: float = 2.0
    batch: int = 100
    retry_initial_s: float = 2.0
    retry_max_s: float = 120.0
    # a peer that does not serve the sync protocol at all (a light client, another chain's node)
    unsupported_retry_s: float = 300.0
    # while consensus moves on, a timed poll asks only one of this many slices of the peers, so
    # each peer is still asked at least once every ``in_step_slices * poll_s`` (8 s by default)
    in_step_slices: int = 4


@dataclass
class SyncPeer:
    """What block sync knows of one peer."""

    claimed: int = 0  # the height its last status answer claimed (unauthenticated)
    backed: int = 0  # the highest height it served us that verified
    strikes: int = 0  # failures since its last good answer
    retry_at: float = 0.0  # not asked again before this (monotonic clock)
    warned: str = ""  # the last warning logged about it (logged once, not on every retry)


class ConsensusHooks(Protocol):
    """What block sync needs of the consensus driver."""

    paused: bool
    height_started: float

    @property
    def height(self) -> int: ...

    def restart_after_sync(self) -> None: ...


class _Failure(Exception):
    """Why one peer's download stopped; ``offence`` is what it is scored for (None: nothing)."""

    def __init__(self, offence: Offence | None, detail: str, retry_s: float | None = None) -> None:
        super().__init__(detail)
        self.offence = offence
        self.detail = detail
        self.retry_s = retry_s


class BlockSyncer:
    """Keeps the chain caught up with peers without letting any peer stall consensus.

    - Downloads run while consensus runs; the driver is paused only while a downloaded batch that
      already arrived is verified and applied (synchronous work, bounded by the batch size), then
      consensus restarts at the new height. A peer that stalls therefore never pauses consensus:
      its request times out after ``request_timeout_s`` and the next peer is tried.
    - A peer's status height is only a claim. Peers are tried in this order: fewest recent
      failures, then peers whose earlier claims were backed by blocks that verified, then the
      lowest claim above our height (a liar's huge claim is tried last, not first).
    - A peer that serves nothing of a height it claimed is scored for lying (one lie bans it), a
      stalled request for stalling, a block that does not verify for a bad answer; every failed
      peer is retried only after an exponential backoff, and a peer that does not speak the sync
      protocol is warned about once and asked again only after ``unsupported_retry_s``.
    """

    def __init__(
        self,
        chain: Chain,
        peers: Callable[[], list[str]],
        request: Request,
        on_block: Callable[[Block, Executed], None],
        report: Report = _ignore_report,
        settings: SyncSettings = SyncSettings(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.chain = chain
        self._peers = peers
        self._request = request
        self._on_block = on_block
        self._report = report
        self.settings = settings
        self._clock = clock
        self.book: dict[str, SyncPeer] = {}
        self.syncing = False
        self._wanted = trio.Event()
        self._verifier: SignatureVerifier | None = None
        self._last_log = 0.0
        self.received_bytes = 0  # answers received (the benchmark reports it)
        self.polls = 0  # timed polls made, full or of one slice (the slice is chosen by this count)
        self.slice_polls = 0  # timed polls that asked one slice of the peers only

    def in_step(self, consensus: ConsensusHooks) -> bool:
        """Consensus started a height within the last poll interval: in step with the others."""
        return not consensus.paused and self._clock() - consensus.height_started < self.settings.poll_s

    def poll_slice(self, peers: list[str], poll: int) -> list[str]:
        """The peers a slice poll number ``poll`` asks (besides peers never asked yet): those
        whose id's crc32 falls in slice ``poll mod in_step_slices``. Fixed per peer id (a peer
        joining or leaving moves no other peer), so every peer is in one slice of every
        ``in_step_slices`` consecutive polls."""
        n = max(1, self.settings.in_step_slices)
        return [p for p in peers if zlib.crc32(p.encode()) % n == poll % n]

    def wake(self) -> None:
        """Check peers now instead of at the next poll (the driver heard of a later height)."""
        self._wanted.set()

    # ---- the loop ---------------------------------------------------------------------------
    async def run(self, consensus: ConsensusHooks) -> None:
        """Poll peers every ``poll_s`` (or when woken) and catch up whenever one is ahead.

        A timed poll while consensus moves on (a height started within the last ``poll_s``) asks
        one slice of the peers (``poll_slice``): a node committing heights with the others is not
        behind, and when it falls behind the driver wakes this loop on the first message of a later
        height, which asks every peer. The slices still reach every peer within ``in_step_slices``
        polls, so a peer that lies about its height or stalls is asked, timed out and scored even
        by nodes in step. At 16 validators a full poll is 15 status requests asked and 15 served
        per node every 2 s."""
        while True:
            with trio.move_on_after(self.settings.poll_s):
                await self._wanted.wait()
            woken = self._wanted.is_set()  # a wake at the very moment the timer ran out counts
            self._wanted = trio.Event()
            poll_slice: int | None = None
            if not woken:
                self.polls += 1
                if self.in_step(consensus):
                    poll_slice = self.polls
                    self.slice_polls += 1
            # one height behind is normal while the last precommits arrive; behind for long is not
            stuck = self._clock() - consensus.height_started > 4 * self.settings.poll_s
            before = self.chain.height
            applied = await self.catch_up(0 if stuck else 1, consensus, poll_slice)
            if applied:
                log.info("block sync applied %d blocks: %d -> %d (%d bytes received in total)", applied, before,
                         self.chain.height, self.received_bytes)
            if consensus.paused:
                # the driver paused itself for a block it decided but does not hold
                consensus.paused = False
            if self.chain.height >= consensus.height:
                consensus.restart_after_sync()

    async def catch_up(self, lag: int, consensus: ConsensusHooks | None = None,
                       poll_slice: int | None = None) -> int:
        """Sync until no usable peer claims more than ``lag`` heights above ours; blocks applied.
        With ``poll_slice`` the first status round asks only that slice of the peers."""
        applied = 0
        try:
            while True:
                claims = await self._statuses(poll_slice)
                poll_slice = None  # a peer was ahead: the next rounds ask every peer
                ahead = [p for p, h in claims.items() if h > self.chain.height + lag]
                if not ahead:
                    return applied
                round_applied = 0
                for peer in self._order(ahead):
                    entry = self.book[peer]
                    if entry.claimed <= self.chain.height + lag or self._clock() < entry.retry_at:
                        continue
                    round_applied += await self._sync_from(peer, entry, consensus)
                applied += round_applied
                if not round_applied:
                    return applied
        finally:
            self.syncing = False
            if self._verifier is not None:
                self._verifier.close()
                self._verifier = None

    def _order(self, peers: list[str]) -> list[str]:
        def key(peer: str) -> tuple[int, int, int, str]:
            e = self.book[peer]
            return (e.strikes, 0 if e.backed else 1, e.claimed, peer)

        return sorted(peers, key=key)

    # ---- status -----------------------------------------------------------------------------
    async def _statuses(self, poll_slice: int | None = None) -> dict[str, int]:
        """Ask every peer (or one slice of them) not backing off for its height, concurrently;
        peer -> claimed height."""
        now = self._clock()
        peers = sorted(set(self._peers()))
        if poll_slice is not None:
            # a peer never asked yet (just connected) is asked now, whatever its slice: its height
            # is learnt at once, and a liar among new peers is met within one poll, not four
            sliced = set(self.poll_slice(peers, poll_slice))
            peers = [p for p in peers if p in sliced or p not in self.book]
        peers = [p for p in peers if now >= self.book.setdefault(p, SyncPeer()).retry_at]
        claims: dict[str, int] = {}

        async def ask(peer: str) -> None:
            try:
                claims[peer] = await self._status(peer)
            except _Failure as failure:
                self._failed(peer, failure)

        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(ask, peer)
        for peer, height in claims.items():
            self.book[peer].claimed = height
        return claims

    async def _status(self, peer: str) -> int:
        resp = await self._call(peer, pack(["status"]), "status")
        if not (isinstance(resp, list) and len(resp) == 3 and resp[0] == "status"
                and type(resp[1]) is int and resp[1] >= 0 and type(resp[2]) is bytes):
            raise _Failure(Offence.MALFORMED, "malformed status answer")
        if resp[2] != (self.chain.genesis_hash or b""):
            raise _Failure(None, f"peer is on another chain (genesis {resp[2].hex()[:12]})",
                           retry_s=self.settings.unsupported_retry_s)
        return int(resp[1])

    async def _call(self, peer: str, payload: bytes, what: str) -> Any:
        """One request within ``request_timeout_s``; the decoded answer, or ``_Failure``."""
        timeout = self.settings.request_timeout_s
        try:
            with trio.fail_after(timeout):
                raw = await self._request(peer, payload)
            self.received_bytes += len(raw)
        except (trio.TooSlowError, RequestTimeout):
            raise _Failure(Offence.STALLED_REQUEST, f"no answer to {what} within {timeout:g} s") from None
        except ProtocolNotSupported:
            raise _Failure(None, "does not serve block sync", retry_s=self.settings.unsupported_retry_s) from None
        except PeerBanned:
            raise _Failure(None, "banned") from None
        except RemoteError as exc:
            raise _Failure(None, f"refused {what}: {exc.reason[:100]}") from None
        except P2PError as exc:
            raise _Failure(None, f"{what} failed: {exc}") from None
        try:
            resp = unpack(raw)
        except CodecError as exc:
            raise _Failure(Offence.MALFORMED, f"undecodable {what} answer: {exc}") from None
        if isinstance(resp, list) and len(resp) == 2 and resp[0] == "error":
            raise _Failure(None, f"refused {what}: {str(resp[1])[:100]}")
        return resp

    def _failed(self, peer: str, failure: _Failure) -> None:
        entry = self.book.setdefault(peer, SyncPeer())
        entry.strikes += 1
        retry = failure.retry_s or min(self.settings.retry_initial_s * 2 ** (entry.strikes - 1),
                                        self.settings.retry_max_s)
        entry.retry_at = self._clock() + retry
        if failure.offence is not None:
            # scored: p2p/scoring.py logs the one WARNING if this bans the peer
            self._report(peer, failure.offence, failure.detail)
            log.info("block sync: peer %s: %s; asking it again in %.0f s", peer, failure.detail, retry)
        elif not entry.warned:
            # once per peer until it answers well again, whatever the next failures say
            entry.warned = failure.detail
            log.warning("block sync: peer %s: %s; asking it again in %.0f s", peer, failure.detail, retry)
        else:
            log.debug("block sync: peer %s: %s; retry in %.0f s", peer, failure.detail, retry)

    # ---- download and apply -----------------------------------------------------------------
    async def _sync_from(self, peer: str, entry: SyncPeer, consensus: ConsensusHooks | None) -> int:
        target = entry.claimed
        log.info("block sync: at height %d, peer %s claims %d", self.chain.height, peer, target)
        if self._verifier is None and target - self.chain.height > self.settings.batch:
            self._verifier = SignatureVerifier(self.chain.chain_id)
        self.syncing = True
        applied = 0
        failure: list[_Failure] = []
        async with trio.open_nursery() as nursery:
            send, receive = trio.open_memory_channel[Batch](PIPELINE_BATCHES - 1)
            nursery.start_soon(self._download, peer, target, send, failure)
            async with receive:
                async for start, items, futures in receive:
                    verified = await SignatureVerifier.result(futures)
                    count, error = await self._apply(start, items, verified, consensus)
                    applied += count
                    if error is not None:
                        failure.append(_Failure(Offence.BAD_SYNC_ANSWER, str(error)))
                        nursery.cancel_scope.cancel()
                        break
                    entry.backed = max(entry.backed, self.chain.height)
                    if self._clock() - self._last_log > 2:
                        self._last_log = self._clock()
                        log.info("block sync: height %d of %d", self.chain.height, target)
        self.syncing = False
        if failure:
            self._failed(peer, failure[0])
        else:
            entry.strikes = 0
            entry.warned = ""
        return applied

    async def _download(self, peer: str, target: int, out: trio.MemorySendChannel[Batch],
                        failure: list[_Failure]) -> None:
        """Fetch blocks up to ``target`` in batches; the channel's capacity bounds the run-ahead."""
        async with out:
            height = self.chain.height + 1
            while height <= target:
                count = min(self.settings.batch, target - height + 1)
                try:
                    resp = await self._call(peer, pack(["blocks", height, count]), f"blocks {height}..")
                except _Failure as exc:
                    failure.append(exc)
                    return
                if not (isinstance(resp, list) and len(resp) == 2 and resp[0] == "blocks"
                        and isinstance(resp[1], list) and len(resp[1]) <= count
                        and all(isinstance(item, list) and len(item) == 2
                                and all(type(b) is bytes for b in item) for item in resp[1])):
                    failure.append(_Failure(Offence.MALFORMED, "malformed blocks answer"))
                    return
                items: list[list[bytes]] = resp[1]
                if not items:
                    failure.append(_Failure(Offence.LIED_HEIGHT,
                                            f"claimed height {target} but served nothing from {height}"))
                    return
                futures = self._verifier.submit([item[0] for item in items]) if self._verifier else []
                await out.send((height, items, futures))
                height += len(items)

    async def _apply(self, start: int, items: list[list[bytes]], verified: set[bytes],
                     consensus: ConsensusHooks | None) -> tuple[int, SyncError | None]:
        """Apply one downloaded batch with consensus paused; heights consensus committed in the
        meantime are skipped. Restarts consensus at the new height when it moved past it.
        Returns the blocks applied and, if a block did not verify, why (the blocks before it stay)."""
        skip = max(0, self.chain.height + 1 - start)
        todo = items[skip:]
        if not todo:
            return 0, None
        if consensus is not None:
            consensus.paused = True
        applied = 0
        try:
            last = len(todo) - 1
            for i, (block_raw, commit_raw) in enumerate(todo):
                # fsync once per downloaded batch, at its last block
                try:
                    block, executed = apply_synced_block(self.chain, block_raw, commit_raw, verified,
                                                         durable=i == last)
                except SyncError as exc:
                    return applied, exc
                self._on_block(block, executed)
                applied += 1
                await trio.lowlevel.checkpoint()
        finally:
            if consensus is not None:
                consensus.paused = False
                if applied and self.chain.height >= consensus.height:
                    consensus.restart_after_sync()
        return applied, None


async def sync_from_peers(
    chain: Chain,
    peers: Callable[[], list[str]],
    request: Request,
    on_block: Callable[[Block, Executed], None],
    batch: int = 100,
    lag_threshold: int = 0,
    report: Report = _ignore_report,
    request_timeout_s: float = SyncSettings.request_timeout_s,
) -> int:
    """Download and apply blocks until no peer is more than ``lag_threshold`` ahead (one
    ``BlockSyncer.catch_up`` with consensus not running); returns the number of blocks applied."""
    syncer = BlockSyncer(chain, peers, request, on_block, report,
                         SyncSettings(request_timeout_s=request_timeout_s, batch=batch))
    return await syncer.catch_up(lag_threshold)
