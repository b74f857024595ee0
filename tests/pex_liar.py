"""A lying peer for tests/test_pex_network.py: ``python tests/pex_liar.py SEED_HEX PORT CHAIN_ID``.

It runs a real libp2p host and answers every peer exchange request with MAX_ANSWER_ADDRS well-formed
addresses of peers that do not exist (closed loopback ports, made-up peer ids): an attempt to fill
a joining node's address book and its dial slots. Prints "ready" when listening; stops on SIGTERM."""

from __future__ import annotations

import sys

import trio

from node.pex import MAX_ANSWER_ADDRS, pex_protocol
from p2p.identity import peer_id_from_seed
from p2p.service import P2PService
from p2p.topics import all_topics
from state.codec import pack

FAKES = [[peer_id_from_seed(bytes([0xEE, i]) * 16), f"127.0.0.1:{1 + i}"] for i in range(MAX_ANSWER_ADDRS)]


async def main(seed: bytes, port: int, chain_id: str) -> None:
    async def answer(peer: str, payload: bytes) -> bytes:
        return pack(["addrs", FAKES])

    # subscribed to the chain's topics like a node (its bounded inboxes take the gossip): without
    # them the joiner's gossip queue to it filled and py-libp2p could drop the connection
    service = P2PService(seed, port, [], all_topics(chain_id), request_handlers={pex_protocol(chain_id): answer})
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        print("ready", flush=True)


if __name__ == "__main__":
    trio.run(main, bytes.fromhex(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
