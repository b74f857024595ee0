"""`attrchain node run | node init`, `attrchain init`, `attrchain genesis ...`, `attrchain config ...`.

    attrchain init --chain-id ID [--home H] [--moniker NAME]    a new node home (node/ceremony.py)
    attrchain genesis add-account | gentx | collect-gentxs | validate | hash
    attrchain config show | set SECTION.KEY VALUE               config.toml (node/config.py)
    attrchain node run                                          the node process
    attrchain node init                                         a single-validator dev chain
    attrchain node reindex-history [--home H]                   rebuild the explorer history (state/history_rebuild.py)
"""

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
    rx = nsub.add_parser("reindex-history", help="rebuild the explorer history of a STOPPED node from its blocks "
                                                 "(after an upgrade that added history indexes)")
    _home_arg(rx)
    rx.set_defaults(func=cmd_reindex_history)
    register_ceremony(sub)


def cmd_reindex_history(args: argparse.Namespace) -> int:
    from node.integrity import open_state_db
    from state.chain import Chain
    from state.genesis import load_genesis
    from state.history_rebuild import RebuildError, rebuild

    home = Home(args.home)
    try:
        genesis = load_genesis(home.genesis_file)
        db = open_state_db(home.db_dir)
    except (OSError, GenesisError, StartupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        n = rebuild(Chain(db), genesis, progress=lambda h, top: log.info("replayed %d / %d blocks", h, top))
    except RebuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()
    print(f"history rebuilt from {home.db_dir}: {n} keys")
    return 0


def _home_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", type=Path, default=DEFAULT_HOME, help=f"home folder (default {DEFAULT_HOME})")


def register_ceremony(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from state.params import PRESETS

    ini = sub.add_parser("init", help="create a node home: node key, consensus key, commented config, draft genesis")
    ini.add_argument("--chain-id", required=True, help="the chain's id (letters, digits, '.', '_', '-')")
    _home_arg(ini)
    ini.add_argument("--moniker", default="node", help="this node's name")
    ini.add_argument("--params-preset", default="default", choices=sorted(PRESETS), help="chain parameters of the draft genesis")
    ini.add_argument("--p2p-host", default="0.0.0.0", help="interface the p2p port listens on (default every interface)")
    ini.add_argument("--p2p-port", type=int, default=26656)
    ini.add_argument("--rpc-host", default="127.0.0.1")
    ini.add_argument("--rpc-port", type=int, default=26657)
    ini.add_argument("--external-address", default="", metavar="HOST:PORT",
                     help="address other nodes dial to reach this one (behind NAT: the public one)")
    ini.set_defaults(func=cmd_init_home)

    gen = sub.add_parser("genesis", help="the genesis ceremony: add-account, gentx, collect-gentxs, validate, hash")
    gsub = gen.add_subparsers(dest="genesis_command", metavar="ACTION")
    gsub.required = True
    acc = gsub.add_parser("add-account", help="fund an account in the home's draft genesis")
    acc.add_argument("address", help="0x address (attrchain keys show KEY --address)")
    acc.add_argument("amount", type=int)
    _home_arg(acc)
    acc.set_defaults(func=cmd_add_account)
    gtx = gsub.add_parser("gentx", help="sign this home's create-validator statement with the operator key")
    _home_arg(gtx)
    gtx.add_argument("--key", required=True, help="the operator's account key file (attrchain keys new --out FILE)")
    gtx.add_argument("--amount", type=int, required=True, help="self-stake, taken from the operator's genesis balance")
    gtx.add_argument("--moniker", help="validator name (default: the config's moniker)")
    gtx.add_argument("--p2p-address", metavar="HOST:PORT",
                     help="address peers dial for this node (default: the config's p2p.external_address)")
    gtx.add_argument("--output", type=Path, help="where to write it (default HOME/config/gentx/gentx-<address>.json)")
    gtx.set_defaults(func=cmd_gentx)
    col = gsub.add_parser("collect-gentxs", help="verify every gentx and write the final genesis.json")
    _home_arg(col)
    col.add_argument("--gentx-dir", type=Path, help="folder of gentx files (default HOME/config/gentx)")
    col.add_argument("--no-peers", action="store_true", help="do not write the gentxs' nodes as persistent_peers")
    col.set_defaults(func=cmd_collect)
    val = gsub.add_parser("validate", help="explain, one line each, what is wrong with a genesis file")
    val.add_argument("file", type=Path)
    val.set_defaults(func=cmd_validate)
    hsh = gsub.add_parser("hash", help="print the genesis hash every operator compares")
    hsh.add_argument("file", type=Path, nargs="?", help="a genesis.json (default HOME/config/genesis.json)")
    _home_arg(hsh)
    hsh.set_defaults(func=cmd_hash)

    cfg = sub.add_parser("config", help="show or change a home's config.toml")
    csub = cfg.add_subparsers(dest="config_command", metavar="ACTION")
    csub.required = True
    show = csub.add_parser("show", help="print config.toml with every option's meaning")
    _home_arg(show)
    show.set_defaults(func=cmd_config_show)
    cset = csub.add_parser("set", help="set one option, e.g. p2p.persistent_peers 'ID@HOST:PORT,ID@HOST:PORT'")
    cset.add_argument("option", help="SECTION.KEY (or moniker)")
    cset.add_argument("value", help="the value; lists are comma-separated")
    _home_arg(cset)
    cset.set_defaults(func=cmd_config_set)


def _fail(message: str, code: int = 1) -> int:
    for line in message.splitlines() or [message]:
        print(f"error: {line}", file=sys.stderr)
    return code


def cmd_init_home(args: argparse.Namespace) -> int:
    from node.ceremony import CeremonyError, init_home
    from node.config import NodeConfig, split_host_port

    cfg = NodeConfig()
    cfg.p2p.host, cfg.p2p.port = args.p2p_host, args.p2p_port
    cfg.rpc.host, cfg.rpc.port = args.rpc_host, args.rpc_port
    if args.external_address and split_host_port(args.external_address) is None:
        return _fail(f"--external-address {args.external_address!r} is not HOST:PORT", 2)
    cfg.p2p.external_address = args.external_address
    try:
        res = init_home(args.home, args.chain_id, args.moniker, args.params_preset, cfg)
    except CeremonyError as exc:
        return _fail(str(exc), 2)
    print(f"initialised {res.home.root} for chain {args.chain_id}")
    print(f"node id: {res.node_id}")
    print(f"consensus key: 0x{res.consensus_public_key.hex()}")
    print(f"config: {res.home.config_file}   draft genesis: {res.home.genesis_file}")
    return 0


def cmd_add_account(args: argparse.Namespace) -> int:
    from node.ceremony import CeremonyError, add_account

    try:
        doc = add_account(Home(args.home), args.address, args.amount)
    except CeremonyError as exc:
        return _fail(str(exc), 2)
    print(f"{len(doc['accounts'])} account(s) in {Home(args.home).genesis_file}")
    return 0


def cmd_gentx(args: argparse.Namespace) -> int:
    from node.ceremony import CeremonyError, make_gentx, write_json
    from state.crypto import KeyFileError, PrivateKey

    home = Home(args.home)
    try:
        key = PrivateKey.load(args.key)
        doc = make_gentx(home, key, args.amount, args.moniker, args.p2p_address)
    except (CeremonyError, KeyFileError, ConfigError) as exc:
        return _fail(str(exc), 2)
    out = args.output or home.config_dir / "gentx" / f"gentx-{doc['operator']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, doc)
    print(f"wrote {out}")
    if not doc["p2p_address"]:
        print("note: no p2p address recorded (set p2p.external_address or pass --p2p-address); "
              "peers will not learn this node from the genesis ceremony", file=sys.stderr)
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from node.ceremony import CeremonyError, collect_gentxs

    home = Home(args.home)
    try:
        res = collect_gentxs(home, args.gentx_dir)
    except CeremonyError as exc:
        return _fail(str(exc), 1)
    print(f"wrote {home.genesis_file} with {len(res.genesis.validators)} validator(s)")
    print(f"genesis hash: {res.genesis.hash().hex()}")
    print(f"persistent_peers: {','.join(res.peers)}")
    if res.peers and not args.no_peers:
        from p2p.identity import peer_id_from_seed

        own = peer_id_from_seed(home.node_key().seed)
        try:
            cfg = home.load_config()
        except ConfigError as exc:
            return _fail(str(exc), 2)
        cfg.p2p.persistent_peers = [p for p in res.peers if not p.startswith(own + "@")]
        home.write_config(cfg)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from node.ceremony import validate_genesis_file

    problems, genesis = validate_genesis_file(args.file)
    if problems:
        for p in problems:
            print(f"{args.file}: {p}", file=sys.stderr)
        return 1
    assert genesis is not None
    print(f"{args.file}: valid; chain {genesis.chain_id}, {len(genesis.validators)} validator(s), "
          f"{len(genesis.accounts)} account(s); genesis hash {genesis.hash().hex()}")
    return 0


def cmd_hash(args: argparse.Namespace) -> int:
    from state.genesis import load_genesis

    path = args.file or Home(args.home).genesis_file
    try:
        print(load_genesis(path).hash().hex())
    except GenesisError as exc:
        return _fail(f"{path}: {exc}" if str(path) not in str(exc) else str(exc), 1)
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    try:
        print(Home(args.home).load_config().to_toml(), end="")
    except ConfigError as exc:
        return _fail(str(exc), 2)
    return 0


def cmd_config_set(args: argparse.Namespace) -> int:
    from node.config import set_option

    home = Home(args.home)
    try:
        cfg = home.load_config()
        set_option(cfg, args.option, args.value)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    home.write_config(cfg)
    print(f"{args.option} set in {home.config_file}")
    return 0


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
    from node.rpc.server import SWITCH_INTERVAL_S

    # the RPC thread (node/rpc/server.py) waits for the GIL behind the event loop's synchronous
    # stretches (block execution): a shorter switch interval bounds each wait (docs/rpc.md)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
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
    except BaseExceptionGroup as group:  # a failure inside the node's nursery: its first OS error, one line
        oserrors = group.subgroup(OSError)
        if oserrors is None:
            raise
        first: BaseException = oserrors
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        print(f"error: {first}", file=sys.stderr)
        return 1
    return 0
