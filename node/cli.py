"""The `attrchain` command: one entry point, subcommands registered by the module that owns them.

- node/cli_node.py:   node run | node init          (the node process)
- node/cli_client.py: keys | tx KIND | query METHOD (JSON-RPC client)
- devnet/cli.py:      devnet up | status | down     (local multi-process network)
- fingerprint FILE    (state/attribution/fingerprint.py)
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence

SUBCOMMAND_MODULES = ("node.cli_node", "node.cli_client", "devnet.cli", "gateway.cli", "refmodel.cli")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# libraries that log routine events at INFO (httpx: one line per request): heard from at WARNING,
# unless the node runs at DEBUG
THIRD_PARTY_LOGGERS = ("httpx", "httpcore", "libp2p", "p2p.libp2p", "multiaddr", "trio_websocket", "hpack")


def _fingerprint(args: argparse.Namespace) -> int:
    from state.attribution.fingerprint import FingerprintError, fingerprint_file_report

    try:
        report = fingerprint_file_report(args.file)
    except FingerprintError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report))
    else:
        print(f"content_hash  {report['content_hash']}")
        print(f"size          {report['size']}")
        print(f"fingerprint   {len(report['fingerprint'])} hashes: {' '.join(map(str, report['fingerprint']))}")
        print(f"minhash       {len(report['minhash'])} values: {' '.join(map(str, report['minhash']))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attrchain", description="attrchain: a PoS chain for AI attribution")
    parser.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS,
                        help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    fp = sub.add_parser("fingerprint", help="content hash, winnowed fingerprint and MinHash of a UTF-8 text file")
    fp.add_argument("file")
    fp.add_argument("--json", action="store_true", help="print one JSON object")
    fp.set_defaults(func=_fingerprint)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # that part of the CLI is not built yet
        module.register(sub)
    return parser


def setup_logging(level: str) -> None:
    numeric = getattr(logging, level.upper())
    logging.basicConfig(
        level=numeric,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if numeric <= logging.DEBUG else max(numeric, logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
