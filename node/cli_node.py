"""`attrchain node run` and `attrchain node init`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import trio

from node.config import DEFAULT_HOME, ConfigError, Home, init_dev_home
from node.integrity import StartupError
from state.genesis import GenesisError

log = logging.getLogger("attrchain.node")
EXIT_HALTED = 3  # stopped on purpose at a software upgrade this node does not provide


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    node = sub.add_parser("node", help="run or initialise a node")
    nsub = node.add_subparsers(dest="node_command", metavar="ACTION")
    nsub.required = True
    run = nsub.add_parser("run", help="run a full node or validator (a dev chain when the home is empty)")
    run.add_argument("--home", type=Path, default=DEFAULT_HOME, help=f"home folder (default {DEFAULT_HOME})")
    run.add_argument("--dev", action="store_true", help="initialise a single-validator dev chain if needed")
    run.add_argument("--rpc-port", type=int, help="JSON-RPC port (default 26657)")
    run.add_argument("--p2p-port", type=int, help="libp2p port (default 26656)")
    run.add_argument("--upgrade-name", dest="upgrade_names", action="append", default=[], metavar="NAME",
                     help="this software provides the governance upgrade NAME (repeatable; docs/governance.md)")
    run.set_defaults(func=cmd_run)
    init = nsub.add_parser("init", help="initialise a single-validator dev chain in a home folder")
    init.add_argument("--home", type=Path, default=DEFAULT_HOME)
    init.add_argument("--rpc-port", type=int, default=26657)
    init.add_argument("--p2p-port", type=int, default=26656)
    init.set_defaults(func=cmd_init)


def _is_empty(home: Home) -> bool:
    return not home.root.exists() or not any(home.root.iterdir())


def cmd_init(args: argparse.Namespace) -> int:
    home = Home(args.home)
    if not _is_empty(home):
        print(f"error: {home.root} is not empty", file=sys.stderr)
        return 2
    init_dev_home(home, args.rpc_port, args.p2p_port)
    print(f"initialised a dev chain in {home.root}; dev key: {home.dev_key_file}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from node.app import NodeHalted, run_node

    home = Home(args.home)
    if not home.is_initialised():
        if not (args.dev or _is_empty(home)):
            print(f"error: {home.root} has no config/genesis.json; use --dev or an empty folder", file=sys.stderr)
            return 2
        log.info("initialising a single-validator dev chain in %s", home.root)
        init_dev_home(home, args.rpc_port or 26657, args.p2p_port or 26656)
    try:
        config = home.load_config()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.rpc_port:
        config.rpc.port = args.rpc_port
    if args.p2p_port:
        config.p2p.port = args.p2p_port
    log.info("home: %s", home.root)
    log.info("rpc: http://%s:%d", config.rpc.host, config.rpc.port)
    if home.dev_key_file.exists():
        log.info("dev key (prefunded account): %s", home.dev_key_file)
    try:
        trio.run(run_node, home, config, tuple(args.upgrade_names))
    except NodeHalted as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return EXIT_HALTED
    except StartupError as exc:
        log.error("refusing to start: %s", exc)
        return 1
    except (GenesisError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
