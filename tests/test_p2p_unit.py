"""Unit tests of the pure parts of p2p/: framing, names, identity, dedup, validator wrapping."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2

from p2p import topics
from p2p.framing import (
    WRITE_CHUNK_BYTES,
    FrameError,
    FrameReader,
    FrameTooLarge,
    encode_uvarint,
    write_frame,
)
from p2p.gossip import (
    IDONTWANT_MIN_BYTES,
    ContentDedup,
    LeanGossipSub,
    LocalRecordCache,
    SignedRecordCache,
    content_key,
    make_safe_validator,
)
from p2p.identity import PeerSpec, loopback_addr, peer_id_from_seed
from p2p.peers import is_dialer


class FakeStream:
    """In-memory stream that hands out its bytes in fixed-size pieces (unit tests only)."""

    def __init__(self, data: bytes = b"", piece: int = 7) -> None:
        self.data = data
        self.offset = 0
        self.piece = piece
        self.writes: list[bytes] = []

    async def read(self, n: int | None = None) -> bytes:
        size = min(self.piece, n or self.piece)
        out = self.data[self.offset : self.offset + size]
        self.offset += len(out)
        return out

    async def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))


B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rest = divmod(number, 58)
        out = B58[rest] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


# ----- varints and frames -----


def test_uvarint_known_values() -> None:
    # Examples from the protobuf encoding documentation and the multiformats varint spec.
    assert encode_uvarint(0) == b"\x00"
    assert encode_uvarint(1) == b"\x01"
    assert encode_uvarint(127) == b"\x7f"
    assert encode_uvarint(128) == b"\x80\x01"
    assert encode_uvarint(300) == b"\xac\x02"
    assert encode_uvarint(16384) == b"\x80\x80\x01"
    with pytest.raises(ValueError):
        encode_uvarint(-1)


@settings(max_examples=60, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=3000), min_size=1, max_size=5),
    piece=st.integers(min_value=1, max_value=5000),
)
async def test_frames_round_trip_whatever_the_read_sizes(payloads: list[bytes], piece: int) -> None:
    wire = b"".join(encode_uvarint(len(p)) + p for p in payloads)
    reader = FrameReader(FakeStream(wire, piece))
    assert [await reader.read_frame(3000) for _ in payloads] == payloads


async def test_oversize_frame_is_refused_before_its_body_is_read() -> None:
    body = b"z" * 100_000
    stream = FakeStream(encode_uvarint(len(body)) + body, piece=1)
    with pytest.raises(FrameTooLarge) as info:
        await FrameReader(stream).read_frame(99_999)
    assert info.value.length == 100_000 and info.value.cap == 99_999
    assert stream.offset == len(encode_uvarint(len(body)))


async def test_truncated_and_malformed_frames_are_frame_errors() -> None:
    with pytest.raises(FrameError, match="ended"):
        await FrameReader(FakeStream(encode_uvarint(10) + b"short")).read_frame(100)
    with pytest.raises(FrameError, match="non-minimal"):
        await FrameReader(FakeStream(b"\x85\x00" + b"x" * 5)).read_frame(100)
    with pytest.raises(FrameError, match="longer than 9"):
        await FrameReader(FakeStream(b"\xff" * 10)).read_frame(100)


async def test_write_frame_chunks_large_payloads() -> None:
    payload = bytes(range(256)) * 4000  # 1,024,000 bytes
    stream = FakeStream()
    await write_frame(stream, payload, head=b"\x00")
    assert b"".join(stream.writes) == b"\x00" + encode_uvarint(len(payload)) + payload
    assert len(stream.writes) == -(-len(payload) // WRITE_CHUNK_BYTES)
    assert max(len(w) for w in stream.writes) <= WRITE_CHUNK_BYTES + 10


# ----- names -----


def test_topic_and_protocol_names() -> None:
    assert topics.txs_topic("devnet-1") == "attrchain/devnet-1/txs/1"
    assert topics.proposals_topic("devnet-1") == "attrchain/devnet-1/proposals/1"
    assert topics.votes_topic("devnet-1") == "attrchain/devnet-1/votes/1"
    assert topics.evidence_topic("devnet-1") == "attrchain/devnet-1/evidence/1"
    assert topics.sync_protocol("devnet-1") == "/attrchain/devnet-1/sync/1"
    assert len(set(topics.all_topics("x"))) == 4
    for bad in ("", "a/b"):
        with pytest.raises(ValueError):
            topics.txs_topic(bad)
        with pytest.raises(ValueError):
            topics.sync_protocol(bad)


# ----- identity -----


@settings(max_examples=20, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32))
def test_peer_id_is_the_identity_multihash_of_the_cryptography_public_key(seed: bytes) -> None:
    public = (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    # libp2p peer-id spec: identity multihash (0x00, len 0x24) of the protobuf PublicKey
    # {Type: Ed25519 (1), Data: 32 bytes} = 08 01 12 20 || key.
    expected = base58(b"\x00\x24\x08\x01\x12\x20" + public)
    assert peer_id_from_seed(seed) == expected
    assert expected.startswith("12D3KooW")


def test_peer_spec_checks_its_address_names_its_peer() -> None:
    a, b = peer_id_from_seed(b"\x01" * 32), peer_id_from_seed(b"\x02" * 32)
    spec = PeerSpec(a, loopback_addr(4001, a))
    assert PeerSpec.parse(spec.addr) == spec
    assert PeerSpec.loopback(b"\x01" * 32, 4001) == spec
    with pytest.raises(ValueError):
        PeerSpec(b, loopback_addr(4001, a))
    with pytest.raises(ValueError):
        peer_id_from_seed(b"\x01" * 31)


def test_exactly_one_side_of_each_pair_dials() -> None:
    ids = [ID.from_base58(peer_id_from_seed(bytes([i]) * 32)) for i in range(1, 8)]
    for x in ids:
        assert not is_dialer(x, x)
        for y in ids:
            if x != y:
                assert is_dialer(x, y) != is_dialer(y, x)


# ----- dedup and validators -----


def test_content_dedup_forgets_least_recently_added_first() -> None:
    dedup = ContentDedup(3)
    keys = [content_key("t", bytes([i])) for i in range(5)]
    for key in keys[:3]:
        dedup.add(key)
    dedup.add(keys[0])  # refreshed: now the newest
    dedup.add(keys[3])
    assert keys[1] not in dedup and keys[0] in dedup and keys[3] in dedup
    assert len(dedup) == 3
    assert content_key("a", b"x") != content_key("b", b"x")
    assert content_key("a", b"x") == hashlib.sha256(b"a\x00x").digest()


def message(data: bytes) -> rpc_pb2.Message:
    return rpc_pb2.Message(data=data, topicIDs=["t"])


def test_safe_validator_never_raises_and_enforces_the_size_cap() -> None:
    me = ID.from_base58(peer_id_from_seed(b"\x01" * 32))
    other = ID.from_base58(peer_id_from_seed(b"\x02" * 32))

    def picky(data: bytes) -> bool:
        if data == b"boom":
            raise KeyError("validator bug")
        return data.startswith(b"ok")

    check = make_safe_validator("t", picky, 100, me)
    assert check(other, message(b"ok 1")) is True
    assert check(other, message(b"nope")) is False
    assert check(other, message(b"boom")) is False
    assert check(other, message(b"ok" + b"x" * 98)) is False  # 100 bytes: not under the cap
    assert check(me, message(b"nope")) is True  # own publishes are not re-validated
    assert make_safe_validator("t", None, 100, me)(other, message(b"anything")) is True


def test_a_signed_peer_record_is_checked_once_per_peer_and_bytes() -> None:
    checked: list[tuple[bytes, ID | None]] = []
    verdicts = {b"good": True, b"forged": False}

    def check(msg: rpc_pb2.RPC, host: object, peer_id: ID | None = None) -> bool:
        checked.append((msg.senderRecord, peer_id))
        return verdicts.get(msg.senderRecord, True)

    cache = SignedRecordCache(check)
    a, b = ID(b"\x00\x01a"), ID(b"\x00\x01b")
    good, forged, none = rpc_pb2.RPC(senderRecord=b"good"), rpc_pb2.RPC(senderRecord=b"forged"), rpc_pb2.RPC()
    assert all(cache(good, None, a) for _ in range(5)) and checked == [(b"good", a)]
    assert cache(good, None, b) and checked[-1] == (b"good", b)  # another peer: its own check
    assert not cache(forged, None, a) and not cache(forged, None, a)  # a failure is never cached
    assert checked[-2:] == [(b"forged", a), (b"forged", a)]
    assert cache(none, None, a) and cache(good, None) and len(checked) == 6  # no record / no peer: as before
    cache.RECHECK_S = 0.0
    assert cache(good, None, a) and checked[-1] == (b"good", a)  # checked afresh once it is old
    cache.MAX_ENTRIES = 1
    assert cache(rpc_pb2.RPC(senderRecord=b"other"), None, a) and len(cache.accepted) == 1


async def test_idontwant_goes_out_only_for_large_forwarded_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """LeanGossipSub: no IDONTWANT for our own publishes or for small forwarded messages."""
    from libp2p.pubsub.gossipsub import GossipSub

    emitted: list[bytes] = []

    async def parent_publish(self: GossipSub, forwarder: ID, msg: rpc_pb2.Message) -> None:
        await self._emit_idontwant_for_message(msg.seqno, msg.topicIDs)

    async def parent_emit(self: GossipSub, msg_id: bytes, topics: object) -> None:
        emitted.append(msg_id)

    monkeypatch.setattr(GossipSub, "publish", parent_publish)
    monkeypatch.setattr(GossipSub, "_emit_idontwant_for_message", parent_emit)
    me, peer = ID(b"\x00\x01m"), ID(b"\x00\x01p")
    router = LeanGossipSub.__new__(LeanGossipSub)
    router.pubsub = type("P", (), {"my_id": me})()  # type: ignore[assignment]
    big, small = b"x" * IDONTWANT_MIN_BYTES, b"x" * (IDONTWANT_MIN_BYTES - 1)
    await router.publish(me, rpc_pb2.Message(data=big, seqno=b"own", topicIDs=["t"]))
    await router.publish(peer, rpc_pb2.Message(data=small, seqno=b"small", topicIDs=["t"]))
    await router.publish(peer, rpc_pb2.Message(data=big, seqno=b"big", topicIDs=["t"]))
    assert emitted == [b"big"]


def test_our_own_record_is_rebuilt_at_most_every_refresh_interval() -> None:
    built: list[ID] = []
    one, two = ID(b"\x00\x01h"), ID(b"\x00\x01i")

    def build(host: object) -> tuple[bytes, bool]:
        built.append(host.get_id())  # type: ignore[attr-defined]
        return b"record of " + host.get_id().to_bytes(), True  # type: ignore[attr-defined]

    hosts = [type("H", (), {"get_id": lambda self, i=i: i})() for i in (one, two)]
    cache = LocalRecordCache(build)
    assert cache(hosts[0]) == (b"record of " + one.to_bytes(), True)
    assert all(cache(hosts[0]) == (b"record of " + one.to_bytes(), False) for _ in range(5))
    assert cache(hosts[1])[0] == b"record of " + two.to_bytes() and built == [one, two]  # one per host
    # a new host with the first one's peer id (a service restarted in the same process) gets its
    # own record, not the old host's with its old addresses (peers dropped those RPCs)
    again = type("H", (), {"get_id": lambda self: one})()
    assert cache(again)[1] is True and built == [one, two, one]
    cache.REFRESH_S = 0.0
    cache(hosts[0])
    assert built == [one, two, one, one]  # rebuilt once the interval passed


async def test_signal_topics_get_no_mesh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Relay offers and requests are subscriptions nobody publishes on: LeanGossipSub joins them
    without a mesh (no GRAFTs, no heartbeat upkeep); every other topic joins as py-libp2p does."""
    from libp2p.pubsub.gossipsub import GossipSub

    joined: list[str] = []

    async def parent_join(self: GossipSub, topic: str) -> None:
        joined.append(topic)

    monkeypatch.setattr(GossipSub, "join", parent_join)
    router = LeanGossipSub.__new__(LeanGossipSub)
    router.signal_prefix = "attrchain/c/relay/1"
    for topic in ("attrchain/c/relay/1", "attrchain/c/relay/1/12D3KooWPeer", "attrchain/c/txs/1",
                  "attrchain/c/relay/10"):
        await router.join(topic)
    assert joined == ["attrchain/c/txs/1", "attrchain/c/relay/10"]
    router.signal_prefix = None
    await router.join("attrchain/c/relay/1")
    assert joined[-1] == "attrchain/c/relay/1"


def test_direct_streams_write_consensus_before_transaction_batches() -> None:
    """A bulk kind (transaction batches) waits in its own bounded queue, goes out only when no
    consensus message is queued, and never shares a frame with one."""
    from p2p.direct import DirectSettings, _Outbound, take_batch

    settings = DirectSettings(bulk_messages=3, max_batch_items=10)
    link = _Outbound(settings)
    for i in range(5):  # over the bulk bound: the oldest go first
        assert link.bulk.push((3, b"txs%d" % i, None)) == (1 if i >= 3 else 0)
    link.queue.push((2, b"vote", (b"s" * 8, b"g" * 64)))
    link.queue.push((1, b"proposal", None))
    assert take_batch(link, settings) == [[2, b"vote", b"s" * 8, b"g" * 64], [1, b"proposal"]]
    link.queue.push((2, b"late vote", None))  # queued while the batch was written: still first
    assert take_batch(link, settings) == [[2, b"late vote"]]
    assert take_batch(link, settings) == [[3, b"txs2"], [3, b"txs3"], [3, b"txs4"]]
    assert take_batch(link, settings) == [] and link.bulk.bytes == 0 == link.queue.bytes
