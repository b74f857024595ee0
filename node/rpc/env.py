"""What every handler gets: the node context, the server's limits and a few cached reads."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import trio

from node.config import RPCConfig
from node.context import NodeContext
from node.metrics import Metrics
from node.rpc.errors import InternalError, NotFound
from node.tx_intake import IntakeSettings, TxIntake
from state.block import Block, Header
from state.chain import Chain

HEADER_CACHE = 256


class RPCEnv:
    """Shared by all requests of one server. Reads are synchronous: a handler never awaits between
    reads that must come from the same committed state (commits happen on the same trio thread)."""

    def __init__(self, ctx: NodeContext, config: RPCConfig, metrics: Metrics) -> None:
        self.ctx = ctx
        self.config = config
        self.metrics = metrics
        self.nursery: trio.Nursery | None = None  # the server's own tasks
        self.submitter: Any = None  # tx_methods.AsyncSubmitter, set by serve_rpc
        self._intake: TxIntake | None = getattr(ctx, "intake", None)
        self._headers: OrderedDict[int, Header] = OrderedDict()
        self._genesis_json: dict[str, Any] | None = None

    @property
    def intake(self) -> TxIntake:
        """The node's transaction intake; a context without one (tests, tools) gets one that
        verifies inline over its mempool."""
        if self._intake is None:
            self._intake = TxIntake(self.ctx.mempool, self.metrics, IntakeSettings(verify_workers=0))  # type: ignore[arg-type]
        return self._intake

    @property
    def chain(self) -> Chain:
        return self.ctx.chain

    def latest_height(self) -> int:
        return self.ctx.chain.height

    def resolve_height(self, height: int | None) -> int:
        """None ("latest") -> the latest height; a height not committed yet -> NotFound."""
        latest = self.latest_height()
        if height is None:
            if latest == 0:
                raise NotFound("no block has been committed yet")
            return latest
        if height > latest:
            raise NotFound(f"height {height} is not committed yet (latest is {latest})")
        return height

    def header(self, height: int) -> Header:
        """The header at a committed height (cached: headers never change once committed)."""
        h = self._headers.get(height)
        if h is not None:
            return h
        block = self.block(height)
        self._headers[height] = block.header
        if len(self._headers) > HEADER_CACHE:
            self._headers.popitem(last=False)
        return block.header

    def block(self, height: int) -> Block:
        block = self.ctx.chain.get_block(height)
        if block is None:
            if height <= self.latest_height():
                raise InternalError(f"block {height} is missing from the store")
            raise NotFound(f"block {height} not found")
        return block

    def genesis_json(self) -> dict[str, Any]:
        if self._genesis_json is None:
            from state.params import to_dict

            g = self.ctx.genesis
            doc = dict(g.to_json())
            doc["genesis_hash"] = "0x" + g.hash().hex()
            doc["consensus_params"] = to_dict(g.params)
            self._genesis_json = doc
        return self._genesis_json
