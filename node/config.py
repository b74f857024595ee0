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
import textwrap
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


# ---- the one table of options ------------------------------------------------------------------
# Every option is declared here with `opt(default, help)`; `attrchain init` writes config.toml with
# each help text as a comment above its option and docs/config.md is generated from the same table
# (`python -m node.config > docs/config.md`), so file, docs and code never drift.


def opt(default: Any, help: str) -> Any:  # noqa: A002 - the natural name of the field
    """A config option with its help text (lists get a fresh copy per config)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class RPCConfig:
    """JSON-RPC, WebSocket and /metrics server (docs/rpc.md)."""

    host: str = opt("127.0.0.1", "interface the RPC server listens on (0.0.0.0: every interface; "
                                 "expose it only behind a proxy you trust)")
    port: int = opt(26657, "RPC port")
    max_body_bytes: int = opt(1_000_000, "largest HTTP request body accepted, in bytes")
    max_batch: int = opt(100, "most calls in one JSON-RPC batch")
    max_page: int = opt(100, "most items in one page of a paged query")
    commit_timeout_s: int = opt(30, "how long broadcast_tx_commit waits for the block, in seconds")
    max_subscriptions_per_client: int = opt(8, "WebSocket subscriptions one connection may hold")
    max_open_connections: int = opt(900, "connections served at once (HTTP and WebSocket); more are "
                                         "answered 503 and closed")
    read_timeout_s: int = opt(10, "a connection that sends nothing for this long, mid-request or idle, "
                                  "is closed (seconds)")
    explorer: bool = opt(True, "serve the web explorer on GET / of the RPC port (docs/explorer.md); "
                               "false: only JSON-RPC, WebSocket and /metrics")
    front_process: bool = opt(True, "serve HTTP, WebSocket and the door's refusals from a process of "
                                    "the node's own (node/rpc/front.py): a client turned away at the "
                                    "door is answered without the node's event loop or GIL; false: "
                                    "from a thread of the node process")
    task_cpu: bool = opt(False, "count the CPU time of the node's event-loop tasks by name in /metrics "
                                "(attrchain_task_cpu_seconds_total): where a node's CPU goes; two clock "
                                "reads per task step")


@dataclass
class P2PConfig:
    """libp2p networking (docs/p2p.md, docs/operators.md)."""

    host: str = opt("127.0.0.1", "interface the p2p port listens on (0.0.0.0: every interface)")
    port: int = opt(26656, "p2p (libp2p TCP) port")
    external_address: str = opt("", "\"host:port\" other nodes can dial to reach this one, for a host "
                                    "behind NAT or listening on 0.0.0.0 (\"\": not advertised)")
    persistent_peers: list[str] = opt([], "peers to stay connected to, redialled when lost: "
                                          "\"<peer id>@<host>:<port>\"")
    seeds: list[str] = opt([], "peers dialled at start to learn other peers from (peer exchange), "
                               "\"<peer id>@<host>:<port>\"")
    pex: bool = opt(True, "peer exchange: ask connected peers for addresses and dial learned ones "
                          "(docs/p2p.md)")
    pex_target_peers: int = opt(8, "peer exchange dials learned addresses while fewer than this many "
                                   "peers are connected")
    pex_book_size: int = opt(256, "most peer addresses kept from peer exchange (at most 16 from one peer)")
    allow_private_addresses: bool = opt(False, "peer exchange may learn, dial and share loopback and "
                                               "private addresses (10/8, 192.168/16, ...): a LAN or "
                                               "a local devnet")
    gossip_degree: int = opt(3, "peers each gossip message is forwarded to")
    tx_batch_interval_ms: int = opt(50, "newly accepted transactions are gossiped as one batch this often")
    max_tx_batch_bytes: int = opt(256 * 1024, "largest transaction batch gossiped, in bytes")
    ban_threshold: int = opt(100, "misbehaviour score at which a peer is banned (p2p/scoring.py, "
                                  "docs/security.md)")
    ban_s: int = opt(300, "how long a banned peer stays banned, in seconds")
    inbox_messages: int = opt(1024, "messages each gossip topic's inbox holds")
    inbox_bytes: int = opt(32 * 1024 * 1024, "bytes each gossip topic's inbox holds")
    inbox_peer_bytes: int = opt(8 * 1024 * 1024, "bytes of one topic's inbox one originating peer may fill")
    peer_tx_rate: int = opt(5_000, "transactions per second taken from one peer's gossip; more are dropped")
    sync_request_timeout_s: int = opt(10, "block sync: one request's timeout, in seconds")
    sync_poll_s: int = opt(2, "block sync: how often peers' heights are polled, in seconds")
    direct_consensus: bool = opt(True, "validators send proposals and votes straight to each other over "
                                       "persistent streams and leave the consensus gossip topics while every "
                                       "validator streams to every other (docs/p2p.md \"Direct consensus streams\")")
    validator_link: bool = opt(True, "validators carry their direct consensus batches on a side TCP connection of "
                                     "encrypted records instead of the libp2p stream (docs/p2p.md \"Validator links\")")
    validator_link_port: int = opt(0, "TCP port on the p2p host that validator links are offered on; 0: any free "
                                      "port (open it in a firewall: a peer that cannot reach it uses the stream)")


@dataclass
class MempoolConfig:
    """Pending transactions (docs/node.md)."""

    max_txs: int = opt(50_000, "most transactions held")
    max_bytes: int = opt(64 * 1024 * 1024, "most bytes of transactions held")
    max_per_sender: int = opt(1_000, "most transactions held from one sender")
    intake_share_pct: int = opt(50, "most of the event loop's time spent admitting transactions, in percent; "
                                    "over it clients get intake_busy (-32005) and peers' transactions are "
                                    "dropped (node/tx_intake.py)")
    verify_workers: int = opt(0, "worker processes checking transaction signatures with verify_processes "
                                 "(0: one per core but one, at most 4; on one core: inline)")
    verify_processes: bool = opt(True, "check batches' signatures in verify_workers worker processes; false: in "
                                       "one thread of the node (libsodium releases the GIL; less CPU, but the "
                                       "loop and an RPC thread (rpc.front_process = false) wait "
                                       "longer for the GIL: node/tx_intake.py)")
    verify_inline: bool = opt(False, "check every transaction signature on the event loop, no thread or worker "
                                     "processes")
    max_wait_ms: int = opt(1_000, "clients get mempool_full (-32005) while the pool holds more than this much "
                                  "of the recent commit rate (at least 500 transactions): what is accepted "
                                  "commits within about this time; 0: only max_txs bounds the pool")


@dataclass
class ConsensusConfig:
    """Block production and the peer-fed consensus buffers (docs/consensus.md, docs/security.md)."""

    fill_wait_ms: int = opt(0, "after the commit timeout, wait up to this much longer while the pool holds "
                               "some transactions but fewer than fill_txs: fewer, fuller blocks under a "
                               "moderate load (every height costs every validator the same consensus work; "
                               "devnets above 8 nodes set 300); 0: off, blocks at the commit timeout like CometBFT")
    fill_txs: int = opt(500, "the pool size that ends the fill wait at once")
    max_block_txs: int = opt(5_000, "most transactions this node puts in a block it proposes")
    future_buffer_bytes: int = opt(16 * 1024 * 1024, "bytes of messages kept for heights not started yet")
    future_buffer_peer_bytes: int = opt(4 * 1024 * 1024, "of those, bytes from one originating peer")
    peer_queue_events: int = opt(4_096, "authenticated peer events waiting for the consensus machine")
    candidate_bytes: int = opt(32 * 1024 * 1024, "bytes of received blocks kept for the height in progress")
    proposal_inline_bytes: int = opt(512 * 1024, "a proposal whose block is larger is gossiped without it; "
                                                 "peers fetch the body by hash (816000 at most)")


@dataclass
class StateSyncConfig:
    """State sync: serve snapshots, or start an empty node from one (docs/statesync.md)."""

    snapshot_interval: int = opt(1000, "write a state snapshot every this many blocks and serve it to "
                                       "joining nodes (0: none)")
    snapshot_keep: int = opt(2, "snapshots kept on disk (the newest)")
    enable: bool = opt(False, "start an empty node from a peer's snapshot instead of replaying every "
                              "block; needs trust_height and trust_hash")
    trust_height: int = opt(0, "height of a block you trust (ask an operator or explorer you trust); "
                               "only snapshots above it are used")
    trust_hash: str = opt("", "hex hash of the block at trust_height; the snapshot is verified from it "
                              "by light-client checks (validator-set changes, > 2/3 commits)")


@dataclass
class FaultConfig:
    """Devnet-only fault injection: never set on a real network."""

    double_sign: bool = opt(False, "make this validator sign two blocks per height (a test of slashing)")
    admin: bool = opt(False, "enable the /admin endpoints (partition deny list)")
    refuse_direct: bool = opt(False, "reset every inbound direct consensus stream (tests the gossip fallback)")


@dataclass
class NodeConfig:
    moniker: str = opt("node", "this node's name, shown to peers and in status")
    rpc: RPCConfig = field(default_factory=RPCConfig)
    p2p: P2PConfig = field(default_factory=P2PConfig)
    mempool: MempoolConfig = field(default_factory=MempoolConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    statesync: StateSyncConfig = field(default_factory=StateSyncConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)

    def to_toml(self) -> str:
        """config.toml with every option's help text as a comment above it."""
        out = ["# attrchain node configuration; every option with its meaning (docs/config.md).",
               "# Edit by hand or with `attrchain config set SECTION.KEY VALUE --home HOME`.", ""]
        for name, value, help_ in scalar_options(self):
            out += [*_comment(help_), tomli_w.dumps({name: value}).rstrip("\n"), ""]
        for section in sections():
            sub = getattr(self, section.name)
            out += [*_comment(type(sub).__doc__ or ""), f"[{section.name}]"]
            for name, value, help_ in scalar_options(sub):
                out += [*_comment(help_), tomli_w.dumps({name: value}).rstrip("\n")]
            out.append("")
        return "\n".join(out)


def _comment(text: str) -> list[str]:
    return ["# " + line for line in textwrap.wrap(" ".join(text.split()), 98)]


def sections() -> list[dataclasses.Field[Any]]:
    """The [section] tables of config.toml, in file order."""
    return [f for f in dataclasses.fields(NodeConfig) if dataclasses.is_dataclass(f.default_factory)]


def scalar_options(obj: Any) -> list[tuple[str, Any, str]]:
    """(name, value, help) of each plain option of a config object (sections excluded)."""
    return [(f.name, getattr(obj, f.name), f.metadata.get("help", ""))
            for f in dataclasses.fields(obj) if "help" in f.metadata]


def config_reference() -> str:
    """docs/config.md: every option of config.toml, its default and meaning (from this table)."""
    lines = ["# config.toml reference", "",
             "Generated by `python -m node.config > docs/config.md` from the option table in "
             "node/config.py; `attrchain init` writes the same text as comments into config.toml.", "",
             "| option | default | meaning |", "|---|---|---|"]
    default = NodeConfig()

    def row(key: str, value: Any, help_: str) -> str:
        shown = tomli_w.dumps({"v": value}).strip()[4:]
        return f"| `{key}` | `{shown}` | {' '.join(help_.split())} |"

    lines += [row(n, v, h) for n, v, h in scalar_options(default)]
    for section in sections():
        sub = getattr(default, section.name)
        lines.append(f"| **[{section.name}]** | | {' '.join((type(sub).__doc__ or '').split())} |")
        lines += [row(f"{section.name}.{n}", v, h) for n, v, h in scalar_options(sub)]
    return "\n".join(lines) + "\n"


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
    for key in ("persistent_peers", "seeds"):
        for entry in getattr(cfg.p2p, key):
            if not isinstance(entry, str) or split_peer(entry) is None:
                raise ConfigError(f"[p2p] {key}: {entry!r} is not \"<peer id>@<host>:<port>\"")
    if not 0 <= cfg.p2p.validator_link_port <= 65535:
        raise ConfigError("[p2p] validator_link_port must be in 0..65535")
    if cfg.mempool.intake_share_pct > 100:
        raise ConfigError("[mempool] intake_share_pct must be at most 100")
    if cfg.mempool.max_wait_ms < 0:
        raise ConfigError("[mempool] max_wait_ms must not be negative (0: off)")
    ss = cfg.statesync
    if ss.trust_hash and (len(ss.trust_hash.removeprefix("0x")) != 64
                          or any(c not in "0123456789abcdefABCDEF" for c in ss.trust_hash.removeprefix("0x"))):
        raise ConfigError("[statesync] trust_hash must be 64 hex digits (the block hash at trust_height)")
    if ss.enable and (ss.trust_height < 1 or not ss.trust_hash):
        raise ConfigError("[statesync] enable needs trust_height (>= 1) and trust_hash")
    if cfg.p2p.external_address and split_host_port(cfg.p2p.external_address) is None:
        raise ConfigError(f"[p2p] external_address: {cfg.p2p.external_address!r} is not \"<host>:<port>\"")
    return cfg


def set_option(cfg: NodeConfig, option: str, text: str) -> None:
    """Set ``SECTION.KEY`` (or ``moniker``) from command-line text; ConfigError when invalid."""
    section, _, key = option.rpartition(".")
    obj: Any = cfg
    if section:
        if section not in {f.name for f in sections()}:
            raise ConfigError(f"unknown section [{section}] (known: {', '.join(f.name for f in sections())})")
        obj = getattr(cfg, section)
    names = {n for n, _, _ in scalar_options(obj)}
    if key not in names:
        raise ConfigError(f"unknown option {option!r}; see docs/config.md")
    current = getattr(obj, key)
    value: Any
    if isinstance(current, bool):
        if text.lower() not in ("true", "false"):
            raise ConfigError(f"{option} must be true or false")
        value = text.lower() == "true"
    elif isinstance(current, int):
        if not text.isdigit():
            raise ConfigError(f"{option} must be a non-negative integer")
        value = int(text)
    elif isinstance(current, list):
        value = [p.strip() for p in text.split(",") if p.strip()]
    else:
        value = text
    setattr(obj, key, value)
    parse_config(cfg.to_toml())  # the same checks as at start (formats, limits)


def split_host_port(text: str) -> tuple[str, int] | None:
    """"host:port" -> (host, port), None when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c in host for c in "@/ "):
        return None
    return host, int(port)


def split_peer(text: str) -> tuple[str, str, int] | None:
    """"<peer id>@<host>:<port>" -> (peer id, host, port), None when malformed."""
    peer_id, sep, rest = text.partition("@")
    hp = split_host_port(rest) if sep else None
    if hp is None or not peer_id.isalnum():
        return None
    return peer_id, hp[0], hp[1]


# limits where 0 would not mean "unlimited" but "refuse everything" (docs/security.md)
MUST_BE_POSITIVE = (
    ("rpc", "max_open_connections"), ("rpc", "read_timeout_s"),
    ("p2p", "ban_threshold"), ("p2p", "inbox_messages"), ("p2p", "inbox_bytes"), ("p2p", "inbox_peer_bytes"),
    ("p2p", "sync_request_timeout_s"), ("p2p", "sync_poll_s"), ("p2p", "pex_book_size"), ("statesync", "snapshot_keep"),
    ("p2p", "peer_tx_rate"), ("mempool", "intake_share_pct"),
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


if __name__ == "__main__":
    print(config_reference(), end="")
