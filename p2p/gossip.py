"""GossipSub configuration, validator wrapping and content de-duplication.

py-libp2p 0.8.1 defaults that silently lose messages are switched off here (see
/work/shared/LIBP2P.md and docs/p2p.md): spam protection (10 msg/s per sender and topic, own
publishes included), eclipse protection and adaptive gossip (every loopback peer shares one IP),
and the 120 s heartbeat. Messages stay signed (StrictSign) so default js/go peers interoperate.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio
from google.protobuf.message import DecodeError
from libp2p.abc import IHost, INetStream
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import PUBSUB_SIGNING_PREFIX, Pubsub

from p2p.scoring import Offence

logger = logging.getLogger(__name__)

Validator = Callable[[bytes], "bool | Offence"]
"""Cheap, synchronous check of a payload (decode + signature): ``True`` accepts the message,
``False`` drops it quietly (stale, not wrong), an ``Offence`` drops it and scores its originator."""

# The mesh protocols every default js-libp2p and go-libp2p peer speaks. py-libp2p's newer
# experimental ids (1.3, 1.4, 2.0) are left out on purpose: they add extension messages we do not
# need and that other implementations do not negotiate.
GOSSIP_PROTOCOLS = (PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID)


@dataclass(frozen=True)
class GossipSettings:
    """GossipSub parameters; the defaults suit a 4-7 node loopback devnet (see docs/p2p.md)."""

    degree: int = 3
    degree_low: int = 2
    degree_high: int = 4
    heartbeat_interval: int = 1
    gossip_window: int = 3
    gossip_history: int = 5
    seen_ttl: int = 120
    # Publisher back-pressure: wait while any peer's outbound queue (32 slots, drops when full)
    # holds this many RPCs or more.
    queue_high_water: int = 16
    # A peer whose queue stays full this long (e.g. SIGSTOPped) no longer holds publishers back.
    backpressure_timeout: float = 2.0
    # py-libp2p 0.8.1 also queues every message it sends or forwards for each connected peer not
    # (yet) subscribed to the topic, in case the peer's subscription is still on its way; these are
    # sent if it subscribes. Its defaults (30 s, 100 per peer) made a full node next to validators
    # that left the consensus topics (direct streams) log a WARNING for nearly every message it
    # forwarded (~27 a second at 4 validators) and hold 30 s of them: the race it covers lasts
    # well under a second, and a message missed there is re-broadcast by consensus.
    pending_ttl_s: float = 2.0
    pending_per_peer: int = 256
    # How long a peer that left our mesh (PRUNE) or a topic (unsubscribe) may not be grafted again,
    # in whole seconds. py-libp2p's defaults (60 and 10) broke the gossip fallback of direct
    # consensus streams: a validator that leaves the consensus topics and joins them again within
    # 10 s (a stream broke, a new validator joined) had its GRAFTs refused, each refusal extending
    # the ban by 60 s, so its mesh stayed empty and its peers' messages never reached the nodes
    # behind it (docs/p2p.md "Topics, observers and fallback"). Our topics' validators do the
    # spam control; a short backoff only makes the mesh heal at the next heartbeats.
    prune_backoff_s: int = 2
    unsubscribe_backoff_s: int = 1


class GuardedPubsub(Pubsub):
    """py-libp2p's Pubsub, except that a peer's undecodable RPC cannot kill the node.

    py-libp2p 0.8.1 catches only stream errors around its RPC reader; a frame that does not parse
    as protobuf (``DecodeError``) escaped the stream handler and took down the whole swarm, i.e.
    the node process: one malformed frame from any connected peer was a remote kill (found by
    devnet/byzantine.py). Here any failure of one peer's stream resets that stream, forgets the
    peer in pubsub and tells ``on_bad_stream`` (the service scores the peer and reconnects it,
    so its pubsub streams start afresh).
    """

    # (peer, why, the peer's bytes did not parse): the service scores only the last case
    on_bad_stream: Callable[[ID, str, bool], None] = staticmethod(lambda peer_id, why, malformed: None)  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._write_locks: weakref.WeakKeyDictionary[INetStream, trio.Lock] = weakref.WeakKeyDictionary()
        # every copy received from a peer per topic, duplicates included (each costs ~2.5 ms of CPU)
        self.received_copies: dict[str, int] = {}

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        if msg_forwarder != self.my_id:
            for topic in msg.topicIDs:
                self.received_copies[topic] = self.received_copies.get(topic, 0) + 1
        await super().push_msg(msg_forwarder, msg)

    async def write_msg(self, stream: INetStream, rpc_msg: rpc_pb2.RPC) -> bool:
        """One writer per stream at a time. py-libp2p writes to a peer's stream from its send
        queue, from the flush of pending messages and from the resend of recent messages to a
        new peer, without a lock; Yamux splits a large frame and yields between the pieces, so
        two writers interleaved their bytes and the receiver got frames that do not parse (seen
        with ~700 KB messages: it killed the receiving node before ``stream_handler`` below)."""
        lock = self._write_locks.get(stream)
        if lock is None:
            lock = self._write_locks[stream] = trio.Lock()
        async with lock:
            return bool(await super().write_msg(stream, rpc_msg))

    async def stream_handler(self, stream: INetStream) -> None:
        peer_id = stream.muxed_conn.peer_id
        try:
            await super().stream_handler(stream)
        except Exception as error:  # noqa: BLE001 - anything a peer's bytes can raise
            why = f"{type(error).__name__}: {str(error)[:120]}"
            logger.info("pubsub stream from %s failed (%s); resetting it", peer_id, why)
            try:
                await stream.reset()
            except Exception as reset_error:  # noqa: BLE001 - the stream may already be gone
                logger.debug("reset after a bad pubsub stream failed: %r", reset_error)
            self._handle_dead_peer(peer_id)
            self.on_bad_stream(peer_id, why, isinstance(error, DecodeError))


# GossipSub v1.2's IDONTWANT is worth its own RPC only for a message larger than this (go-libp2p's
# default IDontWantMessageThreshold): a smaller one costs no more to receive twice.
IDONTWANT_MIN_BYTES = 1024
# this task is publishing its own message (not forwarding one): set around GossipSub.publish
_publishing_own: contextvars.ContextVar[bool] = contextvars.ContextVar("publishing_own", default=False)


class LeanGossipSub(GossipSub):
    """py-libp2p's GossipSub without the IDONTWANT it sends where nobody needs one.

    py-libp2p 0.8.1 sends an IDONTWANT RPC to every v1.2 mesh peer for every message it publishes or
    forwards, whatever its size. For our own messages it is pure cost: no peer forwards a message
    back to its origin. Measured on a 4-validator devnet under transaction load: 2.9% of a node's
    CPU, plus an RPC (and its signed peer record) to read at each peer. Here it goes out only for
    forwarded messages of IDONTWANT_MIN_BYTES or more, as go-libp2p does; handling IDONTWANTs that
    peers send is unchanged."""

    # Topics subscribed to only as a signal, never published on (relaying offers and requests,
    # docs/p2p.md "Relay on request"): the topic itself and everything under it. py-libp2p would
    # build a mesh for each, kept up by GRAFTs, PRUNEs and heartbeats for nothing: a third of an
    # idle 16-validator node's GossipSub work went to GRAFT/PRUNE exchanges on them.
    signal_prefix: str | None = None

    def is_signal_topic(self, topic: str) -> bool:
        p = self.signal_prefix
        return p is not None and (topic == p or topic.startswith(p + "/"))

    async def join(self, topic: str) -> None:
        """Pubsub has announced the subscription to every peer; a signal topic gets no mesh (a
        GRAFT for it is answered with a PRUNE, as for a topic we are not in)."""
        if self.is_signal_topic(topic):
            return
        await super().join(topic)

    async def publish(self, msg_forwarder: ID, pubsub_msg: rpc_pb2.Message) -> None:
        own = self.pubsub is not None and msg_forwarder == self.pubsub.my_id
        token = _publishing_own.set(own or len(pubsub_msg.data) < IDONTWANT_MIN_BYTES)
        try:
            await super().publish(msg_forwarder, pubsub_msg)
        finally:
            _publishing_own.reset(token)

    async def _emit_idontwant_for_message(self, msg_id: bytes, topic_ids: Any) -> None:
        if _publishing_own.get():
            return
        await super()._emit_idontwant_for_message(msg_id, topic_ids)


class SignedRecordCache:
    """``maybe_consume_signed_record`` that checks a peer's signed peer record once, not per RPC.

    py-libp2p 0.8.1 puts the sender's signed peer record in every pubsub RPC and checks it (an
    Ed25519 verification, an envelope parse and a peerstore update) in every RPC it reads, twice:
    in Pubsub's reader and again in GossipSub.handle_rpc. Peers send the same bytes every time; a
    record accepted from a peer is accepted again from that peer without the work for RECHECK_S
    (then checked afresh, which also renews its peerstore TTL of 2 hours). A record that failed is
    never cached: it fails every time, as before. ``install`` puts it in place of the function in
    the two py-libp2p modules that call it."""

    RECHECK_S = 600.0
    MAX_ENTRIES = 4096

    def __init__(self, check: Callable[..., bool]) -> None:
        self.check = check
        self.accepted: OrderedDict[tuple[ID, bytes], float] = OrderedDict()

    def __call__(self, msg: Any, host: IHost, peer_id: ID | None = None) -> bool:
        if peer_id is None or not msg.HasField("senderRecord"):
            return self.check(msg, host, peer_id)
        key = (peer_id, msg.senderRecord)
        now = time.monotonic()
        when = self.accepted.get(key)
        if when is not None and now - when < self.RECHECK_S:
            return True
        ok = self.check(msg, host, peer_id)
        if ok:
            self.accepted[key] = now
            self.accepted.move_to_end(key)
            while len(self.accepted) > self.MAX_ENTRIES:
                self.accepted.popitem(last=False)
        return ok

    @classmethod
    def install(cls) -> None:
        _wrap_in_pubsub_modules("maybe_consume_signed_record", cls)


class LocalRecordCache:
    """``env_to_send_in_RPC`` that rebuilds our own signed peer record's bytes at most every
    REFRESH_S, not for every RPC.

    py-libp2p 0.8.1 calls it for each pubsub RPC it sends (a PRUNE, an IHAVE, a message) and each
    call rebuilds the host's address list as Multiaddr objects to compare it with the cached
    record's: 4.9% of a validator's CPU on an idle 16-validator devnet (GossipSub control traffic
    to 15 peers), 1.9% under transaction load. Our listen addresses change only when a transport
    starts; a new record then goes out within REFRESH_S. ``install`` puts it in place of the
    function in the two py-libp2p pubsub modules that call it."""

    REFRESH_S = 5.0

    def __init__(self, build: Callable[[IHost], tuple[bytes, bool]]) -> None:
        self.build = build
        # per host object, not per peer id: one process may run several hosts, and a host started
        # after another with the same key (tests/test_p2p_reqresp.py) sent the old host's record,
        # with its old listen address, for REFRESH_S; the peer dropped those RPCs, subscriptions
        # included, and never sent the new host a gossip message (two CI failures)
        self.cached: weakref.WeakKeyDictionary[IHost, tuple[float, bytes]] = weakref.WeakKeyDictionary()

    def __call__(self, host: IHost) -> tuple[bytes, bool]:
        now = time.monotonic()
        hit = self.cached.get(host)
        if hit is not None and now - hit[0] < self.REFRESH_S:
            return hit[1], False
        envelope, created = self.build(host)
        self.cached[host] = (now, envelope)
        return envelope, created

    @classmethod
    def install(cls) -> None:
        _wrap_in_pubsub_modules("env_to_send_in_RPC", cls)


def _wrap_in_pubsub_modules(name: str, wrapper: Callable[[Any], Any]) -> None:
    """Replace the function ``name`` that py-libp2p's pubsub and gossipsub modules each imported
    with one ``wrapper(original)`` shared by both; idempotent (a second call finds the wrapper)."""
    import libp2p.pubsub.gossipsub as gossipsub_module
    import libp2p.pubsub.pubsub as pubsub_module

    original = getattr(pubsub_module, name)
    if isinstance(wrapper, type) and isinstance(original, wrapper):
        return
    wrapped = wrapper(original)
    setattr(pubsub_module, name, wrapped)
    setattr(gossipsub_module, name, wrapped)


def build_pubsub(host: IHost, settings: GossipSettings,
                 signal_prefix: str | None = None) -> tuple[Pubsub, GossipSub]:
    """A signed-message Pubsub with a GossipSub router configured per ``settings``; topics under
    ``signal_prefix`` are subscribed to without a mesh (``LeanGossipSub.signal_prefix``)."""
    SignedRecordCache.install()
    LocalRecordCache.install()
    router = LeanGossipSub(
        protocols=list(GOSSIP_PROTOCOLS),
        degree=settings.degree,
        degree_low=settings.degree_low,
        degree_high=settings.degree_high,
        heartbeat_interval=settings.heartbeat_interval,
        gossip_window=settings.gossip_window,
        gossip_history=settings.gossip_history,
        adaptive_gossip_enabled=False,
        spam_protection_enabled=False,
        eclipse_protection_enabled=False,
        max_pending_messages_per_peer=settings.pending_per_peer,
        pending_messages_ttl=settings.pending_ttl_s,
        prune_back_off=settings.prune_backoff_s,
        unsubscribe_back_off=settings.unsubscribe_backoff_s,
    )
    router.signal_prefix = signal_prefix
    pubsub = GuardedPubsub(host, router, strict_signing=True, seen_ttl=settings.seen_ttl)
    # py-libp2p seeds the sequence number with int(time.time()) and adds one per publish, so a
    # node restarted within (messages sent / 1 s) seconds reuses seqnos that peers still hold as
    # seen (message id = sender + seqno) and silently drops its new messages. Nanoseconds, as
    # go-libp2p uses, stay ahead of any realistic publish count.
    pubsub.counter = time.time_ns()
    return pubsub, router


def make_safe_validator(
    topic: str,
    validator: Validator | None,
    max_message_bytes: int,
    self_id: ID,
    is_banned: Callable[[str], bool] = lambda peer_id: False,
    report: Callable[[str, Offence, str], None] = lambda peer_id, offence, detail: None,
) -> Callable[[ID, rpc_pb2.Message], bool]:
    """A libp2p topic validator that never raises: a raising validator kills py-libp2p's Pubsub.

    Our own publishes (forwarded by ourselves) skip the node's validator: the node built them,
    and validating them again would double the CPU cost of every publish. Messages that a banned
    peer originated or forwards are rejected before any check (they are not forwarded either). An
    oversized or malformed message is reported against its originator: an honest peer's topic
    validator would not have let it through, so the originator built it. A validator's verdict
    that is an ``Offence`` is reported against the originator the same way.
    """

    def safe_validator(forwarder: ID, message: rpc_pb2.Message) -> bool:
        if forwarder == self_id:
            return True
        try:
            origin = ID(message.from_id).to_base58()
        except (ValueError, TypeError):
            return False
        if is_banned(origin) or is_banned(forwarder.to_base58()):
            return False
        data = message.data
        if len(data) >= max_message_bytes:
            logger.debug("rejecting %d-byte message on %s: over the size cap", len(data), topic)
            report(origin, Offence.OVERSIZED, f"{len(data)} bytes on {topic}")
            return False
        if validator is None:
            return True
        try:
            verdict = validator(data)
            if verdict is True:
                return True
            if isinstance(verdict, Offence):
                report(origin, verdict, f"gossip on {topic}")
            return False
        except Exception as error:
            # One line, no traceback: a peer able to make the validator raise must not be able
            # to flood the log.
            logger.warning(
                "validator for %s raised %r; message from %s rejected", topic, error, forwarder
            )
            return False

    return safe_validator


def content_key(topic: str, data: bytes) -> bytes:
    """De-duplication key: sha256 of the payload, per topic."""
    return hashlib.sha256(topic.encode() + b"\x00" + data).digest()


class ContentDedup:
    """Bounded LRU set of content keys already handed to the node."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("dedup capacity must be positive")
        self._capacity = capacity
        self._keys: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: bytes) -> bool:
        return key in self._keys

    def discard(self, key: bytes) -> None:
        self._keys.pop(key, None)

    def add(self, key: bytes) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._capacity:
            self._keys.popitem(last=False)


# ----- GossipSub envelopes carried on direct consensus streams --------------------------------
def signed_envelope(pubsub: Pubsub, topic: str, data: bytes) -> rpc_pb2.Message:
    """The GossipSub message ``pubsub.publish(topic, data)`` would build (our peer id as origin,
    the next sequence number, the StrictSign signature), built ahead so that the same message
    can travel on direct streams and on the mesh (one message id: peers de-duplicate the copies)."""
    if pubsub.sign_key is None:
        raise ValueError("strict signing needs the host's private key")
    msg = rpc_pb2.Message(data=data, topicIDs=[topic], from_id=pubsub.my_id.to_bytes(),
                          seqno=pubsub._next_seqno())
    msg.signature = pubsub.sign_key.sign(PUBSUB_SIGNING_PREFIX.encode() + msg.SerializeToString())
    msg.key = pubsub.host.get_public_key().serialize()
    return msg


def envelope_of(origin: ID, topic: str, data: bytes, seqno: bytes, signature: bytes) -> rpc_pb2.Message:
    """The GossipSub message ``origin`` built with ``signed_envelope`` (its key comes from the
    peer id, an Ed25519 identity multihash); the signature is checked where it is pushed."""
    msg = rpc_pb2.Message(data=data, topicIDs=[topic], from_id=origin.to_bytes(), seqno=seqno, signature=signature)
    try:
        key = origin.extract_public_key()
    except Exception:  # noqa: BLE001 - not an identity-hashed id: GossipSub then refuses the message
        key = None
    if key is not None:
        msg.key = key.serialize()
    return msg
