"""`attrchain model build | serve`: the reference model (refmodel/)."""

from __future__ import annotations

import argparse
import logging
import sys
from functools import partial
from pathlib import Path

import trio

import sdk

log = logging.getLogger("refmodel")


def cmd_build(args: argparse.Namespace) -> int:
    from refmodel.build import BuildError, build, parse_mix

    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        with sdk.Client(args.rpc) as client:
            m = build(client, parse_mix(args.datanet), args.out, args.name, args.texts)
    except (BuildError, sdk.SDKError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"model {m['name']}: {len(m['contributions'])} contributions from {len(m['datanets'])} datanet(s), "
          f"corpus {m['corpus_sha256']}\nmanifest {args.out / 'manifest.json'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.asgi import serve_app
    from refmodel.build import BuildError, load
    from refmodel.serve import ModelServer

    try:
        model, manifest = load(args.dir)
    except (BuildError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(partial(serve_app, ModelServer(model, manifest["name"]), args.host, args.port))
            log.info("model %s (%d contributions) serving the OpenAI API on %s/v1", manifest["name"],
                     len(manifest["contributions"]), url)

    trio.run(main)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("model", help="build or serve the reference model (infini-gram over a datanet mix)")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION")
    msub.required = True
    b = msub.add_parser("build", help="build from the accepted contributions of datanets")
    b.add_argument("--datanet", action="append", required=True, metavar="0xID[:BPS]",
                   help="repeat; weights in basis points sum to 10000 (left out: equal shares)")
    b.add_argument("--out", type=Path, required=True, help="model folder to write")
    b.add_argument("--name", default="refmodel", help="model name in the manifest")
    b.add_argument("--texts", type=Path, help="folder of contribution texts, for chains that keep only hashes")
    b.add_argument("--rpc", default=sdk.DEFAULT_RPC, help=f"node RPC URL (default {sdk.DEFAULT_RPC})")
    b.set_defaults(func=cmd_build)
    s = msub.add_parser("serve", help="serve a built model with the OpenAI API")
    s.add_argument("dir", type=Path)
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--host", default="127.0.0.1")
    s.set_defaults(func=cmd_serve)
