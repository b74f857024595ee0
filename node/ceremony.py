"""New node homes and the genesis ceremony (docs/operators.md), as in Cosmos:

    attrchain init --chain-id ID --home H        keys, commented config.toml, a DRAFT genesis.json
    attrchain genesis add-account ADDR AMOUNT    coordinator: fund an account in the draft
    attrchain genesis gentx --key OP --amount N  each validator: a signed create-validator statement
    attrchain genesis collect-gentxs             coordinator: verify them, write the final genesis.json
    attrchain genesis validate FILE | hash       anyone: one line per problem; the hash to compare

A gentx (JSON) is signed twice over ``sign_bytes("attrchain/gentx", chain_id, payload)``: by the
operator's account key (it authorises the stake) and by the consensus key (proof that the operator
holds it: nobody can register another validator's consensus key). Its stake is taken from the
operator's genesis balance, so the coordinator funds each operator with at least its stake.
Validators are ordered by operator address, so the same draft and gentxs give the same genesis
whoever collects them.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.config import Home, NodeConfig, split_host_port
from state.crypto import PrivateKey, address_of, from_hex, sign_bytes, to_hex, verify
from state.errors import GenesisError
from state.genesis import MAX_CHAIN_ID, Genesis, parse_genesis
from state.params import PRESETS, with_overrides

GENTX_DOMAIN = "attrchain/gentx"
GENTX_TYPE = "attrchain/gentx/v1"
CHAIN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_MONIKER = 64
MAX_GENTX_BYTES = 16 * 1024
GENESIS_KEYS = ("chain_id", "genesis_time_ms", "params_preset", "params", "accounts", "validators")


class CeremonyError(Exception):
    """A home, draft or gentx that cannot be used; the message is one line per problem."""


# ---- init -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InitResult:
    home: Home
    node_id: str
    consensus_public_key: bytes


def check_chain_id(chain_id: str) -> None:
    if not (0 < len(chain_id) <= MAX_CHAIN_ID and CHAIN_ID_RE.fullmatch(chain_id)):
        raise CeremonyError(f"chain id {chain_id!r} must be 1-{MAX_CHAIN_ID} letters, digits, '.', '_' or '-'")


def init_home(root: Path, chain_id: str, moniker: str = "node", preset: str = "default",
              config: NodeConfig | None = None) -> InitResult:
    """A new node home: node key, consensus key, commented config.toml and a draft genesis.json."""
    from p2p.identity import peer_id_from_seed

    home = Home(root)
    taken = [p for p in (home.config_dir, home.data_dir) if p.exists()]
    if taken:
        raise CeremonyError(f"{root} already holds a node home ({taken[0].name}/ exists); refusing to overwrite it")
    check_chain_id(chain_id)
    if preset not in PRESETS:
        raise CeremonyError(f"params preset {preset!r} is not one of {', '.join(sorted(PRESETS))}")
    if len(moniker) > MAX_MONIKER:
        raise CeremonyError(f"moniker is longer than {MAX_MONIKER} characters")
    cfg = config or NodeConfig()
    cfg.moniker = moniker
    home.config_dir.mkdir(parents=True, exist_ok=True)
    home.data_dir.mkdir(parents=True, exist_ok=True)
    node_key = home.node_key()
    consensus = PrivateKey.generate()
    consensus.save(home.validator_key_file)
    home.write_config(cfg)
    write_json(home.genesis_file, {"chain_id": chain_id, "genesis_time_ms": int(time.time() * 1000),
                                   "params_preset": preset, "params": {}, "accounts": [], "validators": []})
    return InitResult(home, peer_id_from_seed(node_key.seed), consensus.public_key)


def write_json(path: Path, doc: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)


def read_json(path: Path, what: str, limit: int | None = None) -> Any:
    try:
        text = path.read_bytes()
        if limit is not None and len(text) > limit:
            raise CeremonyError(f"{path}: {what} is larger than {limit} bytes")
        return json.loads(text)
    except OSError as exc:
        raise CeremonyError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise CeremonyError(f"{path}: the {what} is not JSON ({exc})") from None


def load_draft(home: Home) -> dict[str, Any]:
    doc = read_json(home.genesis_file, "genesis")
    try:
        parse_genesis(doc, require_validators=False)
    except GenesisError as exc:
        raise CeremonyError(f"{home.genesis_file}: {exc}") from None
    return doc  # type: ignore[no-any-return]


# ---- add-account --------------------------------------------------------------------------------


def add_account(home: Home, address: str, amount: int) -> dict[str, Any]:
    """Fund ``address`` in the home's draft genesis (added to an existing balance)."""
    doc = load_draft(home)
    try:
        addr = to_hex(from_hex(address, 20))
    except ValueError:
        raise CeremonyError(f"{address!r} is not a 0x address of 20 bytes") from None
    if amount <= 0:
        raise CeremonyError("amount must be a positive integer")
    for acct in doc["accounts"]:
        if acct["address"].lower() == addr:
            acct["balance"] += amount
            break
    else:
        doc["accounts"].append({"address": addr, "balance": amount})
    try:
        parse_genesis(doc, require_validators=False)
    except GenesisError as exc:
        raise CeremonyError(str(exc)) from None
    write_json(home.genesis_file, doc)
    return doc


# ---- gentx --------------------------------------------------------------------------------------


def gentx_payload(doc: dict[str, Any]) -> list[Any]:
    return [from_hex(doc["operator_public_key"], 32), from_hex(doc["consensus_public_key"], 32), doc["stake"],
            doc["moniker"], doc["node_id"], doc["p2p_address"]]


def make_gentx(home: Home, operator: PrivateKey, stake: int, moniker: str | None = None,
               p2p_address: str | None = None) -> dict[str, Any]:
    """The signed create-validator statement of this home's consensus key, staked by ``operator``."""
    from p2p.identity import peer_id_from_seed

    draft = load_draft(home)
    consensus = home.validator_key()
    if consensus is None:
        raise CeremonyError(f"{home.validator_key_file} is missing: this home has no consensus key")
    cfg = home.load_config()
    address = p2p_address if p2p_address is not None else cfg.p2p.external_address
    if address and split_host_port(address) is None:
        raise CeremonyError(f"p2p address {address!r} is not host:port")
    if stake <= 0:
        raise CeremonyError("amount must be a positive integer")
    doc: dict[str, Any] = {
        "type": GENTX_TYPE, "chain_id": draft["chain_id"], "operator": to_hex(operator.address),
        "operator_public_key": to_hex(operator.public_key), "consensus_public_key": to_hex(consensus.public_key),
        "stake": stake, "moniker": (moniker or cfg.moniker)[:MAX_MONIKER],
        "node_id": peer_id_from_seed(home.node_key().seed), "p2p_address": address,
    }
    message = sign_bytes(GENTX_DOMAIN, doc["chain_id"], gentx_payload(doc))
    doc["signature"] = to_hex(operator.sign(message))
    doc["consensus_signature"] = to_hex(consensus.sign(message))
    return doc


def check_gentx(doc: Any, chain_id: str) -> list[str]:
    """Every problem of one gentx, one line each (empty: it is valid and correctly signed)."""
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    missing = [k for k in ("type", "chain_id", "operator", "operator_public_key", "consensus_public_key", "stake",
                           "moniker", "node_id", "p2p_address", "signature", "consensus_signature") if k not in doc]
    if missing:
        return [f"missing field(s): {', '.join(missing)}"]
    problems = []
    if doc["type"] != GENTX_TYPE:
        problems.append(f"type is {doc['type']!r}, expected {GENTX_TYPE!r}")
    if doc["chain_id"] != chain_id:
        problems.append(f"made for chain {doc['chain_id']!r}, not {chain_id!r}")
    if type(doc["stake"]) is not int or not 0 < doc["stake"] < 1 << 64:
        problems.append("stake must be a positive integer below 2^64")
    if not isinstance(doc["moniker"], str) or len(doc["moniker"]) > MAX_MONIKER:
        problems.append(f"moniker must be a string of at most {MAX_MONIKER} characters")
    if not isinstance(doc["node_id"], str) or not doc["node_id"].isalnum():
        problems.append("node_id must be a libp2p peer id")
    if not isinstance(doc["p2p_address"], str) or (doc["p2p_address"] and split_host_port(doc["p2p_address"]) is None):
        problems.append("p2p_address must be \"host:port\" or empty")
    try:
        op_pk = from_hex(doc["operator_public_key"], 32)
        if to_hex(address_of(op_pk)) != str(doc["operator"]).lower():
            problems.append("operator is not the address of operator_public_key")
        from_hex(doc["consensus_public_key"], 32)
        sig, csig = from_hex(doc["signature"], 64), from_hex(doc["consensus_signature"], 64)
    except (ValueError, TypeError, AttributeError) as exc:
        return [*problems, f"bad hex field: {exc}"]
    if problems:
        return problems
    message = sign_bytes(GENTX_DOMAIN, chain_id, gentx_payload(doc))
    if not verify(op_pk, sig, message):
        problems.append("signature is not the operator's signature of this gentx")
    if not verify(from_hex(doc["consensus_public_key"], 32), csig, message):
        problems.append("consensus_signature is not made by the consensus key (no proof of possession)")
    return problems


# ---- collect-gentxs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Collected:
    genesis: Genesis
    peers: list[str]  # "<node id>@<host>:<port>" of every gentx with a p2p address


def collect_gentxs(home: Home, gentx_dir: Path | None = None) -> Collected:
    """Verify every gentx in ``gentx_dir`` (default HOME/config/gentx) and write the final genesis."""
    draft = load_draft(home)
    directory = gentx_dir or home.config_dir / "gentx"
    files = sorted(directory.glob("*.json")) if directory.is_dir() else []
    if not files:
        raise CeremonyError(f"no gentx files (*.json) in {directory}")
    balances = {a["address"].lower(): i for i, a in enumerate(draft["accounts"])}
    problems: list[str] = []
    seen: dict[str, str] = {}
    gentxs = []
    for path in files:
        doc = read_json(path, "gentx", MAX_GENTX_BYTES)
        errs = check_gentx(doc, draft["chain_id"])
        if not errs:
            op = doc["operator"].lower()
            for field_, value in (("operator", op), ("consensus key", doc["consensus_public_key"].lower()),
                                  ("node id", doc["node_id"])):
                if (field_, value) in seen:
                    errs.append(f"same {field_} as {seen[field_, value]}")
                seen[field_, value] = path.name
            if op not in balances:
                errs.append(f"operator {op} has no genesis account (genesis add-account {op} AMOUNT)")
            elif draft["accounts"][balances[op]]["balance"] < doc["stake"]:
                errs.append(f"stake {doc['stake']} exceeds the operator's genesis balance "
                            f"{draft['accounts'][balances[op]]['balance']}")
            else:
                draft["accounts"][balances[op]]["balance"] -= doc["stake"]
        problems += [f"{path.name}: {e}" for e in errs]
        gentxs.append(doc)
    if problems:
        raise CeremonyError("\n".join(problems))
    existing = {v["operator"].lower() for v in draft["validators"]}
    for doc in sorted(gentxs, key=lambda d: d["operator"].lower()):
        if doc["operator"].lower() in existing:
            raise CeremonyError(f"validator {doc['operator']} is already in the genesis (collected twice?)")
        draft["validators"].append({"operator": doc["operator"].lower(), "consensus_public_key":
                                    doc["consensus_public_key"].lower(), "stake": doc["stake"],
                                    "moniker": doc["moniker"]})
    draft["validators"].sort(key=lambda v: v["operator"])
    errors = validate_genesis_doc(draft)
    if errors:
        raise CeremonyError("\n".join(errors))
    genesis = parse_genesis(draft)
    write_json(home.genesis_file, draft)
    peers = [f"{d['node_id']}@{d['p2p_address']}" for d in sorted(gentxs, key=lambda d: d["operator"].lower())
             if d["p2p_address"]]
    return Collected(genesis, peers)


# ---- validate --------------------------------------------------------------------------------------


def _hex_problem(value: Any, size: int) -> str | None:
    try:
        from_hex(value, size)
    except (ValueError, TypeError, AttributeError):
        return f"must be 0x and {size} bytes of hex"
    return None


def validate_genesis_doc(doc: Any) -> list[str]:
    """Every problem of a genesis document, one line each (empty: a node can start from it)."""
    from state.staking.records import is_valid_consensus_key

    if not isinstance(doc, dict):
        return ["the genesis must be a JSON object"]
    out = [f"unknown field {k!r} (known: {', '.join(GENESIS_KEYS)})" for k in doc if k not in GENESIS_KEYS]
    chain_id = doc.get("chain_id")
    if not isinstance(chain_id, str) or not 0 < len(chain_id) <= MAX_CHAIN_ID:
        out.append(f"chain_id must be a non-empty string of at most {MAX_CHAIN_ID} characters")
    t = doc.get("genesis_time_ms", 0)
    if type(t) is not int or not 0 <= t < 1 << 64:
        out.append("genesis_time_ms must be an integer in [0, 2^64) (milliseconds since 1970)")
    preset = doc.get("params_preset", "devnet")
    params = None
    if preset not in PRESETS:
        out.append(f"params_preset {preset!r} is not one of {', '.join(sorted(PRESETS))}")
    else:
        try:
            params = with_overrides(PRESETS[preset], doc.get("params") or {})
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            out.append(f"params: {exc}")
    supply = 0
    accounts = doc.get("accounts", [])
    if not isinstance(accounts, list):
        out.append("accounts must be a list")
        accounts = []
    seen: set[str] = set()
    for i, a in enumerate(accounts):
        where = f"accounts[{i}]"
        if not isinstance(a, dict) or set(a) != {"address", "balance"}:
            out.append(f"{where} must be an object with exactly address and balance")
            continue
        bad = _hex_problem(a["address"], 20)
        if bad:
            out.append(f"{where}.address {bad}")
        elif a["address"].lower() in seen:
            out.append(f"{where}.address {a['address']} appears twice")
        else:
            seen.add(a["address"].lower())
        if type(a["balance"]) is not int or not 0 <= a["balance"] < 1 << 64:
            out.append(f"{where}.balance must be an integer in [0, 2^64)")
        else:
            supply += a["balance"]
    validators = doc.get("validators", [])
    if not isinstance(validators, list):
        out.append("validators must be a list")
        validators = []
    if not validators:
        out.append("no validators: a chain needs at least one (run `attrchain genesis collect-gentxs`)")
    ops: set[str] = set()
    keys: set[str] = set()
    min_stake = params.staking.min_self_stake if params is not None else 0
    for i, v in enumerate(validators):
        where = f"validators[{i}]"
        if not isinstance(v, dict) or not {"operator", "consensus_public_key", "stake"} <= set(v):
            out.append(f"{where} must be an object with operator, consensus_public_key, stake (and moniker)")
            continue
        bad = _hex_problem(v["operator"], 20)
        if bad:
            out.append(f"{where}.operator {bad}")
        elif v["operator"].lower() in ops:
            out.append(f"{where}.operator {v['operator']} appears twice")
        else:
            ops.add(v["operator"].lower())
        bad = _hex_problem(v["consensus_public_key"], 32)
        if bad:
            out.append(f"{where}.consensus_public_key {bad}")
        elif not is_valid_consensus_key(from_hex(v["consensus_public_key"], 32)):
            out.append(f"{where}.consensus_public_key is not a valid Ed25519 public key")
        elif v["consensus_public_key"].lower() in keys:
            out.append(f"{where}.consensus_public_key is used by another validator")
        else:
            keys.add(v["consensus_public_key"].lower())
        stake = v["stake"]
        if type(stake) is not int or not 0 < stake < 1 << 64:
            out.append(f"{where}.stake must be a positive integer below 2^64")
        else:
            supply += stake
            if stake < min_stake:
                out.append(f"{where}.stake {stake} is below the params' min_self_stake {min_stake}")
        if not isinstance(v.get("moniker", ""), str) or len(v.get("moniker", "")) > MAX_MONIKER:
            out.append(f"{where}.moniker must be a string of at most {MAX_MONIKER} characters")
    if supply >= 1 << 64:
        out.append(f"total supply {supply} (balances + stakes) does not fit in 64 bits")
    if not out:
        out += _trial_init(doc)
    return out


def _trial_init(doc: dict[str, Any]) -> list[str]:
    """Apply the genesis to a scratch LevelDB: the chain-level checks a node would make at start."""
    from state.genesis import init_chain
    from state.store import StateDB

    store_log = logging.getLogger("state.store")
    level = store_log.level
    store_log.setLevel(logging.WARNING)  # "state store opened" of a scratch store is noise here
    try:
        genesis = parse_genesis(doc)
        with tempfile.TemporaryDirectory(prefix="attrchain-genesis-") as tmp:
            db = StateDB(Path(tmp) / "db")
            try:
                init_chain(db.view(), genesis)
            finally:
                db.close()
    except GenesisError as exc:
        return [str(exc)]
    finally:
        store_log.setLevel(level)
    return []


def validate_genesis_file(path: Path) -> tuple[list[str], Genesis | None]:
    try:
        text = path.read_text()
    except OSError as exc:
        return [f"cannot read {path}: {exc.strerror or exc}"], None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        return [f"not JSON: {exc}"], None
    problems = validate_genesis_doc(doc)
    return problems, (None if problems else parse_genesis(doc))
