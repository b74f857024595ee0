"""In-process event bus: committed blocks and transactions, for WebSocket subscribers and waiters.

Publishers never block: each subscriber has a bounded queue; a subscriber that falls behind is
dropped (its channel closes) rather than slowing the node, and it is told why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import trio

log = logging.getLogger(__name__)

NEW_BLOCK = "new_block"
TX = "tx"
EVENT_KINDS = (NEW_BLOCK, TX)


@dataclass
class Subscription:
    kinds: frozenset[str]
    send: trio.MemorySendChannel[tuple[str, Any]]
    receive: trio.MemoryReceiveChannel[tuple[str, Any]]
    overflowed: bool = False


@dataclass
class EventBus:
    """Fan-out of (kind, payload) events to subscribers; payloads are JSON-able dicts."""

    queue_size: int = 1024
    _subs: list[Subscription] = field(default_factory=list)
    _tx_waiters: dict[bytes, list[trio.Event]] = field(default_factory=dict)
    dropped_subscribers: int = 0  # fell behind (node/metrics.py DROP_SITES `subscribers`)

    def subscribe(self, kinds: frozenset[str] | set[str]) -> Subscription:
        send, receive = trio.open_memory_channel[tuple[str, Any]](self.queue_size)
        sub = Subscription(frozenset(kinds), send, receive)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        sub.send.close()

    def publish(self, kind: str, payload: Any) -> None:
        for sub in list(self._subs):
            if kind not in sub.kinds:
                continue
            try:
                sub.send.send_nowait((kind, payload))
            except trio.WouldBlock:
                log.warning("event subscriber fell %d events behind; dropping it", self.queue_size)
                sub.overflowed = True
                self.dropped_subscribers += 1
                self.unsubscribe(sub)
            except trio.BrokenResourceError:
                self.unsubscribe(sub)

    def tx_committed(self, tx_hash: bytes) -> None:
        for ev in self._tx_waiters.pop(tx_hash, []):
            ev.set()

    def tx_waiter(self, tx_hash: bytes) -> trio.Event:
        ev = trio.Event()
        self._tx_waiters.setdefault(tx_hash, []).append(ev)
        return ev

    def drop_waiter(self, tx_hash: bytes, ev: trio.Event) -> None:
        waiters = self._tx_waiters.get(tx_hash)
        if waiters and ev in waiters:
            waiters.remove(ev)
            if not waiters:
                del self._tx_waiters[tx_hash]

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
