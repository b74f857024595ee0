"""Yamux receive credit returned in half-window steps (go-yamux's rule), not after every read.

py-libp2p 0.8.1 (``YamuxStream._auto_tune_and_send_window_update``) sends a WINDOW_UPDATE frame
after nearly every read of a stream that has consumed less than half its window ("partial
slack"): each small message received (a consensus vote, a status answer) costs one more Yamux
frame written back, through Noise, on the event loop. Profiled on an idle 16-validator devnet
(bench/devnet_load.py --sweep --validators 16 --loads '' --profile-node 1) those updates were
~12 % of a node's CPU.

go-yamux (and the Yamux spec's intent) returns credit only once at least half the window has been
consumed; the sender still holds the other half, so it is never starved, and large transfers
(block bodies, snapshots) still get their updates every half window. ``install()`` puts that rule
in front of py-libp2p's method: below the threshold nothing is sent; at or above it py-libp2p's
own grow/auto-tune path runs unchanged. Wire-compatible with every Yamux peer: how often credit is
returned is the receiver's choice.
"""

from __future__ import annotations

from typing import Any

from libp2p.stream_muxer.yamux.yamux import YamuxStream

_original = YamuxStream._auto_tune_and_send_window_update
_installed = False


async def _half_window_credit(self: Any, *, bytes_read: int = 0) -> None:
    buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
    consumed = self.target_recv_window - (self.recv_window + buffered)
    if consumed < self._grow_threshold():
        return  # the sender still holds more than half the window of credit
    await _original(self, bytes_read=0)  # py-libp2p's grow path: credit back up to the target


def install() -> None:
    """Idempotent; called when the p2p service is created."""
    global _installed
    if not _installed:
        YamuxStream._auto_tune_and_send_window_update = _half_window_credit  # type: ignore[method-assign]
        _installed = True
