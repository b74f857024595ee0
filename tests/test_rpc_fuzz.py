"""Hostile input: thousands of random JSON-RPC requests against a real server over a real chain.
The node must answer each with a well-formed JSON-RPC answer (never an internal error), stay up,
and leave its state untouched."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any
from urllib.parse import quote

import httpx
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import VALIDATOR_KEY, make_genesis
from node.config import RPCConfig
from node.mempool import Mempool
from node.rpc.methods import METHODS
from node.rpc.standalone import StandaloneContext, serving
from state import keys
from state.crypto import PrivateKey, to_hex
from state.tx import Transfer, sign_tx

ALICE = PrivateKey.from_int(1)
BOB = PrivateKey.from_int(2)
BALANCES = {ALICE.address: 10**12, BOB.address: 10**12}
ALLOWED_ERRORS = {-32700, -32600, -32601, -32602, -32001, -32003, -32005}
EXAMPLES = 2_000
PARAM_NAMES = sorted({p.name for m in METHODS.values() for p in m.params})


class ServerThread:
    """serve_rpc in its own trio loop on a thread, so a synchronous hypothesis test can drive it."""

    def __init__(self, ctx: StandaloneContext, config: RPCConfig) -> None:
        self.ctx, self.config = ctx, config
        self.ready = threading.Event()
        self.url = ""
        self.thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self.stop = trio.Event()
        async with serving(self.ctx, self.config) as url:
            self.url = url
            self.ready.set()
            await self.stop.wait()

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        assert self.ready.wait(10), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        trio.from_thread.run_sync(self.stop.set, trio_token=self.token)
        self.thread.join(10)
        assert not self.thread.is_alive()


# kept small: generating deep structures costs more than sending them
json_leaf = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
             | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
             | st.sampled_from(["latest", "0x", "0x00", "0x" + "ab" * 20, "0x" + "cd" * 32, "asc", "desc",
                                "new_block", "tx", -1, 0, 1, 2**63, 10**6])
             | st.binary(max_size=33).map(lambda b: "0x" + b.hex()))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=5)
method_names = st.sampled_from(sorted(METHODS)) | st.text(max_size=12)
params = (st.none() | json_value | st.lists(json_leaf, max_size=5)
          | st.dictionaries(st.sampled_from(PARAM_NAMES), json_leaf, max_size=4))
ids = st.none() | st.integers() | st.text(max_size=6) | json_value


@st.composite
def request_object(draw: Any) -> Any:
    req = {"jsonrpc": draw(st.just("2.0") | json_leaf), "method": draw(method_names),
           "params": draw(params), "id": draw(ids)}
    dropped = draw(st.sets(st.sampled_from(sorted(req)), max_size=2))
    return {k: v for k, v in req.items() if k not in dropped}


bodies = (request_object().map(json.dumps)
          | st.lists(request_object() | json_leaf, max_size=4).map(json.dumps)
          | json_value.map(json.dumps)
          | st.binary(max_size=200))


uri_calls = st.tuples(method_names.map(lambda n: quote(n, safe="")),
                      st.dictionaries(st.sampled_from(PARAM_NAMES) | st.text(max_size=6),
                                      json_leaf.map(json.dumps) | st.text(max_size=12), max_size=3))
requests = bodies.map(lambda b: ("POST", b)) | uri_calls.map(lambda u: ("GET", u))


def check_answer(resp: Any) -> None:
    assert isinstance(resp, dict) and resp.get("jsonrpc") == "2.0", resp
    assert ("result" in resp) != ("error" in resp), resp
    if "error" in resp:
        err = resp["error"]
        assert err["code"] in ALLOWED_ERRORS, resp  # -32603 would be a handler bug
        assert isinstance(err["message"], str) and err["message"]


def test_random_requests_never_hurt_the_node(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    chain = new_chain(BALANCES)
    ctx = StandaloneContext(chain, make_genesis(chain_id, BALANCES), Mempool(chain), proposer=VALIDATOR_KEY.address)
    ctx.mempool.submit(sign_tx(ALICE, chain_id, 0, Transfer(BOB.address, 5), 1).raw)
    ctx.produce_block()
    ctx.produce_block()
    root, height = chain.db.root(), chain.height
    account_before = chain.db.raw.get(keys.account_key(ALICE.address))
    sent = [0]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # client and server threads share the GIL: hand it over promptly
    try:
        run_fuzz(ctx, sent)
    finally:
        sys.setswitchinterval(switch)
    assert sent[0] >= EXAMPLES
    assert (chain.db.root(), chain.height) == (root, height)
    assert chain.db.raw.get(keys.account_key(ALICE.address)) == account_before
    assert ctx.mempool.size == 0  # random bytes never make a valid signed transaction


def run_fuzz(ctx: StandaloneContext, sent: list[int]) -> None:
    root = ctx.chain.db.root()
    with ServerThread(ctx, RPCConfig(max_body_bytes=16 * 1024, max_batch=5, max_page=20)) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http:

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(req=requests)
        def one_request(req: tuple[str, Any]) -> None:
            verb, what = req
            if verb == "POST":
                r = http.post("/", content=what, headers={"content-type": "application/json"})
            else:  # a CometBFT-style URI call
                r = http.get("/" + what[0], params=what[1])
            sent[0] += 1
            ok = (200, 204, 413) if verb == "POST" else (200, 404, 405, 413)  # GET / and odd paths
            assert r.status_code in ok, (r.status_code, req)
            if r.status_code in (404, 405):
                assert verb == "GET"
                return
            if r.status_code == 204:
                assert r.content == b""
                return
            if r.headers["content-type"].startswith("text/html"):  # GET /: the explorer (docs/explorer.md)
                assert verb == "GET" and what[0] == ""
                return
            answer = r.json()
            for resp in answer if isinstance(answer, list) else [answer]:
                check_answer(resp)

        one_request()
        assert http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "health"}).json()["result"] == {}
        status = http.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "status"}).json()["result"]
        assert status["sync_info"]["latest_state_root"] == to_hex(root)
