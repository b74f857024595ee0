"""A bounded load generator: signed transfers submitted through every node of a devnet.

    LoadGenerator(layout, LoadConfig(rate=..., duration_s=..., max_txs=...))
      fund()      the faucet pays every sender in one block (waits for it, bounded)
      start()     one submitter thread per node + one tracker thread
      stop()      stop submitting; wait (bounded) until what was accepted is committed
      report()    counts, committed tx hashes with heights, submit-to-commit latencies, blocks

Each sender account is pinned to one node (sender i -> node i mod N), because a node's mempool
refuses a nonce past the end of the sender's queue: a sender's transactions must reach one pool in
order. Submitters send JSON-RPC batches of `broadcast_tx_sync`, paced by a global token bucket
(``rate`` tx/s) and stopped by ``max_txs`` and ``duration_s`` whichever comes first. When a node is
unreachable (a crash, a freeze) its senders move to the next node and resynchronise their nonce
from that node's `account.next_nonce`; a rejected transaction rewinds its sender to that nonce.

The tracker follows one node's committed blocks (moving to another node if it stops answering) and
records, for every transaction we submitted, the height that committed it and when we saw it:
the submit-to-commit latency is (the block's commit time) - (send of the batch, wall clock), where
the commit time of block h is the BFT time in the header of block h+1 (the weighted median of the
precommit timestamps that committed h; as `bench/tx_intake.py` and CometBFT's loadtime measure it),
or, for a last block whose successor the tracker did not read, when the tracker read it. The
latency as the tracker saw it is reported too (``LoadReport.seen_latencies``): on a saturated
machine every RPC read waits for the node's event loop, and on 16 validators at 1,900 tx/s offered
the tracker read each block 2-7 s after its header time (2026-12-07), as a thread of this process
or (tried) in a process of its own. Each block's lag is reported (``LoadReport.tracker_lag_s``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devnet.launcher import Layout, NodeSpec
from state.crypto import PrivateKey, from_hex, sha256, to_hex
from state.tx import Transfer, Tx, sign_tx

log = logging.getLogger(__name__)

MAX_RPC_BATCH = 100  # the RPC server's default max_batch
HTTP_TIMEOUT_S = 10.0
TRACK_POLL_S = 0.05
TRACKERS = 4  # block readers, each on another node
DRAIN_IDLE_BLOCKS = 8
DOOR_REFUSALS = ("mempool_full", "intake_busy")  # node/tx_intake.py: refused before any check, retry later


@dataclass(frozen=True)
class LoadConfig:
    rate: float = 200.0  # submitted transactions per second, all nodes together
    duration_s: float = 10.0  # stop submitting after this long ...
    max_txs: int = 10_000  # ... or after this many, whichever comes first
    senders: int = 32
    batch: int = 50  # transactions per JSON-RPC batch request
    fee: int = 1
    amount: int = 1
    fund_each: int = 10**9
    drain_s: float = 30.0  # after stop: how long to wait for accepted transactions to commit
    nodes: tuple[int, ...] | None = None  # submit only through these node indexes (default: all)
    presign: int = 0  # transactions signed ahead per sender by presign() (the rest are signed when sent)
    nice: int = 0  # the submitting threads' nice value (Linux: per thread): clients that stand for
    # other machines yield the CPU to the nodes on a shared one (bench/load_sweep.py); the tracker
    # thread, which times commits, keeps this process's priority


@dataclass
class Block:
    height: int
    time_ms: int
    n_txs: int
    seen: float  # time.monotonic() when the tracker first read it
    lag_ms: int = 0  # when the tracker read it (wall clock) minus its header time


@dataclass
class LoadReport:
    submitted: int
    accepted: int
    rejected: Counter[str]
    unreachable: int
    committed: dict[bytes, int]  # tx hash -> height
    latencies: list[float]  # seconds, one per committed transaction we submitted (commit time - send)
    blocks: list[Block]
    first_submit: float
    last_submit: float
    last_commit: float
    committed_while_submitting: int = 0  # seen committed before the last submission
    answer_latencies: list[float] = field(default_factory=list)  # send -> the accepting RPC's answer
    seen_latencies: list[float] = field(default_factory=list)  # send -> the tracker read its block

    @property
    def tps_while_submitting(self) -> float:
        """Committed transactions per second while load was being offered (no drain tail)."""
        span = self.last_submit - self.first_submit
        return self.committed_while_submitting / span if span > 0 else 0.0

    @property
    def tps(self) -> float:
        """Committed transactions per second, from the first submission to the last commit."""
        span = self.last_commit - self.first_submit
        return len(self.committed) / span if span > 0 and self.committed else 0.0

    def latency_percentile(self, q: float) -> float:
        return percentile(self.latencies, q)

    def seen_latency_percentile(self, q: float) -> float:
        """Send -> the tracker read the block: the latency a client polling a node would see."""
        return percentile(self.seen_latencies, q)

    def answer_percentile(self, q: float) -> float:
        """Of the submit-to-commit latency, the part until the node answered the submission."""
        return percentile(self.answer_latencies, q)

    def tracker_lag_s(self, q: float) -> float:
        """How late the tracker read blocks: (wall time it read one) - (its header time), at
        percentile ``q``. A header's time is about when the block before it committed, so this is
        one block interval plus the tracker's own delay (what ``seen_latencies`` add)."""
        return percentile([b.lag_ms / 1000 for b in self.blocks], q)

    def mean_block_interval_s(self, from_height: int = 0) -> float:
        times = [b.time_ms for b in self.blocks if b.height >= from_height]
        if len(times) < 2:
            return float("nan")
        return (times[-1] - times[0]) / (len(times) - 1) / 1000


def commit_times_s(blocks: list[Block]) -> dict[int, float]:
    """Height -> commit time (wall clock, seconds): the BFT time in the next block's header (the
    weighted median of the precommit times that committed it), or for a block whose successor
    was not read, when the tracker read it."""
    by_height = {b.height: b for b in blocks}
    return {b.height: (by_height[b.height + 1].time_ms if b.height + 1 in by_height
                       else b.time_ms + b.lag_ms) / 1000 for b in blocks}


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank below), NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class RPCFailure(Exception):
    """A node did not answer (transport error, timeout, or an HTTP error status)."""


def rpc(client: httpx.Client, url: str, method: str, params: Any = None) -> Any:
    """One JSON-RPC call; returns the result or raises RPCFailure (error objects included)."""
    try:
        resp = client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}})
        doc = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise RPCFailure(f"{method} at {url}: {type(exc).__name__}: {exc}") from exc
    if "error" in doc:
        raise RPCFailure(f"{method} at {url}: {doc['error']}")
    return doc["result"]


def submit_batch(client: httpx.Client, url: str, txs: list[Tx]) -> list[str | None]:
    """broadcast_tx_sync for each transaction in one batch; per tx None (accepted) or a reason."""
    body = [{"jsonrpc": "2.0", "id": i, "method": "broadcast_tx_sync", "params": {"tx": to_hex(tx.raw)}}
            for i, tx in enumerate(txs)]
    try:
        resp = client.post(url, json=body)
        answers = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise RPCFailure(f"batch at {url}: {type(exc).__name__}") from exc
    if not isinstance(answers, list):
        raise RPCFailure(f"batch at {url}: {answers}")
    out: list[str | None] = ["no_answer"] * len(txs)
    for a in answers:
        i = a.get("id")
        if type(i) is not int or not 0 <= i < len(txs):
            continue
        if "error" in a:
            data = a["error"].get("data") or {}
            out[i] = str(data.get("reason") or a["error"].get("message"))
        else:
            out[i] = None
    return out


@dataclass
class Sender:
    key: PrivateKey
    node: int  # index into LoadGenerator.nodes
    recipient: bytes = b""
    nonce: int = 0
    needs_sync: bool = True
    signed: dict[int, Tx] = field(default_factory=dict)  # nonce -> transaction signed ahead


class _Bucket:
    """Tokens granted at ``rate`` per second up to ``limit`` in total; thread-safe."""

    def __init__(self, rate: float, limit: int, deadline: float) -> None:
        self.rate = rate
        self.limit = limit
        self.deadline = deadline
        self.t0 = time.monotonic()
        self.granted = 0
        self.lock = threading.Lock()

    def take(self, want: int) -> int:
        """Up to ``want`` tokens available now (0: none yet); -1 once the budget is spent."""
        now = time.monotonic()
        with self.lock:
            if self.granted >= self.limit or now >= self.deadline:
                return -1
            allowed = min(self.limit, int(self.rate * (now - self.t0)) + 1)
            n = max(0, min(want, allowed - self.granted))
            self.granted += n
            return n

    def wait_hint(self, want: int) -> float:
        return max(0.002, min(0.1, want / self.rate / 2))


class LoadGenerator:
    def __init__(self, layout: Layout, config: LoadConfig, faucet: PrivateKey | None = None) -> None:
        self.layout = layout
        self.config = config
        self.faucet = faucet or PrivateKey.load(Path(layout.dir) / "faucet.key")
        indexes = config.nodes if config.nodes is not None else tuple(n.index for n in layout.nodes)
        self.nodes: list[NodeSpec] = [layout.nodes[i] for i in indexes]
        self.senders = [Sender(PrivateKey.generate(), i % len(self.nodes)) for i in range(config.senders)]
        for i, s in enumerate(self.senders):  # a ring: balances circulate, the state stays small
            s.recipient = self.senders[(i + 1) % len(self.senders)].key.address
        self.down: set[int] = set()  # node positions that failed recently
        self.submit_time: dict[bytes, float] = {}
        self.submit_wall: dict[bytes, float] = {}  # the same send, wall clock (against BFT times)
        self.committed: dict[bytes, int] = {}
        self.commit_seen: dict[bytes, float] = {}
        self.answer_time: dict[bytes, float] = {}  # accepted tx -> when its node answered
        self.blocks: list[Block] = []
        self.rejected: Counter[str] = Counter()
        self.accepted = 0
        self.submitted = 0
        self.unreachable = 0
        self.first_submit = 0.0
        self.last_submit = 0.0
        self._lock = threading.Lock()
        self._stop_submitting = threading.Event()
        self._stop_tracking = threading.Event()
        self._threads: list[threading.Thread] = []  # the submitters
        self._trackers: list[threading.Thread] = []
        self._bucket: _Bucket | None = None
        self._tracked_height = 0  # every height up to this one has been read
        self._next_height = 1  # the next height a tracker claims
        self._given_back: list[int] = []  # heights a tracker claimed and could not read
        self._read_above: set[int] = set()  # heights read above _tracked_height

    # ---- setup ------------------------------------------------------------------------------
    def fund(self, timeout: float = 60.0) -> None:
        """The faucet pays ``fund_each`` to every sender; returns once all are committed."""
        spec = self.nodes[0]
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
            nonce = int(rpc(client, spec.rpc, "account", {"address": to_hex(self.faucet.address)})["next_nonce"])
            chain_id = self.layout.chain_id
            txs = [sign_tx(self.faucet, chain_id, nonce + i, Transfer(s.key.address, self.config.fund_each),
                           self.config.fee) for i, s in enumerate(self.senders)]
            deadline = time.monotonic() + timeout
            for start in range(0, len(txs), MAX_RPC_BATCH):
                chunk = txs[start:start + MAX_RPC_BATCH]
                while True:  # a busy node (the last load's backlog) refuses at the door: retry those
                    answers = submit_batch(client, spec.rpc, chunk)
                    retry: list[Tx] = []
                    for tx, r in zip(chunk, answers):
                        if r is None:
                            continue
                        # after a refused nonce the later ones are gaps: sent again behind it
                        if r not in DOOR_REFUSALS and not (retry and r == "future_nonce"):
                            raise RPCFailure(f"funding transfers rejected: {Counter(answers)}")
                        retry.append(tx)
                    chunk = retry
                    if not chunk:
                        break
                    if time.monotonic() > deadline:
                        raise RPCFailure(f"funding transfers still refused after {timeout:.0f} s: {Counter(answers)}")
                    time.sleep(0.2)
            last = txs[-1]
            while True:
                try:
                    if rpc(client, spec.rpc, "tx", {"hash": to_hex(last.hash)}).get("status") == "committed":
                        break
                except RPCFailure as exc:
                    if "-32001" not in str(exc) and "not committed" not in str(exc):
                        raise
                if time.monotonic() > deadline:
                    raise RPCFailure(f"funding was not committed within {timeout:.0f} s")
                time.sleep(0.1)
            self._tracked_height = int(rpc(client, spec.rpc, "status")["sync_info"]["latest_block_height"])

    def presign(self) -> None:
        """Sign ``presign`` transfers per (fresh, funded) sender ahead, so the load offered is not
        bounded by signing in this process; a refused one is offered again later, like a client would."""
        cfg = self.config
        for s in self.senders:
            s.nonce, s.needs_sync = 0, False
            s.signed = {n: sign_tx(s.key, self.layout.chain_id, n, Transfer(s.recipient, cfg.amount), cfg.fee)
                        for n in range(cfg.presign)}

    # ---- running ----------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.config
        self._bucket = _Bucket(cfg.rate, cfg.max_txs, time.monotonic() + cfg.duration_s)
        self.first_submit = time.monotonic()
        self._next_height = self._tracked_height + 1
        n = len(self.nodes)
        for i in range(min(TRACKERS, n)):
            tracker = threading.Thread(target=self._track, args=(i * n // min(TRACKERS, n),),
                                       name=f"load-tracker-{i}", daemon=True)
            tracker.start()
            self._trackers.append(tracker)
        for pos in range(len(self.nodes)):
            t = threading.Thread(target=self._submit_loop, args=(pos,), name=f"load-submit-{pos}", daemon=True)
            t.start()
            self._threads.append(t)

    def is_submitting(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    @property
    def tracked_height(self) -> int:
        """The last height the tracker has read."""
        return self._tracked_height

    def wait_submitted(self, timeout: float | None = None) -> None:
        """Block until the submitters have spent the budget (count or duration)."""
        for t in self._threads:
            t.join(timeout)

    def stop(self, drain: bool = True, drain_s: float | None = None) -> LoadReport:
        """Stop submitting, wait (bounded by ``drain_s``, default the config's) for accepted
        transactions to commit, report."""
        self._stop_submitting.set()
        for t in self._threads:
            t.join(HTTP_TIMEOUT_S + 5)
        if drain:
            self._drain(self.config.drain_s if drain_s is None else drain_s)
        self._stop_tracking.set()
        for t in self._trackers:
            t.join(HTTP_TIMEOUT_S + 5)
        return self.report()

    def run(self) -> LoadReport:
        """start(), wait until the budget is spent, stop(): the whole bounded run."""
        self.start()
        self.wait_submitted(self.config.duration_s + HTTP_TIMEOUT_S + 5)
        return self.stop()

    def _drain(self, seconds: float) -> None:
        """Wait for accepted transactions to commit: until none is outstanding, ``drain_s`` passes,
        or DRAIN_IDLE_BLOCKS blocks commit none of them (those were lost, e.g. with a crashed
        node's mempool: accepted is not committed)."""
        deadline = time.monotonic() + seconds
        last = (self._outstanding(), self._tracked_height)
        while time.monotonic() < deadline:
            outstanding = self._outstanding()
            if outstanding == 0:
                return
            if outstanding != last[0]:
                last = (outstanding, self._tracked_height)
            elif self._tracked_height - last[1] >= DRAIN_IDLE_BLOCKS:
                log.info("drain: %d accepted transactions were not committed in %d blocks; giving up",
                         outstanding, DRAIN_IDLE_BLOCKS)
                return
            time.sleep(0.05)

    def _outstanding(self) -> int:
        with self._lock:
            return self.accepted - sum(1 for h in self.committed if h in self.submit_time)

    def report(self) -> LoadReport:
        with self._lock:
            ours = {h: ht for h, ht in self.committed.items() if h in self.submit_time}
            seen_lat = [self.commit_seen[h] - self.submit_time[h] for h in ours]
            commit_s = commit_times_s(self.blocks)
            lat = [commit_s[ht] - self.submit_wall[h] for h, ht in ours.items()]
            last_commit = max((self.commit_seen[h] for h in ours), default=self.first_submit)
            during = sum(1 for h in ours if self.commit_seen[h] <= self.last_submit)
            answers = [self.answer_time[h] - self.submit_time[h] for h in ours if h in self.answer_time]
            return LoadReport(self.submitted, self.accepted, Counter(self.rejected), self.unreachable, ours, lat,
                              sorted(self.blocks, key=lambda b: b.height), self.first_submit, self.last_submit, last_commit, during,
                              answers, seen_lat)

    # ---- submitters -------------------------------------------------------------------------
    def _submit_loop(self, pos: int) -> None:
        cfg = self.config
        bucket = self._bucket
        assert bucket is not None
        if cfg.nice:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), cfg.nice)
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
            turn = 0
            while not self._stop_submitting.is_set():
                mine = [s for s in self.senders if s.node == pos]
                if not mine:  # every sender moved away (the node was down); some may move here later
                    if bucket.take(0) < 0:
                        return
                    self._stop_submitting.wait(0.05)
                    continue
                n = bucket.take(cfg.batch)
                if n < 0:
                    return
                if n == 0:
                    time.sleep(bucket.wait_hint(cfg.batch))
                    continue
                # spread the batch over this node's senders, a run of nonces each
                per = -(-n // len(mine))
                start = turn % len(mine)
                turn += 1
                chosen = (mine[start:] + mine[:start])[: -(-n // per)]
                batch: list[tuple[Sender, Tx]] = []
                for s in chosen:
                    if s.needs_sync and not self._resync(client, s):
                        continue
                    for _ in range(min(per, n - len(batch))):
                        tx = s.signed.get(s.nonce) or sign_tx(s.key, self.layout.chain_id, s.nonce,
                                                              Transfer(s.recipient, cfg.amount), cfg.fee)
                        batch.append((s, tx))
                        s.nonce += 1
                if batch:
                    self._send(client, pos, batch)

    def _resync(self, client: httpx.Client, s: Sender) -> bool:
        """Read the sender's next nonce from its node; hand it to the next node if that one is down."""
        try:
            acct = rpc(client, self.nodes[s.node].rpc, "account", {"address": to_hex(s.key.address)})
        except RPCFailure:
            s.node = (s.node + 1) % len(self.nodes)
            return False
        s.nonce = int(acct["next_nonce"])
        s.needs_sync = False
        return True

    def _send(self, client: httpx.Client, pos: int, batch: list[tuple[Sender, Tx]]) -> None:
        spec = self.nodes[pos]
        sent_at, sent_wall = time.monotonic(), time.time()
        with self._lock:
            for _, tx in batch:
                self.submit_time.setdefault(tx.hash, sent_at)
                self.submit_wall.setdefault(tx.hash, sent_wall)
        try:
            answers = submit_batch(client, spec.rpc, [tx for _, tx in batch])
        except RPCFailure as exc:
            log.info("node %s unreachable (%s); moving its senders", spec.name, exc)
            with self._lock:
                self.unreachable += len(batch)
                self.submitted += len(batch)
                self.last_submit = time.monotonic()
            for s in {id(s): s for s, _ in batch}.values():
                s.node = (pos + 1) % len(self.nodes)
                s.needs_sync = True
            return
        answered = time.monotonic()
        rewind: dict[int, tuple[Sender, int]] = {}
        resync: set[int] = set()
        with self._lock:
            self.submitted += len(batch)
            self.last_submit = time.monotonic()
            for (s, tx), reason in zip(batch, answers):
                if reason is None:
                    self.accepted += 1
                    self.answer_time[tx.hash] = answered
                    continue
                self.rejected[reason] += 1
                if reason != "duplicate":
                    self.submit_time.pop(tx.hash, None)
                    self.submit_wall.pop(tx.hash, None)
                nonce = tx.unsigned.nonce
                if id(s) not in rewind or nonce < rewind[id(s)][1]:
                    rewind[id(s)] = (s, nonce)
                if reason not in DOOR_REFUSALS:
                    resync.add(id(s))
        for s, nonce in rewind.values():
            s.nonce = nonce
            # the node's next_nonce is the truth after a rejection; a refusal at the door (pool
            # full, intake busy) left the sender's earlier transactions pooled: offer it again
            s.needs_sync = id(s) in resync

    # ---- tracker ----------------------------------------------------------------------------
    def _track(self, pos: int) -> None:
        """One of TRACKERS readers, each following its own node: every height is claimed by one
        of them (a flooded node answers each RPC read late: one reader fell 20 s behind a
        16-validator devnet at 5x and the point counted nothing)."""
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
            while not self._stop_tracking.is_set():
                spec = self.nodes[pos]
                try:
                    latest = int(rpc(client, spec.rpc, "status")["sync_info"]["latest_block_height"])
                    while not self._stop_tracking.is_set():
                        height = self._claim(latest)
                        if height is None:
                            break
                        try:
                            self._read_block(client, spec, height)
                        except BaseException:
                            with self._lock:
                                self._given_back.append(height)
                            raise
                        self._mark_read(height)
                except (RPCFailure, KeyError, ValueError, TypeError) as exc:
                    log.info("tracker: %s failed (%s); following another node", spec.name, exc)
                    pos = (pos + 1) % len(self.nodes)
                    time.sleep(TRACK_POLL_S)
                    continue
                self._stop_tracking.wait(TRACK_POLL_S)

    def _claim(self, latest: int) -> int | None:
        """The next height to read, at most ``latest`` (what this reader's node has committed)."""
        with self._lock:
            for i, h in enumerate(self._given_back):
                if h <= latest:
                    return self._given_back.pop(i)
            if self._next_height > latest:
                return None
            self._next_height += 1
            return self._next_height - 1

    def _mark_read(self, height: int) -> None:
        with self._lock:
            self._read_above.add(height)
            while self._tracked_height + 1 in self._read_above:
                self._tracked_height += 1
                self._read_above.discard(self._tracked_height)

    def _read_block(self, client: httpx.Client, spec: NodeSpec, height: int) -> None:
        b = rpc(client, spec.rpc, "block", {"height": height})
        seen, wall_ms = time.monotonic(), time.time() * 1000
        txs = b["block"]["txs"]
        header = b["block"]["header"]
        hashes = [sha256(from_hex(t)) for t in txs]
        time_ms = int(header["time_ms"])
        with self._lock:
            self.blocks.append(Block(height, time_ms, len(txs), seen, int(wall_ms - time_ms)))
            for h in hashes:
                if h not in self.committed:
                    self.committed[h] = height
                    self.commit_seen[h] = seen
