"""The JSON payloads of WebSocket events, and the one call the node makes after each commit.

new_block: {"height", "hash", "header" (header JSON), "num_txs"}
tx:        {"hash", "height", "index", "code", "reason"}   (code 0 = applied, else failed: reason)

The node calls ``publish_committed_block`` once per committed block, after the write batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from node.events import NEW_BLOCK, TX, EventBus
from node.rpc.encode import header_json
from state.block import Block
from state.crypto import to_hex

NEW_BLOCK_FIELDS: tuple[tuple[str, str], ...] = (
    ("height", "integer: the committed height"),
    ("hash", "0x hex: the block hash (hash of the header)"),
    ("header", "object: the header, as in `block`"),
    ("num_txs", "integer: transactions in the block"),
)
TX_FIELDS: tuple[tuple[str, str], ...] = (
    ("hash", "0x hex: the transaction hash"),
    ("height", "integer: the block that holds it"),
    ("index", "integer: its position in that block"),
    ("code", "integer: 0 applied, 1 failed (a failed transaction is still in the block and paid no state change)"),
    ("reason", 'string: the failure reason code, "" when applied'),
)


def new_block_event(block: Block) -> dict[str, Any]:
    h = block.header
    return {"height": h.height, "hash": to_hex(h.hash()), "header": header_json(h), "num_txs": len(block.txs)}


def tx_event(tx_hash: bytes, height: int, index: int, code: int, reason: str) -> dict[str, Any]:
    return {"hash": to_hex(tx_hash), "height": height, "index": index, "code": code, "reason": reason}


def publish_committed_block(
    bus: EventBus, block: Block, tx_hashes: Sequence[bytes], tx_results: Sequence[Any]
) -> None:
    """Publish new_block, then one tx event per transaction in block order, then wake waiters.

    ``tx_results`` items have ``code`` and ``reason`` (state.transition.TxResult).
    """
    height = block.header.height
    bus.publish(NEW_BLOCK, new_block_event(block))
    for i, (tx_hash, result) in enumerate(zip(tx_hashes, tx_results)):
        bus.publish(TX, tx_event(tx_hash, height, i, result.code, result.reason))
    for tx_hash in tx_hashes:
        bus.tx_committed(tx_hash)
