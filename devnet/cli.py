"""`attrchain devnet up | status | down`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from devnet.launcher import DEFAULT_BASE_PORT, DEFAULT_DIR, DevnetError, Layout, down, node_status, up


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dn = sub.add_parser("devnet", help="a local network of validator processes")
    dsub = dn.add_subparsers(dest="devnet_command", metavar="ACTION")
    dsub.required = True
    p_up = dsub.add_parser("up", help="create (first time) and start the devnet")
    p_up.add_argument("--validators", type=int, default=4)
    p_up.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    p_up.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT,
                      help="node i uses p2p port BASE+10i+6 and RPC port BASE+10i+7")
    p_up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for the first blocks")
    p_up.add_argument("--double-sign", type=int, action="append", default=[], metavar="INDEX",
                      help="fault injection: make validator INDEX double-sign (new devnets only)")
    p_up.add_argument("--upgrade-name", dest="upgrade_names", action="append", default=[], metavar="NAME",
                      help="start every node with --upgrade-name NAME (after a governance upgrade stopped them)")
    p_up.set_defaults(func=cmd_up)
    p_st = dsub.add_parser("status", help="each node's pid, RPC URL, height and peers")
    p_st.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    p_st.add_argument("--json", action="store_true")
    p_st.set_defaults(func=cmd_status)
    p_down = dsub.add_parser("down", help="stop every node (data is kept)")
    p_down.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    p_down.set_defaults(func=cmd_down)


def cmd_up(args: argparse.Namespace) -> int:
    try:
        layout = up(args.dir, args.validators, args.base_port, timeout=args.timeout,
                    double_sign=tuple(args.double_sign),
                    extra_args=tuple(a for name in args.upgrade_names for a in ("--upgrade-name", name)))
    except DevnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"devnet {layout.chain_id} is up in {layout.dir}:")
    for spec in layout.nodes:
        print(f"  {spec.name}  rpc {spec.rpc}")
    faucet = layout.dir / "faucet.key"
    rpc = layout.nodes[0].rpc
    print()
    print("send a transfer and query it:")
    print("  .venv/bin/attrchain keys new --out alice.key")
    print(f"  .venv/bin/attrchain tx transfer --to $(.venv/bin/attrchain keys show alice.key --address) "
          f"--amount 1000 --key {faucet} --rpc {rpc} --wait")
    print(f"  .venv/bin/attrchain query account address=$(.venv/bin/attrchain keys show alice.key --address) --rpc {rpc}")
    print(f"status: .venv/bin/attrchain devnet status --dir {layout.dir}   stop: .venv/bin/attrchain devnet down --dir {layout.dir}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    try:
        layout = Layout.load(args.dir)
    except DevnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = [node_status(layout, n) for n in layout.nodes]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'node':<8}{'pid':>8}  {'rpc':<24}{'height':>8}{'peers':>7}  state")
    for r in rows:
        print(f"{r['name']:<8}{r['pid'] or '-':>8}  {r['rpc']:<24}{r['height'] if r['height'] is not None else '-':>8}"
              f"{r['peers'] if r['peers'] is not None else '-':>7}  {r['state']}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    try:
        n = down(args.dir)
    except DevnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"stopped {n} node(s); data kept in {args.dir}")
    return 0
