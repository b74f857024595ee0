"""Peer accountability: a score per peer, lowered by the offences the node reports, and bans.

Every peer starts at 0. Each reported offence subtracts its penalty; the score recovers by
``recovery_per_s`` points per second back towards 0 (computed lazily, no timer). A peer whose score
falls to ``-ban_threshold`` or below is banned for ``ban_s`` seconds: the service disconnects it,
drops the gossip it originates, refuses its requests and does not dial it until the ban ends. The
ban is logged as ONE warning line naming the peer and the offence that crossed the line; the
offences below the line are logged at DEBUG (a hostile peer must not be able to flood the log).

Only offences an honest peer never commits are reported (docs/security.md, "How peers are
scored"): a bad signature, a proposal from a non-validator, a block that does not verify, a sync
peer that serves nothing of the height it claims, a request that times out. Penalties are sized so
that one provable lie bans at once and a merely slow peer needs several strikes.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


class Offence(enum.Enum):
    """What a peer did wrong, and the penalty (score points) it costs."""

    MALFORMED = ("malformed message", 20)
    OVERSIZED = ("oversized message", 20)
    BAD_SIGNATURE = ("bad signature", 50)
    NOT_A_VALIDATOR = ("consensus message from a non-validator", 50)
    BOGUS_PROPOSAL = ("bogus proposal", 50)
    INVALID_BLOCK = ("block that does not verify", 100)
    INVALID_EVIDENCE = ("invalid evidence", 20)
    LIED_HEIGHT = ("lied about its height", 100)
    BAD_SYNC_ANSWER = ("sync answer that does not verify", 100)
    STALLED_REQUEST = ("stalled a request", 34)
    # light: an honest validator whose node is behind in the validator set can be refused once in
    # a while (it retries every 10 s); a non-validator opening streams in a loop is banned soon
    NOT_A_VALIDATOR_STREAM = ("direct consensus stream from a non-validator", 10)

    @property
    def label(self) -> str:
        return self.value[0]

    @property
    def penalty(self) -> int:
        return self.value[1]


@dataclass(frozen=True)
class ScoreSettings:
    """Thresholds of peer scoring (config keys in docs/security.md)."""

    ban_threshold: int = 100
    ban_s: float = 300.0
    recovery_per_s: float = 1.0
    # peers remembered with a score; the least recently reported beyond this are forgotten
    max_tracked: int = 4096


@dataclass
class PeerRecord:
    score: float = 0.0
    updated: float = 0.0
    offences: dict[str, int] = field(default_factory=dict)
    banned_until: float = 0.0
    ban_reason: str = ""
    bans: int = 0


class PeerScores:
    """Scores and bans of peers, by base58 peer id. Pure bookkeeping: the service acts on bans."""

    def __init__(
        self, settings: ScoreSettings = ScoreSettings(), clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._peers: OrderedDict[str, PeerRecord] = OrderedDict()

    def _current(self, peer_id: str) -> PeerRecord:
        record = self._peers.get(peer_id)
        if record is None:
            record = self._peers[peer_id] = PeerRecord(updated=self._clock())
        self._peers.move_to_end(peer_id)  # most recently touched last (eviction order)
        now = self._clock()
        record.score = min(0.0, record.score + (now - record.updated) * self.settings.recovery_per_s)
        record.updated = now
        while len(self._peers) > self.settings.max_tracked:
            oldest = next(iter(self._peers))
            if self._peers[oldest].banned_until > now:
                # never forget an active ban; move it to the back and stop evicting this round
                self._peers.move_to_end(oldest)
                break
            self._peers.popitem(last=False)
        return record

    def report(self, peer_id: str, offence: Offence, detail: str = "") -> bool:
        """Record one offence; True when it makes the peer banned now (the caller disconnects)."""
        record = self._current(peer_id)
        record.offences[offence.name] = record.offences.get(offence.name, 0) + 1
        if self.is_banned(peer_id):
            return False
        record.score -= offence.penalty
        reason = offence.label + (f": {detail}" if detail else "")
        if record.score > -self.settings.ban_threshold:
            logger.debug("peer %s: %s (score %.0f)", peer_id, reason, record.score)
            return False
        record.banned_until = self._clock() + self.settings.ban_s
        record.ban_reason = reason[:200]
        record.bans += 1
        record.score = 0.0  # a fresh start once the ban is over
        logger.warning("banning peer %s for %.0f s: %s", peer_id, self.settings.ban_s, record.ban_reason)
        return True

    def is_banned(self, peer_id: str) -> bool:
        record = self._peers.get(peer_id)
        return record is not None and record.banned_until > self._clock()

    def ban_remaining(self, peer_id: str) -> float:
        record = self._peers.get(peer_id)
        return max(0.0, record.banned_until - self._clock()) if record else 0.0

    def banned(self) -> list[str]:
        now = self._clock()
        return sorted(p for p, r in self._peers.items() if r.banned_until > now)

    def score(self, peer_id: str) -> int:
        if peer_id not in self._peers:
            return 0
        return round(self._current(peer_id).score)

    def describe(self, peer_id: str) -> dict[str, object]:
        """What ``net_info`` shows of one peer: score, offences counted, ban state."""
        if peer_id not in self._peers:
            return {"score": 0, "offences": {}, "banned": False}
        record = self._current(peer_id)
        out: dict[str, object] = {
            "score": round(record.score),
            "offences": dict(sorted(record.offences.items())),
            "banned": self.is_banned(peer_id),
        }
        if record.bans:
            out["bans"] = record.bans
            out["ban_reason"] = record.ban_reason
        if self.is_banned(peer_id):
            out["ban_remaining_s"] = round(self.ban_remaining(peer_id), 1)
        return out

    def tracked(self) -> list[str]:
        return sorted(self._peers)
