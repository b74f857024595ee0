"""Validator links (p2p/validator_link.py, docs/p2p.md "Validator links"): the records, and a real
dev node (real LevelDB, real libp2p and TCP on 127.0.0.1) against an attacker that holds a genuine
direct stream (its hello signed by the node's validator key, as a validator's second node could)
and then tries the link's TCP port: a wrong tag, a replayed tag, records that do not decrypt or do
not decode, a flood of connections that never say anything. None of it delivers a message, the
node keeps committing, and a stream whose link is never connected still carries batches."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest
import trio
from libp2p.abc import INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from nodekit import dev_home, running_node, wait_for

from node.app import Node
from node.consensus_links import KIND_VOTE, hello_message
from p2p import topics
from p2p.framing import FrameReader, write_frame
from p2p.identity import PeerSpec
from p2p.service import P2PService
from p2p.validator_link import (
    KEY_BYTES,
    MAX_HANDSHAKES,
    OFFER,
    OFFER_BYTES,
    LinkError,
    LinkKey,
    RecordReader,
    RecordWriter,
)
from state.codec import pack

# ---- records, over a real socket pair -------------------------------------------------------


def link_pair() -> tuple[bytes, bytes, bytes, bytes]:
    opener, acceptor = LinkKey(), LinkKey()
    ids = (b"opener-peer-id", b"acceptor-peer-id")
    tag_o, key_o = opener.derive(acceptor.public, opener.public, acceptor.public, *ids)
    tag_a, key_a = acceptor.derive(opener.public, opener.public, acceptor.public, *ids)
    return tag_o, key_o, tag_a, key_a


def test_both_ends_derive_one_tag_and_key_and_a_bad_key_is_refused() -> None:
    tag_o, key_o, tag_a, key_a = link_pair()
    assert (tag_o, key_o) == (tag_a, key_a) and tag_o != key_o
    opener, acceptor = LinkKey(), LinkKey()
    one = opener.derive(acceptor.public, opener.public, acceptor.public, b"a", b"b")
    other = opener.derive(acceptor.public, opener.public, acceptor.public, b"c", b"b")
    assert one != other  # bound to the peer ids: a link cannot be moved to another stream
    with pytest.raises(LinkError, match="bad X25519 key"):
        opener.derive(b"\x00" * KEY_BYTES, opener.public, b"\x00" * KEY_BYTES, b"a", b"b")  # low order
    with pytest.raises(LinkError, match="32 bytes"):
        opener.derive(b"\x01" * 31, opener.public, b"\x01" * 31, b"a", b"b")


def socket_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    a, b = socket.socketpair()
    return trio.SocketStream(trio.socket.from_stdlib_socket(a)), trio.SocketStream(trio.socket.from_stdlib_socket(b))


def test_records_round_trip_and_tampering_replay_and_oversize_are_refused() -> None:
    _, key, _, _ = link_pair()

    async def main() -> None:
        left, right = socket_pair()
        writer, reader = RecordWriter(left, key), RecordReader(right, key, max_body_bytes=1 << 20)
        bodies = [b"", b"x", bytes(range(256)) * 1000]
        async with trio.open_nursery() as nursery:
            async def send() -> None:
                for body in bodies:
                    await writer.write(body)
            nursery.start_soon(send)
            assert [await reader.read() for _ in bodies] == bodies

        # one flipped ciphertext bit: refused
        sealed = bytearray(writer.seal(b"vote"))
        sealed[-1] ^= 1
        await left.send_all(bytes(sealed))
        with pytest.raises(LinkError, match="does not decrypt"):
            await reader.read()

        # a record replayed (its nonce was used): refused
        left, right = socket_pair()
        writer, reader = RecordWriter(left, key), RecordReader(right, key, max_body_bytes=1 << 20)
        first = writer.seal(b"vote")
        await left.send_all(first + first)
        assert await reader.read() == b"vote"
        with pytest.raises(LinkError, match="record 1 does not decrypt"):
            await reader.read()

        # a length over the cap: refused on the 4-byte prefix, before any body byte arrives
        left, right = socket_pair()
        reader = RecordReader(right, key, max_body_bytes=1000)
        await left.send_all((3_000_000).to_bytes(4, "big"))
        with pytest.raises(LinkError, match="a record of 3000000 bytes"):
            await reader.read()

    trio.run(main)


# ---- a node's link port against an attacker ------------------------------------------------

SEED = bytes(range(5, 37))


def vote_batch() -> bytes:
    return msgpack.packb([[KIND_VOTE, b"\x95" + b"\x00" * 40]] * 4, use_bin_type=True)


@dataclass
class Opened:
    stream: INetStream
    port: int
    tag: bytes
    key: bytes
    peer_id: str


@asynccontextmanager
async def open_linked_stream(node: Node, seed: bytes) -> AsyncIterator[Opened]:
    """A direct stream to ``node`` with a genuine hello and a link request; yields the offer."""
    attacker = P2PService(seed, 0, [PeerSpec(node.p2p.peer_id, node.p2p.listen_addrs()[0])], [])
    assert node.validator_key is not None
    async with trio.open_nursery() as nursery:
        await nursery.start(attacker.run)
        await wait_for(lambda: node.p2p.peer_id in attacker.connected_peers(), 10, "attacker connected")
        node_id = ID.from_base58(node.p2p.peer_id)
        stream = await attacker._require_host().new_stream(
            node_id, [TProtocol(topics.consensus_protocol(node.chain.chain_id))])
        mine = LinkKey()
        await write_frame(stream, pack([node.validator_key.public_key,
                                        node.validator_key.sign(hello_message(node.chain.chain_id, attacker.peer_id))]))
        await write_frame(stream, mine.public)
        answer = await FrameReader(stream).read_exact(OFFER_BYTES)
        assert answer[:1] == OFFER, answer
        theirs, port = answer[1:1 + KEY_BYTES], int.from_bytes(answer[1 + KEY_BYTES:], "big")
        tag, key = mine.derive(theirs, mine.public, theirs, ID.from_base58(attacker.peer_id).to_bytes(),
                               node_id.to_bytes())
        yield Opened(stream, port, tag, key, attacker.peer_id)
        nursery.cancel_scope.cancel()


async def closed_by_peer(tcp: trio.SocketStream, timeout: float = 10.0) -> bool:
    """The node closed (or reset) this connection within ``timeout``."""
    with trio.move_on_after(timeout):
        try:
            while await tcp.receive_some(1024):
                pass
        except (trio.BrokenResourceError, OSError):
            pass
        return True
    return False


def test_link_port_refuses_strangers_forged_records_and_floods(tmp_path: Path) -> None:
    home = dev_home(tmp_path, direct_consensus=True)

    async def main() -> None:
        async with running_node(home) as node:
            links = node.p2p.direct
            assert links is not None and links.links is not None and links.links.port > 0
            port = links.links.port
            await wait_for(lambda: node.chain.height >= 1, 30, "height 1")

            # 1. a stranger with a made-up tag, and one that never says anything: both closed,
            #    nothing delivered
            refused = links.counters["links_refused"]
            stranger = await trio.open_tcp_stream("127.0.0.1", port)
            await stranger.send_all(b"\x07" * 32)
            assert await closed_by_peer(stranger)
            silent = await trio.open_tcp_stream("127.0.0.1", port)
            assert await closed_by_peer(silent)  # after the handshake timeout
            assert links.counters["links_refused"] == refused + 2

            # 2. a flood of silent connections: beyond MAX_HANDSHAKES they are closed at once
            flood = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(MAX_HANDSHAKES + 8)]
            with trio.fail_after(links.settings.open_timeout_s / 2):  # well before the handshake timeout
                for tcp in flood[-8:]:
                    assert await closed_by_peer(tcp)
            assert links.counters["links_refused"] >= refused + 2 + 8
            for tcp in flood:
                await tcp.aclose()

            # 3. the genuine stream's link: a record that does not decrypt ends the link and its
            #    stream; no message is delivered and the peer is not scored (an on-path attacker
            #    could have sent it)
            async with open_linked_stream(node, SEED) as opened:
                tcp = await trio.open_tcp_stream("127.0.0.1", opened.port)
                await tcp.send_all(opened.tag)
                await wait_for(lambda: opened.peer_id in links.linked_peers()["inbound"], 10, "link up")
                # the same tag again: it was good for one connection
                again = await trio.open_tcp_stream("127.0.0.1", opened.port)
                await again.send_all(opened.tag)
                assert await closed_by_peer(again)
                forged = bytearray(RecordWriter(tcp, opened.key).seal(vote_batch()))
                forged[10] ^= 0xFF
                await tcp.send_all(bytes(forged))
                assert await closed_by_peer(tcp)
                await wait_for(lambda: opened.peer_id not in links.inbound_peers(), 10, "the stream ended with its link")
                assert links.counters["messages_received"] == 0
                assert node.p2p.scores.describe(opened.peer_id)["offences"] == {}

            # 4. a record that decrypts but is no batch: MALFORMED, as on the stream
            async with open_linked_stream(node, bytes(range(6, 38))) as opened:
                tcp = await trio.open_tcp_stream("127.0.0.1", opened.port)
                await tcp.send_all(opened.tag)
                await RecordWriter(tcp, opened.key).write(b"\xc1 not msgpack")
                assert await closed_by_peer(tcp)
                await wait_for(lambda: node.p2p.scores.describe(opened.peer_id)["offences"].get("MALFORMED") == 1,
                               10, "MALFORMED scored")
                assert links.counters["messages_received"] == 0

            # 5. an opener that cannot reach the link port keeps writing on the stream: read
            frames = links.counters["frames_received"]
            async with open_linked_stream(node, bytes(range(7, 39))) as opened:
                await write_frame(opened.stream, vote_batch())
                await wait_for(lambda: links.counters["frames_received"] == frames + 1, 10, "the stream's batch read")

            height = node.chain.height
            await wait_for(lambda: node.chain.height >= height + 2, 30, "the node still committing")

    trio.run(main)
