"""A real dev node process with the whole attribution story applied, for the explorer tests and
bench: datanets, contributions (commit-reveal through the SDK), reviews, a contribution transfer,
a base model, a fine-tune, an adapter, an agent, inferences quoting a contribution, a claim."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import sdk
from node.config import Home
from state.crypto import PrivateKey, to_hex

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["river", "stone", "cloud", "amber", "falcon", "meadow", "signal", "harbor", "quartz", "willow",
         "ember", "lantern", "orbit", "cedar", "prism", "tundra", "violet", "marble", "canyon", "pepper"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def words(seed: int, n: int = 80) -> str:
    import random

    rng = random.Random(seed)
    return " ".join(f"{rng.choice(WORDS)}{rng.randrange(100_000)}" for _ in range(n))


def wait_until(cond: Any, timeout: float, what: str, poll: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextlib.contextmanager
def dev_node(tmp: Path, explorer: bool = True, moniker: str | None = None) -> Iterator[str]:
    """`attrchain node init` + `node run` as a child process; yields the RPC URL. ``moniker``: the
    node's name in config.toml (shown on the chain page), without double quotes."""
    rpc_port, p2p_port = free_port(), free_port()
    home = tmp / "node"
    subprocess.run([sys.executable, "-m", "node.cli", "node", "init", "--home", str(home), "--rpc-port",
                    str(rpc_port), "--p2p-port", str(p2p_port)], cwd=ROOT, check=True, capture_output=True)
    cfg = (home / "config" / "config.toml").read_text()
    if not explorer:
        cfg = cfg.replace("explorer = true", "explorer = false")
    if moniker is not None:
        assert '"' not in moniker and 'moniker = "dev"' in cfg
        cfg = cfg.replace('moniker = "dev"', f'moniker = "{moniker}"')
    (home / "config" / "config.toml").write_text(cfg)
    log = tmp / "node.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "node.cli", "node", "run", "--home", str(home)], cwd=ROOT,
                                stdout=fh, stderr=fh)
    url = f"http://127.0.0.1:{rpc_port}"
    try:
        def up() -> bool:
            assert proc.poll() is None, f"node exited: {log.read_text()[-3000:]}"
            return httpx.get(url + "/health", timeout=2).status_code == 200
        wait_until(up, 60, "the node's RPC")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# Names a hostile user chose: each must show as text on the pages, never become markup. Running any
# of them sets window.__xss.
HOSTILE = {
    "moniker": "<img src=x onerror=window.__xss=1>",
    "datanet": '"><img src=x onerror="window.__xss=2">',
    "metadata": "<script>window.__xss=3</script>",
    "model": "<svg onload=window.__xss=4>",
    "adapter": "</text><script>window.__xss=5</script>",
    "agent": "<iframe srcdoc=\"<script>parent.__xss=6</script>\">",
    "validator": "<b onmouseover=window.__xss=7>v</b>",
    "contribution": "<script>window.__xss=8</script> <img src=x onerror=window.__xss=9> & &amp; plain words after",
}


@dataclass
class Story:
    url: str
    ids: dict[str, str] = field(default_factory=dict)
    keys: dict[str, PrivateKey] = field(default_factory=dict)
    quote: str = ""


def apply_story(url: str, home: Path) -> Story:
    """Every attribution step through the SDK; returns the ids the pages and tests look up."""
    c = sdk.Client(url, timeout=60)
    wait_until(lambda: c.status()["sync_info"]["latest_block_height"] >= 1, 60, "the first block")
    dev = sdk.load_key(Home(home).dev_key_file)
    names = ("owner", "alice", "bob", "carol", "dev", "tuner", "lora", "bot", "bot_owner", "user", "mallory",
             "mallory_bot", "mallory_val")
    keys = {n: PrivateKey.from_int(9_100 + i) for i, n in enumerate(names)}
    for k in keys.values():
        c.submit(dev, "transfer", to=k.address, amount=10**12)
    s = Story(url, keys=keys)
    ids = s.ids
    ids["datanet"] = c.submit(keys["owner"], "create_datanet", name="corpus", metadata_uri="ipfs://corpus",
                              bond_required=0)["datanet_id"]
    ids["datanet2"] = c.submit(keys["owner"], "create_datanet", name="dialogues", metadata_uri="ipfs://d",
                               bond_required=0)["datanet_id"]
    alice_text = words(1)
    ids["c_alice"] = c.submit(keys["alice"], "contribute", datanet=ids["datanet"], text=alice_text, bond=0)[
        "contribution_id"]
    ids["c_bob"] = c.submit(keys["bob"], "contribute", datanet=ids["datanet"], text=words(2), bond=0)["contribution_id"]
    ids["c_carol"] = c.submit(keys["carol"], "contribute", datanet=ids["datanet2"], text=words(3), bond=0)[
        "contribution_id"]
    c.submit(keys["owner"], "review", contribution=ids["c_alice"], accept=1)
    c.submit(keys["owner"], "review", contribution=ids["c_bob"], accept=0)
    c.submit(keys["owner"], "review", contribution=ids["c_carol"], accept=1)
    ids["base"] = c.submit(keys["dev"], "register_model", name="base", datanets=[(ids["datanet"], 10_000)],
                           parent=b"", lineage_bps=0)["model_id"]
    ids["tuned"] = c.submit(keys["tuner"], "register_model", name="tuned", datanets=[(ids["datanet2"], 10_000)],
                            parent=ids["base"], lineage_bps=3_000)["model_id"]
    ids["adapter"] = c.submit(keys["lora"], "register_adapter", name="lora", base_model=ids["tuned"],
                              datanets=[(ids["datanet"], 10_000)])["adapter_id"]
    stake = int(c.call("params")["params"]["attribution"]["min_agent_stake"])
    c.submit(keys["bot"], "register_agent", name="helper", model=ids["tuned"], adapter=ids["adapter"],
             owner=keys["bot_owner"].address, stake=stake)
    ids["agent"] = to_hex(keys["bot"].address)
    s.quote = "As the corpus puts it: " + " ".join(alice_text.split()[10:60]) + ". Hope that helps."
    ids["inf_agent"] = c.submit(keys["bot"], "infer", model=ids["tuned"], adapter=ids["adapter"],
                                agent=keys["bot"].address, payment=100_003, input_tokens=12, output_tokens=80,
                                output=s.quote)["inference_id"]
    ids["inf_user"] = c.submit(keys["user"], "infer", model=ids["base"], adapter=b"", agent=b"", payment=50_001,
                               input_tokens=9, output_tokens=80, output=s.quote)["inference_id"]
    ids["action"] = to_hex(hashlib.sha256(b"book a table").digest())
    c.submit(keys["bot"], "agent_action", action_hash=ids["action"], outcome_hash=hashlib.sha256(b"booked").digest())
    _hostile(c, keys, ids, stake)
    ids["claim"] = c.submit(keys["carol"], "claim_rewards", contributions=[ids["c_carol"]], check=False)["hash"]
    ids["alice"] = to_hex(keys["alice"].address)
    ids["height"] = str(c.status()["sync_info"]["latest_block_height"])
    c.close()
    return s


def _hostile(c: sdk.Client, keys: dict[str, PrivateKey], ids: dict[str, str], agent_stake: int) -> None:
    """Objects named by mallory with HOSTILE's markup: a datanet, a contribution (its text), a model and
    an adapter on it, an agent
    and a validator (a tiny stake next to the dev validator's, so the chain goes on without it)."""
    m = keys["mallory"]
    ids["h_datanet"] = c.submit(m, "create_datanet", name=HOSTILE["datanet"], metadata_uri=HOSTILE["metadata"],
                                bond_required=0)["datanet_id"]
    ids["h_model"] = c.submit(m, "register_model", name=HOSTILE["model"], datanets=[(ids["h_datanet"], 10_000)],
                              parent=b"", lineage_bps=0)["model_id"]
    ids["h_adapter"] = c.submit(m, "register_adapter", name=HOSTILE["adapter"], base_model=ids["h_model"],
                                datanets=[(ids["h_datanet"], 10_000)])["adapter_id"]
    ids["h_contribution"] = c.submit(m, "contribute", datanet=ids["h_datanet"], text=HOSTILE["contribution"],
                                     bond=0)["contribution_id"]
    c.submit(keys["mallory_bot"], "register_agent", name=HOSTILE["agent"], model=ids["h_model"], adapter=b"",
             owner=m.address, stake=agent_stake)
    ids["h_agent"] = to_hex(keys["mallory_bot"].address)
    c.submit(keys["mallory_val"], "create_validator", consensus_public_key=PrivateKey.from_int(9_999).public_key,
             self_stake=1_000_000, moniker=HOSTILE["validator"])
