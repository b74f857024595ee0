"""A topic's inbox: gossip messages waiting for the node, bounded in count, bytes and per peer.

Three caps, each checked before a message is queued: the message count, the bytes of all queued
payloads, and the bytes queued from one originating peer. The per-peer share keeps one flooding
peer from filling the inbox and pushing out everyone else's messages; the byte cap bounds memory
whatever the message sizes (a count cap alone let 1,024 messages of ~900 KB each hold ~900 MB).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

import trio


class Received(NamedTuple):
    """One gossip message handed to the node: the originating peer id and the payload."""

    sender: str
    data: bytes


@dataclass(frozen=True)
class InboxSettings:
    """Caps of one topic's inbox (config keys ``p2p.inbox_*``, docs/security.md)."""

    max_messages: int = 1024
    max_bytes: int = 32 * 1024 * 1024
    max_peer_bytes: int = 8 * 1024 * 1024


class Refusal(enum.Enum):
    FULL = "inbox full"
    BYTES = "inbox byte cap reached"
    PEER_SHARE = "peer's share of the inbox used up"


class Inbox:
    """One consumer reads with ``async for``; the producer calls ``offer`` (never blocks)."""

    def __init__(self, settings: InboxSettings) -> None:
        self.settings = settings
        self._send, self._receive = trio.open_memory_channel[Received](settings.max_messages)
        self.bytes = 0
        self._peer_bytes: dict[str, int] = {}

    def __len__(self) -> int:
        return int(self._send.statistics().current_buffer_used)

    def peer_bytes(self, peer_id: str) -> int:
        return self._peer_bytes.get(peer_id, 0)

    def offer(self, item: Received) -> Refusal | None:
        """Queue ``item`` unless a cap says no; returns why not, or None when queued."""
        size = len(item.data)
        if self.bytes + size > self.settings.max_bytes:
            return Refusal.BYTES
        held = self._peer_bytes.get(item.sender, 0)
        if held + size > self.settings.max_peer_bytes:
            return Refusal.PEER_SHARE
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            return Refusal.FULL
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return Refusal.FULL
        self.bytes += size
        self._peer_bytes[item.sender] = held + size
        return None

    def _taken(self, item: Received) -> Received:
        self.bytes -= len(item.data)
        left = self._peer_bytes[item.sender] - len(item.data)
        if left:
            self._peer_bytes[item.sender] = left
        else:
            del self._peer_bytes[item.sender]
        return item

    async def receive(self) -> Received:
        return self._taken(await self._receive.receive())

    def receive_nowait(self) -> Received:
        return self._taken(self._receive.receive_nowait())

    def __aiter__(self) -> "Inbox":
        return self

    async def __anext__(self) -> Received:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self._send.close()
