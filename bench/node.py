"""Benchmark: a real validator process under sustained transfers, and block sync between processes.

Usage: .venv/bin/python bench/node.py [--seconds 20] [--clients 3] [--blocks 10000] [--block-txs 100]
       [--accounts 100000] [--contributions 10000] [--skip-single] [--skip-sync] [--skip-statesync]

(a) single_node_tps: one validator process (its own genesis with prefunded senders); a few client
    threads submit pre-signed transfers as JSON-RPC batches of broadcast_tx_sync for a bounded
    time and count; the figure is committed transactions / (last commit - first submission).
(b) sync_tx_per_s: a chain of --blocks blocks of --block-txs transfers each is built directly in a
    node's LevelDB (Chain.build_block / commit, every block carrying a real commit signed by the
    validator key), then a serving node process (no validator key) and a fresh node process start;
    the fresh one block-syncs everything. The figure is synced transactions / (time between the
    fresh node's first and last synced block, observed over RPC).
(c) statesync_s vs blocksync_s: a chain holding --accounts accounts (made by transfers, 1,000 per
    block) and one datanet with --contributions accepted contributions (commit, reveal and review
    blocks of 250), a snapshot of its state at that height, then --tail-blocks blocks of 100
    transfers, is built offline in a serving node's LevelDB (every block with a real commit). Then
    one fresh node process state-syncs (trusted height 1: light-client checks of every header and
    commit up to the snapshot, chunks, state root, then block sync of the tail) and, after it, another
    block-syncs from genesis, both over libp2p on loopback. Each figure is the time from launching
    the process to its RPC reporting the tip, and (the headline, statesync_s / blocksync_s) the time
    from its first peer connection to its commit of the tip, both from its log (a node whose peer
    does not list it may wait p2p's 3 s inbound grace before dialling); bytes are the sync answers
    it received (its log).
All are printed next to this machine's Ed25519 verify rate measured in the same run (one core).
Target: sync_tx_per_s >= 0.5 * ed25519_verify_per_s; when it is missed, the first --profile-blocks
blocks are applied again in-process (node.sync.apply_synced_block) plainly and under cProfile.
Progress goes to stderr; the LAST stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# bench/node.py would shadow the `node` package: put the repository root first instead.
ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

import httpx  # noqa: E402

from devnet.prebuilt import ChainTip, append_block  # noqa: E402
from node.config import Home, NodeConfig  # noqa: E402
from p2p.identity import peer_id_from_seed  # noqa: E402
from state.block import decode_block  # noqa: E402
from state.chain import Chain  # noqa: E402
from state.crypto import PrivateKey, sha256, to_hex, verify  # noqa: E402
from state.genesis import Genesis, load_genesis, parse_genesis  # noqa: E402
from state.store import StateDB  # noqa: E402
from state.tx import Transfer, sign_tx  # noqa: E402

CHAIN_ID = "attrchain-bench-node"
GENESIS_TIME_MS = 1_700_000_000_000
RPC_BATCH = 100
BALANCE = 10**15


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- Ed25519 reference --------------------------------------------------------------------
def ed25519_verify_per_s(seconds: float = 2.0) -> float:
    key = PrivateKey.from_int(1)
    msg = os.urandom(160)
    sig = key.sign(msg)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            verify(key.public_key, sig, msg)
        n += 200
    return n / (time.perf_counter() - start)


# ---- homes and processes ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_genesis(validator: PrivateKey, senders: list[PrivateKey], timeouts: dict[str, int]) -> Genesis:
    return parse_genesis({
        "chain_id": CHAIN_ID,
        "genesis_time_ms": GENESIS_TIME_MS,
        "params_preset": "devnet",
        "params": {"timeouts": timeouts},
        "accounts": [{"address": to_hex(k.address), "balance": BALANCE} for k in senders]
        + [{"address": to_hex(validator.address), "balance": BALANCE}],
        "validators": [{"operator": to_hex(validator.address), "consensus_public_key": to_hex(validator.public_key),
                        "stake": 10**9, "moniker": "bench"}],
    })


def make_home(root: Path, genesis: Genesis, validator: PrivateKey | None, peers: list[str]) -> tuple[Home, int, str]:
    """A node home; returns (home, rpc port, '<peer id>@127.0.0.1:<p2p port>')."""
    home = Home(root)
    home.config_dir.mkdir(parents=True, exist_ok=True)
    home.data_dir.mkdir(parents=True, exist_ok=True)
    genesis.save(home.genesis_file)
    if validator is not None:
        validator.save(home.validator_key_file)
    cfg = NodeConfig(moniker=root.name)
    cfg.rpc.port = free_port()
    cfg.p2p.port = free_port()
    cfg.p2p.persistent_peers = peers
    home.write_config(cfg)
    return home, cfg.rpc.port, f"{peer_id_from_seed(home.node_key().seed)}@127.0.0.1:{cfg.p2p.port}"


class NodeProcess:
    def __init__(self, home: Home, rpc_port: int) -> None:
        self.home = home
        self.url = f"http://127.0.0.1:{rpc_port}"
        self.log = home.root / "node.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "node.cli", "node", "run", "--home", str(home.root)],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(ROOT))
        self.http = httpx.Client(timeout=30.0)

    def call(self, method: str, params: Any = None) -> Any:
        doc = self.http.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}).json()
        if "error" in doc:
            raise RuntimeError(f"{method}: {doc['error']}")
        return doc["result"]

    def height(self) -> int | None:
        try:
            return int(self.call("status")["sync_info"]["latest_block_height"])
        except (httpx.HTTPError, RuntimeError, ValueError):
            return None

    def wait_height(self, height: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (self.height() or 0) < height:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited ({self.proc.returncode}); see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"node did not reach height {height} in {timeout:.0f} s; see {self.log}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---- (a) a single validator under sustained transfers -------------------------------------
def sign_transfers(senders: list[PrivateKey], per_sender: int) -> list[list[bytes]]:
    """Per sender, ``per_sender`` transfers with consecutive nonces."""
    out = []
    for s in senders:
        to = sha256(s.public_key)[:20]
        out.append([sign_tx(s, CHAIN_ID, n, Transfer(to, 1 + n % 97), fee=1).raw for n in range(per_sender)])
    return out


def client_loop(url: str, queues: list[list[bytes]], deadline: float, accepted: list[bytes],
                rejected: list[str]) -> None:
    """Submit round-robin over this client's senders (each in nonce order) until done or deadline."""
    http = httpx.Client(timeout=30.0)
    cursors = [0] * len(queues)
    try:
        while time.monotonic() < deadline:
            batch: list[bytes] = []
            for i, q in enumerate(queues):
                # a few per sender per batch keeps each sender's nonces in order within the batch
                take = q[cursors[i]:cursors[i] + 2]
                cursors[i] += len(take)
                batch += take
                if len(batch) >= RPC_BATCH:
                    break
            if not batch:
                return
            body = [{"jsonrpc": "2.0", "id": j, "method": "broadcast_tx_sync", "params": {"tx": to_hex(raw)}}
                    for j, raw in enumerate(batch)]
            docs = {d["id"]: d for d in http.post(url, json=body).json()}
            for j, raw in enumerate(batch):
                if "error" in docs[j]:
                    rejected.append(str(docs[j]["error"].get("data", docs[j]["error"]))[:120])
                else:
                    accepted.append(sha256(raw))
    finally:
        http.close()


def single_node_tps(tmp: Path, seconds: float, n_clients: int, senders_per_client: int, per_sender: int) -> float:
    validator = PrivateKey.from_int(10)
    senders = [PrivateKey.from_int(100_000 + i) for i in range(n_clients * senders_per_client)]
    genesis = make_genesis(validator, senders, {"commit_ms": 200})
    home, rpc_port, _ = make_home(tmp / "single", genesis, validator, [])
    progress(f"(a) signing {len(senders) * per_sender} transfers from {len(senders)} senders...")
    signed = sign_transfers(senders, per_sender)
    node = NodeProcess(home, rpc_port)
    try:
        node.wait_height(1, 60)
        accepted: list[bytes] = []
        rejected: list[str] = []
        start = time.monotonic()
        deadline = start + seconds
        threads = [threading.Thread(target=client_loop, args=(
            node.url, signed[c * senders_per_client:(c + 1) * senders_per_client], deadline, accepted, rejected))
            for c in range(n_clients)]
        for t in threads:
            t.start()
        committed: set[bytes] = set()
        counted_to = node.height() or 0
        last_commit_at = start
        wait_until = deadline + 120
        while time.monotonic() < wait_until:
            time.sleep(0.05)
            h = node.height() or 0
            if h > counted_to:
                now = time.monotonic()
                heights = list(range(counted_to + 1, h + 1))
                for first in range(0, len(heights), RPC_BATCH):
                    body = [{"jsonrpc": "2.0", "id": x, "method": "block", "params": {"height": x}}
                            for x in heights[first:first + RPC_BATCH]]
                    for doc in node.http.post(node.url, json=body).json():
                        for raw in doc["result"]["block"]["txs"]:
                            committed.add(sha256(bytes.fromhex(raw[2:])))
                counted_to = h
                last_commit_at = now
                elapsed = now - start
                progress(f"(a) {elapsed:5.1f} s: height {h}, submitted {len(accepted)} accepted "
                         f"({len(rejected)} refused), committed {len(committed)}")
            if not any(t.is_alive() for t in threads) and committed.issuperset(accepted):
                break
        for t in threads:
            t.join()
        if rejected:
            progress(f"(a) {len(rejected)} submissions refused, e.g. {rejected[:3]}")
        missing = set(accepted) - committed
        if missing:
            progress(f"(a) WARNING: {len(missing)} accepted transactions were not committed in time")
        done = len(set(accepted) & committed)
        tps = done / (last_commit_at - start)
        progress(f"(a) {done} transfers committed in {last_commit_at - start:.1f} s: {tps:.0f} tx/s")
        return tps
    finally:
        node.stop()


# ---- (b) block sync of a prebuilt chain ---------------------------------------------------
def build_chain(db_dir: Path, genesis: Genesis, validator: PrivateKey, senders: list[PrivateKey],
                n_blocks: int, block_txs: int) -> int:
    """Blocks 1..n_blocks of ``block_txs`` transfers each, each with the validator's commit."""
    db = StateDB(db_dir)
    chain = Chain(db)
    chain.init_genesis(genesis)
    nonces = [0] * len(senders)
    recipients = [sha256(b"recipient" + i.to_bytes(4, "big"))[:20] for i in range(4096)]
    tip = ChainTip()
    started = time.monotonic()
    sign_s = 0.0
    n_txs = 0
    try:
        for height in range(1, n_blocks + 1):
            t0 = time.perf_counter()
            txs = []
            for i in range(block_txs):
                k = (height * block_txs + i) % len(senders)
                to = recipients[(height * 7919 + i * 104729) % len(recipients)]
                txs.append(sign_tx(senders[k], CHAIN_ID, nonces[k], Transfer(to, 1 + i % 100), fee=1))
                nonces[k] += 1
            sign_s += time.perf_counter() - t0
            ex, tip = append_block(chain, validator, tip, tuple(t.raw for t in txs), {t.hash for t in txs})
            failed = [r for r in ex.result.tx_results if not r.ok]
            if failed:
                raise RuntimeError(f"block {height}: {len(failed)} transfers failed, e.g. {failed[0]}")
            n_txs += len(txs)
            if height % 500 == 0 or height == n_blocks:
                el = time.monotonic() - started
                progress(f"(b) built {height}/{n_blocks} blocks ({n_txs} transfers) in {el:.0f} s "
                         f"(signing {sign_s:.0f} s)")
    finally:
        db.close()
    return n_txs


def sync_tx_per_s(tmp: Path, n_blocks: int, block_txs: int, n_senders: int) -> tuple[float, dict[str, float]]:
    validator = PrivateKey.from_int(20)
    senders = [PrivateKey.from_int(200_000 + i) for i in range(n_senders)]
    genesis = make_genesis(validator, senders, {})
    # the serving node holds the chain but no validator key: it serves blocks and produces none
    server_home, server_rpc, server_addr = make_home(tmp / "server", genesis, None, [])
    n_txs = build_chain(server_home.db_dir, genesis, validator, senders, n_blocks, block_txs)
    fresh_home, fresh_rpc, _ = make_home(tmp / "fresh", genesis, None, [server_addr])
    server = NodeProcess(server_home, server_rpc)
    fresh: NodeProcess | None = None
    try:
        server.wait_height(n_blocks, 120)
        progress(f"(b) serving node up at height {n_blocks}; starting the fresh node")
        launched = time.monotonic()
        fresh = NodeProcess(fresh_home, fresh_rpc)
        first_seen: float | None = None
        first_height = 0
        last_report = 0.0
        deadline = launched + max(600.0, n_txs / 200)
        while True:
            h = fresh.height()
            now = time.monotonic()
            if h and first_seen is None:
                first_seen, first_height = now, h
            if h is not None and h >= n_blocks:
                break
            if fresh.proc.poll() is not None:
                raise RuntimeError(f"fresh node exited; see {fresh.log}")
            if now > deadline:
                raise RuntimeError(f"sync did not finish in {deadline - launched:.0f} s; see {fresh.log}")
            if h and now - last_report > 5:
                last_report = now
                rate = (h - first_height) * block_txs / max(now - first_seen, 1e-9) if first_seen else 0.0
                progress(f"(b) fresh node at {h}/{n_blocks}: {rate:.0f} tx/s")
            time.sleep(0.05)
        assert first_seen is not None
        done = time.monotonic()
        synced = (n_blocks - first_height) * block_txs
        rate = synced / (done - first_seen)
        whole = n_txs / (done - launched)
        progress(f"(b) synced {n_blocks} blocks: {rate:.0f} tx/s between first and last synced block; "
                 f"{whole:.0f} tx/s including process start")
        a = server.call("block", {"height": n_blocks})["block_id"]["hash"]
        b = fresh.call("block", {"height": n_blocks})["block_id"]["hash"]
        if a != b:
            raise RuntimeError(f"the synced chain differs at height {n_blocks}: {a} vs {b}")
        return rate, {"sync_tx_per_s_incl_start": whole, "sync_seconds": done - first_seen}
    finally:
        if fresh is not None:
            fresh.stop()
        server.stop()


def profile_sync_path(tmp: Path, n_blocks: int) -> None:
    """In-process: apply the first ``n_blocks`` of the built chain exactly as block sync does
    (node.sync.apply_synced_block) onto a fresh store, once plainly and once under cProfile."""
    import cProfile
    import io
    import pstats

    from node.sync import apply_synced_block

    src = Chain(StateDB(tmp / "server" / "data" / "state.db"))
    try:
        n = min(n_blocks, src.height)
        items: list[tuple[bytes, bytes]] = []
        n_txs = 0
        for h in range(1, n + 1):
            raw, commit = src.get_block_bytes(h), src.get_commit(h)
            assert raw is not None and commit is not None
            items.append((raw, commit.encode()))  # type: ignore[attr-defined]
            n_txs += len(decode_block(raw).txs)
    finally:
        src.db.close()
    genesis = load_genesis(tmp / "server" / "config" / "genesis.json")
    for label, profiler in (("plain", None), ("profiled", cProfile.Profile())):
        target = tmp / f"profile-{label}"
        shutil.rmtree(target, ignore_errors=True)
        dst = Chain(StateDB(target))
        try:
            dst.init_genesis(genesis)
            start = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            for block_raw, commit_raw in items:
                apply_synced_block(dst, block_raw, commit_raw)
            if profiler is not None:
                profiler.disable()
            took = time.perf_counter() - start
        finally:
            dst.db.close()
        progress(f"(profile) {label}: {n} blocks, {n_txs} transfers in {took:.2f} s = {n_txs / took:.0f} tx/s in-process")
        if profiler is not None:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("tottime").print_stats(18)
            progress(out.getvalue())
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(
                "apply_synced_block|validate_and_execute|check_header|verify_commit|execute|apply_block|"
                "apply_tx|check_envelope|has_valid_signature|preview_root|commit|decode_block")
            progress(out.getvalue())


# ---- (c) state sync against block sync ----------------------------------------------------
ACCOUNT_BLOCK_TXS = 1000
CONTRIB_BLOCK_TXS = 250
VOCAB = [f"w{i}" for i in range(5000)]


class BigChain:
    """Blocks appended offline with the single validator's commit (devnet.prebuilt)."""

    def __init__(self, chain: Chain, validator: PrivateKey) -> None:
        self.chain = chain
        self.validator = validator
        self.tip = ChainTip()
        self.nonces: dict[bytes, int] = {}
        self.n_txs = 0

    def sign(self, key: PrivateKey, body: Any) -> Any:
        n = self.nonces.get(key.address, 0)
        self.nonces[key.address] = n + 1
        return sign_tx(key, CHAIN_ID, n, body, fee=1)

    def block(self, txs: list[Any]) -> None:
        ex, self.tip = append_block(self.chain, self.validator, self.tip, tuple(t.raw for t in txs),
                                    {t.hash for t in txs})
        failed = [r for r in ex.result.tx_results if not r.ok]
        if failed:
            raise RuntimeError(f"block {self.chain.height}: {len(failed)} transactions failed, e.g. {failed[0]}")
        self.n_txs += len(txs)


def build_big_chain(home: Home, genesis: Genesis, validator: PrivateKey, funders: list[PrivateKey],
                    owner: PrivateKey, contributor: PrivateKey, n_accounts: int, n_contributions: int,
                    tail_blocks: int) -> dict[str, Any]:
    """``n_accounts`` new accounts (transfers of ACCOUNT_BLOCK_TXS per block), one datanet with
    ``n_contributions`` accepted contributions (commit, reveal and review blocks), a snapshot of
    the state at that height written where the serving node finds it, then ``tail_blocks`` blocks
    of 100 transfers the state-synced node has to block-sync."""
    import random

    from node.statesync import SnapshotStore
    from state.attribution.commitments import contribution_commitment
    from state.tx import CommitContribution, Contribute, CreateDatanet, Review

    db = StateDB(home.db_dir)
    chain = Chain(db)
    chain.init_genesis(genesis)
    b = BigChain(chain, validator)
    started = time.monotonic()
    try:
        txs: list[Any] = []
        for i in range(n_accounts):
            to = sha256(b"bench account" + i.to_bytes(4, "big"))[:20]
            txs.append(b.sign(funders[i % len(funders)], Transfer(to, 1000 + i % 1000)))
            if len(txs) == ACCOUNT_BLOCK_TXS or i == n_accounts - 1:
                b.block(txs)
                txs = []
                if chain.height % 20 == 0 or i == n_accounts - 1:
                    progress(f"(c) {i + 1}/{n_accounts} accounts, height {chain.height}, "
                             f"{time.monotonic() - started:.0f} s")
        create = b.sign(owner, CreateDatanet("bench", "ipfs://bench", 0))
        b.block([create])
        datanet = create.hash
        rng = random.Random(16)
        done = 0
        while done < n_contributions:
            texts = [" ".join(rng.choices(VOCAB, k=60)).encode()
                     for _ in range(min(CONTRIB_BLOCK_TXS, n_contributions - done))]
            salts = [sha256(b"bench salt" + t) for t in texts]
            b.block([b.sign(contributor, CommitContribution(contribution_commitment(
                contributor.address, datanet, sha256(t), salt))) for t, salt in zip(texts, salts)])
            reveals = [b.sign(contributor, Contribute(datanet, t, salt, 0)) for t, salt in zip(texts, salts)]
            b.block(reveals)
            b.block([b.sign(owner, Review(r.hash, 1)) for r in reveals])
            done += len(texts)
            if done % 2000 == 0 or done == n_contributions:
                progress(f"(c) {done}/{n_contributions} contributions, height {chain.height}, "
                         f"{time.monotonic() - started:.0f} s")
        snap_height = chain.height
        header = chain.get_header(snap_height)
        assert header is not None
        store = SnapshotStore(home.data_dir / "snapshots", 0, keep=1)
        snap = store.take(db.raw, snap_height, header.state_root)
        try:
            manifest = store.write(snap, snap_height, header.state_root)
        finally:
            snap.close()
        snap_bytes = sum(len(store.chunk(snap_height, i) or b"") for i in range(len(manifest.chunk_hashes)))
        progress(f"(c) snapshot at height {snap_height}: {len(manifest.chunk_hashes)} chunks, "
                 f"{snap_bytes / 1e6:.1f} MB")
        for t in range(tail_blocks):
            b.block([b.sign(funders[k % len(funders)], Transfer(sha256(b"tail" + bytes([t, k]))[:20], 5))
                     for k in range(100)])
        first = chain.get_header(1)
        assert first is not None
        progress(f"(c) chain built: height {chain.height}, {b.n_txs} transactions, "
                 f"{time.monotonic() - started:.0f} s")
        return {"tip": chain.height, "snapshot_height": snap_height, "snapshot_chunks": len(manifest.chunk_hashes),
                "snapshot_bytes": snap_bytes, "chain_txs": b.n_txs, "trust_hash": first.hash().hex()}
    finally:
        db.close()


BLOCK_SYNC_LINE = re.compile(r"block sync applied (\d+) blocks\D.*\((\d+) bytes received in total\)")
CONNECTED_LINE = re.compile(r"^(\S+ \S+) INFO +p2p.peers: connected to ", re.M)
STATE_SYNC_LINE = re.compile(r"state sync done: height (\d+) in ([\d.]+) s \((\d+) chunks, (\d+) bytes received\)")


def log_time(stamp: str) -> float:
    """Seconds of a node log line's '2026-12-05 11:25:48,357' stamp."""
    import datetime as dt
    return dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def join_and_time(home: Home, rpc_port: int, tip: int, label: str, limit_s: float) -> dict[str, Any]:
    """Start a fresh node and time it from launch to the tip; bytes received from its log."""
    launched = time.monotonic()
    node = NodeProcess(home, rpc_port)
    try:
        last_report = launched
        while (node.height() or 0) < tip:
            now = time.monotonic()
            if node.proc.poll() is not None:
                raise RuntimeError(f"{label} node exited ({node.proc.returncode}); see {node.log}")
            if now - launched > limit_s:
                raise RuntimeError(f"{label} node not at the tip after {limit_s:.0f} s; see {node.log}")
            if now - last_report >= 5:
                last_report = now
                lines = [ln for ln in node.log.read_text(errors="replace").splitlines() if "sync" in ln]
                progress(f"(c) {label}: {now - launched:5.1f} s, height {node.height() or 0}/{tip}"
                         + (f" | {lines[-1].split(' ', 3)[-1][:100]}" if lines else ""))
            time.sleep(0.1)
        took = time.monotonic() - launched
        mine = node.call("block", {"height": tip})["block_id"]["hash"]
        # the block-sync summary (with the bytes) is logged once the syncer finds no peer ahead
        summary_by = time.monotonic() + 30
        while not BLOCK_SYNC_LINE.search(text := node.log.read_text(errors="replace")):
            if time.monotonic() > summary_by:
                raise RuntimeError(f"{label} node logged no block-sync summary; see {node.log}")
            time.sleep(0.1)
        blocks = BLOCK_SYNC_LINE.findall(text)
        state = STATE_SYNC_LINE.findall(text)
        connected = CONNECTED_LINE.search(text)
        at_tip = re.search(rf"^(\S+ \S+) INFO +node.app: committed height={tip} ", text, re.M)
        if connected is None or at_tip is None:
            raise RuntimeError(f"{label} node log lacks its first connection or the tip commit; see {node.log}")
        return {"seconds": took, "tip_hash": mine, "connected_to_tip_s": log_time(at_tip[1]) - log_time(connected[1]),
                "block_bytes": int(blocks[-1][1]) if blocks else 0, "blocks": sum(int(n) for n, _b in blocks),
                "snapshot_height": int(state[-1][0]) if state else 0,
                "install_s": float(state[-1][1]) if state else 0.0,
                "chunks": int(state[-1][2]) if state else 0, "state_bytes": int(state[-1][3]) if state else 0}
    finally:
        node.stop()


def statesync_vs_blocksync(tmp: Path, n_accounts: int, n_contributions: int, tail_blocks: int,
                           limit_s: float) -> dict[str, Any]:
    validator = PrivateKey.from_int(30)
    funders = [PrivateKey.from_int(300_000 + i) for i in range(8)]
    owner, contributor = PrivateKey.from_int(300_100), PrivateKey.from_int(300_101)
    genesis = make_genesis(validator, funders + [owner, contributor], {})
    server_home, server_rpc, server_addr = make_home(tmp / "c-server", genesis, None, [])
    built = build_big_chain(server_home, genesis, validator, funders, owner, contributor,
                            n_accounts, n_contributions, tail_blocks)
    tip = built["tip"]
    cfg = server_home.load_config()
    cfg.statesync.snapshot_interval = 10**6  # serve the prebuilt snapshot; write none
    server_home.write_config(cfg)
    ss_home, ss_rpc, _ = make_home(tmp / "c-statesync", genesis, None, [server_addr])
    bs_home, bs_rpc, _ = make_home(tmp / "c-blocksync", genesis, None, [server_addr])
    for home, state_sync in ((ss_home, True), (bs_home, False)):
        cfg = home.load_config()
        cfg.statesync.snapshot_interval = 0
        if state_sync:
            cfg.statesync.enable = True
            cfg.statesync.trust_height = 1
            cfg.statesync.trust_hash = built["trust_hash"]
        home.write_config(cfg)
    server = NodeProcess(server_home, server_rpc)
    try:
        server.wait_height(tip, 300)
        want = server.call("block", {"height": tip})["block_id"]["hash"]
        progress(f"(c) serving node up at height {tip}; state sync (trusted height 1) first")
        ss = join_and_time(ss_home, ss_rpc, tip, "state sync", limit_s)
        progress(f"(c) state sync: tip {ss['seconds']:.1f} s after launch, {ss['connected_to_tip_s']:.1f} s after "
                 f"connecting; {ss['chunks']} chunks, {(ss['state_bytes'] + ss['block_bytes']) / 1e6:.1f} MB received")
        bs = join_and_time(bs_home, bs_rpc, tip, "block sync", limit_s)
        progress(f"(c) block sync from genesis: tip {bs['seconds']:.1f} s after launch, {bs['connected_to_tip_s']:.1f} s "
                 f"after connecting; {bs['block_bytes'] / 1e6:.1f} MB received")
        if ss["snapshot_height"] != built["snapshot_height"]:
            raise RuntimeError(f"the state-sync node did not install snapshot {built['snapshot_height']}; "
                               f"see {ss_home.root / 'node.log'}")
        for label, got in (("state-synced", ss), ("block-synced", bs)):
            if got["tip_hash"] != want:
                raise RuntimeError(f"the {label} node has another block at {tip}: {got['tip_hash']} vs {want}")
    finally:
        server.stop()
    return {
        "statesync_s": round(ss["connected_to_tip_s"], 1), "blocksync_s": round(bs["connected_to_tip_s"], 1),
        "statesync_speedup": round(bs["connected_to_tip_s"] / ss["connected_to_tip_s"], 1),
        "statesync_launch_to_tip_s": round(ss["seconds"], 1), "blocksync_launch_to_tip_s": round(bs["seconds"], 1),
        "statesync_bytes": ss["state_bytes"] + ss["block_bytes"], "statesync_chunks": ss["chunks"],
        "statesync_install_s": ss["install_s"], "statesync_tail_blocks": ss["blocks"],
        "blocksync_bytes": bs["block_bytes"], "accounts": n_accounts, "contributions": n_contributions,
        "tip": tip, "snapshot_height": built["snapshot_height"], "snapshot_bytes": built["snapshot_bytes"],
        "chain_txs": built["chain_txs"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0, help="(a) submission time")
    ap.add_argument("--clients", type=int, default=3, help="(a) concurrent RPC clients")
    ap.add_argument("--per-sender", type=int, default=500, help="(a) transfers signed per sender (bound)")
    ap.add_argument("--senders-per-client", type=int, default=100)
    ap.add_argument("--blocks", type=int, default=10_000, help="(b) blocks in the prebuilt chain")
    ap.add_argument("--block-txs", type=int, default=100, help="(b) transfers per block")
    ap.add_argument("--sync-senders", type=int, default=2000)
    ap.add_argument("--skip-single", action="store_true")
    ap.add_argument("--skip-sync", action="store_true")
    ap.add_argument("--skip-statesync", action="store_true")
    ap.add_argument("--accounts", type=int, default=100_000, help="(c) accounts created by transfers")
    ap.add_argument("--contributions", type=int, default=10_000, help="(c) accepted contributions")
    ap.add_argument("--tail-blocks", type=int, default=20, help="(c) blocks after the snapshot")
    ap.add_argument("--join-limit", type=float, default=300.0, help="(c) seconds a joining node may take")
    ap.add_argument("--keep", action="store_true", help="keep the temporary node homes")
    ap.add_argument("--profile-blocks", type=int, default=300,
                    help="when (b) misses its target, profile applying this many synced blocks "
                         "in-process (stderr); 0: never")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-node-"))
    result: dict[str, Any] = {}
    try:
        before = ed25519_verify_per_s()
        progress(f"ed25519 verify/s (one core): {before:.0f}")
        if not args.skip_single:
            result["single_node_tps"] = round(single_node_tps(
                tmp, args.seconds, args.clients, args.senders_per_client, args.per_sender))
        if not args.skip_sync:
            rate, extra = sync_tx_per_s(tmp, args.blocks, args.block_txs, args.sync_senders)
            result["sync_tx_per_s"] = round(rate)
            result.update({k: round(v, 1) for k, v in extra.items()})
            if args.profile_blocks and rate < 0.5 * before:
                progress(f"(b) below the target of half the verify rate ({0.5 * before:.0f} tx/s): profiling")
                profile_sync_path(tmp, args.profile_blocks)
        if not args.skip_statesync:
            result.update(statesync_vs_blocksync(tmp, args.accounts, args.contributions, args.tail_blocks,
                                                 args.join_limit))
        after = ed25519_verify_per_s()
        verify_rate = (before + after) / 2
        progress(f"ed25519 verify/s (one core): {after:.0f} after the runs; using the mean {verify_rate:.0f}")
        result["ed25519_verify_per_s"] = round(verify_rate)
        if "sync_tx_per_s" in result:
            result["sync_ratio"] = round(result["sync_tx_per_s"] / verify_rate, 3)
    finally:
        if args.keep:
            progress(f"node homes kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    ordered: dict[str, Any] = {k: result[k] for k in ("single_node_tps", "sync_tx_per_s", "statesync_s", "blocksync_s",
                                                      "ed25519_verify_per_s") if k in result}
    ordered.update({k: v for k, v in result.items() if k not in ordered})
    print(json.dumps(ordered))


if __name__ == "__main__":
    main()
