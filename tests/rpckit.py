"""A real RPC server over a real Chain with a dev block producer, for client-side tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import trio

from conftest import VALIDATOR_KEY, make_genesis
from node.mempool import Mempool
from node.rpc.standalone import StandaloneContext, serving


@contextlib.asynccontextmanager
async def standalone_node(chain, chain_id: str, balances: dict[bytes, int]) -> AsyncIterator[StandaloneContext]:  # type: ignore[no-untyped-def]
    """Serve ``chain`` over JSON-RPC on 127.0.0.1 and commit a block whenever transactions wait."""
    ctx = StandaloneContext(chain, make_genesis(chain_id, balances), Mempool(chain), proposer=VALIDATOR_KEY.address)
    async with serving(ctx) as url, trio.open_nursery() as nursery:
        nursery.start_soon(ctx.run_blocks, 0.02)
        ctx.rpc_addr = url
        yield ctx
        nursery.cancel_scope.cancel()
