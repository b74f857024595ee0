"""Genesis: the JSON document every node starts from, and `init_chain` that writes it to state.

genesis.json:
{
  "chain_id": "attrchain-devnet",
  "genesis_time_ms": 1700000000000,
  "params_preset": "devnet",                      # "devnet" or "default"
  "params": {"staking": {"unbonding_blocks": 10}}, # optional overrides per section
  "accounts": [{"address": "0x..", "balance": 1000}],
  "validators": [{"operator": "0x..", "consensus_public_key": "0x..", "stake": 10, "moniker": "v0"}]
}
The genesis hash is sha256 of the canonical msgpack of the parsed document (not of the JSON text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from state import keys
from state.accounts import Account, ChainMeta, get_account, set_account
from state.codec import pack
from state.crypto import from_hex, sha256, to_hex
from state.errors import GenesisError
from state.params import PRESETS, Params, to_dict, with_overrides
from state.store import StateView

MAX_CHAIN_ID = 64


@dataclass(frozen=True)
class GenesisValidator:
    operator: bytes
    consensus_public_key: bytes
    stake: int
    moniker: str


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    genesis_time_ms: int
    params: Params
    accounts: tuple[tuple[bytes, int], ...]
    validators: tuple[GenesisValidator, ...]
    preset: str = "devnet"
    overrides: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "genesis_time_ms": self.genesis_time_ms,
            "params_preset": self.preset,
            "params": self.overrides or {},
            "accounts": [{"address": to_hex(a), "balance": b} for a, b in self.accounts],
            "validators": [
                {
                    "operator": to_hex(v.operator),
                    "consensus_public_key": to_hex(v.consensus_public_key),
                    "stake": v.stake,
                    "moniker": v.moniker,
                }
                for v in self.validators
            ],
        }

    def hash(self) -> bytes:
        return sha256(
            pack(
                [
                    self.chain_id,
                    self.genesis_time_ms,
                    self.params.to_wire(),  # type: ignore[attr-defined]
                    [[a, b] for a, b in self.accounts],
                    [[v.operator, v.consensus_public_key, v.stake, v.moniker] for v in self.validators],
                ]
            )
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @property
    def total_supply(self) -> int:
        return sum(b for _, b in self.accounts) + sum(v.stake for v in self.validators)


def _int(value: Any, what: str) -> int:
    if type(value) is not int or value < 0 or value >= 1 << 64:
        raise GenesisError(f"{what} must be an integer in [0, 2^64)")
    return value


def parse_genesis(doc: Any, require_validators: bool = True) -> Genesis:
    """Validate a genesis JSON object; raises GenesisError with the first problem found.

    ``require_validators=False`` accepts a draft of the genesis ceremony (node/ceremony.py)."""
    try:
        if not isinstance(doc, dict):
            raise GenesisError("genesis must be a JSON object")
        chain_id = doc.get("chain_id")
        if not isinstance(chain_id, str) or not 0 < len(chain_id) <= MAX_CHAIN_ID:
            raise GenesisError("chain_id must be a non-empty string of at most 64 characters")
        time_ms = _int(doc.get("genesis_time_ms", 0), "genesis_time_ms")
        preset = doc.get("params_preset", "devnet")
        if preset not in PRESETS:
            raise GenesisError(f"params_preset must be one of {sorted(PRESETS)}")
        overrides = doc.get("params", {}) or {}
        params = with_overrides(PRESETS[preset], overrides)
        accounts = []
        seen: set[bytes] = set()
        for i, a in enumerate(doc.get("accounts", [])):
            addr = from_hex(a["address"], 20)
            if addr in seen:
                raise GenesisError(f"accounts[{i}]: duplicate address")
            seen.add(addr)
            accounts.append((addr, _int(a["balance"], f"accounts[{i}].balance")))
        validators = []
        seen_ops: set[bytes] = set()
        for i, v in enumerate(doc.get("validators", [])):
            gv = GenesisValidator(
                from_hex(v["operator"], 20),
                from_hex(v["consensus_public_key"], 32),
                _int(v["stake"], f"validators[{i}].stake"),
                str(v.get("moniker", f"validator-{i}"))[:64],
            )
            if gv.operator in seen_ops:
                raise GenesisError(f"validators[{i}]: duplicate operator")
            if gv.stake <= 0:
                raise GenesisError(f"validators[{i}]: stake must be positive")
            seen_ops.add(gv.operator)
            validators.append(gv)
        if not validators and require_validators:
            raise GenesisError("genesis needs at least one validator (a draft? run `attrchain genesis collect-gentxs`)")
        gen = Genesis(chain_id, time_ms, params, tuple(accounts), tuple(validators), preset, overrides)
        if gen.total_supply >= 1 << 64:
            raise GenesisError("total supply does not fit in 64 bits")
        return gen
    except GenesisError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise GenesisError(f"invalid genesis: {exc}") from exc


def load_genesis(path: str | Path) -> Genesis:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise GenesisError(f"{path}: cannot read genesis ({exc})") from exc
    return parse_genesis(doc)


def init_chain(view: StateView, genesis: Genesis) -> None:
    """Write genesis params, balances, supply and validators into an empty state."""
    from state.staking import handlers as staking

    if view.get(keys.params_key()) is not None:
        raise GenesisError("state is not empty: genesis was already applied")
    view.put_obj(keys.params_key(), genesis.params)
    for addr, balance in genesis.accounts:
        acct = get_account(view, addr)
        set_account(view, addr, Account(acct.balance + balance, acct.nonce))
    view.put_obj(keys.chain_meta_key(), ChainMeta(genesis.total_supply, 0))
    staking.init_genesis(view, genesis)


def params_summary(params: Params) -> dict[str, dict[str, int]]:
    return to_dict(params)
