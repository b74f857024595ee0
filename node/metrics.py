"""Prometheus metrics of one node, in its own CollectorRegistry (never the process-global one).

The node pushes what it knows as it happens (height, committed blocks, mempool); the RPC server
refreshes the pull-style gauges (peers, mempool, height) from the node context at each scrape, so
/metrics is current even for values nobody pushed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import generate_latest

NAMESPACE = "attrchain"
BLOCK_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

# (name, type, help) of every series, for docs/rpc.md
METRIC_DOCS: tuple[tuple[str, str, str], ...] = (
    ("attrchain_height", "gauge", "latest committed block height"),
    ("attrchain_consensus_round", "gauge", "round of the consensus height in progress"),
    ("attrchain_block_rounds", "gauge", "round at which the latest block was committed (0 = first)"),
    ("attrchain_consensus_rounds_total", "counter", "rounds beyond the first, summed over committed blocks"),
    ("attrchain_peers", "gauge", "connected p2p peers"),
    ("attrchain_event_loop_tasks", "gauge", "living tasks of the node's event loop, read at each height start (and "
     "scrape): steady under a steady load; one that only grows is a leak"),
    ("attrchain_mempool_size", "gauge", "transactions in the mempool"),
    ("attrchain_mempool_bytes", "gauge", "bytes of transactions in the mempool"),
    ("attrchain_block_processing_seconds", "histogram", "time to execute and commit one block"),
    ("attrchain_blocks_total", "counter", "blocks committed by this process"),
    ("attrchain_committed_txs_total", "counter", "transactions committed by this process"),
    ("attrchain_rpc_requests_total", "counter", "JSON-RPC calls by method (unknown names as \"unknown\")"),
    ("attrchain_rpc_errors_total", "counter", "JSON-RPC error answers by code"),
    ("attrchain_ws_subscriptions", "gauge", "open WebSocket event subscriptions"),
    ("attrchain_dropped_total", "counter",
     "peer messages, buffered events and requests dropped or refused, by `where` and `reason` (docs/security.md)"),
    ("attrchain_task_cpu_seconds_total", "counter",
     "CPU time of the event loop's tasks by task name (only with `rpc.task_cpu`: where a node's CPU goes)"),
)

# Where a peer message, a buffered event or a request can be dropped or refused: the `where` label
# of attrchain_dropped_total, with what the `reason` label holds there (docs/security.md lists both).
DROP_SITES: tuple[tuple[str, str], ...] = (
    ("gossip_<kind>", "a topic's inbox (p2p/inbox.py) refused the message (`inbox_full`: count, bytes or the "
                      "peer's share) or its sender is banned (`banned`) or partitioned off (`denied`, devnet faults)"),
    ("consensus_vote", "a vote the driver did not pass on: `malformed`, `old_height`, `far_height`, `round_ahead`, "
                       "`not_validator`, `duplicate` (same or too many values per validator slot), `bad_signature`"),
    ("consensus_proposal", "a proposal the driver did not pass on: the vote reasons plus `oversized`, "
                           "`wrong_proposer`, `round_full`, `candidate_bytes`, `undecodable_block`, "
                           "`hash_mismatch`, `late`, `fetch_busy` (too many block fetches running)"),
    ("consensus_buffer", "authenticated or buffered consensus events given up: `future_full` (the future-height "
                         "buffer's byte or per-peer cap), `peer_queue_full` (the oldest peer event dropped), "
                         "`height_over` (authenticated events of a height that ended before they were served)"),
    ("evidence", "evidence not kept: `malformed`, `invalid`, `refused` (too old, not yet includable, pool full)"),
    ("peer_tx", "a transaction from a peer's batch not pooled: the mempool's rejection reason (`committed`: in a "
                "recent block, refused by hash), `peer_rate` (over p2p.peer_tx_rate), `intake_busy` (over "
                "mempool.intake_share_pct), `batch_over_cap`, "
                "`malformed_batch` (node/tx_intake.py)"),
    ("rpc_tx", "a client's transaction refused at the door, before any signature check: `mempool_full`, "
               "`intake_busy`; `async_queue_full`: broadcast_tx_async's bounded queue is full"),
    ("rpc_connections", "`cap`: a connection over rpc.max_open_connections answered 503 and closed"),
    ("p2p_requests", "`refused`: a request/response stream refused (per-peer or global cap)"),
    ("subscribers", "`fell_behind`: an event subscriber (WebSocket) more than the bus's queue behind, dropped"),
    ("gossip_out", "`outbox_full`: one of this node's own messages not published (the outbox is full)"),
)


class DropCounts:
    """Every drop by (where, reason): counted where it happens, or pulled from components that keep
    their own counter (inboxes, buffers, connection caps) at scrape time. Counted from two threads
    (the RPC thread refuses at the door, node/rpc/server.py): ``add`` and the copy hold a lock."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self._sources: list[Callable[[], Iterable[tuple[str, str, int]]]] = []
        self._lock = threading.Lock()

    def add(self, where: str, reason: str, n: int = 1) -> None:
        key = (where, reason)
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def pull(self, source: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        """Read ``source()`` -> (where, reason, count) rows at every scrape."""
        self._sources.append(source)

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            out = dict(self.counts)
        for source in self._sources:
            for where, reason, n in source():  # zeros too: the series exist before the first drop
                out[(where, reason)] = out.get((where, reason), 0) + n
        return out

    def total(self, where: str | None = None) -> int:
        return sum(n for (w, _), n in self.snapshot().items() if where is None or w == where)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("attrchain_dropped", "peer messages, buffered events and requests dropped",
                                     labels=["where", "reason"])
        for (where, reason), n in sorted(self.snapshot().items()):
            family.add_metric([where, reason], n)
        yield family


MAX_TASK_NAMES = 256  # distinct task names counted; CPU of later names counts as "other"


class TaskCPU(trio.abc.Instrument):
    """CPU time (``time.thread_time``) of each step of the event loop's tasks, summed by task name
    (the function a task runs, e.g. ``node.app.Node._read_txs``). A sampling profiler run against a
    node on a machine with more busy processes than cores counts the time a process waits for a
    core while holding the GIL; this counts only CPU. Costs two clock reads per task step: off
    unless ``rpc.task_cpu`` is set. Written by the loop's thread only; read by scrapes (a copy)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t0 = 0.0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._t0 = time.thread_time()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        spent = time.thread_time() - self._t0
        name = task.name
        if name not in self.seconds and len(self.seconds) >= MAX_TASK_NAMES:
            name = "other"
        self.seconds[name] = self.seconds.get(name, 0.0) + spent

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("attrchain_task_cpu_seconds", "CPU time of the event loop's tasks by name",
                                     labels=["task"])
        for name, seconds in sorted(dict(self.seconds).items()):
            family.add_metric([name], seconds)
        yield family


class Metrics:
    """The node's metrics; every method is cheap enough to call on the hot path."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.height = Gauge("attrchain_height", "latest committed block height", registry=r)
        self.consensus_round = Gauge("attrchain_consensus_round", "round of the height in progress", registry=r)
        self.block_rounds = Gauge("attrchain_block_rounds", "round at which the latest block was committed",
                                  registry=r)
        self.extra_rounds = Counter("attrchain_consensus_rounds", "rounds beyond the first, summed over blocks",
                                    registry=r)
        self.peers = Gauge("attrchain_peers", "connected p2p peers", registry=r)
        self.loop_tasks = Gauge("attrchain_event_loop_tasks", "living tasks of the node's event loop (read at "
                                "each height start and scrape): one that only grows is a leak", registry=r)
        self.mempool_size = Gauge("attrchain_mempool_size", "transactions in the mempool", registry=r)
        self.mempool_bytes = Gauge("attrchain_mempool_bytes", "bytes of transactions in the mempool", registry=r)
        self.block_seconds = Histogram("attrchain_block_processing_seconds", "time to execute and commit a block",
                                       buckets=BLOCK_SECONDS_BUCKETS, registry=r)
        self.blocks = Counter("attrchain_blocks", "blocks committed by this process", registry=r)
        self.committed_txs = Counter("attrchain_committed_txs", "transactions committed by this process",
                                     registry=r)
        self.rpc_requests = Counter("attrchain_rpc_requests", "JSON-RPC calls by method", ["method"], registry=r)
        self.rpc_errors = Counter("attrchain_rpc_errors", "JSON-RPC error answers by code", ["code"], registry=r)
        self.ws_subscriptions = Gauge("attrchain_ws_subscriptions", "open WebSocket event subscriptions",
                                      registry=r)
        self.drops = DropCounts()
        r.register(self.drops)  # type: ignore[arg-type]
        self._rpc_children: dict[str, Counter] = {}
        self._error_children: dict[int, Counter] = {}
        self.task_cpu: TaskCPU | None = None

    def count_task_cpu(self) -> TaskCPU:
        """Start counting the CPU of the calling trio loop's tasks (``rpc.task_cpu``)."""
        if self.task_cpu is None:
            self.task_cpu = TaskCPU()
            self.registry.register(self.task_cpu)  # type: ignore[arg-type]
        trio.lowlevel.add_instrument(self.task_cpu)
        return self.task_cpu

    # ---- pushed by the node --------------------------------------------------------------
    def set_height(self, height: int) -> None:
        self.height.set(height)
        try:
            self.loop_tasks.set(trio.lowlevel.current_statistics().tasks_living)
        except RuntimeError:  # not called from a trio loop (tests of pure code)
            pass

    def set_round(self, round_: int) -> None:
        self.consensus_round.set(round_)

    def set_peers(self, n: int) -> None:
        self.peers.set(n)

    def set_mempool(self, size: int, nbytes: int) -> None:
        self.mempool_size.set(size)
        self.mempool_bytes.set(nbytes)

    def observe_block(self, seconds: float, n_txs: int, round_: int) -> None:
        """One committed block: processing time, its transactions and the round that decided it."""
        self.block_seconds.observe(seconds)
        self.blocks.inc()
        self.committed_txs.inc(n_txs)
        self.block_rounds.set(round_)
        if round_ > 0:
            self.extra_rounds.inc(round_)

    def drop(self, where: str, reason: str, n: int = 1) -> None:
        """Count ``n`` dropped peer messages, events or refused requests (DROP_SITES)."""
        self.drops.add(where, reason, n)

    # ---- pushed by the RPC server --------------------------------------------------------
    def rpc_request(self, method: str) -> None:
        child = self._rpc_children.get(method)
        if child is None:
            child = self._rpc_children[method] = self.rpc_requests.labels(method)
        child.inc()

    def rpc_error(self, code: int) -> None:
        child = self._error_children.get(code)
        if child is None:
            child = self._error_children[code] = self.rpc_errors.labels(str(code))
        child.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
