"""Exceptions of the networking layer: one type per failure class, all under ``P2PError``."""

from __future__ import annotations


class P2PError(Exception):
    """Base class of every error the p2p package raises to its callers."""


class NotRunning(P2PError):
    """The service is not running (``run()`` not started yet, or already stopped)."""


class MessageTooLarge(P2PError):
    """A gossip payload is at or over the publish size cap; it was not sent."""


class UnknownTopic(P2PError):
    """A topic that the service was not configured with."""


class PeerUnknown(P2PError):
    """The peer is neither connected nor in the service's address book."""


class PeerBanned(P2PError):
    """The peer is banned for misbehaving (p2p/scoring.py); nothing is sent to it until the ban ends."""


class RequestTooLarge(P2PError):
    """A request payload exceeds the request size cap; it was not sent."""


class ResponseTooLarge(P2PError):
    """The announced response exceeds the caller's response size cap; the stream was reset."""


class RequestTimeout(P2PError):
    """A request did not complete (dial, send, handler, full response) within its timeout."""


class TransportError(P2PError):
    """The stream or connection failed mid-request (peer went away, reset, malformed frame)."""


class ProtocolNotSupported(P2PError):
    """The remote peer does not serve the requested protocol."""


class RemoteError(P2PError):
    """The remote peer answered with an error status instead of a response."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"remote error {status}: {reason}")
        self.status = status
        self.reason = reason


class RequestRejected(P2PError):
    """Raised by a request handler to answer with a clear error instead of a response.

    The reason (truncated) is sent to the requester, which sees it as ``RemoteError``.
    """
