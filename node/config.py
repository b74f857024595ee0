"""Node home folder, config.toml and the one-step development chain.

HOME/
  config/config.toml              node settings (this module)
  config/genesis.json             the chain (state/genesis.py)
  config/node_key.json            libp2p identity (Ed25519 seed)
  config/priv_validator_key.json  consensus signing key (validators only)
  data/state.db/                  LevelDB: state, state tree, blocks, indexes
  data/priv_validator_state.json  last signed (height, round, step): never double-sign
  data/cs.wal                     consensus write-ahead log of the height in progress
  dev.key                         prefunded development account (dev chains only)
"""

from __future__ import annotations

import dataclasses
import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from state.crypto import PrivateKey, to_hex
from state.genesis import Genesis, parse_genesis

DEFAULT_HOME = Path(os.environ.get("ATTRCHAIN_HOME", Path.home() / ".attrchain"))
DEV_CHAIN_ID = "attrchain-dev"
DEV_BALANCE = 10**15
DEV_STAKE = 10**9


class ConfigError(ValueError):
    """A config.toml that cannot be read or holds an invalid setting."""


@dataclass
class RPCConfig:
    host: str = "127.0.0.1"
    port: int = 26657
    max_body_bytes: int = 1_000_000
    max_batch: int = 100
    max_page: int = 100
    commit_timeout_s: int = 30
    max_subscriptions_per_client: int = 8
    # connections served at once (HTTP and WebSocket); more are answered 503 and closed
    max_open_connections: int = 900
    # a connection that sends nothing for this long, mid-request or idle, is closed
    read_timeout_s: int = 10


@dataclass
class P2PConfig:
    host: str = "127.0.0.1"
    port: int = 26656
    # "<peer id>@<host>:<port>"
    persistent_peers: list[str] = field(default_factory=list)
    gossip_degree: int = 3
    tx_batch_interval_ms: int = 50
    max_tx_batch_bytes: int = 256 * 1024
    # peer accountability (p2p/scoring.py, docs/security.md)
    ban_threshold: int = 100
    ban_s: int = 300
    # each gossip topic's inbox: messages, bytes, and bytes from one originating peer
    inbox_messages: int = 1024
    inbox_bytes: int = 32 * 1024 * 1024
    inbox_peer_bytes: int = 8 * 1024 * 1024
    # block sync: one request's timeout, and how often peers' heights are polled
    sync_request_timeout_s: int = 10
    sync_poll_s: int = 2
    # validators send proposals and votes straight to each other over persistent streams and
    # leave the consensus gossip topics while every other validator reaches them so (docs/p2p.md
    # "Direct consensus streams"); they still publish there for observers
    direct_consensus: bool = False


@dataclass
class MempoolConfig:
    max_txs: int = 50_000
    max_bytes: int = 64 * 1024 * 1024
    max_per_sender: int = 1_000


@dataclass
class ConsensusConfig:
    # Blocks are produced at least every commit timeout even when empty, like CometBFT.
    create_empty_blocks: bool = True
    max_block_txs: int = 5_000
    # peer-fed consensus buffers (docs/security.md): messages for heights not started yet, in all
    # and per originating peer; authenticated peer events waiting for the machine; received blocks
    # of the height in progress
    future_buffer_bytes: int = 16 * 1024 * 1024
    future_buffer_peer_bytes: int = 4 * 1024 * 1024
    peer_queue_events: int = 4_096
    candidate_bytes: int = 32 * 1024 * 1024
    # a proposal whose block is larger is gossiped without it; peers fetch the body by hash
    proposal_inline_bytes: int = 512 * 1024


@dataclass
class FaultConfig:
    """Devnet-only fault injection (never set on a real network)."""

    double_sign: bool = False
    admin: bool = False  # enable the /admin endpoints (partition deny list)
    refuse_direct: bool = False  # reset every inbound direct consensus stream (direct path cut)


@dataclass
class NodeConfig:
    moniker: str = "node"
    rpc: RPCConfig = field(default_factory=RPCConfig)
    p2p: P2PConfig = field(default_factory=P2PConfig)
    mempool: MempoolConfig = field(default_factory=MempoolConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)

    def to_toml(self) -> str:
        return tomli_w.dumps(dataclasses.asdict(self))


def _section(cls: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"[{where}] must be a table")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ConfigError(f"[{where}] unknown settings: {', '.join(sorted(unknown))}")
    obj = cls()
    for k, v in data.items():
        default = getattr(obj, k)
        if type(default) is not type(v) or (type(v) is int and v < 0):
            raise ConfigError(f"[{where}] {k} must be a {type(default).__name__}")
        setattr(obj, k, v)
    return obj


def parse_config(text: str) -> NodeConfig:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config.toml: {exc}") from exc
    cfg = NodeConfig()
    for k, v in doc.items():
        if k == "moniker":
            if not isinstance(v, str):
                raise ConfigError("moniker must be a string")
            cfg.moniker = v
            continue
        sub = {f.name: f for f in dataclasses.fields(NodeConfig)}.get(k)
        if sub is None or k == "moniker":
            raise ConfigError(f"unknown section [{k}]")
        setattr(cfg, k, _section(type(getattr(cfg, k)), v, k))
    for section, key in MUST_BE_POSITIVE:
        if getattr(getattr(cfg, section), key) < 1:
            raise ConfigError(f"[{section}] {key} must be at least 1")
    return cfg


# limits where 0 would not mean "unlimited" but "refuse everything" (docs/security.md)
MUST_BE_POSITIVE = (
    ("rpc", "max_open_connections"), ("rpc", "read_timeout_s"),
    ("p2p", "ban_threshold"), ("p2p", "inbox_messages"), ("p2p", "inbox_bytes"), ("p2p", "inbox_peer_bytes"),
    ("p2p", "sync_request_timeout_s"), ("p2p", "sync_poll_s"),
)


@dataclass
class Home:
    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def genesis_file(self) -> Path:
        return self.config_dir / "genesis.json"

    @property
    def node_key_file(self) -> Path:
        return self.config_dir / "node_key.json"

    @property
    def validator_key_file(self) -> Path:
        return self.config_dir / "priv_validator_key.json"

    @property
    def signer_state_file(self) -> Path:
        return self.data_dir / "priv_validator_state.json"

    @property
    def wal_file(self) -> Path:
        return self.data_dir / "cs.wal"

    @property
    def db_dir(self) -> Path:
        return self.data_dir / "state.db"

    @property
    def dev_key_file(self) -> Path:
        return self.root / "dev.key"

    def is_initialised(self) -> bool:
        return self.genesis_file.exists() and self.config_file.exists()

    def load_config(self) -> NodeConfig:
        try:
            return parse_config(self.config_file.read_text())
        except OSError as exc:
            raise ConfigError(f"{self.config_file}: {exc}") from exc

    def write_config(self, cfg: NodeConfig) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(cfg.to_toml())

    def node_key(self) -> PrivateKey:
        if not self.node_key_file.exists():
            PrivateKey.generate().save(self.node_key_file)
        return PrivateKey.load(self.node_key_file)

    def validator_key(self) -> PrivateKey | None:
        if not self.validator_key_file.exists():
            return None
        return PrivateKey.load(self.validator_key_file)


def init_dev_home(home: Home, rpc_port: int = 26657, p2p_port: int = 26656) -> Genesis:
    """Create a single-validator development chain in ``home`` with a prefunded dev account."""
    home.config_dir.mkdir(parents=True, exist_ok=True)
    home.data_dir.mkdir(parents=True, exist_ok=True)
    validator = PrivateKey.generate()
    validator.save(home.validator_key_file)
    dev = PrivateKey.generate()
    dev.save(home.dev_key_file)
    home.node_key()
    genesis = parse_genesis(
        {
            "chain_id": DEV_CHAIN_ID,
            "genesis_time_ms": int(time.time() * 1000),
            "params_preset": "devnet",
            "accounts": [
                {"address": to_hex(dev.address), "balance": DEV_BALANCE},
                {"address": to_hex(validator.address), "balance": DEV_BALANCE},
            ],
            "validators": [
                {
                    "operator": to_hex(validator.address),
                    "consensus_public_key": to_hex(validator.public_key),
                    "stake": DEV_STAKE,
                    "moniker": "dev",
                }
            ],
        }
    )
    genesis.save(home.genesis_file)
    cfg = NodeConfig(moniker="dev")
    cfg.rpc.port = rpc_port
    cfg.p2p.port = p2p_port
    home.write_config(cfg)
    return genesis
