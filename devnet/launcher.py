"""A local N-validator network: one folder, one OS process per validator, loopback only.

DIR/
  devnet.json          the layout: nodes with their home, ports, peer id (written once)
  genesis.json         the shared genesis (also copied into each node's config/)
  faucet.key           a prefunded account for sending transactions
  node<i>/             each validator's home (config/, data/), node.pid, node.log

`up` creates the folder on first use and (re)starts every node that is not running; the chain and
its data survive `down`/`up`. `down` sends SIGTERM to the pids it started and waits, then SIGKILL.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from node.config import Home, NodeConfig
from state.crypto import PrivateKey, to_hex
from state.genesis import parse_genesis

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(".devnet")
DEFAULT_BASE_PORT = 26600
CHAIN_ID = "attrchain-devnet"
FAUCET_BALANCE = 10**15
VALIDATOR_BALANCE = 10**12
VALIDATOR_STAKE = 10**9
# Every gossip message costs each receiver ~2.5 ms of libp2p CPU whatever its size, and N nodes
# sharing a machine's cores cannot afford 20 transaction batches per node per second: with 50 ms
# (the node default) a 4-node devnet on 2 cores stopped committing at all above ~550 tx/s offered,
# its votes stuck behind batches; with 250 ms it sustains 1,200 tx/s (docs/devnet.md, Results).
# Each node receives a batch from each of the N-1 others per interval: at 16 validators that is
# 60 a second at 250 ms, and 500 ms took the loop CPU per committed tx from 6.0 to 5.5 ms and
# 16 x 300 tx/s offered from 241-251 to 261 committed (p50 2.1 s; 1,000 ms: 259, p50 2.4 s).
DEVNET_TX_BATCH_MS = 250
DEVNET_TX_BATCH_MS_LARGE = 500  # devnets of more than LARGE_DEVNET nodes
LARGE_DEVNET = 8
# Above LARGE_DEVNET nodes the CPU per transaction limits the devnet: signatures are checked in a
# thread of each node (mempool.verify_processes = false; 16 x 400: 300.1 against 260.4 tx/s), not
# in worker processes, which keep refusals quicker where there is CPU to spare (node/tx_intake.py).
# Above LARGE_DEVNET nodes, after the commit timeout a node with a few pooled transactions waits
# up to this long more for fill_txs of them (consensus.fill_wait_ms, docs/consensus.md "Fill
# wait"): 16 x 1,650 offered, same hour, 322.8-328.4 against 297.9-304.7 tx/s, p95 2.87-2.89
# against 3.22 s. Not below: at 4 validators offered their capacity it made fewer heights and
# fuller pools, more refusals and 1,601-1,752 against 1,750-1,852 tx/s committed.
DEVNET_FILL_WAIT_MS = 300


def devnet_tx_batch_ms(nodes: int) -> int:
    """The devnet's p2p.tx_batch_interval_ms for ``nodes`` nodes sharing this machine."""
    return DEVNET_TX_BATCH_MS if nodes <= LARGE_DEVNET else DEVNET_TX_BATCH_MS_LARGE


def devnet_fill_wait_ms(nodes: int) -> int:
    """The devnet's consensus.fill_wait_ms for ``nodes`` nodes sharing this machine."""
    return DEVNET_FILL_WAIT_MS if nodes > LARGE_DEVNET else 0


def devnet_verify_processes(nodes: int) -> bool:
    """The devnet's mempool.verify_processes for ``nodes`` nodes sharing this machine."""
    return nodes <= LARGE_DEVNET


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections (Linux; 32768 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_base_port(nodes: int = 8) -> int:
    """A base port whose node ports (base+10i+6 and +7 for i < nodes) are all free right now.

    The range lies below the kernel's ephemeral ports: a node started minutes after its devnet was
    laid out (a late joiner) found its port taken by some outgoing connection when the base came
    from the ephemeral range."""
    top = min(_ephemeral_low(), 65_536) - 10 * nodes - 10
    bases = list(range(10_000, max(10_100, top), 100))
    random.shuffle(bases)  # parallel test runs start at different places
    for base in bases[:400]:
        if all(_port_free(base + 10 * i + j) for i in range(nodes) for j in (6, 7)):
            return base
    raise DevnetError("no free port range found on 127.0.0.1")


def _peer_id(seed: bytes) -> str:
    # imported here: libp2p takes ~0.6 s to import, which every `attrchain` command would pay
    from p2p.identity import peer_id_from_seed

    return peer_id_from_seed(seed)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class DevnetError(Exception):
    """A devnet that cannot be created, started or reached."""


@dataclass
class NodeSpec:
    index: int
    name: str
    home: str
    rpc_port: int
    p2p_port: int
    peer_id: str

    @property
    def rpc(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"


@dataclass
class Layout:
    dir: Path
    chain_id: str
    nodes: list[NodeSpec]

    @classmethod
    def load(cls, directory: Path) -> "Layout":
        path = directory / "devnet.json"
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DevnetError(f"{path}: no devnet here ({exc}); run `attrchain devnet up` first") from exc
        return cls(directory, doc["chain_id"], [NodeSpec(**n) for n in doc["nodes"]])

    def save(self) -> None:
        doc = {"chain_id": self.chain_id, "nodes": [asdict(n) for n in self.nodes]}
        (self.dir / "devnet.json").write_text(json.dumps(doc, indent=2) + "\n")

    def home(self, spec: NodeSpec) -> Home:
        return Home(self.dir / spec.home)


def create(directory: Path, validators: int, base_port: int = DEFAULT_BASE_PORT,
           double_sign: tuple[int, ...] = (), params: dict[str, Any] | None = None,
           stakes: dict[int, int] | None = None) -> Layout:
    """Keys, genesis and configs for ``validators`` nodes under ``directory``; ``stakes`` gives some
    validators (by index) another stake than VALIDATOR_STAKE."""
    if validators < 1:
        raise DevnetError("a devnet needs at least one validator")
    if (directory / "devnet.json").exists():
        raise DevnetError(f"{directory} already holds a devnet")
    directory.mkdir(parents=True, exist_ok=True)
    faucet = PrivateKey.generate()
    faucet.save(directory / "faucet.key")
    nodes: list[NodeSpec] = []
    keys: list[PrivateKey] = []
    for i in range(validators):
        home = Home(directory / f"node{i}")
        home.config_dir.mkdir(parents=True, exist_ok=True)
        home.data_dir.mkdir(parents=True, exist_ok=True)
        key = PrivateKey.generate()
        key.save(home.validator_key_file)
        node_key = home.node_key()
        keys.append(key)
        nodes.append(NodeSpec(i, f"node{i}", f"node{i}", base_port + 10 * i + 7, base_port + 10 * i + 6,
                              _peer_id(node_key.seed)))
    genesis = parse_genesis({
        "chain_id": CHAIN_ID,
        "genesis_time_ms": int(time.time() * 1000),
        "params_preset": "devnet",
        "params": params or {},
        "accounts": [{"address": to_hex(faucet.address), "balance": FAUCET_BALANCE}]
        + [{"address": to_hex(k.address), "balance": VALIDATOR_BALANCE} for k in keys],
        "validators": [
            {"operator": to_hex(k.address), "consensus_public_key": to_hex(k.public_key),
             "stake": (stakes or {}).get(i, VALIDATOR_STAKE), "moniker": f"node{i}"}
            for i, k in enumerate(keys)
        ],
    })
    genesis.save(directory / "genesis.json")
    for spec in nodes:
        home = Home(directory / spec.home)
        shutil.copy(directory / "genesis.json", home.genesis_file)
        cfg = NodeConfig(moniker=spec.name)
        cfg.rpc.port = spec.rpc_port
        cfg.p2p.port = spec.p2p_port
        cfg.p2p.persistent_peers = [
            f"{o.peer_id}@127.0.0.1:{o.p2p_port}" for o in nodes if o.index != spec.index
        ]
        cfg.p2p.tx_batch_interval_ms = devnet_tx_batch_ms(len(nodes))
        cfg.mempool.verify_processes = devnet_verify_processes(len(nodes))
        cfg.consensus.fill_wait_ms = devnet_fill_wait_ms(len(nodes))
        cfg.faults.admin = True
        cfg.faults.double_sign = spec.index in double_sign
        home.write_config(cfg)
    layout = Layout(directory, CHAIN_ID, nodes)
    layout.save()
    return layout



def add_full_node(layout: Layout, name: str = "observer") -> NodeSpec:
    """A full node (no validator key) peered with every node of ``layout``, on the ports of the next
    index (``free_base_port(validators + 1)`` keeps them free); not saved to devnet.json."""
    index = len(layout.nodes)
    base = layout.nodes[0].rpc_port - 7
    home = Home(layout.dir / name)
    home.config_dir.mkdir(parents=True)
    home.data_dir.mkdir(parents=True)
    shutil.copy(layout.dir / "genesis.json", home.genesis_file)
    spec = NodeSpec(index, name, name, base + 10 * index + 7, base + 10 * index + 6,
                    _peer_id(home.node_key().seed))
    cfg = NodeConfig(moniker=name)
    cfg.rpc.port = spec.rpc_port
    cfg.p2p.port = spec.p2p_port
    cfg.p2p.persistent_peers = [f"{v.peer_id}@127.0.0.1:{v.p2p_port}" for v in layout.nodes]
    home.write_config(cfg)
    layout.nodes.append(spec)
    return spec

# ---- processes -----------------------------------------------------------------------------
def pid_file(layout: Layout, spec: NodeSpec) -> Path:
    return layout.dir / spec.home / "node.pid"


def read_pid(layout: Layout, spec: NodeSpec) -> int | None:
    try:
        pid = int(pid_file(layout, spec).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_alive(pid) and _is_our_node(pid, layout, spec) else None


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as dead
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def _is_our_node(pid: int, layout: Layout, spec: NodeSpec) -> bool:
    """Only ever signal a process that is this node: its command line names its home."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    home = str((layout.dir / spec.home).resolve()).encode()
    return home in cmdline


def start_node(layout: Layout, spec: NodeSpec, extra_args: tuple[str, ...] = ()) -> int:
    """Start the node's process (``extra_args`` go to `node run`, e.g. --upgrade-name NAME)."""
    existing = read_pid(layout, spec)
    if existing is not None:
        return existing
    home = (layout.dir / spec.home).resolve()
    logf = open(home / "node.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "node", "run", "--home", str(home), *extra_args],
        stdout=logf,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # the devnet outlives the `up` command
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    logf.close()
    pid_file(layout, spec).write_text(f"{proc.pid}\n")
    return proc.pid


def stop_node(layout: Layout, spec: NodeSpec, timeout: float = 10.0, sig: int = signal.SIGTERM) -> bool:
    """Signal the node's process and wait for it to exit (SIGKILL after ``timeout``)."""
    pid = read_pid(layout, spec)
    if pid is None:
        return False
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            break
        _reap(pid)
        time.sleep(0.05)
    else:
        log.warning("%s did not stop within %.0f s; killing it", spec.name, timeout)
        os.kill(pid, signal.SIGKILL)
    _reap(pid)
    pid_file(layout, spec).unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# ---- RPC -----------------------------------------------------------------------------------
_http: httpx.Client | None = None


def _client() -> httpx.Client:
    # one keep-alive client: httpx.post builds a client (and an SSL context) per call, ~50 ms each
    global _http
    if _http is None:
        _http = httpx.Client()
    return _http


def rpc_call(url: str, method: str, params: Any = None, timeout: float = 2.0) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    resp = _client().post(url, json=body, timeout=timeout)
    doc = resp.json()
    if "error" in doc:
        raise DevnetError(f"{method}: {doc['error']}")
    return doc["result"]


def node_status(layout: Layout, spec: NodeSpec) -> dict[str, Any]:
    pid = read_pid(layout, spec)
    row: dict[str, Any] = {"name": spec.name, "pid": pid, "rpc": spec.rpc, "height": None, "peers": None}
    if pid is None:
        row["state"] = "stopped"
        return row
    try:
        st = rpc_call(spec.rpc, "status")
        row["height"] = int(st["sync_info"]["latest_block_height"])
        row["peers"] = int(rpc_call(spec.rpc, "net_info")["n_peers"])
        row["state"] = "running"
    except (httpx.HTTPError, DevnetError, KeyError, ValueError, TypeError) as exc:
        row["state"] = f"starting ({type(exc).__name__})"
    return row


def wait_for_height(layout: Layout, height: int, timeout: float, progress: bool = True) -> None:
    """Wait until every node reports at least ``height``; shows progress."""
    deadline = time.monotonic() + timeout
    last_line = ""
    while True:
        rows = [node_status(layout, n) for n in layout.nodes]
        heights = [r["height"] for r in rows]
        line = "  ".join(f"{r['name']}:{r['height'] if r['height'] is not None else '-'}" for r in rows)
        if progress and line != last_line:
            print(f"waiting for height {height}: {line}", file=sys.stderr, flush=True)
            last_line = line
        if all(h is not None and h >= height for h in heights):
            return
        dead = [r["name"] for r in rows if r["pid"] is None]
        if dead:
            raise DevnetError(f"node(s) exited: {', '.join(dead)}; see their node.log")
        if time.monotonic() > deadline:
            raise DevnetError(f"devnet did not reach height {height} within {timeout:.0f} s: {line}")
        time.sleep(0.25)


def wait_for_direct_links(layout: Layout, timeout: float) -> bool:
    """Wait until every node sends consensus over direct streams only (``net_info``
    ``direct_consensus.subscribed`` all false: each has every other validator's stream) and, on
    nodes with validator links on, every outbound stream has its link; False when that did not
    happen within ``timeout`` (a full node never leaves the topics)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            reports = [rpc_call(s.rpc, "net_info", timeout=10.0)["direct_consensus"] for s in layout.nodes]
            if all(r.get("enabled") and not any(r["subscribed"].values())
                   and (r["link_port"] is None or len(r["linked"]["outbound"]) == len(r["outbound"]))
                   for r in reports):
                return True
        except (httpx.HTTPError, DevnetError, KeyError, TypeError) as exc:
            log.debug("direct links not readable yet: %r", exc)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def up(directory: Path, validators: int, base_port: int = DEFAULT_BASE_PORT, wait_height: int = 2,
       timeout: float = 60.0, double_sign: tuple[int, ...] = (), extra_args: tuple[str, ...] = ()) -> Layout:
    if (directory / "devnet.json").exists():
        layout = Layout.load(directory)
        print(f"resuming the devnet in {directory} ({len(layout.nodes)} validators)", file=sys.stderr)
    else:
        print(f"creating a {validators}-validator devnet in {directory}", file=sys.stderr)
        layout = create(directory, validators, base_port, double_sign)
    started = [spec for spec in layout.nodes if read_pid(layout, spec) is None]
    try:
        for spec in layout.nodes:
            pid = start_node(layout, spec, extra_args)
            print(f"started {spec.name} (pid {pid}), rpc {spec.rpc}", file=sys.stderr, flush=True)
        current = max((node_status(layout, n)["height"] or 0 for n in layout.nodes), default=0)
        wait_for_height(layout, max(wait_height, current + 1), timeout)
    except BaseException:
        # a failed `up` leaves nothing running that it started (nodes already running stay)
        for spec in started:
            if stop_node(layout, spec, timeout=5.0):
                print(f"stopped {spec.name} (devnet up failed)", file=sys.stderr)
        raise
    return layout


def down(directory: Path) -> int:
    layout = Layout.load(directory)
    stopped = 0
    for spec in layout.nodes:
        if stop_node(layout, spec):
            stopped += 1
            print(f"stopped {spec.name}", file=sys.stderr)
    return stopped
