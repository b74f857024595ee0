"""`attrchain gateway`: the OpenAI-compatible gateway that pays for every completion on chain."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from functools import partial
from pathlib import Path

import trio

import sdk
from state.crypto import from_hex

log = logging.getLogger("gateway")
DEFAULT_DATA = Path(os.environ.get("ATTRCHAIN_GATEWAY_DATA", Path.home() / ".attrchain-gateway"))


def _hex(size: tuple[int, ...]):  # type: ignore[no-untyped-def]
    def parse(text: str) -> bytes:
        try:
            data = from_hex(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if len(data) not in size:
            raise argparse.ArgumentTypeError(f"expected {' or '.join(map(str, size))} bytes")
        return data

    return parse


async def run(args: argparse.Namespace, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    # imported here, not at the top: every `attrchain` command loads this module to list its options
    from gateway.app import Gateway
    from gateway.asgi import serve_app
    from gateway.chain import ChainSide, Pricing
    from gateway.journal import Journal

    keys = [sdk.load_key(k) for k in args.key]
    journal = Journal(args.data, max_pending=args.max_queue)
    client = sdk.Client(args.rpc, timeout=10.0)
    chain = ChainSide(client, journal, keys, Pricing(args.model, args.adapter, args.agent, args.price_per_1k),
                      batch=args.batch, in_flight=args.in_flight)
    await chain.start()
    gw = Gateway(args.upstream, chain)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chain.run)
            url = await nursery.start(partial(serve_app, gw, args.host, args.port))
            log.info("gateway listening on %s, upstream %s, journal %s", url, args.upstream, journal.path)
            task_status.started(url)
    finally:
        await gw.aclose()
        client.close()
        journal.close()


def cmd_gateway(args: argparse.Namespace) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        trio.run(run, args)
    except sdk.SDKError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("gateway", help="OpenAI-compatible gateway that records one paid infer per completion")
    p.add_argument("--upstream", required=True, help="base URL of any OpenAI-compatible server, e.g. "
                   "http://127.0.0.1:8000/v1")
    p.add_argument("--model", required=True, type=_hex((32,)), help="the registered model id (0x..)")
    p.add_argument("--adapter", type=_hex((32,)), default=b"", help="a registered adapter id of that model")
    p.add_argument("--agent", type=_hex((20,)), default=b"", help="an agent address (the key must be its account)")
    p.add_argument("--key", required=True, action="append",
                   help="payer key file; repeat for more lanes (each key has its own nonce sequence)")
    p.add_argument("--port", type=int, default=8080, help="listen port (default 8080; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--rpc", default=sdk.DEFAULT_RPC, help=f"node RPC URL (default {sdk.DEFAULT_RPC})")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"journal folder (default {DEFAULT_DATA})")
    p.add_argument("--price-per-1k", type=int, default=1000,
                   help="payment per 1,000 tokens (prompt + completion), rounded up (default 1000)")
    p.add_argument("--max-queue", type=int, default=10_000,
                   help="completions that may wait for the chain; beyond, answer 503 (default 10000)")
    p.add_argument("--batch", type=int, default=100, help="transactions per JSON-RPC batch (default 100)")
    p.add_argument("--in-flight", type=int, default=64,
                   help="per key, transactions in the node's mempool at once (its max_per_sender, default 64)")
    p.set_defaults(func=cmd_gateway)
