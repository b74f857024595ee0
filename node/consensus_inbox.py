"""The consensus driver's queues: its own events never wait behind peer traffic, and everything a
peer can fill is bounded.

- ``internal``: events the driver makes itself (timeouts, the end of the commit wait, its own
  signed votes and proposals, a built block). Unbounded, but self-limited: each comes from a timer
  or a step of the machine, a handful per round. Always served first, never dropped.
- ``peer``: authenticated peer messages (signature checked, signer in the set of that height)
  ready for the machine. Bounded in count; when full the oldest is dropped and counted.
- ``replay``: buffered messages of a height that has just started, handed back to the
  authentication path one per turn of the loop (the loop yields between them).
- ``FutureBuffer``: raw messages for heights not started yet (or arriving while the driver is
  paused for block sync), bounded in bytes overall and per originating peer.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

import trio

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawMessage:
    kind: str  # "proposal" or "vote"
    data: bytes
    sender: str  # gossip originator; "" when unknown


class FutureBuffer:
    """Raw consensus messages by height, at most ``max_bytes`` in all and ``max_peer_bytes`` per
    sender. A sender over its share loses its new message; when the whole buffer is full, the
    message for the farthest height goes first (the nearest heights are needed soonest)."""

    def __init__(self, max_bytes: int, max_peer_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_peer_bytes = max_peer_bytes
        self.by_height: dict[int, deque[RawMessage]] = {}
        self.bytes = 0
        self.peer_bytes: dict[str, int] = {}
        self.dropped = 0

    def __len__(self) -> int:
        return sum(len(q) for q in self.by_height.values())

    def add(self, height: int, msg: RawMessage) -> bool:
        size = len(msg.data)
        if size > self.max_peer_bytes or self.peer_bytes.get(msg.sender, 0) + size > self.max_peer_bytes:
            self.dropped += 1
            return False
        while self.bytes + size > self.max_bytes:
            far = max(self.by_height)
            if far < height:
                self.dropped += 1
                return False
            self._forget(self.by_height[far].pop())
            if not self.by_height[far]:
                del self.by_height[far]
            self.dropped += 1
        self.by_height.setdefault(height, deque()).append(msg)
        self.bytes += size
        self.peer_bytes[msg.sender] = self.peer_bytes.get(msg.sender, 0) + size
        return True

    def take(self, height: int) -> list[RawMessage]:
        """Remove and return the messages of ``height``; those of lower heights are discarded."""
        out: list[RawMessage] = []
        for h in sorted(self.by_height):
            if h > height:
                break
            q = self.by_height.pop(h)
            for msg in q:
                self._forget(msg)
            if h == height:
                out.extend(q)
        return out

    def _forget(self, msg: RawMessage) -> None:
        size = len(msg.data)
        self.bytes -= size
        left = self.peer_bytes[msg.sender] - size
        if left:
            self.peer_bytes[msg.sender] = left
        else:
            del self.peer_bytes[msg.sender]


class DriverInbox:
    """The three queues of the driver's one machine task, served internal > replay > peer."""

    def __init__(self, max_peer_events: int) -> None:
        self.internal: deque[Any] = deque()
        self.replay: deque[RawMessage] = deque()
        self.peer: deque[Any] = deque()
        self.max_peer_events = max_peer_events
        self.peer_dropped = 0
        self._wakeup = trio.Event()

    def post_internal(self, event: Any) -> None:
        self.internal.append(event)
        self._wakeup.set()

    def post_peer(self, event: Any) -> None:
        if len(self.peer) >= self.max_peer_events:
            self.peer.popleft()
            self.peer_dropped += 1
            if self.peer_dropped in (1, 10, 100) or self.peer_dropped % 1000 == 0:
                log.warning("consensus peer queue full (%d events); %d peer events dropped so far",
                            self.max_peer_events, self.peer_dropped)
        self.peer.append(event)
        self._wakeup.set()

    def post_replay(self, messages: list[RawMessage]) -> None:
        self.replay.extend(messages)
        if messages:
            self._wakeup.set()

    async def next(self) -> tuple[str, Any]:
        """The next item as ("internal"|"replay"|"peer", item); waits when all queues are empty."""
        while True:
            if self.internal:
                return "internal", self.internal.popleft()
            if self.replay:
                return "replay", self.replay.popleft()
            if self.peer:
                return "peer", self.peer.popleft()
            self._wakeup = trio.Event()
            await self._wakeup.wait()
