"""`attrchain init` and the genesis ceremony through the real CLI, in subprocesses, across homes."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

from node.cli import main
from node.config import NodeConfig, config_reference, parse_config, sections

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """The real `attrchain` entry point in this process (argparse, commands, exit code, output)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    r = subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def cli_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed command in its own process."""
    return subprocess.run([sys.executable, "-m", "node.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def address(key: Path) -> str:
    return cli("keys", "show", str(key), "--address").stdout.strip()


def ceremony(tmp: Path, n: int, stake: int = 10**9) -> list[Path]:
    """n homes, each with its own operator key and gentx; h0 collects (the real command lines)."""
    homes = [tmp / f"h{i}" for i in range(n)]
    for i, h in enumerate(homes):
        cli("init", "--chain-id", "cer-1", "--home", str(h), "--moniker", f"v{i}", "--params-preset", "devnet",
            "--p2p-port", str(27000 + i), "--external-address", f"127.0.0.1:{27000 + i}")
        cli("keys", "new", "--out", str(tmp / f"op{i}.key"))
        cli("genesis", "add-account", address(tmp / f"op{i}.key"), str(2 * stake), "--home", str(homes[0]))
    for i, h in enumerate(homes):
        cli("genesis", "gentx", "--home", str(h), "--key", str(tmp / f"op{i}.key"), "--amount", str(stake),
            "--output", str(homes[0] / "config" / "gentx" / f"gentx-{i}.json"))
    return homes


def test_init_writes_keys_commented_config_and_refuses_to_overwrite(tmp_path: Path) -> None:
    home = tmp_path / "node"
    out = cli("init", "--chain-id", "net-7", "--home", str(home), "--moniker", "alpha").stdout
    assert "node id: 12D3KooW" in out
    for f in ("config/node_key.json", "config/priv_validator_key.json", "config/config.toml", "config/genesis.json"):
        assert (home / f).is_file(), f
    text = (home / "config" / "config.toml").read_text()
    cfg = parse_config(text)
    assert cfg.moniker == "alpha" and cfg.p2p.host == "0.0.0.0"
    # every option of the table has its help text as a comment right above it
    lines = text.splitlines()
    for section in sections():
        for f in [f for f in type(getattr(cfg, section.name)).__dataclass_fields__.values()]:
            i = next(i for i, line in enumerate(lines) if line.startswith(f"{f.name} ="))
            assert lines[i - 1].startswith("# "), f.name
    before = (home / "config" / "priv_validator_key.json").read_bytes()
    r = cli_process("init", "--chain-id", "net-7", "--home", str(home))
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "refusing to overwrite" in r.stderr
    assert (home / "config" / "priv_validator_key.json").read_bytes() == before


def test_config_table_has_help_and_docs_are_generated() -> None:
    for section in sections():
        for f in type(getattr(NodeConfig(), section.name)).__dataclass_fields__.values():
            assert f.metadata.get("help"), f"[{section.name}] {f.name} has no help text"
    assert (ROOT / "docs" / "config.md").read_text() == config_reference(), \
        "docs/config.md is stale: python -m node.config > docs/config.md"


def test_config_set_validates(tmp_path: Path) -> None:
    home = tmp_path / "n"
    cli("init", "--chain-id", "c", "--home", str(home))
    peer = "12D3KooWQTW3swRgS7pRpaZfVzHu6AMzeMiCsW7Zp1Wog6qyDcm1@10.0.0.2:26656"
    cli("config", "set", "p2p.seeds", peer, "--home", str(home))
    assert parse_config((home / "config" / "config.toml").read_text()).p2p.seeds == [peer]
    for option, value in (("p2p.seeds", "nonsense"), ("p2p.external_address", "nohost"), ("p2p.port", "x"),
                          ("p2p.nope", "1"), ("rpc.read_timeout_s", "0")):
        r = cli("config", "set", option, value, "--home", str(home), ok=False)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (option, r.stderr)


def test_ceremony_every_home_gets_the_same_genesis_hash(tmp_path: Path) -> None:
    homes = ceremony(tmp_path, 3)
    out = cli("genesis", "collect-gentxs", "--home", str(homes[0])).stdout
    hash_line = next(line for line in out.splitlines() if line.startswith("genesis hash: "))
    genesis = json.loads((homes[0] / "config" / "genesis.json").read_text())
    assert len(genesis["validators"]) == 3
    assert all(a["balance"] == 10**9 for a in genesis["accounts"])  # the stake came out of each balance
    cfg = parse_config((homes[0] / "config" / "config.toml").read_text())
    assert len(cfg.p2p.persistent_peers) == 2  # the other two, not itself
    for h in homes[1:]:
        (h / "config" / "genesis.json").write_text((homes[0] / "config" / "genesis.json").read_text())
        assert cli("genesis", "hash", "--home", str(h)).stdout.strip() == hash_line.split(": ")[1]
    assert "valid" in cli("genesis", "validate", str(homes[0] / "config" / "genesis.json")).stdout


def test_collect_rejects_forged_and_unfunded_gentxs(tmp_path: Path) -> None:
    homes = ceremony(tmp_path, 2)
    gdir = homes[0] / "config" / "gentx"
    g1 = json.loads((gdir / "gentx-1.json").read_text())
    # an attacker raises the stake of someone else's signed statement
    (gdir / "gentx-1.json").write_text(json.dumps({**g1, "stake": g1["stake"] + 1}))
    # and registers validator 0's consensus key under its own operator (no proof of possession)
    g0 = json.loads((gdir / "gentx-0.json").read_text())
    (gdir / "gentx-x.json").write_text(json.dumps({**g1, "consensus_public_key": g0["consensus_public_key"]}))
    before = (homes[0] / "config" / "genesis.json").read_text()
    r = cli("genesis", "collect-gentxs", "--home", str(homes[0]), ok=False)
    assert r.returncode == 1
    assert "gentx-1.json: signature is not the operator's" in r.stderr
    assert "gentx-x.json: consensus_signature is not made by the consensus key" in r.stderr
    assert (homes[0] / "config" / "genesis.json").read_text() == before  # nothing written
    (gdir / "gentx-x.json").unlink()
    (gdir / "gentx-1.json").write_text(json.dumps(g1))
    big = cli("genesis", "gentx", "--home", str(homes[1]), "--key", str(tmp_path / "op1.key"), "--amount",
              str(10**12), "--output", str(gdir / "gentx-1.json"))
    assert big.returncode == 0
    r = cli("genesis", "collect-gentxs", "--home", str(homes[0]), ok=False)
    assert "exceeds the operator's genesis balance" in r.stderr


def test_validate_explains_each_problem_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "chain_id": "", "genesis_time_ms": -1, "params_preset": "mainnet", "colour": 1,
        "accounts": [{"address": "0x12", "balance": 5}],
        "validators": [{"operator": "0x" + "11" * 20, "consensus_public_key": "0x" + "00" * 32, "stake": 0}],
    }))
    r = cli_process("genesis", "validate", str(bad))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1
    for needle in ("unknown field 'colour'", "chain_id must", "genesis_time_ms must", "params_preset 'mainnet'",
                   "accounts[0].address", "validators[0].consensus_public_key", "validators[0].stake"):
        assert sum(needle in line for line in lines) == 1, (needle, lines)
    bad.write_text("{not json")
    r = cli("genesis", "validate", str(bad), ok=False)
    assert r.returncode == 1 and "not JSON" in r.stderr and r.stderr.count("\n") == 1


def test_a_gentx_of_another_chain_is_refused_even_relabelled(tmp_path: Path) -> None:
    homes = ceremony(tmp_path, 1)
    other = tmp_path / "other"
    cli("init", "--chain-id", "other-1", "--home", str(other))
    out = homes[0] / "config" / "gentx" / "replayed.json"
    cli("genesis", "gentx", "--home", str(other), "--key", str(tmp_path / "op0.key"), "--amount", "5",
        "--output", str(out))
    r = cli("genesis", "collect-gentxs", "--home", str(homes[0]), ok=False)
    assert "replayed.json: made for chain 'other-1', not 'cer-1'" in r.stderr
    # relabelling it does not help: the chain id is part of what both keys signed
    out.write_text(json.dumps({**json.loads(out.read_text()), "chain_id": "cer-1"}))
    r = cli("genesis", "collect-gentxs", "--home", str(homes[0]), ok=False)
    assert "replayed.json: signature is not the operator's" in r.stderr
    assert "replayed.json: consensus_signature" in r.stderr
