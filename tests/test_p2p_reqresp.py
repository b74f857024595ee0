"""A P2PService in the test process against a real peer process: request/response, inbox."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from p2p import (
    MessageTooLarge,
    P2PService,
    PeerUnknown,
    ProtocolNotSupported,
    RemoteError,
    RequestRejected,
    RequestTimeout,
    RequestTooLarge,
    ResponseTooLarge,
    Status,
    UnknownTopic,
)
from p2p._testharness import Cluster, cluster
from p2p._testpeer import SYNC, TOPICS, peer_id_for, seed_for, spec_for

pytestmark = pytest.mark.multinode

LOCAL = 9  # seed index of the service running inside the test process
MB = 1_000_000


def expected_pattern(size: int) -> bytes:
    # Rebuilt here from the documented rule rather than imported from the peer program.
    return b"".join(hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(size // 32 + 1))[
        :size
    ]


async def local_handler(peer_id: str, request: bytes) -> bytes:
    if request.startswith(b"echo:"):
        return request[5:]
    if request.startswith(b"bytes:"):
        return expected_pattern(int(request[6:]))[::-1]
    raise RequestRejected("local handler only echoes and sends bytes")


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Re-check an in-process condition every 20 ms until it holds; fail after ``timeout``."""
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.02)
        return
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@asynccontextmanager
async def local_and_remote(
    remote_args: list[str], inbox_size: int = 1024
) -> AsyncIterator[tuple[P2PService, Cluster]]:
    service = P2PService(
        seed=seed_for(LOCAL),
        listen_port=0,
        peers=[],
        topics=[TOPICS["txs"]],
        request_handlers={SYNC: local_handler},
        inbox_size=inbox_size,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        port = int(service.listen_addrs()[0].split("/tcp/")[1].split("/")[0])
        async with cluster(1, remote_args, extra={LOCAL: port}) as group:
            assert service.add_peer(spec_for(0, group.ports[0]))
            yield service, group
        nursery.cancel_scope.cancel()


async def test_five_megabyte_responses_arrive_intact_both_ways() -> None:
    async with local_and_remote([]) as (service, group):
        remote = peer_id_for(0)
        response = await service.request(remote, SYNC, b"bytes:%d" % (5 * MB), timeout=20)
        assert len(response) == 5 * MB
        assert response == expected_pattern(5 * MB)
        event = await group.peers[0].request(
            1, peer=LOCAL, hex=(b"bytes:%d" % (5 * MB)).hex(), timeout=20
        )
        assert event["ok"], event
        assert event["len"] == 5 * MB
        assert event["sha256"] == hashlib.sha256(expected_pattern(5 * MB)[::-1]).hexdigest()
        assert service.stats()["requests_served"] == 1


async def test_oversize_responses_are_refused_with_clear_errors() -> None:
    async with local_and_remote(["--max-response", str(3 * MB)]) as (service, _):
        remote = peer_id_for(0)
        # Over the requester's cap: refused as soon as the length prefix arrives.
        with pytest.raises(ResponseTooLarge, match=r"2000000 bytes, over the cap of 1000000"):
            await service.request(remote, SYNC, b"bytes:%d" % (2 * MB), max_response_bytes=MB)
        # Over the responder's cap: the responder answers with an error status instead.
        with pytest.raises(RemoteError, match="exceeds the responder's cap") as info:
            await service.request(remote, SYNC, b"bytes:%d" % (4 * MB))
        assert info.value.status == Status.RESPONSE_TOO_LARGE
        # The connection survives both refusals.
        assert await service.request(remote, SYNC, b"echo:still fine") == b"still fine"


async def test_timeouts_and_remote_errors_surface_as_p2p_errors() -> None:
    async with local_and_remote([]) as (service, _):
        remote = peer_id_for(0)
        started = trio.current_time()
        with pytest.raises(RequestTimeout, match="timed out after 0.5 s"):
            await service.request(remote, SYNC, b"sleep:5", timeout=0.5)
        assert trio.current_time() - started < 2.5
        with pytest.raises(RemoteError, match="asked to fail") as rejected:
            await service.request(remote, SYNC, b"fail")
        assert rejected.value.status == Status.REJECTED
        with pytest.raises(RemoteError, match="internal error") as crashed:
            await service.request(remote, SYNC, b"crash")
        assert crashed.value.status == Status.INTERNAL_ERROR
        with pytest.raises(ProtocolNotSupported):
            await service.request(remote, "/attrchain/p2ptest/nothing/1", b"x")
        with pytest.raises(PeerUnknown):
            await service.request(peer_id_for(77), SYNC, b"echo:x")
        with pytest.raises(RequestTooLarge):
            await service.request(remote, SYNC, b"x" * (2 * 1024 * 1024))
        with pytest.raises(MessageTooLarge, match="900000"):
            await service.publish(TOPICS["txs"], b"x" * 900_000)
        with pytest.raises(UnknownTopic):
            await service.publish("attrchain/other/txs/1", b"x")
        # After all of that the peer still answers.
        assert await service.request(remote, SYNC, b"echo:ok") == b"ok"


async def test_a_full_inbox_counts_and_drops_without_blocking_the_service() -> None:
    async with local_and_remote([], inbox_size=5) as (service, group):
        txs = TOPICS["txs"]
        await wait_for(lambda: peer_id_for(0) in service.topic_peers(txs), 20, "remote subscribed")
        await group.peers[0].send({"cmd": "publish", "topic": "txs", "count": 20,
                                   "prefix": "flood", "size": 50, "rate": 100, "burst": 5})
        # Nobody reads the inbox: 5 fit, the other 15 are counted as dropped.
        await wait_for(
            lambda: service.topic_stats(txs)["delivered"] + service.topic_stats(txs)["inbox_drops"]
            == 20,
            30,
            "all 20 messages delivered or dropped",
        )
        assert service.topic_stats(txs)["delivered"] == 5
        assert service.topic_stats(txs)["inbox_drops"] == 15
        inbox = service.subscribe(txs)
        first = [inbox.receive_nowait() for _ in range(5)]
        assert all(r.sender == peer_id_for(0) for r in first)
        # Delivery order is not guaranteed (py-libp2p validates each message in its own task).
        assert len({r.data for r in first}) == 5
        assert {r.data[:12] for r in first} <= {b"flood-%06d" % i for i in range(20)}
        # The service kept serving while its inbox was full.
        assert await service.request(peer_id_for(0), SYNC, b"echo:alive") == b"alive"
