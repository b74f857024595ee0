"""The JSON-RPC client side of the `attrchain` command: keys, tx KIND, query METHOD.

    attrchain keys new [--out FILE]            a new Ed25519 account key
    attrchain keys show FILE                   its address and public key
    attrchain tx KIND ... --key FILE [--rpc URL] [--wait] [--fee N] [--nonce N]
    attrchain query METHOD [name=value | value ...] [--rpc URL] [--json]

`tx` has one subcommand per transaction kind of state/tx.py, its options made from the kind's
fields (`--to`, `--amount`, ...); content-derived fields are computed from files
(`tx contribute --file` carries the file itself, `tx infer --output-file`). The chain id comes from
`status`, the nonce from `account` (counting the node's queued transactions), the minimum fee
from `params` (the one in force), unless given. Governance kinds: node/cli_governance.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import sdk
from node import cli_governance
from node.rpc.methods import METHODS
from state.codec import Bytes, List, Str, Tuple, UInt
from state.crypto import KeyFileError, PrivateKey, from_hex, sha256, to_hex
from state.tx import TX_KINDS

DEFAULT_RPC = sdk.DEFAULT_RPC
EXIT_FAILED = 1  # rejected, failed in its block, not committed in time, RPC error
EXIT_USAGE = 2  # bad input
EXIT_UNREACHABLE = 3  # no node at the RPC URL

CREATES = sdk.CREATES  # kinds whose transaction hash is the id of what they create
DEFAULTS = sdk.DEFAULTS  # optional fields and their defaults; every other field is a required option
# Fields filled from files or flags instead of their own option.
DERIVED = {
    "contribute": ("content", "salt"),
    "review": ("accept",),
    "infer": ("output_hash", "output_fingerprint"),
    "create_validator": ("consensus_public_key",),
    "register_agent": ("owner",),
    **cli_governance.DERIVED,
}
FROM_MANIFEST = ("name", "datanets")  # register_model --manifest fills these (refmodel/build.py)
KIND_HELP = {
    "transfer": "send tokens", "create_datanet": "create a datanet you own and curate",
    "add_curator": "add a curator to your datanet", "remove_curator": "remove a curator from your datanet",
    "contribute": "contribute a text file to a datanet, with a bond",
    "review": "accept or reject a pending contribution, or reverse an accepted one (curators)",
    "transfer_contribution": "give a contribution (and its future rewards) to another address",
    "register_model": "register a model trained on datanets", "register_adapter": "register a LoRA adapter",
    "register_agent": "make the sender's account an agent of a model",
    "agent_action": "record an agent action and its outcome", "infer": "pay for one inference output",
    "claim_rewards": "claim the rewards of your contributions",
    "create_validator": "become a validator with a self-stake", "delegate": "delegate stake to a validator",
    "undelegate": "start unbonding delegated stake", "unjail": "unjail your validator",
    **cli_governance.HELP,
}
QUERY_METHODS = sorted(n for n, m in METHODS.items()
                       if not m.ws_only and not n.startswith(("broadcast_", "unsafe_")))


class CLIError(Exception):
    """Bad input or a failed call; ``code`` is the process exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class RPCCallError(CLIError):
    def __init__(self, error: dict[str, Any]) -> None:
        data = error.get("data")
        detail = f" ({json.dumps(data)})" if data is not None else ""
        super().__init__(f"error {error.get('code')}: {error.get('message')}{detail}", EXIT_FAILED)
        self.error = error


class RPCClient(sdk.Client):
    """The SDK client, its errors turned into CLIError with the command's exit codes."""

    def call(self, method: str, params: Any = None, timeout: float | None = None) -> Any:
        try:
            return super().call(method, params, timeout)
        except sdk.Unreachable as exc:
            raise CLIError(str(exc), EXIT_UNREACHABLE) from None
        except sdk.RPCError as exc:
            raise RPCCallError(exc.error) from None
        except sdk.SDKError as exc:
            raise CLIError(str(exc), EXIT_FAILED) from None


# ---- output -------------------------------------------------------------------------------------


def _scalar(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def render(value: Any, indent: int = 0) -> list[str]:
    """A result as indented `key: value` lines for people (``--json`` prints the JSON)."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return [pad + "{}"]
        lines = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.extend(render(v, indent + 2))
            else:
                lines.append(f"{pad}{k}: {render(v)[0]}")
        return lines
    if isinstance(value, list):
        if not value:
            return [pad + "[]"]
        if all(not isinstance(v, (dict, list)) for v in value):
            text = ", ".join(_scalar(v) for v in value)
            if len(text) <= 100:
                return [pad + text]
            return [f"{pad}- {_scalar(v)}" for v in value]
        lines = []
        for v in value:
            sub = render(v, indent + 2)
            lines.append(f"{pad}- {sub[0].lstrip()}")
            lines.extend(sub[1:])
        return lines
    return [pad + _scalar(value)]


def emit(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(render(result)))


# ---- keys ---------------------------------------------------------------------------------------


def cmd_keys_new(args: argparse.Namespace) -> int:
    key = PrivateKey.generate()
    if args.out is None:
        print("warning: printing a secret key; use --out FILE to write it to a file instead", file=sys.stderr)
        print(json.dumps(key.to_json(), indent=2))
        return 0
    out = Path(args.out)
    if out.exists() and not args.force:
        raise CLIError(f"{out} exists; use --force to overwrite it")
    key.save(out)
    print(f"address     {to_hex(key.address)}\npublic_key  {to_hex(key.public_key)}\nkey file    {out}")
    return 0


def cmd_keys_show(args: argparse.Namespace) -> int:
    key = _load_key(args.file)
    info = {"address": to_hex(key.address), "public_key": to_hex(key.public_key)}
    if args.address:
        print(info["address"])  # for shell substitution: $(attrchain keys show k.key --address)
    elif args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"address     {info['address']}\npublic_key  {info['public_key']}")
    return 0


def _load_key(path: str) -> PrivateKey:
    try:
        return PrivateKey.load(path)
    except KeyFileError as exc:
        raise CLIError(str(exc)) from None


# ---- tx: options made from the body's wire fields -------------------------------------------------


def _hex_parser(sizes: tuple[int, ...], what: str) -> Any:
    def parse(text: str) -> bytes:
        if sizes == (0, 32) or sizes == (0, 20):
            if text in ("", "none", "0x"):
                return b""
        try:
            data = from_hex(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{what}: {exc}") from None
        if len(data) not in sizes:
            raise argparse.ArgumentTypeError(f"{what}: expected {' or '.join(map(str, sizes))} bytes")
        return data

    return parse


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError("expected integers separated by commas") from None


def _mix_item(text: str) -> tuple[bytes, int]:
    ident, sep, bps = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError("expected ID:WEIGHT_BPS, e.g. 0xab..:10000")
    try:
        return from_hex(ident, 32), int(bps)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"ID:WEIGHT_BPS: {exc}") from None


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _add_field_option(p: argparse.ArgumentParser, name: str, wt: Any, optional: tuple[str, ...] = ()) -> None:
    """One option per wire field: --field-name VALUE (lists of pairs or ids: repeat the option)."""
    flag = "--" + name.replace("_", "-")
    required = name not in DEFAULTS and name not in optional
    if type(wt) is UInt:
        p.add_argument(flag, dest=name, type=_nonneg_int, required=required, default=DEFAULTS.get(name),
                       metavar="N")
    elif type(wt) is Str:
        p.add_argument(flag, dest=name, required=required, default=DEFAULTS.get(name), metavar="TEXT")
    elif type(wt) is Bytes:
        sizes = wt.sizes or tuple(range(wt.max + 1))
        optional = 0 in sizes
        meta = "ADDR" if 20 in sizes else "ID"
        p.add_argument(flag, dest=name, type=_hex_parser(wt.sizes, name), required=not optional,
                       default=b"", metavar=f"0x{meta}" + (" (optional)" if optional else ""))
    elif type(wt) is List and type(wt.item) is UInt:
        p.add_argument(flag, dest=name, type=_int_list, default=(), metavar="N,N,...")
    elif type(wt) is List and type(wt.item) is Tuple:
        single = "--" + name.rstrip("s").replace("_", "-")
        p.add_argument(single, dest=name, type=_mix_item, action="append", required=required, metavar="0xID:BPS",
                       help="repeat for each; weights sum to 10000")
    elif type(wt) is List and type(wt.item) is Bytes:
        single = "--" + name.rstrip("s").replace("_", "-")
        p.add_argument(single, dest=name, type=_hex_parser(wt.item.sizes, name), action="append", required=True,
                       metavar="0xID", help="repeat for each")
    else:  # pragma: no cover - a new wire type needs a CLI form
        raise TypeError(f"no command-line form for field {name} ({wt.describe()})")


def _add_derived_options(p: argparse.ArgumentParser, kind: str) -> None:
    if kind == "contribute":
        p.add_argument("--file", required=True, help="the contribution's content (UTF-8 text, at most the genesis "
                       "max_content_bytes); validators compute its hash, size, fingerprint and MinHash")
    elif kind == "review":
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--accept", dest="accept", action="store_const", const=1)
        g.add_argument("--reject", dest="accept", action="store_const", const=0)
        g.add_argument("--reverse", dest="accept", action="store_const", const=2,
                       help="reverse an accepted contribution within its challenge window (bond slashed)")
    elif kind == "infer":
        p.add_argument("--output-file", help="the inference output: its sha256 and fingerprint are computed")
        p.add_argument("--output-hash", type=_hex_parser((32,), "output_hash"), help="instead of --output-file")
        p.add_argument("--output-fingerprint", type=_int_list, default=(), help="with --output-hash")
    elif kind == "create_validator":
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--consensus-key", help="key file of the validator's consensus key")
        g.add_argument("--consensus-public-key", type=_hex_parser((32,), "consensus_public_key"))
    elif kind == "register_model":
        p.add_argument("--manifest", help="a reference model's manifest.json (attrchain model build): its datanet "
                       "mix, and the name NAME#<first 16 hex digits of the manifest's sha256> unless --name")
    elif kind == "register_agent":
        p.add_argument("--owner", type=_hex_parser((20,), "owner"),
                       help="receives the agent-owner share (default: the sender)")
    elif kind in cli_governance.KINDS:
        cli_governance.add_options(p, kind)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc}") from None


def build_body(kind: str, args: argparse.Namespace, key: PrivateKey, client: RPCClient | None) -> Any:
    """The body structure of ``kind`` from parsed options (and files, for content-derived fields):
    sdk.make_body does the work, with the chain's fingerprint params when content is involved."""
    cls = TX_KINDS[sdk.txbuild.KIND_BY_NAME[kind]][1]
    values = {name: getattr(args, name) for name, _ in cls.WIRE_FIELDS if name not in DERIVED.get(kind, ())}
    if kind == "contribute":
        values["text"] = _read(args.file)
    elif kind == "review":
        values["accept"] = args.accept
    elif kind == "infer":
        if args.output_file:
            values["output"] = _read(args.output_file)
        elif args.output_hash is not None:
            values.update(output_hash=args.output_hash, output_fingerprint=tuple(sorted(set(args.output_fingerprint))))
        else:
            raise CLIError("give --output-file (or --output-hash)")
    elif kind == "create_validator":
        values["consensus_public_key"] = (_load_key(args.consensus_key).public_key if args.consensus_key
                                          else args.consensus_public_key)
    elif kind == "register_agent":
        values["owner"] = args.owner if args.owner is not None else key.address
    elif kind == "register_model":
        values.update(_from_manifest(args))
    elif kind in cli_governance.KINDS:
        try:
            values.update(cli_governance.derived_fields(kind, args))
        except cli_governance.GovernanceArgError as exc:
            raise CLIError(str(exc)) from None
        except ValueError as exc:  # CodecError: a value out of its wire range
            raise CLIError(f"invalid {kind} transaction: {exc}") from None
    from state.attribution.fingerprint import FingerprintError

    try:
        return sdk.make_body(kind, client.fingerprint_params if client is not None else None, **values)
    except FingerprintError as exc:
        raise CLIError(f"cannot fingerprint: {exc}") from None
    except sdk.TxBuildError as exc:
        raise CLIError(str(exc)) from None


def _from_manifest(args: argparse.Namespace) -> dict[str, Any]:
    """register_model's name and datanet mix, from --manifest or the options."""
    if not args.manifest:
        if not args.datanets or not args.name:
            raise CLIError("register_model: give --name and --datanet ID:BPS ..., or --manifest FILE")
        return {}
    try:
        path = Path(args.manifest)
        manifest = json.loads(path.read_text())
        mix = [(from_hex(d["id"], 32), int(d["weight_bps"])) for d in manifest["datanets"]]
        digest = sha256(path.read_bytes()).hex()
        name = args.name or f"{manifest['name'][:40]}#{digest[:16]}"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CLIError(f"--manifest {args.manifest}: not a model manifest ({exc})") from None
    if args.datanets:
        raise CLIError("register_model: give --manifest or --datanet, not both")
    return {"name": name, "datanets": mix}


def cmd_tx(args: argparse.Namespace) -> int:
    kind = args.kind
    key = _load_key(args.key)
    # fingerprints follow the chain's params, so content-derived fields always ask the node
    needs_params = kind == "contribute" or (kind == "infer" and args.output_file)
    offline = args.dry_run and args.chain_id and args.nonce is not None and args.fee is not None and not needs_params
    client = None if offline else RPCClient(args.rpc, timeout=max(15.0, (args.timeout or 30) + 10),
                                            chain_id=args.chain_id)
    try:
        body = build_body(kind, args, key, client)
        if offline:
            from state.tx import sign_tx

            tx = sign_tx(key, args.chain_id, args.nonce, body, args.fee)
        else:
            assert client is not None
            tx = client.sign(key, body, fee=args.fee, nonce=args.nonce)
        nonce, fee = tx.unsigned.nonce, tx.unsigned.fee
        out: dict[str, Any] = {"hash": to_hex(tx.hash), "kind": kind, "sender": to_hex(key.address), "nonce": nonce,
                               "fee": fee}
        if kind in CREATES:
            out[CREATES[kind] + "_id"] = to_hex(tx.hash)
        if args.dry_run:
            out["tx"] = to_hex(tx.raw)
            emit(out, args.json)
            return 0
        assert client is not None
        if kind == "contribute":  # commit first and wait for its block; the reveal lands in a later one
            out["commitment"] = client.commit_for(key, body, fee=args.fee, nonce=args.nonce, timeout=args.timeout)
            tx = client.sign(key, body, fee=args.fee)  # the reveal, with the nonce after the commitment's
            out.update(hash=to_hex(tx.hash), nonce=tx.unsigned.nonce, contribution_id=to_hex(tx.hash))
        res = client.broadcast(tx, wait=args.wait, timeout=args.timeout)
        out.update(res)
        if args.wait and kind == "submit_proposal" and res.get("committed") and res["result"]["code"] == 0:
            out["proposal_id"] = cli_governance.find_proposal_id(client, tx.hash, key.address)
        emit(out, args.json)
        if args.wait and not out.get("committed"):
            print("not committed within the timeout (it may still be: query tx)", file=sys.stderr)
            return EXIT_FAILED
        if args.wait and out["result"]["code"] != 0:
            print(f"failed in block {out['height']}: {out['result']['reason']}: {out['result']['message']}",
                  file=sys.stderr)
            return EXIT_FAILED
        return 0
    finally:
        if client is not None:
            client.close()


# ---- query --------------------------------------------------------------------------------------


def _param_value(text: str) -> Any:
    """JSON when it parses (5, true, null, "x"), else the text itself (0xab.., latest)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def query_params(items: list[str]) -> Any:
    named = [i for i in items if "=" in i and not i.startswith("=")]
    if named and len(named) != len(items):
        raise CLIError("give params either all as name=value or all by position")
    if named:
        return {k: _param_value(v) for k, _, v in (i.partition("=") for i in items)}
    return [_param_value(i) for i in items]


def cmd_query(args: argparse.Namespace) -> int:
    client = RPCClient(args.rpc)
    try:
        result = client.call(args.method, query_params(args.params))
    finally:
        client.close()
    emit(result, args.json)
    return 0


# ---- registration -------------------------------------------------------------------------------


def _guarded(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request is noise here
        try:
            return int(fn(args))
        except CLIError as exc:
            print(str(exc), file=sys.stderr)
            return exc.code
        except BrokenPipeError:  # output piped into `head` and friends
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0

    return run


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="create or show an account key file")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    ksub.required = True
    new = ksub.add_parser("new", help="generate a new Ed25519 account key")
    new.add_argument("--out", help="write the key file here (default: print it)")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.set_defaults(func=_guarded(cmd_keys_new))
    show = ksub.add_parser("show", help="address and public key of a key file")
    show.add_argument("file")
    show.add_argument("--json", action="store_true")
    show.add_argument("--address", action="store_true", help="print only the address")
    show.set_defaults(func=_guarded(cmd_keys_show))

    tx = sub.add_parser("tx", help="build, sign and submit a transaction")
    tsub = tx.add_subparsers(dest="kind", metavar="KIND")
    tsub.required = True
    for _, (kind, cls) in sorted(TX_KINDS.items()):
        p = tsub.add_parser(kind, help=KIND_HELP.get(kind, kind))
        for name, wt in cls.WIRE_FIELDS:
            if name not in DERIVED.get(kind, ()):
                _add_field_option(p, name, wt, FROM_MANIFEST if kind == "register_model" else ())
        _add_derived_options(p, kind)
        p.add_argument("--key", required=True, help="the sender's key file")
        p.add_argument("--rpc", default=DEFAULT_RPC, help=f"node RPC URL (default {DEFAULT_RPC})")
        p.add_argument("--wait", action="store_true", help="wait until a block commits it")
        p.add_argument("--timeout", type=_nonneg_int, help="seconds to wait with --wait (the node caps it)")
        p.add_argument("--fee", type=_nonneg_int, help="fee (default: the chain's minimum)")
        p.add_argument("--nonce", type=_nonneg_int, help="nonce (default: the account's next)")
        p.add_argument("--chain-id", help="chain id (default: asked from the node)")
        p.add_argument("--dry-run", action="store_true", help="print the signed transaction, do not submit")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.set_defaults(func=_guarded(cmd_tx))

    q = sub.add_parser("query", help="call a JSON-RPC query method (docs/rpc.md)",
                       description="`attrchain query METHOD --help` lists the method's parameters")
    qsub = q.add_subparsers(dest="method", metavar="METHOD")
    qsub.required = True
    for name in QUERY_METHODS:
        m = METHODS[name]
        mp = qsub.add_parser(name, help=m.summary, description=m.summary, epilog=_params_help(m),
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        mp.add_argument("params", nargs="*", metavar="PARAM", help="name=value ... or values by position")
        mp.add_argument("--rpc", default=DEFAULT_RPC, help=f"node RPC URL (default {DEFAULT_RPC})")
        mp.add_argument("--json", action="store_true", help="print the JSON result")
        mp.set_defaults(func=_guarded(cmd_query))


def _params_help(method: Any) -> str:
    """The parameter list of `query METHOD --help`, from the RPC method table."""
    if not method.params:
        return "parameters: none"
    lines = ["parameters (name=value, or by position in this order):"]
    for prm in method.params:
        need = "required" if prm.required else f"default {json.dumps(prm.default)}"
        kind = f"{prm.type.doc}, " if prm.type.doc else ""
        lines.append(f"  {prm.name}  ({kind}{need}) {prm.doc}".rstrip())
    return "\n".join(lines)
