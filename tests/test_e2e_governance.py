"""End to end on a 4-validator devnet of real node processes (docs/governance.md):

1. a parameter-change proposal (`attribution.matched_bps` 6000 -> 7000), submitted and voted
   through the command line and the RPC, passes; every node reports the old value at every height
   before the tally height + 1 and the new one from then on (`params` answers with the height it
   read), and the params record is proven against each node's state root;
2. a software-upgrade proposal passes; at its height every node stops by itself (exit code 3, the
   one message in its log) without committing that block; restarted with `--upgrade-name`, the
   chain goes on, every node records the upgrade at that height, and all blocks are identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devnet import launcher
from e2e_kit import FAST, height_on_disk, wait_for, wait_for_heights
from netkit import assert_same_chain, node_log, rpc, running_devnet, try_rpc
from state import keys
from state.codec import unpack
from state.crypto import PrivateKey, to_hex
from state.params import Params
from state.tree.proof import Proof, verify_proof
from state.tx import ProposalVote, sign_tx

pytestmark = pytest.mark.multinode

ROOT = Path(__file__).resolve().parent.parent
VOTING = 40  # blocks: room for a CLI call (a Python start-up) on a busy machine
PARAMS = {"timeouts": {**FAST["timeouts"], "commit_ms": 150},
          "governance": {"min_deposit": 1_000, "voting_period_blocks": VOTING}}


def attrchain(*args: str, timeout: float = 60.0) -> Any:
    done = subprocess.run([sys.executable, "-m", "node.cli", *args, "--json"], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"attrchain {' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout)


def validator_key(layout: launcher.Layout, index: int) -> PrivateKey:
    key = layout.home(layout.nodes[index]).validator_key()
    assert key is not None
    return key


def vote_yes_everywhere(layout: launcher.Layout, proposal_id: int) -> None:
    """Three validators vote by signing and broadcasting here, node0's through the CLI."""
    for i, spec in enumerate(layout.nodes[1:], start=1):
        key = validator_key(layout, i)
        nonce = rpc(spec, "account", {"address": to_hex(key.address)})["next_nonce"]
        tx = sign_tx(key, layout.chain_id, nonce, ProposalVote(proposal_id, 1), 1)
        rpc(spec, "broadcast_tx_sync", {"tx": to_hex(tx.raw)})
    spec0 = layout.nodes[0]
    attrchain("tx", "vote", "--proposal", str(proposal_id), "--option", "yes",
              "--key", str(layout.home(spec0).validator_key_file), "--rpc", spec0.rpc)


def proposal_everywhere(layout: launcher.Layout, proposal_id: int, status: str, timeout: float) -> list[dict[str, Any]]:
    def reached() -> bool:
        found = [try_rpc(s, "proposal", {"id": proposal_id}) for s in layout.nodes]
        for p in found:  # an ended proposal will not change any more: fail at once, with its reason
            assert p is None or p["status"] in ("deposit_period", "voting_period", status), p
        return all(p is not None and p["status"] == status for p in found)

    wait_for(layout, reached, timeout, f"proposal {proposal_id} to be {status} on every node")
    return [rpc(s, "proposal", {"id": proposal_id}) for s in layout.nodes]


def submit(layout: launcher.Layout, *args: str) -> int:
    spec = layout.nodes[0]
    out = attrchain("tx", "submit_proposal", *args, "--deposit", "1000", "--key",
                    str(layout.dir / "faucet.key"), "--rpc", spec.rpc, "--wait")
    assert out["result"]["code"] == 0, out
    return int(out["proposal_id"])


def test_param_change_and_software_upgrade_on_four_validators(tmp_path: Path) -> None:
    with running_devnet(tmp_path, 4, params=PARAMS) as layout:
        wait_for_heights(layout, layout.nodes, 2, 60)
        assert all(rpc(s, "params")["params"]["attribution"]["matched_bps"] == 6000 for s in layout.nodes)

        # 1. a parameter change
        pid = submit(layout, "--type", "param_change", "--change", "attribution.matched_bps=7000",
                     "--title", "pay matched spans more")
        vote_yes_everywhere(layout, pid)
        seen: dict[str, list[tuple[int, int]]] = {s.name: [] for s in layout.nodes}

        def passed_everywhere() -> bool:
            for s in layout.nodes:  # observe (height, value) on every node while waiting
                got = try_rpc(s, "params")
                if got is not None:
                    seen[s.name].append((got["height"], got["params"]["attribution"]["matched_bps"]))
            found = [try_rpc(s, "proposal", {"id": pid}) for s in layout.nodes]
            return all(p is not None and p["status"] == "passed" for p in found)

        wait_for(layout, passed_everywhere, 90, f"proposal {pid} to pass on every node")
        proposal_everywhere(layout, pid, "passed", 5)
        records = [rpc(s, "proposal", {"id": pid}) for s in layout.nodes]
        end = records[0]["voting_end_height"]
        assert all(r["voting_end_height"] == end and r["final_tally"] == records[0]["final_tally"] for r in records)
        assert records[0]["final_tally"]["yes"] == records[0]["final_tally"]["bonded"] > 0
        for s in layout.nodes:
            got = rpc(s, "params")
            seen[s.name].append((got["height"], got["params"]["attribution"]["matched_bps"]))
            before = {v for h, v in seen[s.name] if h < end}
            after = {v for h, v in seen[s.name] if h >= end}
            assert before <= {6000} and after == {7000}, (s.name, end, seen[s.name])
            assert any(h < end for h, _ in seen[s.name]), f"{s.name}: never observed before height {end}"
            q = rpc(s, "abci_query", {"key": to_hex(keys.params_key()), "prove": True})
            value = bytes.fromhex(q["value"][2:])
            proof = Proof.from_wire(unpack(bytes.fromhex(q["proof"][2:])))  # type: ignore[attr-defined]
            assert verify_proof(bytes.fromhex(q["state_root"][2:]), keys.params_key(), value, proof)
            assert Params.from_wire(unpack(value)).attribution.matched_bps == 7000  # type: ignore[attr-defined]
        shown = attrchain("query", "proposal", f"id={pid}", "--rpc", layout.nodes[3].rpc)
        assert shown["status"] == "passed" and shown["content"]["changes"][0]["value"] == 7000

        # 2. a software upgrade: every node stops at its height, and resumes on software that provides it
        start = max(rpc(s, "status")["sync_info"]["latest_block_height"] for s in layout.nodes)
        upgrade_height = start + VOTING + 30  # the submission itself takes a few blocks
        pids = {s.name: int(launcher.pid_file(layout, s).read_text()) for s in layout.nodes}
        uid = submit(layout, "--type", "software_upgrade", "--name", "v2", "--height", str(upgrade_height),
                     "--info", "restart with --upgrade-name v2", "--title", "upgrade to v2")
        vote_yes_everywhere(layout, uid)
        proposal_everywhere(layout, uid, "passed", 90)
        assert rpc(layout.nodes[1], "upgrade_plan")["plan"]["height"] == upgrade_height
        codes: dict[str, int] = {}

        def all_stopped() -> bool:
            for name, node_pid in pids.items():
                if name not in codes:
                    done, status = os.waitpid(node_pid, os.WNOHANG)
                    if done:
                        codes[name] = os.waitstatus_to_exitcode(status)
            return len(codes) == len(pids)

        wait_for(layout, all_stopped, 90, f"every node to stop at height {upgrade_height}")
        assert codes == {s.name: 3 for s in layout.nodes}
        for s in layout.nodes:
            log = node_log(layout, s)  # the node's stdout and stderr
            assert 'CRITICAL' in log and f'stopped: UPGRADE "v2" NEEDED at height {upgrade_height}' in log
            assert height_on_disk(layout, s) == upgrade_height - 1
        for s in layout.nodes:
            launcher.start_node(layout, s, ("--upgrade-name", "v2"))
        wait_for_heights(layout, layout.nodes, upgrade_height + 3, 90)
        for s in layout.nodes:
            applied = rpc(s, "upgrade_plan", {"name": "v2"})
            assert applied["plan"] is None and applied["applied"] == {"name": "v2", "height": upgrade_height}
        assert_same_chain(layout.nodes, upgrade_height + 3)
