"""Failure classes of the state transition. Each rejection carries a stable reason code."""

from __future__ import annotations


class TxRejected(Exception):
    """A transaction broke a rule; ``reason`` is a stable snake_case code, ``message`` explains it.

    A rejected transaction changes nothing.
    """

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message or reason


class GenesisError(ValueError):
    """A genesis document that is malformed or inconsistent."""


class InvalidBlock(Exception):
    """A block that no honest validator may accept (bad header, commit, limits or evidence)."""


def require(condition: bool, reason: str, message: str = "") -> None:
    """Reject the transaction with ``reason`` unless ``condition`` holds."""
    if not condition:
        raise TxRejected(reason, message)
