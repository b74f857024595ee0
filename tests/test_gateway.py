"""The gateway as a real process between a real HTTP upstream (the reference model server) and a
real RPC server over a real Chain: answers pass unchanged with their inference id, upstream errors
cost nothing, a chain outage queues completions on disk (bounded), and killing the gateway with
SIGKILL in the middle of it neither loses nor double-charges a completion."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
import signal
import socket
import sys
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import sdk
from conftest import ROOT, VALIDATOR_KEY, make_genesis
from gateway.asgi import SSEText, serve_app
from gateway.journal import Entry, Journal
from node.config import RPCConfig
from node.mempool import Mempool
from node.rpc.server import serve_rpc
from node.rpc.standalone import StandaloneContext
from refmodel.infinigram import Model
from refmodel.serve import ModelServer
from state.crypto import PrivateKey

PAYER = PrivateKey.from_int(21)  # pays for completions and nothing else
OWNER = PrivateKey.from_int(22)
BALANCES = {PAYER.address: 10**15, OWNER.address: 10**15}
TEXTS = [b"Knead the dough for ten minutes then let it rise in a warm place for one hour",
         b"The lighthouse keeper climbed the spiral stairs every evening to light the great lamp",
         b"Water the tomato plants early in the morning so the leaves dry before the midday sun"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until(cond: Any, timeout: float, what: str) -> None:
    with trio.move_on_after(timeout):
        while not await cond():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class GatewayProc:
    def __init__(self, args: list[str], log: Path, port: int) -> None:
        self.args, self.log, self.port = args, log, port
        self.proc: Any = None
        self.url = f"http://127.0.0.1:{port}"

    async def start(self, http: httpx.AsyncClient) -> None:
        fh = open(self.log, "ab")
        self.proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "node.cli", "gateway", "--port", str(self.port), *self.args],
            cwd=ROOT, stdout=fh, stderr=fh, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        fh.close()

        async def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited: {self.log.read_text()[-3000:]}")
            try:
                return (await http.get(self.url + "/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_until(up, 60, "the gateway to listen")

    async def health(self, http: httpx.AsyncClient) -> dict[str, Any]:
        return (await http.get(self.url + "/healthz")).json()  # type: ignore[no-any-return]

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with trio.move_on_after(10):
                await self.proc.wait()
                return
            self.proc.kill()
            await self.proc.wait()


async def start_rpc(nursery: trio.Nursery, ctx: StandaloneContext, port: int) -> trio.CancelScope:
    scope = trio.CancelScope()

    async def runner(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await serve_rpc(ctx, RPCConfig(), host="127.0.0.1", port=port, task_status=task_status)

    await nursery.start(runner)
    return scope


def register_model(rpc_url: str) -> str:
    """OWNER's datanet of TEXTS, accepted, and a model over it; returns the model id."""
    with sdk.Client(rpc_url) as c:
        d = c.submit(OWNER, "create_datanet", name="d")["datanet_id"]
        for t in TEXTS:
            cid = c.submit(OWNER, "contribute", datanet=d, text=t, bond=0)["contribution_id"]
            c.submit(OWNER, "review", contribution=cid, accept=1)
        return str(c.submit(OWNER, "register_model", name="ref", datanets=[(d, 10_000)])["model_id"])


@dataclass
class World:
    """A standalone chain served at a fixed port (so it can go down and come back), the reference
    model server as the upstream, and a model registered by OWNER."""

    ctx: StandaloneContext
    nursery: trio.Nursery
    http: httpx.AsyncClient
    rpc_port: int
    rpc_url: str
    payer_file: Path
    rpc_scope: trio.CancelScope
    upstream: str
    model_id: str

    def gateway(self, tmp_path: Path, *extra: str, data: Path | None = None) -> GatewayProc:
        return GatewayProc(["--upstream", self.upstream + "/v1", "--model", self.model_id, "--key",
                            str(self.payer_file), "--rpc", self.rpc_url, "--data", str(data or tmp_path / "gw"),
                            *extra], tmp_path / "gateway.log", free_port())


@asynccontextmanager
async def world(new_chain, chain_id: str, tmp_path: Path) -> AsyncIterator[World]:  # type: ignore[no-untyped-def]
    chain = new_chain(BALANCES)
    ctx = StandaloneContext(chain, make_genesis(chain_id, BALANCES), Mempool(chain), proposer=VALIDATOR_KEY.address)
    rpc_port = free_port()
    rpc_url = f"http://127.0.0.1:{rpc_port}"
    model = Model.build([(f"c{i}", "d", t) for i, t in enumerate(TEXTS)], {"d": 10_000})
    payer_file = tmp_path / "payer.json"
    PAYER.save(payer_file)
    async with httpx.AsyncClient(timeout=30) as http, trio.open_nursery() as nursery:
        nursery.start_soon(ctx.run_blocks, 0.05)
        rpc_scope = await start_rpc(nursery, ctx, rpc_port)
        upstream = await nursery.start(partial(serve_app, ModelServer(model, "ref"), "127.0.0.1", 0))
        model_id = await trio.to_thread.run_sync(register_model, rpc_url)
        try:
            yield World(ctx, nursery, http, rpc_port, rpc_url, payer_file, rpc_scope, upstream, model_id)
        finally:
            nursery.cancel_scope.cancel()


def chat(i: int) -> dict[str, Any]:
    words = TEXTS[i % 3].decode().split()
    return {"model": "ref", "messages": [{"role": "user", "content": " ".join(words[:4])}], "max_tokens": 30}


@pytest.mark.multinode
async def test_gateway_outage_crash_bound_and_errors(new_chain, chain_id, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    async with world(new_chain, chain_id, tmp_path) as w:
        http, nursery, ctx, rpc_url, rpc_port, upstream = w.http, w.nursery, w.ctx, w.rpc_url, w.rpc_port, w.upstream
        rpc_scope = w.rpc_scope
        gw = w.gateway(tmp_path, "--max-queue", "8", "--price-per-1k", "2000")
        ids: list[str] = []
        try:
            await gw.start(http)

            async def complete(i: int) -> httpx.Response:
                r = await http.post(gw.url + "/v1/chat/completions", json=chat(i))
                if r.status_code == 200:
                    direct = await http.post(upstream + "/v1/chat/completions", json=chat(i))
                    body, ref = r.json(), direct.json()
                    for doc in (body, ref):  # the id and time differ per call; everything else unchanged
                        doc.pop("id"), doc.pop("created")
                    assert body == ref
                    ids.append(r.headers["x-attrchain-inference"])
                return r

            for i in range(3):
                assert (await complete(i)).status_code == 200
            # an upstream error passes through unchanged and records nothing
            before = (await gw.health(http))["recorded"]
            bad = await http.post(gw.url + "/v1/chat/completions", json={"model": "ref"})
            assert bad.status_code == 400 and "x-attrchain-inference" not in bad.headers
            assert "messages" in bad.json()["error"]["message"]
            assert (await gw.health(http))["recorded"] == before
            # a streamed completion: the same text, then the id as a final SSE comment
            async with http.stream("POST", gw.url + "/v1/chat/completions", json=dict(chat(1), stream=True)) as s:
                raw = b"".join([chunk async for chunk in s.aiter_raw()])
            assert raw.endswith(b"\n\n") and b"data: [DONE]" in raw
            comment = raw.rstrip().rsplit(b"\n", 1)[-1]
            assert comment.startswith(b": x-attrchain-inference 0x")
            ids.append(comment.split()[-1].decode())
            sse = SSEText()
            sse.feed(raw)
            assert sse.usage is None  # the usage chunk the gateway asked for is not shown to this client

            async def drained() -> bool:
                return (await gw.health(http))["queued"] == 0

            await wait_until(drained, 30, "the gateway to submit everything")

            # chain outage: completions are answered and queue on disk
            rpc_scope.cancel()
            for i in range(4):
                assert (await complete(i)).status_code == 200
            assert (await gw.health(http))["queued"] == 4
            # crash: SIGKILL, then a restart that must sign with cached chain facts
            await gw.kill()
            journal = Journal(tmp_path / "gw")
            assert journal.size == 4
            journal.close()
            await gw.start(http)
            assert (await gw.health(http))["queued"] == 4
            for i in range(4):
                assert (await complete(i)).status_code == 200
            # the bound: the 9th waiting completion is refused, not served unpaid
            full = await http.post(gw.url + "/v1/chat/completions", json=chat(0))
            assert full.status_code == 503 and "x-attrchain-inference" not in full.headers
            await gw.kill()  # a second crash while the queue is full
            await gw.start(http)
            # the chain comes back: everything queued is submitted once
            rpc_scope = await start_rpc(nursery, ctx, rpc_port)
            await wait_until(drained, 60, "the queue to drain after the outage")

            def check() -> None:
                with sdk.Client(rpc_url) as c:
                    paid = 0
                    for h in ids:
                        t = c.wait_for_tx(h, timeout=30)
                        assert t["decoded"]["kind"] == "infer" and t["result"]["code"] == 0
                        paid += t["decoded"]["body"]["payment"] + t["decoded"]["fee"]
                    acct = c.account(PAYER.address)
                    assert acct["nonce"] == len(ids) == len(set(ids)) == 12  # each completion charged once
                    assert acct["balance"] == 10**15 - paid

            await trio.to_thread.run_sync(check)
        finally:
            await gw.stop()


def test_journal_drops_a_torn_record_and_keeps_the_rest(tmp_path: Path) -> None:
    j = Journal(tmp_path, max_pending=3)
    for n in range(3):
        j.append(Entry("0xaa", n, f"0x{n:064x}", bytes([n])))
    with pytest.raises(Exception, match="max_pending"):
        j.append(Entry("0xaa", 3, "0x03", b"\x03"))
    j.mark_committed("0xaa", 1)
    j.close()
    with open(tmp_path / "journal.jsonl", "ab") as fh:
        fh.write(b'{"t":"tx","a":"0xaa","n":3,"h":"0x')  # a crash in the middle of a write
    back = Journal(tmp_path)
    assert back.torn == 1 and sorted(back.pending["0xaa"]) == [1, 2] and back.next_nonce("0xaa") == 3
    back.append(Entry("0xaa", 3, "0x03", b"\x03"))
    back.compact()
    back.close()
    again = Journal(tmp_path)
    assert again.torn == 0 and sorted(again.pending["0xaa"]) == [1, 2, 3] and again.committed["0xaa"] == 1


@pytest.mark.multinode
async def test_sigkill_under_load_charges_each_journaled_completion_once(new_chain, chain_id, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Attack surface: a crash while completions are being answered and submitted. Every completion
    the journal holds is paid exactly once (never re-signed), every id a client got is among them."""
    async with world(new_chain, chain_id, tmp_path) as w:
        http, rpc_url = w.http, w.rpc_url
        gw = w.gateway(tmp_path)
        answered: list[str] = []
        try:
            await gw.start(http)

            async def client(k: int) -> None:
                for i in range(k, 400, 8):
                    try:
                        r = await http.post(gw.url + "/v1/chat/completions", json=chat(i))
                    except httpx.HTTPError:
                        return  # the gateway died under us
                    assert r.status_code == 200
                    answered.append(r.headers["x-attrchain-inference"])

            async with trio.open_nursery() as load:
                for k in range(8):
                    load.start_soon(client, k)

                async def enough() -> bool:
                    return len(answered) >= 60

                await wait_until(enough, 60, "60 answered completions")
                await gw.kill()
            journaled = [json.loads(line) for line in (tmp_path / "gw" / "journal.jsonl").read_bytes().splitlines()
                         if line.strip()]
            signed = {r["h"] for r in journaled if r.get("t") == "tx"}
            assert set(answered) <= signed and len(signed) >= 60
            await gw.start(http)

            async def drained() -> bool:
                return (await gw.health(http))["queued"] == 0

            await wait_until(drained, 60, "the restarted gateway to submit the rest")

            def check() -> None:
                with sdk.Client(rpc_url) as c:
                    assert c.account(PAYER.address)["nonce"] == len(signed)  # nothing signed twice
                    for h in signed:
                        assert c.tx(h)["status"] == "committed"

            await trio.to_thread.run_sync(check)
        finally:
            await gw.stop()


@pytest.mark.multinode
async def test_a_fee_raised_while_queued_resigns_at_the_same_nonce(new_chain, chain_id, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Completions signed during an outage with a fee the chain no longer accepts are signed again at
    their own nonces: paid once each, never twice."""
    from state.attribution.fingerprint import DEFAULT_FINGERPRINT_PARAMS

    data = tmp_path / "gw"
    data.mkdir()
    fp = {n: getattr(DEFAULT_FINGERPRINT_PARAMS, n) for n, _ in type(DEFAULT_FINGERPRINT_PARAMS).WIRE_FIELDS}
    (data / "chain.json").write_text(json.dumps({"chain_id": chain_id, "min_fee": 0, "fp_params": fp}))
    async with world(new_chain, chain_id, tmp_path) as w:
        http, nursery, ctx, rpc_url, rpc_port = w.http, w.nursery, w.ctx, w.rpc_url, w.rpc_port
        w.rpc_scope.cancel()  # the gateway starts during an outage, with a stale (too low) fee cached
        gw = w.gateway(tmp_path, data=data)
        try:
            await gw.start(http)
            first = [(await http.post(gw.url + "/v1/chat/completions", json=chat(i))).headers["x-attrchain-inference"]
                     for i in range(2)]
            await start_rpc(nursery, ctx, rpc_port)

            async def drained() -> bool:
                return (await gw.health(http))["queued"] == 0

            await wait_until(drained, 60, "the re-signed completions to commit")

            def check() -> None:
                with sdk.Client(rpc_url) as c:
                    assert c.account(PAYER.address)["nonce"] == 2
                    txs = c.call("tx_search", {"sender": PAYER.address})["txs"]
                    assert [t["decoded"]["fee"] for t in txs] == [1, 1]
                    assert not {t["hash"] for t in txs} & set(first)

            await trio.to_thread.run_sync(check)
        finally:
            await gw.stop()


@pytest.mark.multinode
async def test_adapter_and_agent_are_paid(new_chain, chain_id, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--adapter and --agent go into every infer: the receipts pay the adapter's and agent's owners."""
    async with world(new_chain, chain_id, tmp_path) as w:
        def register() -> str:
            with sdk.Client(w.rpc_url) as c:
                d = c.model(w.model_id)["datanets"][0]["datanet"]
                adapter = c.submit(OWNER, "register_adapter", name="lora", base_model=w.model_id,
                                   datanets=[(d, 10_000)])["adapter_id"]
                c.submit(PAYER, "register_agent", name="bot", model=w.model_id, adapter=adapter, owner=OWNER.address)
                return str(adapter)

        adapter = await trio.to_thread.run_sync(register)
        gw = w.gateway(tmp_path, "--adapter", adapter, "--agent", "0x" + PAYER.address.hex())
        try:
            await gw.start(w.http)
            r = await w.http.post(gw.url + "/v1/completions", json={"model": "ref", "prompt": TEXTS[0].decode()[:30]})
            assert r.status_code == 200 and r.json()["choices"][0]["text"]
            inference = r.headers["x-attrchain-inference"]

            def check() -> None:
                with sdk.Client(w.rpc_url) as c:
                    c.wait_for_tx(inference, timeout=30)
                    roles = {e["role"] for e in c.attribution(inference=inference)["receipts"][0]["entries"]}
                    assert {"adapter_owner", "agent_owner", "model_owner"} <= roles

            await trio.to_thread.run_sync(check)
        finally:
            await gw.stop()
