"""Direct consensus streams: validators send proposals and votes straight to each other.

GossipSub costs ~2.5 ms of CPU per received message, and mesh forwarding makes every validator
receive each consensus message several times; with 16 validators that alone fills a core. Here
each validator keeps one persistent outbound stream to every other validator's node and writes
batches of consensus messages on it; each message is received once per validator.

Wire (protocol ``/attrchain/<chain_id>/consensus/1``, docs/p2p.md "Direct consensus streams"):
every frame is ``uvarint(len) || body``.
- The opener's first frame is its hello (at most ``hello_max_bytes``): opaque here, checked by the
  node's ``check_hello`` (the opener's validator key signs its peer id). Nothing else the opener
  sends is read before the hello is accepted; a refused hello resets the stream and scores the
  peer. The opener's second frame is its validator-link request (empty, or an X25519 key:
  ``p2p/validator_link.py``). An accepted hello is answered with the single byte 0x00, or with a
  link offer (0x01, a key, a port), the acceptor's only write; with a link, the batches go on it.
- Every later frame is a msgpack array of ``[kind, payload]`` or ``[kind, payload, seqno,
  signature]`` items (a batch); ``kind`` maps to a gossip topic and ``payload`` is exactly that
  topic's message. Each payload is authenticated by the same validator as that topic's gossip
  before it is delivered (``deliver``); ``seqno`` and ``signature`` are those of the GossipSub
  message the sender built for it (``Envelope``), which a payload delivered for the first time is
  relayed as to the node's subscribed peers (``relay``).
Apart from that byte the acceptor never writes. Streams are one-way: each pair of validators holds
two.

Outbound queues are bounded per peer (messages and bytes; the oldest message goes first when full):
a slow validator cannot make us hold unbounded memory, and what it misses it gets by gossip or
re-broadcast (consensus never depends on this path). ``DirectSpec.bulk`` kinds (transaction
batches) wait in a second, smaller queue per peer that is written only when no other message is
queued, and lose their oldest first when full: consensus messages never wait behind them.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import msgpack
import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID

from p2p.framing import FrameError, FrameReader, FrameTooLarge, write_frame
from p2p.peers import is_connected
from p2p.scoring import Offence
from p2p.validator_link import (
    KEY_BYTES,
    OFFER,
    OFFER_BYTES,
    LinkError,
    LinkKey,
    LinkListener,
    Pending,
    RecordReader,
    RecordWriter,
)

logger = logging.getLogger(__name__)

ACCEPTED = b"\x00"  # the acceptor's only write: its hello was accepted (no validator link: OFFER)
LINK_ERRORS = (LinkError, trio.BrokenResourceError, trio.ClosedResourceError, OSError)

Envelope = tuple[bytes, bytes]
"""``(seqno, signature)`` of the GossipSub message the sender built for a payload (its origin is
the sender's peer id): with it the acceptor can push that very message into its own GossipSub, so
observers behind it receive it once, under its original message id."""
SEQNO_BYTES = 8
SIGNATURE_BYTES = 64

HelloCheck = Callable[[str, bytes], "bytes | Offence"]
"""``check_hello(peer_id, hello) -> validator id`` (accepted) or an ``Offence`` (refused)."""


@dataclass(frozen=True)
class DirectSettings:
    hello_max_bytes: int = 256
    max_frame_bytes: int = 2 * 1024 * 1024
    max_batch_items: int = 256
    queue_messages: int = 512  # per peer, outbound
    queue_bytes: int = 8 * 1024 * 1024  # per peer, outbound
    bulk_messages: int = 64  # per peer, outbound, of the bulk kinds
    bulk_bytes: int = 4 * 1024 * 1024
    batch_bytes: int = 512 * 1024  # a frame packs queued messages up to this size (one may be larger)
    open_timeout_s: float = 3.0
    write_timeout_s: float = 5.0
    retry_s: float = 1.0  # after a write failed
    unsupported_retry_s: float = 10.0  # after an open failed (the peer does not serve the protocol)
    scan_s: float = 0.5


@dataclass(frozen=True)
class DirectSpec:
    """What the node gives ``P2PService(direct=...)``."""

    protocol: str
    kinds: Mapping[int, str]  # frame kind -> gossip topic
    hello: Callable[[str], bytes | None]  # our hello for our own peer id; None: do not open streams
    check_hello: HelloCheck
    refuse_all: bool = False  # devnet fault: reset every inbound stream (direct path cut)
    # validator links (p2p/validator_link.py): the TCP port to offer them on (0: any free port);
    # None: neither offered nor asked for, every batch goes on the stream
    link_port: int | None = None
    # kinds sent only when nothing else is queued for the peer, dropped first (transaction batches)
    bulk: frozenset[int] = frozenset()
    settings: DirectSettings = field(default_factory=DirectSettings)


class _Queue:
    """One bounded outbound queue: the oldest message goes first when it is over either bound."""

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self.items: deque[tuple[int, bytes, Envelope | None]] = deque()
        self.bytes = 0
        self.max_messages = max_messages
        self.max_bytes = max_bytes

    def push(self, item: tuple[int, bytes, Envelope | None]) -> int:
        """Append; returns how many old messages were dropped to stay within the bounds."""
        self.items.append(item)
        self.bytes += len(item[1])
        dropped = 0
        while len(self.items) > self.max_messages or (self.bytes > self.max_bytes and len(self.items) > 1):
            _, old, _ = self.items.popleft()
            self.bytes -= len(old)
            dropped += 1
        return dropped

    def pop(self) -> tuple[int, bytes, Envelope | None]:
        item = self.items.popleft()
        self.bytes -= len(item[1])
        return item


class _Outbound:
    def __init__(self, settings: DirectSettings) -> None:
        self.queue = _Queue(settings.queue_messages, settings.queue_bytes)
        self.bulk = _Queue(settings.bulk_messages, settings.bulk_bytes)
        self.wake = trio.Event()
        self.ready = False
        self.linked = False  # its batches go on a validator link, not on the stream
        self.scope = trio.CancelScope()


class DirectLinks:
    """Both directions of the direct protocol for one host."""

    def __init__(
        self,
        spec: DirectSpec,
        deliver: Callable[[str, str, bytes], bool],
        report: Callable[[str, Offence, str], None],
        is_banned: Callable[[str], bool],
        relay: Callable[[str, str, bytes, Envelope], None] | None = None,
        local_id: str = "",
    ) -> None:
        """``deliver(topic, peer, payload)`` hands a received payload to the node and says whether
        it was delivered now for the first time (authentic, not seen before); only then does
        ``relay(topic, peer, payload, envelope)`` pass the sender's GossipSub message on to the
        node's subscribed peers (observers)."""
        self.spec = spec
        self.settings = spec.settings
        self._kind_of = {topic: kind for kind, topic in spec.kinds.items()}
        self._deliver = deliver
        self._relay = relay
        self._report = report
        self._is_banned = is_banned
        self._out: dict[str, _Outbound] = {}
        self._retry_at: dict[str, float] = {}
        self._inbound: dict[str, tuple[bytes, INetStream]] = {}  # peer -> (validator id, stream)
        self._linked_in: dict[str, Pending] = {}
        self._local_id = ID.from_base58(local_id).to_bytes() if local_id else b""
        self.counters = {
            "frames_sent": 0, "messages_sent": 0, "queue_drops": 0, "frames_received": 0,
            "messages_received": 0, "streams_refused": 0, "open_failures": 0,
            "links_opened": 0, "links_accepted": 0, "link_failures": 0, "links_refused": 0,
        }
        self.links = (LinkListener(self.settings.open_timeout_s, self.counters)
                      if spec.link_port is not None and self._local_id else None)

    # ----- state -----
    def outbound_peers(self) -> list[str]:
        return sorted(p for p, link in self._out.items() if link.ready)

    def inbound_peers(self) -> list[str]:
        return sorted(self._inbound)

    def linked_peers(self) -> dict[str, list[str]]:
        """Peers whose direct stream carries its batches on a validator link, each way."""
        return {"outbound": sorted(p for p, link in self._out.items() if link.linked),
                "inbound": sorted(self._linked_in)}

    def inbound_validators(self) -> set[bytes]:
        """Validator ids (from accepted hellos) with a live inbound stream."""
        return {vid for vid, _ in self._inbound.values()}

    # ----- sending -----
    def send(self, topic: str, data: bytes, envelope: Envelope | None = None) -> int:
        """Queue ``data`` (with the GossipSub ``envelope`` built for it) for every ready outbound
        link; returns how many peers it was queued for."""
        kind = self._kind_of.get(topic)
        if kind is None:
            return 0
        bulk = kind in self.spec.bulk
        queued = 0
        for link in self._out.values():
            if not link.ready:
                continue
            self.counters["queue_drops"] += (link.bulk if bulk else link.queue).push((kind, data, envelope))
            link.wake.set()
            queued += 1
        return queued

    async def maintain(self, host: IHost, my_id: str) -> None:
        """Keep one outbound stream to every connected peer that serves the protocol."""
        async with trio.open_nursery() as nursery:
            while True:
                hello = self.spec.hello(my_id)
                now = trio.current_time()
                network = host.get_network()
                connected = {pid.to_base58(): pid for pid in list(network.connections) if is_connected(host, pid)}
                for peer, link in list(self._out.items()):
                    if hello is None or peer not in connected or self._is_banned(peer):
                        link.scope.cancel()
                if hello is not None:
                    for peer, pid in connected.items():
                        if peer in self._out or self._is_banned(peer) or self._retry_at.get(peer, 0.0) > now:
                            continue
                        link = _Outbound(self.settings)
                        self._out[peer] = link
                        nursery.start_soon(self._run_outbound, host, pid, peer, hello, link)
                await trio.sleep(self.settings.scan_s)

    async def _run_outbound(self, host: IHost, pid: ID, peer: str, hello: bytes, link: _Outbound) -> None:
        stream: INetStream | None = None
        writer: RecordWriter | None = None
        try:
            with link.scope:
                key = LinkKey() if self.links is not None else None
                with trio.fail_after(self.settings.open_timeout_s):
                    stream = await host.new_stream(pid, [TProtocol(self.spec.protocol)])
                    await write_frame(stream, hello)
                    await write_frame(stream, key.public if key is not None else b"")
                    # the acceptor answers once it has accepted the hello; a refusal resets the
                    # stream (and this peer is asked again only after unsupported_retry_s)
                    reader = FrameReader(stream)
                    answer = await reader.read_exact(1)
                    offer = await reader.read_exact(OFFER_BYTES - 1) if answer == OFFER else b""
                    if answer not in (ACCEPTED, OFFER):
                        raise FrameError("hello not accepted")
                link.ready = True
                logger.info("direct consensus stream to %s open", peer[-8:])
                if offer and key is not None:
                    writer = await self._dial_link(stream, pid, peer, key, offer)
                    link.linked = writer is not None
                if writer is None:
                    await self._write_batches(stream, None, link)
                else:
                    await self._write_linked(stream, writer, link)
        except (BaseLibp2pError, trio.TooSlowError, FrameError, RuntimeError, *LINK_ERRORS) as error:
            if not link.ready:  # not served there (a full node) or unreachable: ask again later
                self.counters["open_failures"] += 1
                logger.debug("direct consensus stream to %s not opened: %r", peer[-8:], error)
                self._retry_at[peer] = trio.current_time() + self.settings.unsupported_retry_s
            else:
                logger.info("direct consensus stream to %s broke: %r", peer[-8:], error)
                self._retry_at[peer] = trio.current_time() + self.settings.retry_s
        finally:
            if self._out.get(peer) is link:
                del self._out[peer]
            if writer is not None:
                await trio.aclose_forcefully(writer.stream)
            if stream is not None:
                await _reset(stream)

    async def _write_batches(self, stream: INetStream, writer: RecordWriter | None, link: _Outbound) -> None:
        while True:
            await link.wake.wait()
            link.wake = trio.Event()
            while link.queue.items or link.bulk.items:
                batch = take_batch(link, self.settings)
                body = msgpack.packb(batch, use_bin_type=True)
                with trio.fail_after(self.settings.write_timeout_s):
                    if writer is not None:
                        await writer.write(body)
                    else:
                        await write_frame(stream, body)
                self.counters["frames_sent"] += 1
                self.counters["messages_sent"] += len(batch)

    async def _write_linked(self, stream: INetStream, writer: RecordWriter, link: _Outbound) -> None:
        """Write on the link until a write fails or the acceptor closes it (it never writes on it:
        whatever it does ends the link); raises what ended it."""
        failure: list[BaseException] = [LinkError("the validator link closed")]

        async def write(scope: trio.CancelScope) -> None:
            try:
                await self._write_batches(stream, writer, link)
            except (trio.TooSlowError, *LINK_ERRORS) as error:
                failure[0] = error
            scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_link, writer.stream, nursery.cancel_scope)
            nursery.start_soon(write, nursery.cancel_scope)
        raise failure[0]

    async def _dial_link(self, stream: INetStream, pid: ID, peer: str, key: LinkKey,
                         offer: bytes) -> RecordWriter | None:
        """Connect the validator link the acceptor offered; None (batches stay on the stream) when
        that fails."""
        theirs, port = offer[:KEY_BYTES], int.from_bytes(offer[KEY_BYTES:], "big")
        address = stream.get_remote_address()
        tcp: trio.SocketStream | None = None
        try:
            if address is None or port == 0:
                raise LinkError(f"no address to reach (stream address {address}, port {port})")
            tag, secret = key.derive(theirs, key.public, theirs, self._local_id, pid.to_bytes())
            with trio.fail_after(self.settings.open_timeout_s):
                tcp = await trio.open_tcp_stream(address[0], port)
                await tcp.send_all(tag)
        except (trio.TooSlowError, *LINK_ERRORS) as error:
            if tcp is not None:
                await trio.aclose_forcefully(tcp)
            self.counters["link_failures"] += 1
            logger.info("validator link to %s not connected, batches stay on the stream: %r", peer[-8:], error)
            return None
        self.counters["links_opened"] += 1
        logger.info("validator link to %s up (%s:%d)", peer[-8:], address[0], port)
        return RecordWriter(tcp, secret)

    # ----- receiving -----
    async def handle_stream(self, stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id.to_base58()
        try:
            await self._serve(stream, peer)
        except (BaseLibp2pError, OSError, FrameError, trio.TooSlowError) as error:
            logger.debug("direct consensus stream from %s ended: %r", peer[-8:], error)
        finally:
            entry = self._inbound.get(peer)
            if entry is not None and entry[1] is stream:
                del self._inbound[peer]
                logger.info("direct consensus stream from %s closed", peer[-8:])
            await _reset(stream)

    def _refuse(self, peer: str, offence: Offence | None, detail: str) -> None:
        self.counters["streams_refused"] += 1
        logger.info("direct consensus stream from %s refused: %s", peer[-8:], detail)
        if offence is not None:
            self._report(peer, offence, f"direct consensus stream: {detail}")

    async def _serve(self, stream: INetStream, peer: str) -> None:
        if self.spec.refuse_all:
            self.counters["streams_refused"] += 1
            return
        if self._is_banned(peer):
            self._refuse(peer, None, "banned")
            return
        reader = FrameReader(stream)
        try:
            with trio.fail_after(self.settings.open_timeout_s):
                hello = await reader.read_frame(self.settings.hello_max_bytes)
        except FrameTooLarge as error:
            self._refuse(peer, Offence.OVERSIZED, f"hello of {error.length} bytes")
            return
        verdict = self.spec.check_hello(peer, hello)
        if isinstance(verdict, Offence):
            self._refuse(peer, verdict, verdict.value[0])
            return
        try:
            with trio.fail_after(self.settings.open_timeout_s):
                request = await reader.read_frame(KEY_BYTES)
        except FrameTooLarge as error:
            self._refuse(peer, Offence.OVERSIZED, f"link request of {error.length} bytes")
            return
        if len(request) not in (0, KEY_BYTES):
            self._refuse(peer, Offence.MALFORMED, f"link request of {len(request)} bytes")
            return
        answer, tag, pending = ACCEPTED, b"", None
        if request and self.links is not None and self.links.port:
            key = LinkKey()
            try:
                tag, secret = key.derive(request, request, key.public, ID.from_base58(peer).to_bytes(), self._local_id)
            except LinkError as error:
                self._refuse(peer, Offence.MALFORMED, str(error))
                return
            pending = self.links.expect(tag, peer, secret)
            answer = OFFER + key.public + self.links.port.to_bytes(2, "big")
        try:
            with trio.fail_after(self.settings.open_timeout_s):
                await stream.write(answer)
            old = self._inbound.get(peer)
            self._inbound[peer] = (verdict, stream)
            if old is not None:
                await _reset(old[1])
            logger.info("direct consensus stream from %s accepted", peer[-8:])
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_stream, reader, peer, nursery.cancel_scope)
                if pending is not None:
                    nursery.start_soon(self._read_link, pending, tag, nursery.cancel_scope)
        finally:
            if pending is not None:
                assert self.links is not None
                self.links.forget(tag)
                pending.done.set()

    async def _read_stream(self, reader: FrameReader, peer: str, scope: trio.CancelScope) -> None:
        """Batches on the stream itself (no link, or before the link is up); ends the pair when it ends."""
        try:
            while True:
                try:
                    body = await reader.read_frame(self.settings.max_frame_bytes)
                except FrameTooLarge as error:
                    self._refuse(peer, Offence.OVERSIZED, f"frame of {error.length} bytes")
                    return
                if not self._take_batch(peer, body):
                    return
                await trio.lowlevel.checkpoint()
        except (BaseLibp2pError, OSError, FrameError, trio.TooSlowError) as error:
            logger.debug("direct consensus stream from %s ended: %r", peer[-8:], error)
        finally:
            scope.cancel()

    async def _read_link(self, pending: Pending, tag: bytes, scope: trio.CancelScope) -> None:
        """Batches on the validator link once the opener connects it; ends the pair when it ends
        (an opener that never connects writes on the stream)."""
        peer = pending.peer
        with trio.move_on_after(2 * self.settings.open_timeout_s):
            await pending.arrived.wait()
        assert self.links is not None
        self.links.forget(tag)
        if pending.stream is None:
            return
        self.counters["links_accepted"] += 1
        self._linked_in[peer] = pending
        logger.info("validator link from %s up", peer[-8:])
        reader = RecordReader(pending.stream, pending.key, self.settings.max_frame_bytes)
        try:
            while self._take_batch(peer, await reader.read()):
                if not reader.received:  # records already read from the socket: let others run
                    await trio.lowlevel.checkpoint()
        except LINK_ERRORS as error:
            logger.info("validator link from %s ended: %r", peer[-8:], error)
        finally:
            if self._linked_in.get(peer) is pending:
                del self._linked_in[peer]
            scope.cancel()

    def _take_batch(self, peer: str, body: bytes) -> bool:
        """Deliver one batch from ``peer``; False (after refusing the stream) to stop reading."""
        if self._is_banned(peer):
            self._refuse(peer, None, "banned")
            return False
        items = _decode_batch(body, self.settings.max_batch_items)
        if items is None:
            self._refuse(peer, Offence.MALFORMED, "undecodable batch")
            return False
        self.counters["frames_received"] += 1
        for kind, data, envelope in items:
            topic = self.spec.kinds.get(kind)
            if topic is None:
                self._refuse(peer, Offence.MALFORMED, f"unknown kind {kind}")
                return False
            self.counters["messages_received"] += 1
            if self._deliver(topic, peer, data) and envelope is not None and self._relay is not None:
                self._relay(topic, peer, data, envelope)
        return True


def take_batch(link: _Outbound, settings: DirectSettings) -> list[list[object]]:
    """The next frame's items, up to ``max_batch_items`` and ``batch_bytes`` (one message may be
    larger): queued consensus messages, or, only when none is queued, bulk ones (never both in one
    frame: a vote does not wait for a transaction batch to be written and read)."""
    queue = link.queue if link.queue.items else link.bulk
    batch: list[list[object]] = []
    size = 0
    while queue.items and len(batch) < settings.max_batch_items and (
        not batch or size + len(queue.items[0][1]) <= settings.batch_bytes
    ):
        kind, data, envelope = queue.pop()
        batch.append([kind, data, *envelope] if envelope is not None else [kind, data])
        size += len(data)
    return batch


def _decode_batch(body: bytes, max_items: int) -> list[tuple[int, bytes, Envelope | None]] | None:
    """The items of a batch: ``[kind, payload]`` or ``[kind, payload, seqno(8), signature(64)]``."""
    try:
        batch = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError):
        return None
    if not isinstance(batch, list) or not 0 < len(batch) <= max_items:
        return None
    out: list[tuple[int, bytes, Envelope | None]] = []
    for item in batch:
        if not (isinstance(item, list) and len(item) in (2, 4) and type(item[0]) is int
                and all(type(x) is bytes for x in item[1:])):
            return None
        envelope: Envelope | None = None
        if len(item) == 4:
            if len(item[2]) != SEQNO_BYTES or len(item[3]) != SIGNATURE_BYTES:
                return None
            envelope = (item[2], item[3])
        out.append((item[0], item[1], envelope))
    return out


async def _watch_link(tcp: trio.SocketStream, scope: trio.CancelScope) -> None:
    """The acceptor never writes on a link: anything it does (close, reset) ends it."""
    try:
        await tcp.receive_some(1)
    except LINK_ERRORS:
        pass
    scope.cancel()


async def _reset(stream: INetStream) -> None:
    try:
        with trio.move_on_after(1.0):
            await stream.reset()
    except (BaseLibp2pError, OSError, RuntimeError) as error:
        logger.debug("direct stream reset: %r", error)
