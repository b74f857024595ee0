"""Attribution receipts: one per inference in state, plus a LOCAL index by recipient.

``keys.receipt_key(inference id)`` holds a `Receipt`: every non-zero payout as (recipient, role,
amount) — these sum exactly to the payment — and every matched contribution as (contribution,
owner at the time, score, amount, spans).

The local index ``keys.recipient_receipt_key(recipient, height, tx index, inference id)`` (value
empty, not in the state root) lists, for each recipient, the inferences that paid it. It is
written for: every payout recipient (an account address for owners, the fee collector and datanet
owners; a contribution id for a matched payout; a datanet id for a datanet-pool deposit), and the
owner address of every matched contribution, so a contributor finds the outputs that paid them
under their own address as well as under each contribution.
"""

from __future__ import annotations

from state import keys
from state.attribution.records import Receipt
from state.store import StateView
from state.context import BlockContext

Entry = tuple[bytes, int, int]
Match = tuple[bytes, bytes, int, int, tuple[tuple[int, int, int, int, int], ...]]


def receipt_recipients(receipt: Receipt) -> list[bytes]:
    """Every address or id the recipient index lists this receipt under, sorted, distinct."""
    found = {recipient for recipient, _, _ in receipt.entries}
    found.update(m[1] for m in receipt.matched)
    return sorted(found)


def write_receipt(view: StateView, inference_id: bytes, receipt: Receipt, ctx: BlockContext) -> None:
    view.put_obj(keys.receipt_key(inference_id), receipt)
    for recipient in receipt_recipients(receipt):
        view.local_put(keys.recipient_receipt_key(recipient, ctx.height, ctx.tx_index, inference_id), b"")


def get_receipt_record(view: StateView, inference_id: bytes) -> Receipt | None:
    return view.get_obj(keys.receipt_key(inference_id), Receipt)
