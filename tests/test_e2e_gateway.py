"""Issue 18 end to end on real processes: a dev node; three contributors in a datanet; `model build`
and `model serve`; the gateway in front; 50 chat completions through it with the `openai` package,
one streamed; the receipts pay the contributors whose text the model reproduced, and the claims
add up to the fees."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import sdk
from conftest import ROOT
from node.config import Home
from state.crypto import PrivateKey

TEXTS = ["Knead the dough for ten minutes then let it rise in a warm place for one hour before baking",
         "The lighthouse keeper climbed the spiral stairs every evening to light the great lamp above the sea",
         "Water the tomato plants early in the morning so the leaves dry before the midday sun arrives"]
N = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def attrchain(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, f"attrchain {' '.join(args)}: {r.stderr[-3000:]}"
    return r.stdout


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{url}: process exited: {log.read_text()[-3000:]}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@contextmanager
def process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "node.cli", *args], cwd=ROOT, stdout=fh, stderr=fh,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@pytest.mark.multinode
def test_fifty_completions_through_the_gateway_pay_the_reproduced_contributors(tmp_path: Path) -> None:
    rpc_port, p2p_port, model_port, gw_port = free_port(), free_port(), free_port(), free_port()
    home = tmp_path / "node"
    rpc = f"http://127.0.0.1:{rpc_port}"
    attrchain("node", "init", "--home", str(home), "--rpc-port", str(rpc_port), "--p2p-port", str(p2p_port))
    with process(["node", "run", "--home", str(home)], tmp_path / "node.log") as node:
        wait_http(rpc + "/health", node, tmp_path / "node.log")
        c = sdk.Client(rpc)
        wait_for(lambda: c.status()["sync_info"]["latest_block_height"] >= 1, 60, "the first block")
        dev = sdk.load_key(Home(home).dev_key_file)
        owner, payer = PrivateKey.generate(), PrivateKey.generate()
        contributors = [PrivateKey.generate() for _ in TEXTS]
        for k in (owner, payer, *contributors):
            c.submit(dev, "transfer", to=k.address, amount=10**12)
        datanet = c.submit(owner, "create_datanet", name="mixed")["datanet_id"]
        cids = []
        for k, text in zip(contributors, TEXTS):
            cid = c.submit(k, "contribute", datanet=datanet, text=text, bond=0)["contribution_id"]
            c.submit(owner, "review", contribution=cid, accept=1)
            cids.append(cid)

        mdir = tmp_path / "model"
        attrchain("model", "build", "--datanet", datanet, "--out", str(mdir), "--rpc", rpc)
        manifest = json.loads((mdir / "manifest.json").read_text())
        assert sorted(x["id"] for x in manifest["contributions"]) == sorted(cids)
        owner_file, payer_file = tmp_path / "owner.json", tmp_path / "payer.json"
        owner.save(owner_file)
        payer.save(payer_file)
        reg = json.loads(attrchain("tx", "register_model", "--manifest", str(mdir / "manifest.json"), "--key",
                                   str(owner_file), "--rpc", rpc, "--wait", "--json"))
        model_id = reg["model_id"]
        assert c.model(model_id)["datanets"] == [{"datanet": datanet, "weight_bps": 10_000}]

        with process(["model", "serve", str(mdir), "--port", str(model_port)], tmp_path / "model.log") as ms, \
             process(["gateway", "--upstream", f"http://127.0.0.1:{model_port}/v1", "--model", model_id,
                      "--key", str(payer_file), "--port", str(gw_port), "--rpc", rpc,
                      "--data", str(tmp_path / "gw"), "--price-per-1k", "50000"], tmp_path / "gw.log") as gw:
            wait_http(f"http://127.0.0.1:{model_port}/v1/models", ms, tmp_path / "model.log")
            gw_url = f"http://127.0.0.1:{gw_port}"
            wait_http(gw_url + "/healthz", gw, tmp_path / "gw.log")
            client = openai.OpenAI(base_url=gw_url + "/v1", api_key="unused", max_retries=0)
            assert [m.id for m in client.models.list()] == [manifest["name"]]
            expected: dict[str, int] = {}  # inference id -> index of the contributor it should pay
            for i in range(N - 1):
                words = TEXTS[i % 3].split()
                raw = client.chat.completions.with_raw_response.create(
                    model="ref", max_tokens=40, messages=[{"role": "user", "content": " ".join(words[:4])}])
                answer = raw.parse().choices[0].message.content
                assert answer and answer.split()[:5] == words[4:9]  # it reproduces the contribution
                expected[raw.headers["x-attrchain-inference"]] = i % 3
            stream = client.chat.completions.create(
                model="ref", max_tokens=40, stream=True,
                messages=[{"role": "user", "content": " ".join(TEXTS[1].split()[:4])}])
            streamed = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
            assert streamed.split()[:5] == TEXTS[1].split()[4:9]
            wait_for(lambda: httpx.get(gw_url + "/healthz").json()["queued"] == 0, 90, "the gateway to drain")

        # every completion was paid once: 50 infers from the payer, the streamed one among them
        infers = []
        params: dict[str, Any] | None = {"sender": payer.address, "order": "asc"}
        while params is not None:
            page = c.call("tx_search", params)
            infers += [t for t in page["txs"] if t["decoded"]["kind"] == "infer"]
            params = page["next"]
        assert len(infers) == N and c.account(payer.address)["nonce"] == N
        ids = {t["hash"] for t in infers}
        assert set(expected) <= ids and len(ids - set(expected)) == 1
        expected[(ids - set(expected)).pop()] = 1

        payments = data = 0
        paid_to = {cid: 0 for cid in cids}
        for h, who in expected.items():
            receipt = c.attribution(inference=h)["receipts"][0]
            assert sum(e["amount"] for e in receipt["entries"]) == receipt["payment"]
            payments += receipt["payment"]
            data += sum(e["amount"] for e in receipt["entries"]
                        if e["role"] in ("matched_contribution", "datanet_pool"))
            matched = {m["contribution"]: m["amount"] for m in receipt["matched"]}
            assert matched.get(cids[who], 0) > 0, f"completion {h} did not pay contributor {who}: {receipt}"
            assert max(matched, key=matched.get) == cids[who]  # the reproduced text is paid most
            for cid, amount in matched.items():
                paid_to[cid] += amount
        assert all(v > 0 for v in paid_to.values())

        claimed = 0
        for k, cid in zip(contributors, cids):
            before = c.account(k.address)["balance"]
            res = c.submit(k, "claim_rewards", contributions=[cid])
            got = c.account(k.address)["balance"] - before + res["fee"]
            assert got == int(c.contribution(cid)["claimed"]) >= paid_to[cid]
            claimed += got
        # the data share of the fees is what the contributors claimed, up to rounding dust kept as carry
        assert 0 <= data - claimed <= len(expected), (data, claimed)
        print(f"payments {payments}, data share {data}, claimed {claimed}")
        c.close()
