"""Hostile peers on the direct consensus protocol (docs/p2p.md "Direct consensus streams"): a
real dev node (real LevelDB, real libp2p on 127.0.0.1) with ``[p2p] direct_consensus`` and an
attacker host in the same trio run that opens the protocol and writes frames.

A non-validator is refused at its hello: not one of the frames it sends after it is read, nothing
is delivered, and it is scored down. A forged hello (a validator's key, not its signature) and an
oversized hello are refused the same way. A stream whose hello is genuine but whose batch is not
msgpack, or whose item carries a malformed GossipSub envelope, is reset and scored."""

from __future__ import annotations

from pathlib import Path

import msgpack
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from nodekit import dev_home, running_node, wait_for

from node.app import Node
from node.consensus_links import KIND_VOTE, hello_message
from p2p import topics
from p2p.framing import encode_uvarint, write_frame
from p2p.identity import PeerSpec
from p2p.service import P2PService
from state.codec import pack
from state.crypto import PrivateKey

ATTACKER_SEED = bytes(range(32))
NO_LINK = b""  # the link request after the hello: no validator link (p2p/validator_link.py)


async def attack(node: Node, frames: list[bytes], raw_prefix: bytes = b"", seed: bytes = ATTACKER_SEED) -> str:
    """Open the direct protocol to ``node`` from a fresh host and write ``frames``; returns the
    attacker's peer id once the node has dealt with the stream."""
    attacker = P2PService(seed, 0, [PeerSpec(node.p2p.peer_id, node.p2p.listen_addrs()[0])], [])
    refused_before = node.p2p.direct.counters["streams_refused"]  # type: ignore[union-attr]
    accepted_before = len(node.p2p.direct.inbound_peers())  # type: ignore[union-attr]
    async with trio.open_nursery() as nursery:
        await nursery.start(attacker.run)
        await wait_for(lambda: node.p2p.peer_id in attacker.connected_peers(), 10, "attacker connected")
        host = attacker._require_host()
        stream = await host.new_stream(ID.from_base58(node.p2p.peer_id),
                                       [TProtocol(topics.consensus_protocol(node.chain.chain_id))])
        try:
            if raw_prefix:
                await stream.write(raw_prefix)
            for frame in frames:
                await write_frame(stream, frame)
        except Exception:  # noqa: BLE001 - the node may reset the stream mid-write; that is the point
            pass
        await wait_for(lambda: node.p2p.direct.counters["streams_refused"] > refused_before  # type: ignore[union-attr]
                       or len(node.p2p.direct.inbound_peers()) > accepted_before, 10,  # type: ignore[union-attr]
                       "the node to decide on the stream")
        nursery.cancel_scope.cancel()
    return attacker.peer_id


def vote_batch() -> bytes:
    return msgpack.packb([[KIND_VOTE, b"\x95" + b"\x00" * 40]] * 8, use_bin_type=True)


def offences(node: Node, peer: str) -> dict[str, int]:
    return node.p2p.scores.describe(peer)["offences"]  # type: ignore[return-value]


def test_non_validators_are_refused_before_any_frame_is_read(tmp_path: Path) -> None:
    home = dev_home(tmp_path, direct_consensus=True)

    async def main() -> None:
        async with running_node(home) as node:
            links = node.p2p.direct
            assert links is not None
            chain_id = node.chain.chain_id
            votes = topics.votes_topic(chain_id)
            attacker_id = P2PService(ATTACKER_SEED, 0, [], []).peer_id

            # 1. a key outside the validator set, properly signed: refused and scored, no frame read
            outsider = PrivateKey.generate()
            hello = pack([outsider.public_key, outsider.sign(hello_message(chain_id, attacker_id))])
            t0 = trio.current_time()
            await attack(node, [hello] + [vote_batch()] * 20)
            assert offences(node, attacker_id).get("NOT_A_VALIDATOR_STREAM") == 1
            assert links.counters["frames_received"] == 0 and links.counters["messages_received"] == 0
            assert node.p2p.topic_stats(votes)["direct_delivered"] == 0
            assert links.inbound_peers() == []

            # 2. the validator's public key with a signature it did not make: BAD_SIGNATURE
            assert node.validator_key is not None
            forged = pack([node.validator_key.public_key, outsider.sign(hello_message(chain_id, attacker_id))])
            await attack(node, [forged, vote_batch()])
            assert offences(node, attacker_id).get("BAD_SIGNATURE") == 1
            assert links.counters["frames_received"] == 0

            # 3. a hello announced at 1 MB: refused on its length prefix, before its body
            await attack(node, [], raw_prefix=encode_uvarint(1_000_000) + b"\x00" * 64)
            assert offences(node, attacker_id).get("OVERSIZED") == 1
            assert links.counters["frames_received"] == 0 and links.counters["messages_received"] == 0

            # the score recovers 1 point per second since the first offence (slow on a loaded machine)
            assert node.p2p.scores.describe(attacker_id)["score"] <= -(10 + 50 + 20) + (trio.current_time() - t0) + 1


            # 4. control (another host): the validator's genuine hello (say, its second node) is
            #    accepted; a batch that is not msgpack then resets the stream and scores MALFORMED
            second = bytes(range(1, 33))
            attacker_id = P2PService(second, 0, [], []).peer_id
            genuine = pack([node.validator_key.public_key,
                            node.validator_key.sign(hello_message(chain_id, attacker_id))])
            await attack(node, [genuine, NO_LINK, b"\xc1 not msgpack"], seed=second)
            await wait_for(lambda: offences(node, attacker_id).get("MALFORMED") == 1, 10, "MALFORMED scored")
            assert links.counters["messages_received"] == 0
            assert node.p2p.topic_stats(votes)["direct_delivered"] == 0

            # 5. a genuine hello, then an item whose GossipSub envelope has a 7-byte seqno: reset and
            #    scored before its payload is looked at
            third = bytes(range(2, 34))
            attacker_id = P2PService(third, 0, [], []).peer_id
            genuine = pack([node.validator_key.public_key,
                            node.validator_key.sign(hello_message(chain_id, attacker_id))])
            bad_envelope = msgpack.packb([[KIND_VOTE, b"\x95" + b"\x00" * 40, b"\x01" * 7, b"\x02" * 64]])
            await attack(node, [genuine, NO_LINK, bad_envelope], seed=third)
            await wait_for(lambda: offences(node, attacker_id).get("MALFORMED") == 1, 10, "bad envelope scored")
            assert links.counters["messages_received"] == 0

            # 6. a genuine hello, then a link request that is no X25519 key (13 bytes): reset, MALFORMED
            fourth = bytes(range(3, 35))
            attacker_id = P2PService(fourth, 0, [], []).peer_id
            genuine = pack([node.validator_key.public_key,
                            node.validator_key.sign(hello_message(chain_id, attacker_id))])
            await attack(node, [genuine, b"\xc1 not msgpack", vote_batch()], seed=fourth)
            await wait_for(lambda: offences(node, attacker_id).get("MALFORMED") == 1, 10, "bad link request scored")
            assert links.counters["messages_received"] == 0

    trio.run(main)
