"""The driver's peer-fed buffers are bounded in bytes and per peer, and its own events are served
first and never dropped (node/consensus_inbox.py; issue 12, acceptance 2)."""

from __future__ import annotations

import trio

from node.consensus_inbox import DriverInbox, FutureBuffer, RawMessage


def msg(sender: str, size: int, tag: int = 0) -> RawMessage:
    return RawMessage("vote", bytes([tag]) * size, sender)


def test_one_peer_cannot_take_more_than_its_share() -> None:
    buf = FutureBuffer(max_bytes=10_000, max_peer_bytes=3_000)
    accepted = sum(buf.add(5, msg("hostile", 1_000, i)) for i in range(100))
    assert accepted == 3 and buf.bytes == 3_000 and buf.dropped == 97
    assert buf.add(5, msg("honest", 1_000))  # others still get in
    assert buf.peer_bytes == {"hostile": 3_000, "honest": 1_000}


def test_a_full_buffer_gives_up_the_farthest_height_first() -> None:
    buf = FutureBuffer(max_bytes=3_000, max_peer_bytes=3_000)
    assert buf.add(7, msg("a", 1_000)) and buf.add(6, msg("b", 1_000)) and buf.add(6, msg("c", 1_000))
    assert buf.add(5, msg("d", 1_000))  # nearer than 7: the message for height 7 goes
    assert sorted(buf.by_height) == [5, 6] and buf.bytes == 3_000 and "a" not in buf.peer_bytes
    assert not buf.add(9, msg("e", 1_000))  # farther than everything held: refused
    assert buf.bytes == 3_000


def test_take_returns_one_height_and_forgets_older_ones() -> None:
    buf = FutureBuffer(max_bytes=10_000, max_peer_bytes=10_000)
    for h in (4, 5, 5, 6):
        buf.add(h, msg("p", 100, h))
    got = buf.take(5)
    assert [m.data[0] for m in got] == [5, 5]
    assert list(buf.by_height) == [6] and buf.bytes == 100 and buf.peer_bytes == {"p": 100}


async def test_own_events_are_served_before_any_peer_traffic_and_never_dropped() -> None:
    inbox = DriverInbox(max_peer_events=100)
    for i in range(1_000):
        inbox.post_peer(("peer", i))
    inbox.post_replay([msg("p", 1)])
    inbox.post_internal("timeout")
    assert len(inbox.peer) == 100 and inbox.peer_dropped == 900
    order = [await inbox.next() for _ in range(3)]
    assert order[0] == ("internal", "timeout")
    assert order[1][0] == "replay"
    assert order[2] == ("peer", ("peer", 900))  # the oldest were dropped, not the newest

    async def later() -> None:
        await trio.sleep(0)
        inbox.post_internal("commit wait over")

    inbox.peer.clear()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(later)
        assert await inbox.next() == ("internal", "commit wait over")
