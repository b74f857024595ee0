"""``P2PService``: the libp2p host, GossipSub topics, request/response and peer upkeep of a node.

One object, one ``run()`` that owns every task it starts (trio structured concurrency). Payloads
are opaque bytes here; the node decodes them (canonical msgpack, ``state/codec.py``).

Shutdown follows what was measured on py-libp2p 0.8.1: disconnect every peer in parallel while
still inside the pubsub context, then leave the service contexts; closing with peers still
sending otherwise raised "Nursery is closed to new arrivals" out of ``host.run()``.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from p2p.errors import (
    MessageTooLarge,
    NotRunning,
    PeerBanned,
    PeerUnknown,
    RequestTimeout,
    TransportError,
    UnknownTopic,
)
from p2p.gossip import (
    ContentDedup,
    GossipSettings,
    Validator,
    build_pubsub,
    content_key,
    envelope_of,
    make_safe_validator,
    signed_envelope,
)
from p2p.direct import DirectLinks, DirectSpec
from p2p.identity import PeerSpec, key_pair_from_seed
from p2p.inbox import Inbox, InboxSettings, Received
from p2p.logs import route_libp2p_logs
from p2p.peers import DialSettings, PeerDialer, disable_auto_connector, is_connected
from p2p.reqresp import ReqRespLimits, RequestHandler, RequestServer, send_request
from p2p.scoring import Offence, PeerScores, ScoreSettings
from p2p import tcp_read_buffer, yamux_credit

logger = logging.getLogger(__name__)

# py-libp2p drops pubsub RPCs of 1 MiB or more for every remote peer; the envelope (signature,
# key, seqno, topic) needs a few hundred bytes of that.
MAX_GOSSIP_PAYLOAD = 1_000_000
BACKPRESSURE_POLL = 0.005
DROP_LOG_EVERY = 100
def _refuse(forwarder: ID, message: rpc_pb2.Message) -> bool:
    """Topic validator of the signalling topics: nothing published there is taken or forwarded."""
    return False


# per-topic gossip counters (topic_stats, summed by stats for the metrics)
TOPIC_COUNTERS = ("published", "delivered", "duplicates", "inbox_drops", "banned_drops", "direct_delivered",
                  "direct_sent", "publish_skipped", "relayed")
ENVELOPES_KEPT = 1024  # own consensus messages sent directly whose GossipSub publish is still queued
RELAY_PICK = 2  # relayers a node that wants relaying asks (one may be slow or lie)
RELAY_MAX_PEERS = 16  # askers one relayer serves (more identities cannot make it send more)


def is_cancellation(error: BaseException) -> bool:
    """True for trio.Cancelled or a group made only of them (an ordinary shutdown)."""
    if isinstance(error, BaseExceptionGroup):
        return all(is_cancellation(e) for e in error.exceptions)
    return isinstance(error, trio.Cancelled)


__all__ = ["P2PService", "Received", "is_cancellation"]


class P2PService:
    """The node's networking: listen, keep static peers connected, gossip, serve requests."""

    def __init__(
        self,
        seed: bytes,
        listen_port: int,
        peers: Sequence[PeerSpec],
        topics: Sequence[str],
        validators: Mapping[str, Validator] | None = None,
        request_handlers: Mapping[str, RequestHandler] | None = None,
        *,
        max_message_bytes: int = 900_000,
        inbox_size: int = 1024,
        inbox_sizes: Mapping[str, int] | None = None,
        inbox: InboxSettings | None = None,
        scoring: ScoreSettings = ScoreSettings(),
        dedup_capacity: int = 65_536,
        gossip: GossipSettings = GossipSettings(),
        limits: ReqRespLimits = ReqRespLimits(),
        dial: DialSettings = DialSettings(),
        listen_host: str = "127.0.0.1",
        shutdown_timeout: float = 3.0,
        direct: DirectSpec | None = None,
        relay_topic: str | None = None,
    ) -> None:
        if not 0 < max_message_bytes <= MAX_GOSSIP_PAYLOAD:
            raise ValueError(f"max_message_bytes must be in 1..{MAX_GOSSIP_PAYLOAD}")
        route_libp2p_logs()
        unknown = set(validators or {}) - set(topics)
        if unknown:
            raise ValueError(f"validators for topics not in the topic list: {sorted(unknown)}")
        self._key_pair = key_pair_from_seed(seed)
        self._peer_id = ID.from_pubkey(self._key_pair.public_key)
        self._listen = multiaddr.Multiaddr(f"/ip4/{listen_host}/tcp/{listen_port}")
        self._listen_host = listen_host
        self._peers = list(peers)
        self._topics = list(dict.fromkeys(topics))
        self._validators = dict(validators or {})
        self.scores = PeerScores(scoring)
        self._servers = {
            protocol: RequestServer(protocol, handler, limits, is_banned=self.scores.is_banned)
            for protocol, handler in (request_handlers or {}).items()
        }
        self.max_message_bytes = max_message_bytes
        self._gossip = gossip
        self._limits = limits
        self._dial = dial
        self._shutdown_timeout = shutdown_timeout
        self._dedup = ContentDedup(dedup_capacity)
        self._denied: frozenset[bytes] = frozenset()
        self._denied_ids: frozenset[str] = frozenset()
        sizes = inbox_sizes or {}
        base = inbox or InboxSettings(max_messages=inbox_size)
        self._inboxes: dict[str, Inbox] = {
            topic: Inbox(
                InboxSettings(sizes.get(topic, base.max_messages), base.max_bytes, base.max_peer_bytes)
            )
            for topic in self._topics
        }
        self._nursery: trio.Nursery | None = None
        self._publish_lock = trio.Lock()
        self._stalled_peers: set[ID] = set()
        self._host: IHost | None = None
        self._pubsub: Pubsub | None = None
        self._router: GossipSub | None = None
        self._dialer: PeerDialer | None = None
        self._started = False
        self._running = False
        self._stopping = False
        self._failed = False
        self._counters: dict[str, dict[str, int]] = {topic: dict.fromkeys(TOPIC_COUNTERS, 0) for topic in self._topics}
        # GossipSub messages built for our own consensus messages by send_direct, taken by publish
        self._envelopes: OrderedDict[bytes, rpc_pb2.Message] = OrderedDict()
        self._relay_root = relay_topic
        self._control: dict[str, object] = {}  # signalling topics we subscribe to (relaying)
        if direct is not None and not set(direct.kinds.values()) <= set(self._topics):
            raise ValueError("direct consensus kinds must map to configured topics")
        self.direct: DirectLinks | None = (
            DirectLinks(direct, self._deliver_direct, self.report_peer, self.scores.is_banned, self._relay_direct,
                        local_id=self._peer_id.to_base58())
            if direct is not None else None
        )
        self._direct_topics = frozenset(direct.kinds.values()) if direct is not None else frozenset()
        self._subscriptions: dict[str, object] = {}
        yamux_credit.install()
        tcp_read_buffer.install()

    # ----- identity and state -----

    @property
    def peer_id(self) -> str:
        return self._peer_id.to_base58()

    @property
    def topics(self) -> list[str]:
        return list(self._topics)

    @property
    def is_running(self) -> bool:
        return self._running

    def listen_addrs(self) -> list[str]:
        """Actual listen multiaddrs with ``/p2p/<id>`` (useful when listening on port 0)."""
        host = self._require_host()
        return [str(addr) for addr in host.get_addrs()]

    def connected_peers(self) -> list[str]:
        """Peer ids with a live connection, sorted."""
        if self._host is None:
            return []
        network = self._host.get_network()
        return sorted(
            pid.to_base58() for pid in list(network.connections) if is_connected(self._host, pid)
        )

    def mesh_peers(self, topic: str) -> list[str]:
        """Peer ids in our GossipSub mesh for ``topic``, sorted."""
        if self._router is None:
            return []
        return sorted(pid.to_base58() for pid in self._router.mesh.get(topic, ()))

    def topic_peers(self, topic: str) -> list[str]:
        """Connected peer ids that announced a subscription to ``topic``, sorted."""
        if self._pubsub is None:
            return []
        return sorted(pid.to_base58() for pid in self._pubsub.peer_topics.get(topic, ()))

    def known_peers(self) -> list[PeerSpec]:
        """The static peers (without ourselves), sorted by peer id."""
        if self._dialer is not None:
            return sorted(self._dialer.address_book.values(), key=lambda s: s.peer_id)
        return sorted((p for p in self._peers if p.peer_id != self.peer_id), key=lambda s: s.peer_id)

    def add_peer(self, spec: PeerSpec) -> bool:
        """Add a static peer (kept connected like the configured ones); False if already known."""
        if self._dialer is None:
            if spec.peer_id == self.peer_id or any(p.peer_id == spec.peer_id for p in self._peers):
                return False
            self._peers.append(spec)
            return True
        return self._dialer.add_peer(spec)

    async def dial_once(self, spec: PeerSpec) -> bool:
        """One bounded dial of a peer that is not kept connected (peer exchange); True when connected."""
        if self._dialer is None or self._host is None or not self._running:
            return False
        return await self._dialer.dial(spec) and is_connected(self._host, spec.peer_info().peer_id)

    def remote_ip(self, peer_id: str) -> str | None:
        """The IP address a connected peer's connection comes from; None when not connected."""
        if self._host is None:
            return None
        try:
            pid = ID.from_base58(peer_id)
        except (ValueError, BaseLibp2pError):
            return None
        for conn in self._host.get_network().get_connections(pid):
            getter = getattr(getattr(conn, "muxed_conn", None), "get_remote_address", None)
            address = getter() if getter is not None else None
            if address:
                return str(address[0])
        return None

    def topic_stats(self, topic: str) -> dict[str, int]:
        """Gossip counters of one topic: published, delivered, duplicates, inbox_drops."""
        if topic not in self._counters:
            raise UnknownTopic(f"topic {topic!r} is not one of {self._topics}")
        return dict(self._counters[topic])

    def stats(self) -> dict[str, int]:
        """Totals for metrics: gossip published/delivered/duplicates/drops, dials, requests."""
        out = dict.fromkeys(TOPIC_COUNTERS, 0)
        for counters in self._counters.values():
            for name, value in counters.items():
                out[name] += value
        out["connected_peers"] = len(self.connected_peers())
        if self._dialer is not None:
            out["dials"] = self._dialer.dials
            out["dial_failures"] = self._dialer.dial_failures
        out["requests_served"] = sum(s.served for s in self._servers.values())
        out["requests_refused"] = sum(s.refused for s in self._servers.values())
        out["banned_peers"] = len(self.scores.banned())
        if self.direct is not None:
            out.update({f"direct_{k}": v for k, v in self.direct.counters.items()})
        return out

    def direct_report(self) -> dict[str, object]:
        """Direct consensus streams for ``net_info``: open streams each way, counters, and per
        topic what arrived directly and what by gossip."""
        kinds = sorted(set(self.direct.spec.kinds.values()) if self.direct is not None else self._topics)
        copies = getattr(self._pubsub, "received_copies", {})
        received = {t: {"direct": self._counters[t]["direct_delivered"], "gossip": self._counters[t]["delivered"],
                        "gossip_copies": copies.get(t, 0), "relayed": self._counters[t]["relayed"]} for t in kinds}
        if self.direct is None:
            return {"enabled": False, "received": received, "relay": self.relay_report()}
        return {
            "enabled": True,
            "relay": self.relay_report(),
            "outbound": self.direct.outbound_peers(),
            "inbound": self.direct.inbound_peers(),
            # streams whose batches go on a validator link (docs/p2p.md "Validator links")
            "linked": self.direct.linked_peers(),
            "link_port": self.direct.links.port if self.direct.links is not None else None,
            # the topics a validator leaves while every stream is up (not the bulk kinds' topics)
            "subscribed": {t: self.is_subscribed(t) for k, t in sorted(self.direct.spec.kinds.items())
                           if k not in self.direct.spec.bulk},
            "received": received,
            **self.direct.counters,
        }

    # ----- peer accountability -----

    def report_peer(self, peer_id: str, offence: Offence, detail: str = "") -> None:
        """Score ``peer_id`` down for ``offence``; at the threshold it is banned and disconnected.

        Never raises and never waits: callable from any handler. Reports about ourselves or an
        empty id (a message of unknown origin) are ignored.
        """
        if not peer_id or peer_id == self.peer_id:
            return
        if self.scores.report(peer_id, offence, detail):
            self._disconnect_soon(peer_id)

    def is_banned(self, peer_id: str) -> bool:
        return self.scores.is_banned(peer_id)

    def peer_report(self) -> dict[str, object]:
        """For ``net_info``: each connected peer with its score, and the peers banned now."""
        connected = self.connected_peers()
        return {
            "peers": [{"id": p, **self.scores.describe(p)} for p in connected],
            "banned": [{"id": p, **self.scores.describe(p)} for p in self.scores.banned()],
        }

    def _disconnect_soon(self, peer_id: str) -> None:
        if self._nursery is None or self._host is None:
            return
        try:
            pid = ID.from_base58(peer_id)
        except (ValueError, BaseLibp2pError):
            return
        self._nursery.start_soon(self._disconnect_one, self._host, pid)

    def _on_bad_pubsub_stream(self, pid: ID, why: str, malformed: bool) -> None:
        """A peer's pubsub stream failed: reconnect it (fresh streams); score it only when its
        bytes did not parse (a connection that breaks is not an offence)."""
        if malformed:
            self.report_peer(pid.to_base58(), Offence.MALFORMED, f"pubsub stream: {why}")
        self._disconnect_soon(pid.to_base58())

    def _on_connected(self, pid: ID) -> None:
        """Connection notifee hook: a banned peer that connects (it dialled us) is dropped."""
        if self.scores.is_banned(pid.to_base58()):
            self._disconnect_soon(pid.to_base58())

    # ----- gossip -----

    def subscribe(self, topic: str) -> Inbox:
        """``topic``'s inbox (``async for`` gives ``Received(sender, data)``), each payload once.

        Messages this node published are not delivered back. The inbox closes when ``run``
        ends. There is one inbox per topic so a flood on one topic never crowds out another, and
        each is bounded in messages, bytes and bytes per originating peer (``InboxSettings``).
        """
        if topic not in self._inboxes:
            raise UnknownTopic(f"topic {topic!r} is not one of {self._topics}")
        return self._inboxes[topic]

    async def publish(self, topic: str, data: bytes) -> None:
        """Gossip ``data`` on ``topic``; waits while peer queues are congested (back-pressure)."""
        if topic not in self._inboxes:
            raise UnknownTopic(f"topic {topic!r} is not one of {self._topics}")
        if len(data) >= self.max_message_bytes:
            raise MessageTooLarge(
                f"gossip payload of {len(data)} bytes on {topic} is not under the cap of "
                f"{self.max_message_bytes} bytes; send it by request/response instead"
            )
        pubsub = self._require_pubsub()
        key = content_key(topic, data)
        envelope = self._envelopes.pop(key, None)
        if topic in self._direct_topics and not pubsub.peer_topics.get(topic):
            # a consensus message already sent over the direct streams, and no peer (full node,
            # outside subscriber, validator on the gossip fallback) subscribes to the topic:
            # GossipSub would sign and cache it and send it to nobody
            self._counters[topic]["publish_skipped"] += 1
            return
        async with self._publish_lock:
            await self._wait_for_queue_room(pubsub)
            if not self._running:
                raise NotRunning("p2p service stopped")
            self._dedup.add(key)
            if envelope is not None:  # the message the direct streams carried: one message id
                await pubsub.push_msg(self._peer_id, envelope)
            else:
                await pubsub.publish(topic, data)
            self._counters[topic]["published"] += 1

    def forget(self, topic: str, data: bytes) -> None:
        """Let a later copy of ``data`` in again: the node dropped this one for a passing reason
        (a height or round it has not reached yet), and the sender's rebroadcast is the only way
        it gets it back; kept as seen, every copy was refused as a duplicate."""
        self._dedup.discard(content_key(topic, data))

    def send_direct(self, topic: str, data: bytes, relayable: bool = True) -> int:
        """Queue ``data`` on every open direct consensus stream (no-op without ``direct``); returns
        the number of peers it was queued for. The caller still gossips it for observers. With
        ``relayable`` it carries the GossipSub envelope its receivers relay it as; without (a
        transaction batch, which only validators want), no envelope is signed and nothing relays it."""
        if self.direct is None or not self._running or self._pubsub is None:
            return 0
        key = content_key(topic, data)
        carried: tuple[bytes, bytes] | None = None
        if relayable:
            envelope = self._envelopes.get(key)
            if envelope is None:
                envelope = signed_envelope(self._pubsub, topic, data)
                self._envelopes[key] = envelope
                while len(self._envelopes) > ENVELOPES_KEPT:
                    self._envelopes.popitem(last=False)
            carried = (envelope.seqno, envelope.signature)
        sent = self.direct.send(topic, data, carried)
        if sent:
            self._dedup.add(key)
            self._counters[topic]["direct_sent"] += 1
        return sent

    def _relay_direct(self, topic: str, sender: str, data: bytes, envelope: tuple[bytes, bytes]) -> None:
        """Pass a validator's message received on its direct stream on to the peers that asked this
        node to relay (subscribed to ``<relay topic>/<our peer id>``: full nodes, validators on the
        gossip fallback), as the GossipSub message its origin built: each of them checks its
        signature and its topic validator as for any gossip, takes it once (one message id for
        every copy) and forwards it in its own mesh. Nobody asked (validators only): nothing."""
        pubsub, router = self._pubsub, self._router
        if pubsub is None or router is None or self._relay_root is None or not self._running:
            return
        asking = pubsub.peer_topics.get(f"{self._relay_root}/{self.peer_id}")
        if not asking:
            return
        origin = ID.from_base58(sender)
        targets = sorted((p for p in asking if p != origin and p in pubsub.peers), key=lambda p: p.to_bytes())
        if not targets:
            return
        rpc = rpc_pb2.RPC(publish=[envelope_of(origin, topic, data, *envelope)])
        for peer in targets[:RELAY_MAX_PEERS]:
            router.send_rpc(peer, rpc)
        self._counters[topic]["relayed"] += 1

    async def update_relay(self, offer: bool, want: bool) -> None:
        """Offer to relay (a validator node with direct streams) and ask up to RELAY_PICK of the
        connected peers that offer it to relay to us (``want``: a node that does not receive every
        validator's messages directly). Both are subscriptions to topics nobody publishes on
        (``topics.relay_topic``); the relayers asked are ranked by sha256(our id || their id),
        so the askers of one network spread over its relayers. Called every second or so."""
        root, pubsub = self._relay_root, self._pubsub
        if root is None or pubsub is None or not self._running:
            return
        await self._control_topic(root, offer)
        chosen: set[str] = set()
        if want:
            connected = set(self.connected_peers())
            offering = [p for p in pubsub.peer_topics.get(root, ()) if p.to_base58() in connected
                        and not self.scores.is_banned(p.to_base58())]
            offering.sort(key=lambda p: hashlib.sha256(self._peer_id.to_bytes() + p.to_bytes()).digest())
            chosen = {f"{root}/{p.to_base58()}" for p in offering[:RELAY_PICK]}
        for topic in [t for t in self._control if t != root and t not in chosen]:
            await self._control_topic(topic, False)
        for topic in sorted(chosen):
            await self._control_topic(topic, True)

    def relay_report(self) -> dict[str, object]:
        """For ``net_info``: whether we offer to relay, whom we asked, who asked us."""
        root, pubsub = self._relay_root, self._pubsub
        if root is None or pubsub is None:
            return {"offering": False, "via": [], "asked_by": []}
        asking = pubsub.peer_topics.get(f"{root}/{self.peer_id}", ())
        return {"offering": root in self._control,
                "via": sorted(t.rsplit("/", 1)[1] for t in self._control if t != root),
                "asked_by": sorted(p.to_base58() for p in asking)}

    async def _control_topic(self, topic: str, on: bool) -> None:
        """Subscribe to (or leave) a topic that only signals: anything published on it is refused."""
        pubsub = self._require_pubsub()
        if on and topic not in self._control:
            pubsub.set_topic_validator(topic, _refuse, False)
            self._control[topic] = await pubsub.subscribe(topic)
        elif not on and topic in self._control:
            del self._control[topic]
            await pubsub.unsubscribe(topic)
            pubsub.remove_topic_validator(topic)

    def is_subscribed(self, topic: str) -> bool:
        return topic in self._subscriptions

    async def set_subscribed(self, topic: str, on: bool) -> None:
        """Join or leave ``topic`` at run time (its inbox stays; publishing works either way, by
        GossipSub fanout). Validators with every direct stream up leave the consensus topics so
        mesh forwarding does not multiply what they receive (docs/p2p.md)."""
        if topic not in self._inboxes:
            raise UnknownTopic(f"topic {topic!r} is not one of {self._topics}")
        pubsub = self._require_pubsub()
        if on and topic not in self._subscriptions:
            subscription = await pubsub.subscribe(topic)
            self._subscriptions[topic] = subscription
            assert self._nursery is not None
            self._nursery.start_soon(self._drain, topic, subscription)
        elif not on and topic in self._subscriptions:
            del self._subscriptions[topic]
            await pubsub.unsubscribe(topic)  # closes the subscription: its drain task ends

    async def _wait_for_queue_room(self, pubsub: Pubsub) -> None:
        # py-libp2p's per-peer outbound queue holds 32 RPCs and silently drops when full, and it
        # offers no event for "queue drained", so this polls with a short bounded interval.
        high_water = self._gossip.queue_high_water
        deadline = trio.current_time() + self._gossip.backpressure_timeout
        while True:
            queues = dict(pubsub.peer_queues)
            self._stalled_peers = {
                p for p in self._stalled_peers if p in queues and len(queues[p]) >= high_water
            }
            busy = [
                p
                for p, q in queues.items()
                if len(q) >= high_water and p not in self._stalled_peers
            ]
            if not busy:
                return
            if trio.current_time() >= deadline:
                # A peer that does not drain (stopped process) must not stall the whole node;
                # it will miss messages, which consensus tolerates.
                self._stalled_peers.update(busy)
                logger.warning(
                    "outbound queue of %s stuck at >= %d for %.1f s; publishing past it",
                    ",".join(p.to_base58() for p in busy),
                    high_water,
                    self._gossip.backpressure_timeout,
                )
                return
            await trio.sleep(BACKPRESSURE_POLL)

    async def _drain(self, topic: str, subscription: object) -> None:
        # py-libp2p's subscription channel holds only 32 messages and drops silently when full.
        # Each wake-up empties it completely into our own bounded inbox: taking one message per
        # scheduling round would fall behind as soon as several peers deliver in the same round.
        receive: trio.MemoryReceiveChannel[rpc_pb2.Message]
        receive = subscription.receive_channel  # type: ignore[attr-defined]
        async for message in receive:
            self._deliver(topic, message)
            while True:
                try:
                    message = receive.receive_nowait()
                except trio.WouldBlock:
                    break
                except trio.EndOfChannel:
                    return  # unsubscribed (set_subscribed): py-libp2p closed the channel
                self._deliver(topic, message)

    def set_denied(self, peer_ids: Sequence[str]) -> None:
        """Drop every gossip message originated by these peers (devnet partitions). The check runs
        before content de-duplication, so messages re-sent after a heal are delivered."""
        self._denied = frozenset(ID.from_base58(p).to_bytes() for p in peer_ids)
        self._denied_ids = frozenset(peer_ids)

    def _deliver(self, topic: str, message: rpc_pb2.Message) -> None:
        """Hand one message to the node's inbox unless it is our own or already delivered."""
        if message.from_id == self._peer_id.to_bytes() or message.from_id in self._denied:
            return
        self._offer(topic, ID(message.from_id).to_base58(), message.data, "delivered")

    def _deliver_direct(self, topic: str, sender: str, data: bytes) -> bool:
        """A message received on a direct consensus stream: authenticated by the topic's validator
        (as gossip is) before it reaches the inbox; shares gossip's de-duplication. True unless it
        was delivered now for the first time: only such a message is relayed (a copy the node
        already had was relayed, or forwarded by GossipSub, when it came first)."""
        if sender in self._denied_ids:
            return False
        return self._offer(topic, sender, data, "direct_delivered", authenticate=True)

    def _authentic(self, topic: str, sender: str, data: bytes) -> bool:
        """The gossip checks for a directly received message: size cap, then the topic validator."""
        if len(data) >= self.max_message_bytes:
            self.report_peer(sender, Offence.OVERSIZED, f"{len(data)} bytes on a direct stream")
            return False
        validator = self._validators.get(topic)
        if validator is None:
            return True
        try:
            verdict = validator(data)
        except Exception as error:  # noqa: BLE001 - a validator bug must not end the stream task
            logger.warning("validator for %s raised on a direct message: %r", topic, error)
            return False
        if isinstance(verdict, Offence):
            self.report_peer(sender, verdict, f"direct message on {topic}")
        return verdict is True

    def _offer(self, topic: str, sender: str, data: bytes, counter: str, authenticate: bool = False) -> bool:
        """Into the topic's inbox unless seen; True when delivered now (not seen, not refused)."""
        counters = self._counters[topic]
        if self.scores.is_banned(sender):
            counters["banned_drops"] += 1
            return False
        key = content_key(topic, data)
        if key in self._dedup:
            counters["duplicates"] += 1
            return False
        if authenticate and not self._authentic(topic, sender, data):
            return False
        refusal = self._inboxes[topic].offer(Received(sender, data))
        if refusal is not None:
            # Not marked as seen: a later copy (gossip retransmit) may still get in.
            counters["inbox_drops"] += 1
            drops = counters["inbox_drops"]
            if drops == 1 or drops % DROP_LOG_EVERY == 0:
                logger.warning(
                    "inbox for %s: %s (last from %s): %d messages dropped so far",
                    topic, refusal.value, sender, drops,
                )
            return False
        self._dedup.add(key)
        counters[counter] += 1
        return True

    # ----- request/response -----

    async def request(
        self,
        peer_id: str,
        protocol: str,
        payload: bytes,
        timeout: float = 10.0,
        max_response_bytes: int | None = None,
    ) -> bytes:
        """Send ``payload`` to ``peer_id`` on ``protocol`` and return the response.

        Raises ``PeerUnknown``, ``RequestTooLarge``, ``RequestTimeout``, ``ResponseTooLarge``,
        ``RemoteError``, ``ProtocolNotSupported`` or ``TransportError`` (all ``P2PError``).
        """
        host = self._require_host()
        if not self._running:
            raise NotRunning("p2p service is not running")
        try:
            pid = ID.from_base58(peer_id)
        except (ValueError, BaseLibp2pError) as error:
            raise PeerUnknown(f"not a peer id: {peer_id!r}") from error
        if self.scores.is_banned(peer_id):
            raise PeerBanned(f"peer {peer_id} is banned for {self.scores.ban_remaining(peer_id):.0f} s more")
        deadline = trio.current_time() + timeout
        if not is_connected(host, pid):
            spec = self._dialer.address_book.get(peer_id) if self._dialer else None
            if spec is None:
                raise PeerUnknown(f"peer {peer_id} is not connected and not in the address book")
            assert self._dialer is not None
            with trio.move_on_after(timeout):
                await self._dialer.dial(spec)
            if not is_connected(host, pid):
                if trio.current_time() >= deadline:
                    raise RequestTimeout(f"could not reach {peer_id} within {timeout} s")
                raise TransportError(f"could not connect to {peer_id} at {spec.addr}")
        return await send_request(
            host,
            peer_id,
            protocol,
            payload,
            timeout=timeout,
            deadline=deadline,
            max_request_bytes=self._limits.max_request_bytes,
            max_response_bytes=(
                self._limits.max_response_bytes if max_response_bytes is None else max_response_bytes
            ),
        )

    # ----- lifecycle -----

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, subscribe, dial static peers; runs until cancelled, then shuts down cleanly."""
        if self._started:
            raise RuntimeError("P2PService.run() can be called once")
        self._started = True
        host = new_host(
            key_pair=self._key_pair,
            listen_addrs=[self._listen],
            # One connection per peer: ~5 ms dials instead of a fixed ~250 ms dial delay.
            connection_config=ConnectionConfig(max_connections_per_peer=1),
        )
        disable_auto_connector(host)
        self._host = host
        pubsub, router = build_pubsub(host, self._gossip, self._relay_root)
        pubsub.on_bad_stream = self._on_bad_pubsub_stream  # type: ignore[attr-defined]
        for topic in self._topics:
            validator = make_safe_validator(
                topic,
                self._validators.get(topic),
                self.max_message_bytes,
                self._peer_id,
                is_banned=self.scores.is_banned,
                report=self.report_peer,
            )
            pubsub.set_topic_validator(topic, validator, is_async_validator=False)
        for protocol, server in self._servers.items():
            host.set_stream_handler(TProtocol(protocol), server.handle_stream)
        if self.direct is not None:
            host.set_stream_handler(TProtocol(self.direct.spec.protocol), self.direct.handle_stream)
        dialer = PeerDialer(
            host, self._peers, self._dial, is_banned=self.scores.is_banned, on_connected=self._on_connected
        )
        self._dialer = dialer
        try:
            async with host.run(listen_addrs=[self._listen]):
                async with background_trio_service(pubsub):
                    async with background_trio_service(router):
                        await pubsub.wait_until_ready()
                        subscriptions = {t: await pubsub.subscribe(t) for t in self._topics}
                        self._subscriptions = dict(subscriptions)
                        self._pubsub = pubsub
                        self._router = router
                        try:
                            async with trio.open_nursery() as nursery:
                                self._nursery = nursery
                                for topic, subscription in subscriptions.items():
                                    nursery.start_soon(self._drain, topic, subscription)
                                nursery.start_soon(dialer.run)
                                if self.direct is not None:
                                    if self.direct.links is not None:
                                        assert self.direct.spec.link_port is not None
                                        await nursery.start(self.direct.links.serve, self._listen_host,
                                                            self.direct.spec.link_port)
                                    nursery.start_soon(self.direct.maintain, host, self.peer_id)
                                self._running = True
                                logger.info(
                                    "p2p %s listening on %s", self.peer_id, self.listen_addrs()
                                )
                                task_status.started()
                                await trio.sleep_forever()
                        except BaseException as error:
                            self._failed = not is_cancellation(error)
                            raise
                        finally:
                            self._nursery = None
                            self._running = False
                            self._stopping = True
                            await self._disconnect_all(host)
        except* (RuntimeError, BaseLibp2pError) as group:
            # py-libp2p can still raise out of its service contexts while they wind down
            # ("Nursery is closed to new arrivals" when a peer sends during close). Once we are
            # stopping, that is noise; before, it is a real failure and propagates.
            if self._failed or not self._stopping:
                raise
            logger.warning("libp2p error during shutdown ignored: %r", group.exceptions)
        finally:
            self._running = False
            for inbox in self._inboxes.values():
                inbox.close()
            logger.info("p2p %s stopped", self.peer_id)

    async def _disconnect_all(self, host: IHost) -> None:
        peers = list(host.get_network().connections)
        with trio.CancelScope(shield=True), trio.move_on_after(self._shutdown_timeout) as scope:
            async with trio.open_nursery() as nursery:
                for pid in peers:
                    nursery.start_soon(self._disconnect_one, host, pid)
        if scope.cancelled_caught:
            logger.warning("disconnecting %d peers took over %.1f s", len(peers), self._shutdown_timeout)

    @staticmethod
    async def _disconnect_one(host: IHost, pid: ID) -> None:
        try:
            await host.disconnect(pid)
        except (BaseLibp2pError, OSError, RuntimeError) as error:
            logger.debug("disconnect %s: %s", pid, error)

    def _require_host(self) -> IHost:
        if self._host is None:
            raise NotRunning("p2p service is not running")
        return self._host

    def _require_pubsub(self) -> Pubsub:
        if self._pubsub is None or not self._running:
            raise NotRunning("p2p service is not running")
        return self._pubsub
