"""The node process: one trio nursery owning p2p, the consensus driver, block sync, tx gossip and
the JSON-RPC server.

    Node.run
      ├── P2PService.run                (libp2p host, gossip, request/response, redial loop)
      ├── topic readers                 (proposals, votes, evidence, tx batches -> driver/mempool)
      ├── tx gossip loop                (flush newly accepted txs every ~50 ms as one batch)
      ├── sync loop                     (block sync at start and whenever peers are ahead)
      ├── ConsensusDriver.run           (validators and full nodes alike follow consensus)
      └── serve_rpc                     (JSON-RPC + WebSocket + /metrics)
SIGTERM/SIGINT cancel the nursery; every component shuts down inside its own scope.
"""

from __future__ import annotations

import errno
import gc
import ipaddress
import logging
import signal
import socket
import time
from pathlib import Path
from typing import Any

import trio

from node.config import Home, NodeConfig, split_peer
from node.events import EventBus
from node.integrity import StartupError, open_state_db
from node.rpc.payloads import publish_committed_block
from node.mempool import Mempool, MempoolConfig
from node.privval import PrivValidator
from node.gossip_auth import DecodedVotes, GossipAuthenticator
from node.pex import AddressBook, PeerExchange, advertised_address, configured, pex_protocol
from node.statesync import (MAX_ANSWER_BYTES, SnapshotStore, StateSyncer, StateSyncError, Trust,
                            handle_statesync_request, statesync_protocol)
from node.sync import BlockSyncer, SyncSettings, handle_sync_request
from p2p import topics
from p2p.errors import P2PError
from p2p.identity import PeerSpec
from p2p.inbox import InboxSettings
from p2p.scoring import Offence, ScoreSettings
from p2p.service import P2PService
from state.block import MAX_BLOCK_BYTES, Block, Commit
from state.chain import Chain, Executed
from state.codec import CodecError, pack, unpack
from state.crypto import PrivateKey, to_hex
from state.genesis import Genesis, load_genesis
from state.governance.upgrade import UpgradeNeeded

log = logging.getLogger(__name__)

VERSION = "0.1.0"
STATESYNC_PEER_WAIT_S = 60.0
MAX_TX_BATCHES_AT_ONCE = 64  # peers' tx batches taken from the inbox in one turn (_read_txs)
# consensus messages handled in one turn of a topic reader before it lets other tasks run: the ones
# already queued are taken without a scheduler trip each (two per message before: ~36 messages per
# height per node at 16 validators)
MAX_CONSENSUS_AT_ONCE = 32
# a transaction this node sent to its peers and still holds this long after is sent once more
# (Mempool.take_for_resend): a peer that dropped it refused the sender's later nonces too
RESEND_AFTER_S = 2.0


def parse_peer(text: str) -> PeerSpec:
    """'<peer id>@<host>:<port>' -> PeerSpec (host: an IPv4 or IPv6 address, or a DNS name)."""
    parts = split_peer(text)
    if parts is None:
        raise ValueError(f"peer {text!r} is not '<peer id>@<host>:<port>'")
    peer_id, host, port = parts
    try:
        proto = "ip4" if ipaddress.ip_address(host.strip("[]")).version == 4 else "ip6"
    except ValueError:
        proto = "dns4"
    return PeerSpec(peer_id, f"/{proto}/{host.strip('[]')}/tcp/{port}/p2p/{peer_id}")


class NodeHalted(Exception):
    """The node stopped on purpose (a software upgrade it does not provide): the one message."""


class Node:
    def __init__(self, home: Home, config: NodeConfig, upgrade_names: tuple[str, ...] = ()) -> None:
        self.home = home
        self.config = config
        self.genesis: Genesis = load_genesis(home.genesis_file)
        self.node_key: PrivateKey = home.node_key()
        self.validator_key: PrivateKey | None = home.validator_key()
        home.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = open_state_db(home.db_dir)  # StartupError when damaged or locked (node/integrity.py)
        self.chain = Chain(self.db)
        self.chain.init_genesis(self.genesis)
        # software upgrades this node provides: its version and every --upgrade-name (docs/governance.md)
        self.chain.upgrades = frozenset({VERSION, *upgrade_names})
        self.halted: str | None = None
        self._nursery: trio.Nursery | None = None
        # every validator must normalise text with the same Unicode database (docs/attribution.md)
        from state.attribution.contributions import fingerprint_params
        from state.attribution.fingerprint import require_pinned_unicode, warm_caches

        fp_params = fingerprint_params(self.chain.params().attribution)
        require_pinned_unicode(fp_params)
        warm_caches(fp_params)
        self.events = EventBus()
        self.mempool = Mempool(self.chain, MempoolConfig(
            max_txs=config.mempool.max_txs,
            max_bytes=config.mempool.max_bytes,
            max_per_sender=config.mempool.max_per_sender,
        ))
        from node.metrics import Metrics
        from node.tx_intake import IntakeSettings, TxIntake

        self.metrics = Metrics()
        self.intake = TxIntake(self.mempool, self.metrics, IntakeSettings(
            share_pct=config.mempool.intake_share_pct,
            verify_workers=0 if config.mempool.verify_inline else config.mempool.verify_workers or -1,
            verify_processes=config.mempool.verify_processes,
            peer_tx_rate=config.p2p.peer_tx_rate, max_wait_ms=config.mempool.max_wait_ms),
            origins=self._validator_count)
        self.signer = PrivValidator(self.validator_key, home.signer_state_file, self.chain.chain_id)
        chain_id = self.chain.chain_id
        self.topic = {
            "txs": topics.txs_topic(chain_id),
            "proposals": topics.proposals_topic(chain_id),
            "votes": topics.votes_topic(chain_id),
            "evidence": topics.evidence_topic(chain_id),
        }
        self.sync_protocol = topics.sync_protocol(chain_id)
        self.block_protocol = topics.proposal_block_protocol(chain_id)
        self.statesync_protocol = statesync_protocol(chain_id)
        self.pex_protocol = pex_protocol(chain_id)
        ss = config.statesync
        self.snapshots = (SnapshotStore(home.data_dir / "snapshots", ss.snapshot_interval, ss.snapshot_keep)
                          if ss.snapshot_interval > 0 else None)
        self._snapshot_writing = False
        # seeds are dialled at start like persistent peers (peer exchange learns more from them)
        peers = [parse_peer(p) for p in dict.fromkeys([*config.p2p.persistent_peers, *config.p2p.seeds])]
        from node.consensus_links import DirectAuth, direct_spec

        from node.driver import VerifiedCache

        # one memory of verified signatures for the topic validators and the consensus driver:
        # a vote is verified once on arrival (gossip or direct stream), not again by the driver
        self.verified = VerifiedCache()
        self.decoded_votes = DecodedVotes()  # votes the topic validator decoded, for the driver
        self.direct_auth = DirectAuth(self.chain, self.validator_key)
        direct = (direct_spec(chain_id, self.direct_auth, config.faults.refuse_direct,
                              config.p2p.validator_link_port if config.p2p.validator_link else None)
                  if config.p2p.direct_consensus and self.validator_key is not None else None)
        self.p2p = P2PService(
            self.node_key.seed,
            config.p2p.port,
            peers,
            list(self.topic.values()),
            validators=GossipAuthenticator(self.chain, self.verified, self.decoded_votes).validators(self.topic),
            request_handlers={self.sync_protocol: self._serve_sync,
                              self.block_protocol: self._serve_proposal_block,
                              self.statesync_protocol: self._serve_statesync,
                              self.pex_protocol: self._serve_pex},
            listen_host=config.p2p.host,
            inbox=InboxSettings(config.p2p.inbox_messages, config.p2p.inbox_bytes, config.p2p.inbox_peer_bytes),
            scoring=ScoreSettings(ban_threshold=config.p2p.ban_threshold, ban_s=config.p2p.ban_s),
            direct=direct,
            relay_topic=topics.relay_topic(chain_id),
        )
        self.pex = self._peer_exchange(config)
        from node.driver import ConsensusDriver

        self.driver = ConsensusDriver(self)
        self.syncer = BlockSyncer(
            self.chain, self._reachable_peers, self._request, self._after_commit, self.report_peer,
            SyncSettings(request_timeout_s=config.p2p.sync_request_timeout_s, poll_s=config.p2p.sync_poll_s),
        )
        self._initial_syncing = False
        # devnet fault injection: peers whose messages are dropped (a network partition)
        self.deny: frozenset[str] = frozenset()
        self._outbox_send, self._outbox = trio.open_memory_channel[tuple[str, bytes]](10_000)
        self.started_at = time.time()
        self.metrics.drops.pull(self._pulled_drops)

    def _pulled_drops(self) -> list[tuple[str, str, int]]:
        """Drops counted inside components (node/metrics.py DROP_SITES), read at scrape time."""
        rows = [("consensus_buffer", "future_full", self.driver.future.dropped),
                ("consensus_buffer", "peer_queue_full", self.driver.inbox.peer_dropped)]
        for kind, topic in self.topic.items():
            stats = self.p2p.topic_stats(topic)
            rows.append((f"gossip_{kind}", "inbox_full", stats.get("inbox_drops", 0)))
            rows.append((f"gossip_{kind}", "banned", stats.get("banned_drops", 0)))
        rows.append(("p2p_requests", "refused", self.p2p.stats().get("requests_refused", 0)))
        rows.append(("subscribers", "fell_behind", self.events.dropped_subscribers))
        return rows

    def _peer_exchange(self, config: NodeConfig) -> PeerExchange:
        """Peer exchange (node/pex.py): configured peers are shared, learned ones dialled up to the target."""
        p2p = config.p2p
        book = AddressBook(self.p2p.peer_id, p2p.allow_private_addresses, p2p.pex_book_size)
        configured(book, [*p2p.persistent_peers, *p2p.seeds])
        advertised, why = advertised_address(p2p.host, p2p.port, p2p.external_address)
        if why is not None and p2p.pex:
            log.warning("peer exchange will not pass on [p2p] external_address %s: %s", advertised, why)

        async def request(peer: str, payload: bytes) -> bytes:
            return await self.p2p.request(peer, self.pex_protocol, payload, timeout=5.0, max_response_bytes=8192)
        return PeerExchange(
            book, advertised, p2p.pex_target_peers, self._reachable_peers,
            lambda: {s.peer_id for s in self.p2p.known_peers()}, self.p2p.remote_ip, request,
            self.p2p.dial_once, self.report_peer, self.p2p.is_banned)

    # ---- NodeContext for the RPC -----------------------------------------------------
    def node_info(self) -> dict[str, Any]:
        return {
            "id": self.p2p.peer_id,
            "moniker": self.config.moniker,
            "network": self.chain.chain_id,
            "version": VERSION,
            "listen_addr": f"{self.config.p2p.host}:{self.config.p2p.port}",
            "external_address": self.config.p2p.external_address,
            "rpc_addr": f"{self.config.rpc.host}:{self.config.rpc.port}",
        }

    def net_info(self) -> dict[str, Any]:
        peers = self.p2p.connected_peers() if self.p2p.is_running else []
        report = self.p2p.peer_report()
        scored = {p["id"]: p for p in report["peers"]}  # type: ignore[union-attr]
        return {"listening": self.p2p.is_running, "n_peers": len(peers),
                "peers": [scored.get(p, {"id": p}) for p in sorted(peers)],
                "banned": report["banned"], "direct_consensus": self.p2p.direct_report(),
                "pex": self.pex.info()}

    def consensus_info(self) -> dict[str, Any]:
        return self.driver.info()

    def _validator_count(self) -> int:
        """Validators of the height in progress (1 before consensus starts): the nodes that take
        clients' transactions, for each one's share of the backlog bound (node/tx_intake.py)."""
        driver = getattr(self, "driver", None)
        validators = driver.state.validators if driver is not None else None
        return len(validators) if validators is not None else 1

    def validator_info(self) -> dict[str, Any] | None:
        if self.validator_key is None:
            return None
        from node.executor import validator_set_at

        power = 0
        try:
            vs = validator_set_at(self.db.view(), self.chain.height + 1)
            v = vs.get_by_address(self.validator_key.address)
            power = v.power if v else 0
        except Exception as exc:  # noqa: BLE001 - status must answer even on a corrupt set
            log.debug("validator set unavailable: %s", exc)
        return {"address": to_hex(self.validator_key.address),
                "pub_key": to_hex(self.validator_key.public_key), "voting_power": power}

    def is_syncing(self) -> bool:
        return self._initial_syncing or self.syncer.syncing

    def report_peer(self, peer_id: str, offence: Offence, detail: str = "") -> None:
        """Score a peer down for a message or answer an honest peer never sends (p2p/scoring.py)."""
        self.p2p.report_peer(peer_id, offence, detail)

    def halt(self, message: str) -> None:
        """Stop the whole node on purpose, with one message (a software upgrade is needed)."""
        if self.halted is None:
            log.critical("%s", message)
            self.halted = message
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def set_deny_list(self, peers: list[str]) -> list[str]:
        """Devnet only (config [faults] admin): drop every message from these peers."""
        if not self.config.faults.admin:
            raise PermissionError("fault injection is disabled on this node ([faults] admin = false)")
        self.deny = frozenset(peers)
        self.p2p.set_denied(sorted(self.deny))
        log.warning("FAULT: partitioned from %d peer(s): %s", len(peers), ", ".join(p[-8:] for p in sorted(peers)))
        return sorted(self.deny)

    def _reachable_peers(self) -> list[str]:
        peers = self.p2p.connected_peers() if self.p2p.is_running else []
        return [p for p in peers if p not in self.deny and not self.p2p.is_banned(p)]

    # ---- driver callbacks ------------------------------------------------------------
    def gossip(self, kind: str, data: bytes) -> None:
        """Publish on ``kind``'s topic; proposals and votes also go straight to every validator
        with a direct stream (``[p2p] direct_consensus``), ahead of the gossip queue."""
        if kind in ("proposals", "votes") and self.p2p.direct is not None:
            self.p2p.send_direct(self.topic[kind], data)
        try:
            self._outbox_send.send_nowait((self.topic[kind], data))
        except trio.WouldBlock:
            self.metrics.drop("gossip_out", "outbox_full")
            log.warning("gossip outbox full; dropping a %s message", kind)

    def forget_gossip(self, kind: str, data: bytes) -> None:
        """A consensus message dropped for now (too far ahead): a rebroadcast copy may come in."""
        self.p2p.forget(self.topic[kind], data)

    def request_sync(self) -> None:
        self.syncer.wake()

    def metrics_height(self, height: int) -> None:
        self.metrics.set_height(height)

    def metrics_block(self, seconds: float, n_txs: int, round_: int) -> None:
        self.metrics.observe_block(seconds, n_txs, round_)

    def commit_block(self, block: Block, executed: Executed, commit: Commit | None, raw: bytes) -> None:
        """Write a decided (or synced) block, then update the mempool and tell subscribers."""
        self.chain.commit(block, executed, seen_commit=commit, block_bytes=raw)
        self._after_commit(block, executed)

    def _after_commit(self, block: Block, executed: Executed) -> None:
        h = block.header
        self.mempool.update_after_block(executed.result.tx_hashes)
        self.intake.publish_door()  # the RPC front refuses from it at once (docs/rpc.md)
        self.metrics.set_height(h.height)
        self.metrics.set_mempool(self.mempool.size, self.mempool.bytes)
        block_hash = h.hash()
        publish_committed_block(self.events, block, executed.result.tx_hashes, executed.result.tx_results)
        log.info("committed height=%d txs=%d hash=%s pool=%d", h.height, len(block.txs), block_hash.hex()[:12],
                 self.mempool.size)
        self._maybe_snapshot(h.height, h.state_root)

    def _maybe_snapshot(self, height: int, state_root: bytes) -> None:
        """Every snapshot_interval blocks: a LevelDB snapshot now, written to disk in a worker thread."""
        store = self.snapshots
        if store is None or not store.due(height) or self._snapshot_writing or self._nursery is None:
            return
        snap = store.take(self.db.raw, height, state_root)
        self._snapshot_writing = True

        async def write() -> None:
            try:
                await trio.to_thread.run_sync(store.write, snap, height, state_root)
            except OSError as exc:
                log.warning("state snapshot at height %d failed: %s", height, exc)
            finally:
                snap.close()
                self._snapshot_writing = False
        self._nursery.start_soon(write)

    # ---- network ---------------------------------------------------------------------
    async def _serve_sync(self, requester: str, payload: bytes) -> bytes:
        if requester in self.deny:  # partitioned (devnet fault)
            return pack(["error", "partitioned"])
        return handle_sync_request(self.chain, payload)

    async def _serve_pex(self, requester: str, payload: bytes) -> bytes:
        if requester in self.deny:
            return pack(["error", "partitioned"])
        return self.pex.serve(requester, payload)

    async def _serve_statesync(self, requester: str, payload: bytes) -> bytes:
        if requester in self.deny:
            return pack(["error", "partitioned"])
        return await trio.to_thread.run_sync(handle_statesync_request, self.chain, self.snapshots, payload)

    async def _serve_proposal_block(self, requester: str, payload: bytes) -> bytes:
        """``["proposal_block", block_hash]`` -> ``["proposal_block", block]`` or ``["error", reason]``."""
        try:
            req = unpack(payload)
            if not (isinstance(req, list) and len(req) == 2 and req[0] == "proposal_block" and type(req[1]) is bytes):
                raise CodecError("expected ['proposal_block', block hash]")
        except CodecError as exc:
            self.report_peer(requester, Offence.MALFORMED, f"proposal block request: {exc}")
            return pack(["error", "malformed request"])
        if requester in self.deny:
            return pack(["error", "partitioned"])
        raw = self.driver.serve_proposal_block(req[1])
        return pack(["proposal_block", raw]) if raw is not None else pack(["error", "unknown block"])

    async def fetch_proposal_block(self, peer: str, block_hash: bytes) -> bytes | None:
        """The body of a proposed block from ``peer``; None when it does not have it or fails."""
        try:
            answer = unpack(await self.p2p.request(peer, self.block_protocol, pack(["proposal_block", block_hash]),
                                                   timeout=5.0, max_response_bytes=MAX_BLOCK_BYTES + 64))
        except (P2PError, CodecError) as exc:
            log.debug("proposal block from %s: %s", peer[-8:], exc)
            return None
        except Exception as exc:  # noqa: BLE001 - a failed fetch costs a round, never the node
            log.info("proposal block from %s failed: %r", peer[-8:], exc)
            return None
        if isinstance(answer, list) and len(answer) == 2 and answer[0] == "proposal_block" and type(answer[1]) is bytes:
            return answer[1]
        return None

    def consensus_peers(self) -> list[str]:
        """Connected peers to ask for a proposal's block, in a fixed order."""
        return sorted(self._reachable_peers())

    async def _request(self, peer: str, payload: bytes) -> bytes:
        return await self.p2p.request(peer, self.sync_protocol, payload,
                                      timeout=self.syncer.settings.request_timeout_s)

    async def _read_topic(self, kind: str) -> None:
        if kind == "txs":
            await self._read_txs()
            return
        handler = {
            "proposals": self.driver.on_proposal_message,
            "votes": self.driver.on_vote_message,
            "evidence": self.driver.on_evidence_message,
        }[kind]
        inbox = self.p2p.subscribe(self.topic[kind])
        async for msg in inbox:  # receiving yields to the scheduler once per turn
            for _ in range(MAX_CONSENSUS_AT_ONCE):
                # Consensus messages are handed to the driver even while syncing: it buffers those of
                # later heights and replays them when it starts that height. Dropping them here lost
                # them for good (the p2p layer drops later copies as duplicates), and validators that
                # started consensus while a peer was still in its initial sync stalled at height 1.
                if msg.sender in self.deny:
                    self.metrics.drop(f"gossip_{kind}", "denied")
                else:
                    handler(msg.data, msg.sender)
                try:
                    msg = inbox.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break

    async def _read_txs(self) -> None:
        """Peers' transaction batches: each turn takes every batch waiting in the inbox (at most
        MAX_TX_BATCHES_AT_ONCE) through the intake together (TxIntake.peer_batches: one signature
        round trip for all). The reader waits while they are verified; the inbox is the bound."""
        inbox = self.p2p.subscribe(self.topic["txs"])
        async for msg in inbox:
            waiting = [msg]
            while len(waiting) < MAX_TX_BATCHES_AT_ONCE:
                try:
                    waiting.append(inbox.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            batches = []
            for m in waiting:
                if m.sender in self.deny:
                    self.metrics.drop("gossip_txs", "denied")
                else:
                    batches.append((m.data, m.sender))
            await self._on_tx_batches(batches)
            await trio.lowlevel.checkpoint()

    async def _on_tx_batch(self, data: bytes, sender: str = "") -> None:
        await self._on_tx_batches([(data, sender)])

    async def _on_tx_batches(self, batches: list[tuple[bytes, str]]) -> None:
        """Peers' transaction batches through the intake (node/tx_intake.py): bounded, counted."""
        if batches:
            await self.intake.peer_batches(batches)
        self.metrics.set_mempool(self.mempool.size, self.mempool.bytes)

    async def _publish_loop(self) -> None:
        async for topic, data in self._outbox:
            try:
                await self.p2p.publish(topic, data)
            except Exception as exc:  # noqa: BLE001 - a failed publish must not stop the node
                log.warning("publish on %s failed: %s", topic, exc)

    async def _tx_gossip_loop(self) -> None:
        interval = self.config.p2p.tx_batch_interval_ms / 1000
        cap = self.config.p2p.max_tx_batch_bytes
        while True:
            await trio.sleep(interval)
            # what is still pooled RESEND_AFTER_S after it went out goes once more, before the new
            fresh = self.mempool.take_for_resend(RESEND_AFTER_S) + self.mempool.take_new_for_gossip()
            batch: list[bytes] = []
            size = 0
            for raw in fresh:
                if batch and size + len(raw) > cap:
                    self._send_txs(pack(batch))
                    batch, size = [], 0
                batch.append(raw)
                size += len(raw) + 4
            if batch:
                self._send_txs(pack(batch))

    def _send_txs(self, data: bytes) -> None:
        """A batch of newly pooled transactions: over the direct streams while every other
        validator streams to this one (``DirectAuth.complete``; each validator then receives it
        once, from its origin, after any queued consensus message), else by gossip. Full nodes
        do not need other nodes' transactions: they follow blocks."""
        if self.p2p.direct is not None and self.direct_auth.complete:
            if self.p2p.send_direct(self.topic["txs"], data, relayable=False):
                return
        self.gossip("txs", data)

    async def _run_syncer(self) -> None:
        """Block sync for the node's lifetime; a synced block at an upgrade this node lacks halts it."""
        try:
            await self.syncer.run(self.driver)
        except UpgradeNeeded as exc:
            self.halt(str(exc))

    # ---- lifecycle -------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        from node.rpc.server import serve_rpc

        try:
            if self.config.rpc.task_cpu:
                self.metrics.count_task_cpu()
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.intake.run)
                await nursery.start(self.p2p.run)
                log.info("p2p listening on %s as %s", self.p2p.listen_addrs(), self.p2p.peer_id)
                if self.config.p2p.pex:
                    nursery.start_soon(self.pex.run)
                for kind in self.topic:
                    nursery.start_soon(self._read_topic, kind, name=f"node.app.Node._read_topic[{kind}]")
                nursery.start_soon(self._publish_loop)
                from node.consensus_links import ask_for_relaying, manage_consensus_subscriptions

                if self.p2p.direct is not None:
                    nursery.start_soon(manage_consensus_subscriptions, self.p2p, self.direct_auth, self.chain.chain_id)
                else:
                    nursery.start_soon(ask_for_relaying, self.p2p)
                nursery.start_soon(self._tx_gossip_loop)
                await nursery.start(serve_rpc, self, self.config.rpc)
                log.info("rpc listening on http://%s:%d", self.config.rpc.host, self.config.rpc.port)
                await self._initial_sync()
                if self.halted is not None:
                    return
                await nursery.start(self.driver.run)
                nursery.start_soon(self._run_syncer)
                task_status.started()
        finally:
            height = self.chain.height
            self.signer.close()
            self.driver.wal.close()
            self.db.close()
            log.info("node stopped at height %d", height)

    async def _initial_sync(self) -> None:
        """Catch up before joining consensus when peers are configured and reachable."""
        if not (self.config.p2p.persistent_peers or self.config.p2p.seeds):
            return
        # an empty node that should state-sync waits longer: without a peer it would replay from genesis
        wanted = self.config.statesync.enable and self.chain.height == 0
        with trio.move_on_after(STATESYNC_PEER_WAIT_S if wanted else 3.0):
            while not self.p2p.connected_peers():
                await trio.sleep(0.05)
        peers = self._reachable_peers()
        if not peers:
            log.info("no peer reachable yet; starting consensus from height %d", self.chain.height + 1)
            return
        self._initial_syncing = True
        if self.config.statesync.enable and self.chain.height == 0:
            await self._state_sync()
        try:
            applied = await self.syncer.catch_up(1)
        except UpgradeNeeded as exc:
            self.halt(str(exc))
            return
        finally:
            self._initial_syncing = False
        if applied:
            log.info("initial block sync applied %d blocks; now at height %d (%d bytes received in total)", applied,
                     self.chain.height, self.syncer.received_bytes)


    async def _state_sync(self) -> None:
        """Install a verified snapshot (node/statesync.py); on failure block sync starts from genesis."""
        ss = self.config.statesync
        trust = Trust(ss.trust_height, bytes.fromhex(ss.trust_hash.removeprefix("0x")))

        async def request(peer: str, payload: bytes) -> bytes:
            return await self.p2p.request(peer, self.statesync_protocol, payload,
                                          timeout=self.config.p2p.sync_request_timeout_s,
                                          max_response_bytes=MAX_ANSWER_BYTES)
        syncer = StateSyncer(self.chain, self._reachable_peers, request, self._request, self.report_peer, trust,
                             timeout_s=self.config.p2p.sync_request_timeout_s)
        started = time.monotonic()
        for attempt in range(1, 7):  # peers may still be connecting or not have a snapshot yet
            try:
                height = await syncer.run()
                log.info("state sync done: height %d in %.1f s (%d chunks, %d bytes received)", height,
                         time.monotonic() - started, syncer.chunks_fetched, syncer.received_bytes)
                return
            except StateSyncError as exc:
                log.warning("state sync attempt %d: %s", attempt, exc)
                await trio.sleep(min(2.0 * attempt, 10.0))
        log.warning("state sync gave up; block sync from height %d", self.chain.height + 1)


def check_ports_free(config: NodeConfig) -> None:
    """StartupError naming the port when the p2p, RPC or (fixed) validator link port is taken.

    py-libp2p listens with SO_REUSEPORT, so a second node would silently share a p2p port with the
    first; this probe binds without it, which fails while any other socket holds the port."""
    ports = [("p2p", config.p2p.host, config.p2p.port, "[p2p] port"),
             ("RPC", config.rpc.host, config.rpc.port, "[rpc] port")]
    if config.p2p.direct_consensus and config.p2p.validator_link and config.p2p.validator_link_port:
        ports.append(("validator link", config.p2p.host, config.p2p.validator_link_port, "[p2p] validator_link_port"))
    for what, host, port, setting in ports:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are fine
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise StartupError(f"{what} port {port} on {host} is already in use (another node?); "
                                       f"free it or set another {setting}") from None
                raise StartupError(f"cannot listen on {what} {host}:{port}: {exc.strerror or exc}") from None


async def run_node(home: Home, config: NodeConfig, upgrade_names: tuple[str, ...] = ()) -> None:
    """Run until SIGTERM/SIGINT, then shut down cleanly; NodeHalted if the node stopped itself."""
    check_ports_free(config)
    node = Node(home, config, upgrade_names)
    # What the node just loaded (its state's in-memory indexes: a million posting records at
    # 10,000 contributions) lives as long as the process: kept out of the collector's full passes,
    # each of which otherwise walks it all (~60 ms of a stopped event loop, bench/attribution.py)
    gc.collect()
    gc.freeze()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def run_then_stop() -> None:
                await node.run()
                nursery.cancel_scope.cancel()  # the node halted itself

            nursery.start_soon(run_then_stop)

            async def stop_on_signal() -> None:
                async for signum in signals:
                    log.info("received %s; shutting down", signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(stop_on_signal)
    if node.halted is not None:
        raise NodeHalted(node.halted)


def default_home() -> Path:
    from node.config import DEFAULT_HOME

    return DEFAULT_HOME
