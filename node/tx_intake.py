"""The door of the transaction path: overload is refused before it costs the node (issue 15).

Every transaction, from an RPC client or in a peer's gossip batch, passes here on its way to the
mempool, in this order:

1. **Intake budget.** Admitting transactions (decoding, the pool's checks, the trial apply) may use
   at most ``mempool.intake_share_pct`` percent of the event loop's time, measured with a token
   bucket of loop seconds (``IntakeBudget``) charged the CPU time of each admission (not wall
   time: a preempted admission is not the node's work). The rest is left to consensus, block sync and the
   RPC's reads: a node under any transaction load keeps committing. Over the budget a client gets
   ``intake_busy`` (JSON-RPC -32005) at once and a peer's transactions are dropped, never queued.
   Clients may not use the last CLIENT_RESERVE of the bucket: peers' transactions come first.
2. **The backlog bound**: a client's transaction is refused with ``mempool_full`` (-32005) while
   the pool holds more than ``mempool.max_wait_ms`` of what the chain committed per second lately
   (at least MIN_BACKLOG transactions): what is accepted commits within about that time, instead
   of waiting behind tens of seconds of backlog (the pool's count limit alone allowed 50,000).
   Peers' transactions are not bound by it (they were accepted by their origin node).
   **This node's share of it**: the transactions its own clients have pooled may fill at most
   the share of the bound their transactions took of the recent blocks, and at least
   SHARE_SLACK/``origins`` of it (``origins``: the validator count). Every node reads the bound
   from its own pool, and its peers' transactions reach it a gossip round or more later: without
   the share, N nodes each admitted up to the whole bound before they saw each other's (16
   validators at 2x load: pools of 1,600 against a bound of 500, p95 latency 6-7 s), then each
   refused until the network drained.
3. **The door** (``Mempool.precheck``): decoding, duplicate, fee, nonce, balance and room, with no
   signature check. A full pool answers ``mempool_full`` (-32005) here, before any signature work.
4. **The signature**, off the loop when there are several transactions at once (a JSON-RPC
   batch, a gossip batch, many clients in the same turn of the loop): ``TxVerifier`` hands them
   to ``mempool.verify_workers`` processes in one round trip (``mempool.verify_processes``, the
   default) or to a thread of the node (libsodium releases the GIL for each check), and marks
   the hashes that verify as verified in the pool. A lone transaction is verified inline (a
   round trip costs more than one verification). A worker never decides: a hash it did not
   confirm is verified again inline.
5. **Admission** on the loop (``Mempool.submit`` / ``admit_from_peer``): every check again (the
   state may have moved while the worker ran), the signature skipped when verified, the trial apply.

Per peer, gossip intake is also bounded by a token bucket of transactions per second
(``p2p.peer_tx_rate``): one peer cannot use the whole intake budget. Nothing on this path queues
without bound: gossip batches wait in the p2p inbox (bounded in count, bytes and per peer) while
this module handles the previous one, and the verifier holds at most MAX_IN_FLIGHT transactions.
Every refusal and drop is counted (attrchain_dropped_total, `rpc_tx` and `peer_tx`).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import time
from collections import OrderedDict
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import trio

from node.workers import verified_hashes_of, verified_txs_of, worker_pool
from state.codec import CodecError, unpack
from state.crypto import sha256
from state.errors import TxRejected

log = logging.getLogger(__name__)

# refusals at the door: the RPC answers them with -32005 (a configured limit), not -32003
DOOR_REASONS = frozenset({"mempool_full", "intake_busy"})
MAX_TX_BATCH = 4000  # transactions taken from one gossip batch
MAX_IN_FLIGHT = 20_000  # transactions handed to the verifier and not verified yet
MIN_WORKER_BATCH = 8  # fewer at once: verified inline, a worker round trip costs more
THREAD_CHUNK = 256  # transactions per call of the verifying thread (~15 ms)
MAX_WORKERS = 4
MAX_TRACKED_PEERS = 1024
# Of the budget's burst, what clients may not use: peers' transactions, accepted by their origin
# already, come first. Without it a client flood spent the budget, the other validators dropped
# the origin's batches (intake_busy) and then every later nonce of those senders (future_nonce),
# so those transactions waited for their origin's turn to propose: on 16 validators at 1,000 tx/s
# offered, ~1,200 intake_busy and ~1,300-1,900 future_nonce drops per node in 15 s.
CLIENT_RESERVE = 0.4
WORKER_STOP_S = 5.0  # at most this long to join the signature workers when the node stops
MIN_BACKLOG = 500  # transactions the backlog bound always allows (an idle chain's rate is unknown)
# each of N nodes' clients may pool at least SHARE_SLACK/N of the bound: a transaction stays in
# its origin's pool through a gossip round and the next proposal, longer than the bound's wait
SHARE_SLACK = 2
RATE_WINDOW_S = 3.0  # the commit rate is read over the blocks of this many seconds ...
YIELD_EVERY_S = 0.005  # admission work between two checkpoints: other requests and consensus get in
BOUND_CACHE_S = 0.02  # the backlog bound is recomputed at most this often (or after a new block)
RATE_MIN_BLOCKS = 3  # ... or over the last this many blocks, if that reaches further back


# Set by the node for a client's request the RPC front process held against the door's room
# (node/rpc/door.py, reserve): its transactions are not refused at the backlog bound, which peers'
# gossip may have reached since the front read the room.
FRONT_ADMITTED: contextvars.ContextVar[bool] = contextvars.ContextVar("front_admitted", default=False)


class PoolAPI(Protocol):
    chain_id: str
    size: int
    local_size: int  # pooled transactions this node's clients submitted

    def precheck(self, raw: bytes) -> Any: ...

    def submit(self, raw: bytes) -> bytes: ...

    def admit_from_peer(self, raw: bytes) -> str | None: ...

    def seen(self, tx_hash: bytes) -> str | None: ...

    def is_verified(self, tx_hash: bytes) -> bool: ...

    def mark_verified(self, tx_hashes: Any) -> None: ...

    def mark_verified_txs(self, txs: Any) -> None: ...


class DropSink(Protocol):
    def drop(self, where: str, reason: str, n: int = 1) -> None: ...


@dataclass(frozen=True)
class IntakeSettings:
    """``mempool.intake_share_pct``, ``mempool.verify_workers``, ``p2p.peer_tx_rate`` (docs/security.md)."""

    share_pct: int = 50  # of the event loop's time, at most, admitting transactions
    burst_s: float = 0.05  # loop seconds the budget can hold (a burst after an idle spell)
    verify_workers: int = -1  # -1: one per core but one (at most MAX_WORKERS); 0: verify inline
    verify_processes: bool = True  # the workers are processes; else the checks run in a thread
    peer_tx_rate: int = 5_000  # transactions per second from one gossip peer (burst: one second's)
    max_wait_ms: int = 1_000  # the backlog bound: pooled txs <= this much of the commit rate; 0: off


@dataclass(frozen=True)
class DoorSnapshot:
    """What the RPC thread or front process needs to refuse at the door without the event loop
    (TxIntake.door, node/rpc/front.DoorBoard)."""

    tokens: float  # the intake budget's tokens ...
    tokens_at: float  # ... at this monotonic time
    bound: int | None  # the backlog bound (None: off)
    size: int  # transactions pooled
    blocks_seen: int  # the pool's count of committed blocks when taken
    share: int | None = None  # this node's clients' share of the bound (None: off)
    local: int = 0  # transactions pooled from this node's clients

    def refusal(self, settings: IntakeSettings, now: float) -> TxRejected | None:
        """The refusal ``TxIntake.submit`` answered when this was taken, at ``now`` (monotonic):
        the budget only refills between two snapshots (spending publishes a new one)."""
        rate, burst = settings.share_pct / 100, settings.burst_s
        if min(burst, self.tokens + (now - self.tokens_at) * rate) <= CLIENT_RESERVE * burst:
            return _busy()
        return _over(self.bound, self.size, self.share, self.local, settings.max_wait_ms)

    def room(self) -> int | None:
        """Transactions clients may still add before the backlog bound or their share of it
        (None: no bound)."""
        if self.bound is None:
            return None
        return min(self.bound - self.size, (self.bound if self.share is None else self.share) - self.local)

    def over_room(self, held: int, settings: IntakeSettings) -> TxRejected:
        """The refusal of a client's transaction with ``held`` more on their way to the pool."""
        return (_over(self.bound, self.size + held, self.share, self.local + held, settings.max_wait_ms)
                or _over_bound(self.size + held, self.bound or 0, settings.max_wait_ms))


def _busy() -> TxRejected:
    return TxRejected("intake_busy", "the node is admitting transactions as fast as its intake "
                                     "budget allows (mempool.intake_share_pct); retry later")


def _over_bound(size: int, bound: int, max_wait_ms: int) -> TxRejected:
    return TxRejected("mempool_full", f"the pool holds {size} transactions, more than {max_wait_ms} ms of "
                                      f"what the chain commits ({bound}, mempool.max_wait_ms); retry later")


def _over_share(local: int, share: int) -> TxRejected:
    return TxRejected("mempool_full", f"this node's clients have {local} transactions pooled, their share of "
                                      f"the backlog bound ({share}: what they filled of the recent blocks, "
                                      f"at least an even share among the validators); retry later")


def _over(bound: int | None, size: int, share: int | None, local: int, max_wait_ms: int) -> TxRejected | None:
    """The backlog bound's refusal, if the pool (``size``) or this node's clients (``local``) are
    at it or at their ``share`` of it; None otherwise (or without a bound)."""
    if bound is None:
        return None
    if size >= bound:
        return _over_bound(size, bound, max_wait_ms)
    if share is not None and local >= share:
        return _over_share(local, share)
    return None


class IntakeBudget:
    """A token bucket of event-loop seconds: refilled at ``share`` per second, up to ``burst_s``."""

    def __init__(self, share_pct: int, burst_s: float) -> None:
        self.rate = share_pct / 100
        self.burst = burst_s
        self.tokens = burst_s
        self.last = time.monotonic()

    def available(self, reserve: float = 0.0) -> bool:
        """Tokens above ``reserve`` (clients keep CLIENT_RESERVE of the burst for peers)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        return self.tokens > reserve

    @property
    def client_reserve(self) -> float:
        return CLIENT_RESERVE * self.burst

    def spend(self, seconds: float) -> None:
        self.tokens -= seconds


class PeerBuckets:
    """Transactions per second per gossip peer (the least recently seen peer is forgotten first)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, peer: str, want: int) -> int:
        now = time.monotonic()
        tokens, last = self._buckets.pop(peer, (float(self.rate), now))
        tokens = min(float(self.rate), tokens + (now - last) * self.rate)
        granted = min(want, int(tokens))
        self._buckets[peer] = (tokens - granted, now)
        if len(self._buckets) > MAX_TRACKED_PEERS:
            self._buckets.popitem(last=False)
        return granted


def default_workers() -> int:
    return max(0, min(MAX_WORKERS, (os.cpu_count() or 1) - 1))


class TxVerifier:
    """Signature checks of many transactions at once, off the event loop: in worker processes
    (``mempool.verify_processes``, the default; started with the node) or in a thread of the node.
    Transactions handed in during one turn of the loop go out together.

    A thread costs less CPU: libsodium releases the GIL for each check (state/crypto.verify), most
    of the work, and there is no pickling, pipe or second decode in another process. At 16
    validators x 400 tx/s on 2 cores (bench/devnet_load.py, same hour) it committed 300.1 tx/s
    against 260.4 with one worker process per node. But the thread still holds the GIL while it
    decodes, and the RPC thread that answers door refusals then waits longer: at 4 validators, 2x
    and 5x, refusal p95 81-95 ms against 54-55 with processes (1,897-1,972 against 1,682-1,775 tx/s
    committed). Processes stay the default (a node with cores of its own also decodes in parallel);
    the devnet turns the thread on where CPU per transaction is what limits it (devnet/launcher.py)."""

    def __init__(self, pool: PoolAPI, workers: int, processes: bool = True) -> None:
        self.pool = pool
        self.workers = workers
        self.processes = processes
        # one thread's checks at a time: a second would only contend for the GIL while decoding
        self._thread_limiter = trio.CapacityLimiter(1)
        self._executor: ProcessPoolExecutor | None = None
        self._queue: list[bytes] = []
        self._in_flight: dict[bytes, trio.Event] = {}
        self._batch_done: trio.Event | None = None
        self._nursery: trio.Nursery | None = None
        self.verified_in_workers = 0
        self.sent_to_workers = 0
        self.round_trips = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await self._warm_up()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            executor, self._executor = self._executor, None
            if executor is not None:
                # joined (bounded, off the loop): a pool left unjoined leaks its semaphores, and
                # every node now starts one
                with trio.CancelScope(shield=True), trio.move_on_after(WORKER_STOP_S):
                    await trio.to_thread.run_sync(
                        functools.partial(executor.shutdown, wait=True, cancel_futures=True), abandon_on_cancel=True)

    @property
    def enabled(self) -> bool:
        return self.workers > 0 and self._nursery is not None

    @property
    def live_workers(self) -> int:
        """Worker processes running now."""
        executor = self._executor
        procs = getattr(executor, "_processes", None) or {}
        return sum(1 for p in list(procs.values()) if p.is_alive())

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = worker_pool(self.workers)
            log.info("transaction signatures: %d worker process(es)", self.workers)
        return self._executor

    async def _warm_up(self) -> None:
        """Start the worker processes with the node, each with the code it runs imported. Started
        on first use, they were still starting when a load began: on a 16-validator devnet on 2
        cores, blocks came out empty for ~8 s while every node's transactions waited for their
        workers (bench/devnet_load.py)."""
        if self.workers <= 0 or not self.processes:
            return
        try:
            futures = [self._pool().submit(verified_hashes_of, self.pool.chain_id, []) for _ in range(self.workers)]
            for fut in futures:
                await trio.to_thread.run_sync(fut.result)
        except (BrokenProcessPool, RuntimeError, OSError) as exc:
            log.warning("signature workers did not start (%s); they are tried again on first use", exc)
            self._executor = None

    def start(self, raws: list[bytes]) -> None:
        """Queue these transactions' signatures for the workers (those not verified or queued yet)."""
        if not self.enabled or len(raws) < MIN_WORKER_BATCH and not self._queue:
            return
        for raw in raws:
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                break
            h = sha256(raw)
            if h in self._in_flight or self.pool.is_verified(h):
                continue
            if self._batch_done is None:
                self._batch_done = trio.Event()
                assert self._nursery is not None
                self._nursery.start_soon(self._flush)
            self._in_flight[h] = self._batch_done
            self._queue.append(raw)

    async def wait(self, raw: bytes) -> None:
        """Until the signature of ``raw`` has been checked by a worker, if one was asked."""
        ev = self._in_flight.get(sha256(raw))
        if ev is not None:
            await ev.wait()

    async def _flush(self) -> None:
        await trio.lowlevel.checkpoint()  # let the rest of this turn's transactions join
        raws, self._queue = self._queue, []
        done, self._batch_done = self._batch_done, None
        try:
            if len(raws) >= MIN_WORKER_BATCH:
                await self._verify(raws)
        finally:
            for raw in raws:
                self._in_flight.pop(sha256(raw), None)
            if done is not None:
                done.set()

    async def _verify(self, raws: list[bytes]) -> None:
        if not self.processes:
            await self._verify_in_thread(raws)
            return
        try:
            executor = self._pool()
            step = -(-len(raws) // self.workers)
            futures: list[Future[list[bytes]]] = [
                executor.submit(verified_hashes_of, self.pool.chain_id, raws[i:i + step])
                for i in range(0, len(raws), step)]
        except (BrokenProcessPool, RuntimeError, OSError) as exc:
            log.warning("signature workers unavailable (%s); verifying inline", exc)
            self._executor = None
            return
        self.round_trips += 1
        self.sent_to_workers += len(raws)
        for fut in futures:
            try:
                hashes = fut.result() if fut.done() else await trio.to_thread.run_sync(fut.result)
            except (BrokenProcessPool, CancelledError, OSError) as exc:
                log.warning("a signature worker failed (%s); verifying inline", exc)
                self._executor = None
                continue
            self.pool.mark_verified(hashes)
            self.verified_in_workers += len(hashes)

    async def _verify_in_thread(self, raws: list[bytes]) -> None:
        """Check in a thread, THREAD_CHUNK transactions per call: a stopping node waits for at most
        one chunk (a thread cannot be cancelled)."""
        self.round_trips += 1
        self.sent_to_workers += len(raws)
        chain_id = self.pool.chain_id
        for i in range(0, len(raws), THREAD_CHUNK):
            txs = await trio.to_thread.run_sync(verified_txs_of, chain_id, raws[i:i + THREAD_CHUNK],
                                                limiter=self._thread_limiter)
            self.pool.mark_verified_txs(txs)  # decoded once: admission takes them as they are
            self.verified_in_workers += len(txs)


class TxIntake:
    """The transaction path's door, budget and signature workers (module docstring)."""

    def __init__(self, pool: PoolAPI, drops: DropSink, settings: IntakeSettings | None = None,
                 origins: Callable[[], int] | None = None) -> None:
        """``origins``: how many nodes take clients' transactions (the node: its validator count;
        None: this one alone): each may fill at least SHARE_SLACK/origins of the backlog bound."""
        self.pool = pool
        self.origins = origins
        self.drops = drops
        self.settings = settings or IntakeSettings()
        workers = self.settings.verify_workers
        self.verifier = TxVerifier(pool, default_workers() if workers < 0 else workers,
                                   self.settings.verify_processes)
        self.budget = IntakeBudget(self.settings.share_pct, self.settings.burst_s)
        self.peers = PeerBuckets(self.settings.peer_tx_rate)
        self._since_yield = 0.0  # admission seconds since this module last let the loop run others
        self._bound: tuple[float, int, int] = (-1.0, MIN_BACKLOG, MIN_BACKLOG)  # (when, bound, share)
        # read by the RPC thread (door_refusal): replaced whole, never mutated (module docstring)
        self.door: DoorSnapshot | None = None
        self.board: Any = None  # node/rpc/front.DoorBoard: the snapshot for the RPC front process

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.verifier.run(task_status=task_status)

    def _timed(self, fn: Any, raw: bytes) -> Any:
        t0 = time.thread_time()
        try:
            return fn(raw)
        finally:
            spent = time.thread_time() - t0
            self.budget.spend(spent)
            self._since_yield += spent

    async def _yield_if_due(self) -> None:
        """A checkpoint once YIELD_EVERY_S of admission ran without one: a JSON-RPC batch or a
        gossip batch of hundreds of transactions is otherwise one uninterrupted stretch of the
        loop, and a lone client's request (its refusal included) and consensus wait behind it."""
        if self._since_yield >= YIELD_EVERY_S:
            self._since_yield = 0.0
            await trio.lowlevel.checkpoint()

    # ---- clients ------------------------------------------------------------------------------
    def prefetch(self, raws: list[bytes]) -> None:
        """A JSON-RPC batch's transactions: start their signature checks together (when the budget
        has room; a full pool is refused at the door before any signature work)."""
        room = self._room(clients=True)
        if self.budget.available(self.budget.client_reserve) and room > 0:
            self.verifier.start(raws[:room])

    async def submit(self, raw: bytes) -> bytes:
        """A client's transaction: its hash, or TxRejected (DOOR_REASONS: refused at the door)."""
        await self._yield_if_due()
        try:
            if not self.budget.available(self.budget.client_reserve):
                self.drops.drop("rpc_tx", "intake_busy")
                raise _busy()
            over = None
            if not FRONT_ADMITTED.get():
                bound, share = self._bound_and_share()
                over = _over(bound, self.pool.size, share, self.pool.local_size, self.settings.max_wait_ms)
            if over is not None:
                self.drops.drop("rpc_tx", "mempool_full")
                raise over
            try:
                self._timed(self.pool.precheck, raw)
            except TxRejected as exc:
                if exc.reason in DOOR_REASONS:
                    self.drops.drop("rpc_tx", exc.reason)
                raise
            self.verifier.start([raw])
            await self.verifier.wait(raw)
            return self._timed(self.pool.submit, raw)  # type: ignore[no-any-return]
        finally:
            self.publish_door()

    def publish_door(self) -> None:
        """Replace the door snapshot the RPC thread reads, and write it to the front process's
        board (called on the event loop's thread, after each submission and peer batch, and by the
        node after each committed block: until then the RPC thread sends every transaction to the
        loop)."""
        bound, share = self._bound_and_share()
        self.door = door = DoorSnapshot(self.budget.tokens, self.budget.last, bound, self.pool.size,
                                        getattr(self.pool, "blocks_seen", 0), share, self.pool.local_size)
        if self.board is not None:
            self.board.write(door)

    def door_refusal(self) -> TxRejected | None:
        """From any thread: the refusal ``submit`` would answer now, read from the last snapshot, or
        None when the door is open or the snapshot is stale (a block committed since: its bound and
        pool size are out of date). Reads only the snapshot and two immutable-per-read ints."""
        door = self.door
        if door is None or door.blocks_seen != getattr(self.pool, "blocks_seen", 0):
            return None
        return door.refusal(self.settings, time.monotonic())

    def door_room(self) -> int | None:
        """Room before the backlog bound, from the last snapshot (node/rpc/door.py, reserve)."""
        door = self.door
        return None if door is None else door.room()

    def over_room(self, held: int) -> TxRejected | None:
        door = self.door
        return None if door is None else door.over_room(held, self.settings)

    def _room(self, clients: bool = False) -> int:
        """How many more transactions the pool holds before it is full (for clients: before the
        backlog bound): no signature work is started for more (those would be refused at the door,
        or evict by fee)."""
        cap = getattr(getattr(self.pool, "config", None), "max_txs", None)
        size = self.pool.size
        room = cap - size if cap is not None else MAX_IN_FLIGHT
        bounds = self._bounds() if clients and not FRONT_ADMITTED.get() else None
        if bounds is None:
            return room
        bound, share = bounds
        return min(room, bound - size, share - self.pool.local_size)

    def backlog_bound(self) -> int | None:
        """Most transactions pooled before clients are refused: ``max_wait_ms`` of the commit rate
        over the blocks of the last RATE_WINDOW_S or RATE_MIN_BLOCKS (counted to now, so a stalled
        chain admits less), at least MIN_BACKLOG; None when off or the pool keeps no commit log."""
        bounds = self._bounds()
        return None if bounds is None else bounds[0]

    def local_share(self) -> int | None:
        """Most transactions this node's clients may have pooled: their share of the backlog bound
        (what their transactions were of the same blocks), at least SHARE_SLACK/origins of it;
        None: off."""
        bounds = self._bounds()
        return None if bounds is None else bounds[1]

    def _bound_and_share(self) -> tuple[int | None, int | None]:
        """``backlog_bound`` and ``local_share`` from one reading ((None, None): off)."""
        return self._bounds() or (None, None)

    def _bounds(self) -> tuple[int, int] | None:
        log_ = getattr(self.pool, "commit_log", None)
        if not self.settings.max_wait_ms or log_ is None:
            return None
        now = time.monotonic()
        when, bound, share = self._bound
        if now - when < BOUND_CACHE_S and (not log_ or log_[-1][0] <= when):
            return bound, share  # every refused transaction of a flood asks: computed once per BOUND_CACHE_S
        bound, share = self._compute_bounds(list(log_), now)
        self._bound = (now, bound, share)
        return bound, share

    def _compute_bounds(self, entries: list[tuple[float, int, int]], now: float) -> tuple[int, int]:
        recent = [e for e in entries if now - e[0] <= RATE_WINDOW_S]
        if len(recent) < RATE_MIN_BLOCKS:
            recent = entries[-RATE_MIN_BLOCKS:]
        origins = max(1, self.origins()) if self.origins is not None else 1
        if len(recent) < 2:
            return MIN_BACKLOG, -(-MIN_BACKLOG * SHARE_SLACK // origins)
        committed = sum(e[1] for e in recent[1:])
        rate = committed / max(now - recent[0][0], 1e-3)
        bound = max(MIN_BACKLOG, int(rate * self.settings.max_wait_ms / 1000))
        local = sum(e[2] for e in recent[1:])
        share = max(-(-bound * SHARE_SLACK // origins), -(-bound * local // committed) if committed else 0)
        return bound, share

    # ---- peers --------------------------------------------------------------------------------
    def _unseen(self, raws: list[bytes]) -> list[bytes]:
        """``raws`` without those the pool refuses by hash (already pooled, or committed in a recent
        block: gossip copies that arrive after their block), counted as dropped; no decoding and no
        signature work is spent on them."""
        fresh: list[bytes] = []
        for raw in raws:
            reason = self.pool.seen(sha256(raw))
            if reason is None:
                fresh.append(raw)
            else:
                self.drops.drop("peer_tx", reason)
        return fresh

    async def peer_batch(self, data: bytes, sender: str) -> int:
        """A peer's gossip batch: ``peer_batches`` of one."""
        return await self.peer_batches([(data, sender)])

    async def peer_batches(self, batches: list[tuple[bytes, str]]) -> int:
        """Peers' gossip batches, in arrival order: each is decoded, bounded by its peer's rate,
        stripped of what the pool knows by hash and bounded by the budget; the signatures of all
        of them go to the workers in one round trip; then they are admitted in order. Returns how
        many were pooled; every other transaction is counted as dropped.

        Taking every batch waiting in the inbox at once (the node's tx reader does) matters on a
        loaded machine: one batch at a time, each waited ~100 ms for its worker round trip and the
        loop, a 7-validator devnet at 5x load handled ~12 batches/s of the ~24/s arriving, and
        most transactions reached the other validators only after their origin had proposed them
        (``peer_tx`` drops ``committed``: 13,000-17,000 per node in 20 s; p50 latency 3.1 s)."""
        prepared = [self._prepare(data, sender) for data, sender in batches]
        pooled = 0
        for raws in prepared:
            for i, raw in enumerate(raws):
                if not self.budget.available():
                    self.drops.drop("peer_tx", "intake_busy", len(raws) - i)
                    break
                await self.verifier.wait(raw)
                await self._yield_if_due()
                reason = self._timed(self.pool.admit_from_peer, raw)
                if reason is None:
                    pooled += 1
                else:
                    self.drops.drop("peer_tx", reason)
        self.publish_door()
        return pooled

    def _prepare(self, data: bytes, sender: str) -> list[bytes]:
        """One batch up to admission (no await): the transactions left to admit, their signature
        checks started."""
        try:
            batch = unpack(data)
        except CodecError:
            batch = None
        if not isinstance(batch, list):
            self.drops.drop("peer_tx", "malformed_batch")
            return []
        if len(batch) > MAX_TX_BATCH:
            self.drops.drop("peer_tx", "batch_over_cap", len(batch) - MAX_TX_BATCH)
            batch = batch[:MAX_TX_BATCH]
        raws = [raw for raw in batch if type(raw) is bytes]
        if len(raws) < len(batch):
            self.drops.drop("peer_tx", "malformed", len(batch) - len(raws))
        granted = self.peers.take(sender, len(raws))
        if granted < len(raws):
            self.drops.drop("peer_tx", "peer_rate", len(raws) - granted)
            raws = raws[:granted]
        raws = self._unseen(raws)
        if not raws:
            return []
        if not self.budget.available():
            self.drops.drop("peer_tx", "intake_busy", len(raws))
            return []
        room = self._room()
        if room > 0:
            self.verifier.start(raws[:room])
        return raws
