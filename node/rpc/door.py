"""Door refusals answered by the RPC front process or thread, without the node's event loop
(node/rpc/http.py, node/rpc/front.py).

While the node's door is closed (``TxIntake.door_refusal``: the intake budget is exhausted or the
pool is at the backlog bound), a POST whose request(s) are all ``broadcast_tx_sync`` is answered
here with the -32005 ``mempool_full`` / ``intake_busy`` error objects the handlers give
(``refusal``, below), counted the same way. Anything else, including
a request this module cannot answer exactly as the dispatcher would (bad JSON, a bad id, bad
params, a mixed batch), is left to the event loop: ``refuse`` returns FORWARD.

The answers are the loop's own. broadcast_tx_commit is left to the loop (a transaction already
committed answers its location there, even while the door is closed), and broadcast_tx_async
too (it answers a hash before the door is consulted; its queue refuses later, docs/rpc.md).
"""

from __future__ import annotations

from typing import Any

from node.metrics import Metrics
from node.rpc.errors import LimitExceeded, ParseError, RPCError, TxRejectedError, error_response
from node.rpc.jsonrpc import MISSING, dumps, is_valid_id, parse_json
from node.rpc.params import TX, Schema
from node.tx_intake import DOOR_REASONS, TxIntake
from state.crypto import sha256, to_hex
from state.errors import TxRejected

# the door methods and their params, as in the method table (node/rpc/methods.py; a test holds them
# equal): the RPC front process answers refusals without importing the table and its handlers
DOOR_SCHEMAS = {"broadcast_tx_sync": Schema((TX,))}
FORWARD = object()


def refusal(exc: TxRejected, tx_hash: str) -> RPCError:
    """A refusal at the door (mempool_full, intake_busy) is -32005; any other rejection -32003.
    Both carry ``data`` {reason, message, hash}."""
    if exc.reason in DOOR_REASONS:
        return LimitExceeded(f"transaction refused: {exc.reason}",
                             {"reason": exc.reason, "message": exc.message, "hash": tx_hash})
    return TxRejectedError(exc.reason, exc.message, tx_hash)


class Door:
    """``reserve`` (the RPC front process): while the door is open, the lone transactions and
    batches of door methods it forwards are held against the board's room (``TxIntake.door_room``
    less what is forwarded and not answered yet) and marked FRONT_ADMITTED, so the node admits
    them even if peers' gossip filled the pool meanwhile; a request over the room is refused here.
    Without it, a request forwarded just as a block opened the door was refused later by the
    node's loop: 11 % of the refusals of a 7-validator 5x run, p50 102 / p95 302 ms (the front's
    own refusals: p50 8 / p95 25 ms)."""

    def __init__(self, intake: TxIntake, metrics: Metrics, max_batch: int, max_page: int,
                 reserve: bool = False) -> None:
        self.intake = intake
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_page = max_page
        self.reserve = reserve
        self.held = 0  # transactions forwarded against the room and not answered yet

    def refuse(self, body: bytes) -> Any:
        """The response body (None: nothing to send) when every request is refused at the door;
        FORWARD otherwise. Cheap while the door is open: no parsing."""
        answer, held = self.admit(body)
        self.release(held)
        return answer

    def admit(self, body: bytes) -> tuple[Any, int]:
        """(the answer, 0) when every request is refused at the door; else (FORWARD, held): with
        ``reserve``, ``held`` transactions were counted against the room until ``release``."""
        if self.intake.door_refusal() is None and not self.reserve:
            return FORWARD, 0
        try:
            doc = parse_json(body)
        except ParseError:
            return FORWARD, 0
        batch = type(doc) is list
        items = doc if batch else [doc]
        if not items or len(items) > self.max_batch:
            return FORWARD, 0
        plans = []
        for item in items:
            plan = self._plan(item)
            if plan is None:
                return FORWARD, 0
            plans.append(plan)
        exc = self.intake.door_refusal()  # read again: the whole body is answered from one reading
        if exc is None and self.reserve:
            room = self.intake.door_room()
            if room is None:
                return FORWARD, 0
            if room - self.held >= len(plans):
                self.held += len(plans)
                return FORWARD, len(plans)
            if room - self.held > 0:
                return FORWARD, 0  # room for some: the node decides each
            exc = self.intake.over_room(self.held)
        if exc is None:
            return FORWARD, 0
        responses = []
        for name, rid, raw in plans:
            self.metrics.rpc_request(name)
            err = refusal(exc, to_hex(sha256(raw)))
            self.metrics.rpc_error(err.code)
            self.metrics.drop("rpc_tx", exc.reason)
            if rid is not MISSING:
                responses.append(error_response(rid, err))
        if batch:
            return (dumps(responses) if responses else None), 0
        return (dumps(responses[0]) if responses else None), 0

    def release(self, held: int) -> None:
        self.held -= held

    def _plan(self, item: Any) -> tuple[str, Any, bytes] | None:
        """(method, id, tx) of a well-formed door-method request; None for anything else."""
        if type(item) is not dict or item.get("jsonrpc") != "2.0":
            return None
        name = item.get("method")
        schema = DOOR_SCHEMAS.get(name) if type(name) is str else None
        if schema is None:
            return None
        rid = item.get("id", MISSING)
        if rid is not MISSING and not is_valid_id(rid):
            return None
        params = item.get("params")
        if params is not None and type(params) not in (list, dict):
            return None
        try:
            args = schema.bind(params, self.max_page)
        except RPCError:
            return None
        return name, rid, args["tx"]
