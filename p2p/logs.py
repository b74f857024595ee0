"""Route py-libp2p's log records into the project's logging.

Unless ``LIBP2P_DEBUG`` is set, py-libp2p leaves its ``libp2p`` logger at WARNING with no
handler and ``propagate = False``, so Python's last-resort handler prints its warnings raw on
stderr, outside the node's log format and destination. Forwarding them to ``p2p.libp2p`` lets
the node's logging configuration decide. With ``LIBP2P_DEBUG`` set, libp2p's own handlers stay.
"""

from __future__ import annotations

import logging
import os

FORWARD_TO = "p2p.libp2p"

# Expected events that py-libp2p logs as errors: a dial to a peer that is down (our redial loop
# retries every second, so these would flood the log), and a stream a peer refuses (py-libp2p logs
# 7 lines for it; the caller gets ProtocolNotSupported and logs one line itself). Forwarded at DEBUG.
EXPECTED_FAILURES = (
    "Failed to open TCP stream",
    "Failed to open stream to peer",
    # a remote peer that drops or refuses the connection (a banned peer redialling, a peer that
    # went away mid-stream): one per attempt, at the remote's pace, so not ours to log loudly
    "[ADDCONN_DENY]",
    "MultiselectClient handshake",
    "Error in handle_incoming for peer",
    "Incomplete read for data on stream",
    "Yamux connection closed unexpectedly",
    "GRAFT flood detected",
)


# Expected only while the node stops: a peer's new connection arrives after the swarm stopped
# (py-libp2p logs it as a WARNING with the whole traceback). Forwarded at DEBUG.
STOPPING = "Cannot schedule task after service has stopped"


class _Forward(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        expected = isinstance(record.msg, str) and record.msg.startswith(EXPECTED_FAILURES)
        try:
            text = record.getMessage()
        except (TypeError, ValueError):  # a libp2p format string that does not match its args
            text = str(record.msg)
        if "\n" in text or record.exc_info:
            # one line per event: py-libp2p puts tracebacks into some messages ([ADDCONN_FAIL])
            first = text.split("\n", 1)[0]
            if record.exc_info and record.exc_info[1] is not None:
                first = f"{first} ({record.exc_info[1]!r})"
            record = logging.makeLogRecord({**record.__dict__, "msg": first, "args": None,
                                            "exc_info": None, "exc_text": None})
            expected = expected or STOPPING in first
        if expected:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        target = logging.getLogger(FORWARD_TO)
        if target.isEnabledFor(record.levelno):
            target.handle(record)


def route_libp2p_logs() -> None:
    """Idempotent: make the forwarding handler libp2p's only handler, unless ``LIBP2P_DEBUG``
    asks for libp2p's own logging. Handlers someone else attached to the ``libp2p`` logger (a
    test runner's capture did) would otherwise see its records raw, errors above included."""
    if os.environ.get("LIBP2P_DEBUG"):
        return
    libp2p_logger = logging.getLogger("libp2p")
    if [type(h) for h in libp2p_logger.handlers] != [_Forward]:
        libp2p_logger.handlers = [_Forward()]
