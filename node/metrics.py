"""Prometheus metrics of one node, in its own CollectorRegistry (never the process-global one).

The node pushes what it knows as it happens (height, committed blocks, mempool); the RPC server
refreshes the pull-style gauges (peers, mempool, height) from the node context at each scrape, so
/metrics is current even for values nobody pushed.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
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
    ("attrchain_mempool_size", "gauge", "transactions in the mempool"),
    ("attrchain_mempool_bytes", "gauge", "bytes of transactions in the mempool"),
    ("attrchain_block_processing_seconds", "histogram", "time to execute and commit one block"),
    ("attrchain_blocks_total", "counter", "blocks committed by this process"),
    ("attrchain_committed_txs_total", "counter", "transactions committed by this process"),
    ("attrchain_rpc_requests_total", "counter", "JSON-RPC calls by method (unknown names as \"unknown\")"),
    ("attrchain_rpc_errors_total", "counter", "JSON-RPC error answers by code"),
    ("attrchain_ws_subscriptions", "gauge", "open WebSocket event subscriptions"),
)


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
        self._rpc_children: dict[str, Counter] = {}
        self._error_children: dict[int, Counter] = {}

    # ---- pushed by the node --------------------------------------------------------------
    def set_height(self, height: int) -> None:
        self.height.set(height)

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
