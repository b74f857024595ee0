"""The README's attribution walkthrough, run as written against a real node process.

The commands are read from README.md itself (the block from "# attribution from the command line"
to the next section), so the README and this test cannot drift apart. Each line runs in bash, in
order, from a fresh folder whose `.venv/bin/attrchain` and `.venv/bin/python` are this checkout's,
with HOME pointing at a fresh folder (so `~/.attrchain` is the dev chain `attrchain node run`
initialises). What a newcomer types by hand is filled in, and nothing else:
- each `0x...` placeholder gets the id an earlier step printed, by what it stands for
  (`--datanet`, `--contribution`, `--model`, `inference=`, the verifier's argument) and
  `recipient=0x...` the contributor C's address;
- the node runs on a free port instead of 26657, so `tx` and `query` get `--rpc URL` and the
  verifier's `http://127.0.0.1:26657` becomes that URL;
- notes.txt and answer.txt (the user's text and a model output quoting it) are written first.

Then: the contributor was paid (by the matched spans and by the pool), the receipt shows the span,
the verifier says OK, the claim moved exactly the owed tokens plus the bond; and with the same
README lines, a second text contributed but not reviewed yet is quoted by an output: the receipt
query names it under pending_matches, paid nothing, and once the README's review line has run an
output quoting it pays it.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devnet.launcher import DevnetError, free_base_port, rpc_call
from netkit import wait_until

pytestmark = pytest.mark.multinode

ROOT = Path(__file__).resolve().parent.parent
START = "# attribution from the command line"
# every step a newcomer needs, in this order (the issue: without `review` the contributor was never paid)
EXPECTED = ["keys new", "fingerprint notes.txt", "tx create_datanet", "tx contribute", "tx review",
            "tx register_model", "tx infer", "query attribution inference=", "verify_receipt.py",
            "query rewards", "tx claim_rewards", "query attribution recipient="]
PLACEHOLDERS = [  # (pattern before the placeholder, what fills it)
    (r"--datanet 0x\.\.\.", "datanet"), (r"--contribution 0x\.\.\.", "contribution"),
    (r"contribution=0x\.\.\.", "contribution"), (r"--model 0x\.\.\.", "model"),
    (r"inference=0x\.\.\.", "inference"), (r"recipient=0x\.\.\.", "recipient"),
    (r"verify_receipt\.py .*?0x\.\.\.", "inference"),
]
_VOCAB = ["harbor", "lantern", "cedar", "quartz", "meadow", "falcon", "ember", "willow", "orbit", "saffron",
          "glacier", "thistle", "copper", "juniper", "mosaic", "nebula", "raven", "sable", "tundra", "violet"]


def readme_steps() -> list[str]:
    """The walkthrough's commands: comment lines skipped, continuations joined, trailing comments cut."""
    text = (ROOT / "README.md").read_text()
    start = text.index(START)
    block = text[start:text.index("\n\n", start)]
    steps, pending = [], ""
    for raw in block.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = pending + re.sub(r"\s+#\s.*$", "", line)
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        pending = ""
        steps.append(line)
    return steps


def prose(seed: int, words: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(_VOCAB)}{rng.randrange(100_000)}" for _ in range(words)]


class Walk:
    """A fresh folder as a newcomer's shell, and a dev node started with `attrchain node run`."""

    def __init__(self, tmp: Path) -> None:
        self.work, self.home = tmp / "work", tmp / "home"
        bin_dir = self.work / ".venv" / "bin"
        bin_dir.mkdir(parents=True)
        self.home.mkdir()
        (bin_dir / "attrchain").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m node.cli "$@"\n')
        (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        for script in bin_dir.iterdir():
            script.chmod(0o755)
        (self.work / "docs").symlink_to(ROOT / "docs")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRCHAIN_")}
        self.env.update(HOME=str(self.home), PYTHONPATH=str(ROOT))
        base = free_base_port(1)
        self.url = f"http://127.0.0.1:{base + 7}"
        log = open(self.home / "node.log", "ab")
        self.node = subprocess.Popen([sys.executable, "-m", "node.cli", "node", "run", "--rpc-port", str(base + 7),
                                      "--p2p-port", str(base + 6)], cwd=self.work, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        self.ids: dict[str, str] = {}
        self.outputs: list[tuple[str, str]] = []

    def call(self, method: str, params: Any = None) -> Any:
        return rpc_call(self.url, method, params, timeout=10.0)

    def height(self) -> int:
        assert self.node.poll() is None, "the node exited: " + (self.home / "node.log").read_text()[-2000:]
        try:
            return int(self.call("status")["sync_info"]["latest_block_height"])
        except (DevnetError, OSError, KeyError, ValueError):
            return -1
        except Exception:  # noqa: BLE001 - not listening yet
            return -1

    def stop(self) -> None:
        if self.node.poll() is None:
            self.node.send_signal(signal.SIGTERM)
            try:
                self.node.wait(15)
            except subprocess.TimeoutExpired:
                self.node.kill()
                self.node.wait(5)

    def fill(self, step: str) -> str:
        """What the newcomer types: ids from earlier output, the node's URL."""
        for pattern, what in PLACEHOLDERS:
            if re.search(pattern, step):
                assert what in self.ids, f"{step!r} needs a {what} id that no earlier step printed"
                step = re.sub(pattern, lambda m: m.group(0).replace("0x...", self.ids[what]), step)
        assert "0x..." not in step, f"unfilled placeholder in {step!r}"
        step = step.replace("http://127.0.0.1:26657", self.url)
        return re.sub(r"(attrchain (?:tx|query) \S+)", rf"\1 --rpc {self.url}", step)

    def run(self, step: str) -> str:
        command = self.fill(step)
        done = subprocess.run(["bash", "-c", command], cwd=self.work, env=self.env, capture_output=True, text=True,
                              timeout=240)
        assert done.returncode == 0, f"README step failed: {command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        for what, value in re.findall(r"\b(datanet|contribution|model|inference)_id: (0x[0-9a-f]{64})", done.stdout):
            self.ids[what] = value
        self.outputs.append((step, done.stdout))
        return done.stdout

    def balance(self, address: str) -> int:
        return int(self.call("account", {"address": address})["balance"])


def test_readme_attribution_walkthrough_pays_the_contributor_and_names_pending_quotes(tmp_path: Path) -> None:
    steps = readme_steps()
    at = 0
    for wanted in EXPECTED:  # the README keeps every step, in order
        at = next((i for i in range(at, len(steps)) if wanted in steps[i]), -1)
        assert at >= 0, f"the README's attribution walkthrough lacks (or misorders) `{wanted}`"
    walk = Walk(tmp_path)
    try:
        notes, other = prose(1, 120), prose(2, 120)
        (walk.work / "notes.txt").write_text(" ".join(notes) + "\n")
        (walk.work / "answer.txt").write_text(" ".join(prose(3, 15) + notes[30:70] + prose(4, 15)) + "\n")
        wait_until(lambda: walk.height() >= 1, 90, "the dev node to commit a block")
        c_address = ""
        before_claim: dict[str, Any] = {}
        for step in steps:
            if "tx claim_rewards" in step:
                before_claim = {"balance": walk.balance(c_address),
                                "owed": walk.call("rewards", {"contribution": walk.ids["contribution"]})}
            out = walk.run(step)
            if step.startswith("for k in K C M U"):
                c_address = subprocess.run([sys.executable, "-m", "node.cli", "keys", "show", str(walk.work / "C"),
                                            "--address"], capture_output=True, text=True, check=True,
                                           cwd=ROOT).stdout.strip()
                walk.ids["recipient"] = c_address
            elif "query attribution inference=" in step:
                # the receipt shows the paid span, the pool rule, and nothing pending
                assert walk.ids["contribution"] in out and "output_shingle" in out and "pool_rule" in out, out
                assert "pending_matches: []" in out, out
            elif "verify_receipt.py" in step:  # with --full: the whole matched part from every accepted text
                assert "--full" in step and out.strip().endswith("OK"), out
        receipt = walk.call("attribution", {"inference": walk.ids["inference"]})["receipts"][0]
        (match,) = receipt["matched"]
        assert match["contribution"] == walk.ids["contribution"] and match["amount"] > 0 and match["spans"]
        assert any(e["role"] == "datanet_pool" for e in receipt["entries"])  # C is also the pool's only member
        owed = before_claim["owed"]
        assert owed["unclaimed"] > match["amount"] and owed["bond"] == 100
        fee = 1
        assert walk.balance(c_address) == before_claim["balance"] - fee + owed["unclaimed"] + owed["bond"]
        inference = walk.call("inference", {"id": walk.ids["inference"]})
        (span,) = inference["output_spans"]
        assert " ".join(notes[30:70]).find(inference["output"][span["start"]:span["end"]]) >= 0

        # the same README lines with a second text whose review has not run yet: pending, paid nothing
        (walk.work / "notes.txt").write_text(" ".join(other) + "\n")
        (walk.work / "answer.txt").write_text(" ".join(other[10:60]) + "\n")
        first = walk.ids["contribution"]
        for wanted in ("tx contribute", "tx infer", "verify_receipt.py", "query attribution inference="):
            out = walk.run(next(s for s in steps if wanted in s))
            assert "verify_receipt" not in wanted or out.strip().endswith("OK"), out
        pending = walk.ids["contribution"]
        assert pending != first
        assert "pending_matches:" in out and pending in out and "not accepted yet" in out, out
        receipt = walk.call("attribution", {"inference": walk.ids["inference"]})
        assert receipt["receipts"][0]["matched"] == []
        assert [p["contribution"] for p in receipt["pending_matches"]] == [pending]
        before_review = walk.ids["inference"]
        # after the README's review line, the same output pays it
        for wanted in ("tx review", "tx infer", "verify_receipt.py", "query attribution inference="):
            out = walk.run(next(s for s in steps if wanted in s))
            assert "verify_receipt" not in wanted or out.strip().endswith("OK"), out
        receipt = walk.call("attribution", {"inference": walk.ids["inference"]})
        assert [m["contribution"] for m in receipt["receipts"][0]["matched"]] == [pending]
        assert receipt["pending_matches"] == [] and "pending_matches: []" in out
        # the earlier receipt still says why it paid nothing: accepted only after that inference
        earlier = walk.call("attribution", {"inference": before_review})["pending_matches"]
        assert [(p["contribution"], p["status"]) for p in earlier] == [(pending, "accepted_later")]
    finally:
        walk.stop()
