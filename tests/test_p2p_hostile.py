"""Hostile peers at the libp2p level: a P2PService in the test process against a real peer process.

- An undecodable pubsub frame used to escape py-libp2p's stream handler and kill the receiving
  process (found by devnet/byzantine.py): now the stream is reset, the sender scored and
  reconnected, and the receiver keeps serving.
- A banned peer is disconnected, its requests are refused, requests to it are not sent, and it
  is listed with its reason in ``peer_report`` (what `net_info` shows).
"""

from __future__ import annotations

import logging

import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11

from p2p import Offence, PeerBanned, RemoteError
from p2p._testpeer import SYNC, TOPICS, peer_id_for
from p2p.framing import encode_uvarint
from test_p2p_reqresp import LOCAL, local_and_remote, wait_for

pytestmark = pytest.mark.multinode


async def test_an_undecodable_pubsub_frame_does_not_kill_the_receiver() -> None:
    async with local_and_remote([]) as (service, group):
        remote = peer_id_for(0)
        assert await service.request(remote, SYNC, b"echo:before") == b"before"
        host = service._host  # noqa: SLF001 - a raw stream is the attack
        assert host is not None
        stream = await host.new_stream(ID.from_base58(remote), [TProtocol(PROTOCOL_ID_V11)])
        garbage = b"\xff" * 40  # not a protobuf RPC
        await stream.write(encode_uvarint(len(garbage)) + garbage)
        peer = group.peers[0]
        # it resets our stream and drops the connection; the redial brings us back
        await wait_for(lambda: peer.proc is not None and peer.proc.returncode is not None
                       or b"pubsub stream from" in peer.stderr, 15, "the peer to notice the bad frame")
        assert peer.proc is not None and peer.proc.returncode is None, peer.stderr.decode()[-2000:]
        with trio.fail_after(20):
            while True:
                try:
                    assert await service.request(remote, SYNC, b"echo:after", timeout=5) == b"after"
                    break
                except (RemoteError, PeerBanned):
                    raise
                except Exception:  # noqa: BLE001 - reconnecting after the drop
                    await trio.sleep(0.1)
        assert b"Traceback" not in peer.stderr


async def test_a_banned_peer_is_cut_off_and_listed_with_its_reason() -> None:
    async with local_and_remote([]) as (service, group):
        remote = peer_id_for(0)
        assert await service.request(remote, SYNC, b"echo:hi") == b"hi"
        service.report_peer(remote, Offence.LIED_HEIGHT, "claimed 1000000")
        await wait_for(lambda: remote not in service.connected_peers(), 10, "the banned peer to be disconnected")
        with pytest.raises(PeerBanned):
            await service.request(remote, SYNC, b"echo:no")
        event = await group.peers[0].request(1, peer=LOCAL, hex=b"echo:let me in".hex(), timeout=10)
        assert not event["ok"], event  # refused: "banned", or the connection is dropped on arrival
        report = service.peer_report()
        banned = report["banned"]
        assert isinstance(banned, list) and [b["id"] for b in banned] == [remote]
        assert banned[0]["ban_reason"] == "lied about its height: claimed 1000000"
        assert banned[0]["offences"] == {"LIED_HEIGHT": 1}
        assert service.stats()["banned_peers"] == 1
        assert TOPICS["txs"] in service.topics


async def test_a_refused_protocol_is_one_exception_not_seven_error_lines(caplog: pytest.LogCaptureFixture) -> None:
    """py-libp2p logs a 7-line ERROR for every stream a peer refuses; a node asking a peer that
    does not speak block sync saw it every 2 s (issue 16). It is forwarded at DEBUG now: the
    caller gets ProtocolNotSupported and logs one line itself (node/sync.py, once per peer)."""
    from p2p import ProtocolNotSupported

    async with local_and_remote([]) as (service, _):
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                with pytest.raises(ProtocolNotSupported):
                    await service.request(peer_id_for(0), "/attrchain/p2ptest/not-spoken/1", b"x", timeout=5)
        loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert not loud, [r.getMessage()[:200] for r in loud]


def test_libp2p_records_reach_the_node_log_as_one_line(caplog: pytest.LogCaptureFixture) -> None:
    """py-libp2p puts whole tracebacks into some warnings: every node stopping while a peer
    reconnected logged "[ADDCONN_FAIL] ... LifecycleError(...)" and ~8 lines of traceback. A
    forwarded record is one line; that shutdown race goes to DEBUG; other warnings stay WARNING."""
    from p2p.logs import route_libp2p_logs

    route_libp2p_logs()
    swarm = logging.getLogger("libp2p.network.swarm")
    tb = 'Traceback (most recent call last):\n  File "swarm.py", line 2617, in add_conn\nLifecycleError: x'
    with caplog.at_level(logging.INFO, logger="p2p.libp2p"):
        swarm.warning("[ADDCONN_FAIL] add_conn failed for peer %s: %r\n%s", "12D3KooWX",
                      RuntimeError("Cannot schedule task after service has stopped"), tb)
        swarm.warning("[ADDCONN_FAIL] add_conn failed for peer %s: %r\n%s", "12D3KooWY", RuntimeError("reset"), tb)
        try:
            raise ValueError("bad frame")
        except ValueError:
            swarm.warning("stream handler failed", exc_info=True)
    forwarded = [r for r in caplog.records if r.name.startswith("libp2p")]
    assert [r.levelname for r in forwarded] == ["WARNING", "WARNING"], [r.getMessage()[:80] for r in forwarded]
    assert forwarded[0].getMessage() == "[ADDCONN_FAIL] add_conn failed for peer 12D3KooWY: RuntimeError('reset')"
    assert forwarded[1].getMessage() == "stream handler failed (ValueError('bad frame'))"
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in forwarded)
