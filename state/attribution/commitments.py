"""Commit–reveal for contributions (docs/attribution.md, "Commit and reveal").

A contributor first sends ``commit_contribution(commitment)`` with

    commitment = sha256(msgpack(["attrchain/contribution-commit/v1", sender, datanet, content_hash, salt]))

and then, in a LATER block and at most ``reveal_window_blocks`` after it, ``contribute(datanet,
content, salt, bond)``. The commitment's place, (height, index in its block), orders conflicting
contributions: among duplicates the earliest commitment wins, whatever the fees and whatever order
the reveals land in. A copier who reads a reveal in the mempool can only commit after it, so it
always loses; the reveal must come in a later block than its commitment so that the copier cannot
put a commitment ahead of the author's in the same block either.
"""

from __future__ import annotations

from state import keys
from state.attribution.records import Commitment
from state.codec import pack
from state.context import BlockContext
from state.crypto import sha256, to_hex
from state.errors import require
from state.store import StateView
from state.tx import CommitContribution, Tx

COMMIT_DOMAIN = "attrchain/contribution-commit/v1"


def contribution_commitment(sender: bytes, datanet: bytes, content_hash: bytes, salt: bytes) -> bytes:
    """The commitment binding an author (address) to a content in a datanet."""
    return sha256(pack([COMMIT_DOMAIN, sender, datanet, content_hash, salt]))


def process_commit_contribution(view: StateView, tx: Tx, ctx: BlockContext) -> None:
    """commit_contribution: record the commitment and its place in the chain."""
    body: CommitContribution = tx.body
    k = keys.commitment_key(body.commitment)
    require(view.get(k) is None, "commitment_exists", f"commitment {to_hex(body.commitment)} is already recorded")
    view.put_obj(k, Commitment(tx.sender, ctx.height, ctx.tx_index))


def consume_commitment(view: StateView, sender: bytes, datanet: bytes, content_hash: bytes, salt: bytes,
                       ctx: BlockContext) -> tuple[int, int]:
    """Check the reveal against its commitment and delete it; returns (commit height, commit index)."""
    commitment = contribution_commitment(sender, datanet, content_hash, salt)
    k = keys.commitment_key(commitment)
    c = view.get_obj(k, Commitment)
    require(c is not None, "no_commitment",
            f"no commitment {to_hex(commitment)} for this sender, datanet, content and salt")
    assert c is not None
    require(c.height < ctx.height, "reveal_too_early", "reveal in a later block than the commitment")
    window = ctx.params.attribution.reveal_window_blocks
    require(ctx.height <= c.height + window, "commitment_expired",
            f"the commitment of height {c.height} expired after {window} blocks")
    view.delete(k)
    return c.height, c.index
