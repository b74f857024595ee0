"""Benchmark: every explorer page served and rendered at 10,000 contributions and 100,000 receipts.

Setup (not timed): a chain on LevelDB built through real signed transactions in committed blocks
(bench/attribution.py's genesis and builder): one datanet, --contributions contributions (commit,
reveal, accepted by review) all owned by one contributor, a model, a fine-tune and an adapter, and
--receipts inferences (--per-block a block) whose outputs quote 3 random contributions, so the
contributor's address is paid by every receipt and the model lists every inference. The explorer
history indexes are written by the same commits, as on a node.

Timed, per page, on the worst-case subject of each kind (the address paid by every receipt, the
model with every inference, the datanet with every contribution):
- served: the JSON-RPC calls the page makes, sent one after another over HTTP to the node's RPC
  server (node/rpc/server.py on the built chain, the explorer on), median of --samples;
- rendered (when chromium, chromium-driver and selenium are installed): headless Chromium opens
  the page (hash navigation, the module loaded once) and the page reports the time from route
  start until its content is in the DOM (charts and graph drawn), median of --samples.
The ceiling next to them, measured in the same run: an Ed25519 verify rate (this machine's one-core
speed) and the round trip of `health` (the HTTP floor).

The LAST stdout line is JSON: {"pages": {page: {"served_ms", "rendered_ms"}}, "limit_ms": 300,
"contributions", "receipts", "health_rtt_ms", "ed25519_verify_per_s"}.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import trio  # noqa: E402

from bench.attribution import (  # noqa: E402
    BLOCK_TXS, CONTRIBUTOR, OWNER, USER, VALIDATOR, Builder, commit_then_sign, genesis)
from bench.node import ed25519_verify_per_s  # noqa: E402
from node.config import RPCConfig  # noqa: E402
from node.mempool import Mempool  # noqa: E402
from node.rpc.standalone import StandaloneContext, serving  # noqa: E402
from sdk.txbuild import make_body  # noqa: E402
from state.attribution.contributions import fingerprint_params  # noqa: E402
from state.chain import Chain  # noqa: E402
from state.crypto import to_hex  # noqa: E402
from state.store import StateDB  # noqa: E402
from state.transition import load_params  # noqa: E402
from state.tx import CreateDatanet, RegisterAdapter, RegisterModel, Review  # noqa: E402

LIMIT_MS = 300
WORDS = [f"t{i}" for i in range(20_000)]


def text(rng: random.Random, n: int = 48) -> str:
    return " ".join(rng.choices(WORDS, k=n))


def build(chain: Chain, contributions: int, receipts: int, per_block: int, seed: int) -> dict[str, str]:
    """The chain described in the module docstring; returns the ids the pages look up."""
    b = Builder(chain)
    rng = random.Random(seed)
    fp_params = fingerprint_params(load_params(chain.db.view()).attribution)
    create = b.sign(OWNER, CreateDatanet("bench", "ipfs://bench", 0))
    b.commit([create])
    datanet = create.hash
    texts: list[str] = []
    cids: list[bytes] = []
    t0 = time.perf_counter()
    while len(texts) < contributions:
        batch = [text(rng) for _ in range(min(BLOCK_TXS // 2, contributions - len(texts)))]
        reveals = commit_then_sign(b, datanet, [t.encode() for t in batch])
        b.commit(reveals)
        b.commit([b.sign(OWNER, Review(t.hash, 1)) for t in reveals])
        texts += batch
        cids += [t.hash for t in reveals]
    print(f"setup: {len(cids)} accepted contributions, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    base = b.sign(OWNER, RegisterModel("base", ((datanet, 10_000),), b"", 0))
    b.commit([base])
    tuned = b.sign(OWNER, RegisterModel("tuned", ((datanet, 10_000),), base.hash, 2_000))
    b.commit([tuned])
    adapter = b.sign(OWNER, RegisterAdapter("lora", tuned.hash, ((datanet, 10_000),)))
    b.commit([adapter])
    t0 = time.perf_counter()
    done = 0
    last = b""
    while done < receipts:
        txs = []
        for _ in range(min(per_block, receipts - done)):
            quoted = [texts[i] for i in rng.sample(range(len(texts)), 3)]
            output = " ".join(" ".join(q.split()[5:35]) for q in quoted)
            body = make_body("infer", lambda: fp_params, model=base.hash, adapter=b"", agent=b"", payment=1_000_000,
                             input_tokens=50, output_tokens=90, output=output)
            txs.append(b.sign(USER, body))
        b.commit(txs)
        done += len(txs)
        last = txs[-1].hash
        if done % 20_000 == 0:
            print(f"  {done} receipts, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(f"setup: {done} receipts, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return {"datanet": to_hex(datanet), "contribution": to_hex(cids[0]), "model": to_hex(base.hash),
            "tuned": to_hex(tuned.hash), "adapter": to_hex(adapter.hash), "address": to_hex(CONTRIBUTOR.address),
            "inference": to_hex(last), "height": str(chain.height), "agent": to_hex(USER.address)}


def page_calls(ids: dict[str, str]) -> dict[str, tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """Each page's route and the JSON-RPC calls explorer/static/app.js makes for it."""
    d, c, m, a, addr = ids["datanet"], ids["contribution"], ids["model"], ids["adapter"], ids["address"]
    return {
        "chain": ("", [("status", {}), ("blockchain", {}), ("tx_search", {"per_page": 10})]),
        "validators": ("validators", [("validator_stats", {})]),
        "block": (f"block/{ids['height']}", [("block", {"height": int(ids["height"])}),
                                             ("tx_search", {"min_height": int(ids["height"]),
                                                            "max_height": int(ids["height"]), "order": "asc",
                                                            "per_page": 100})]),
        "tx": (f"tx/{ids['inference']}", [("tx", {"hash": ids["inference"]})]),
        "search": (f"search?q={c}", [("search", {"q": c})]),
        "datanet": (f"datanet/{d}", [("datanet", {"id": d}), ("contributions", {"datanet": d, "per_page": 50}),
                                     ("datanet_models", {"id": d}), ("earnings", {"recipient": d, "points": 200})]),
        "contribution": (f"contribution/{c}", [("contribution", {"id": c}), ("contribution_history", {"id": c}),
                                               ("rewards", {"contribution": c}),
                                               ("attribution", {"recipient": c, "per_page": 50})]),
        "model": (f"model/{m}", [("lineage", {"id": m}), ("inferences", {"model": m, "per_page": 50}), ("params", {}),
                                 ("datanet", {"id": d})]),
        "adapter": (f"adapter/{a}", [("adapter", {"id": a}), ("inferences", {"adapter": a, "per_page": 50})]),
        "inference": (f"inference/{ids['inference']}", [("inference", {"id": ids["inference"]}),
                                                        ("attribution", {"inference": ids["inference"]})]),
        "address": (f"address/{addr}", [("account", {"address": addr}), ("contributions", {"owner": addr, "per_page": 50}),
                                        ("attribution", {"recipient": addr, "per_page": 20}),
                                        ("sent_txs", {"address": addr, "per_page": 20}),
                                        ("agent", {"address": addr, "actions": 0}),
                                        ("earnings", {"recipient": addr, "points": 200})]),
    }


def time_served(http: httpx.Client, url: str, calls: list[tuple[str, dict[str, Any]]], samples: int) -> float:
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        for method, params in calls:
            doc = http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()
            if "error" in doc and doc["error"]["code"] != -32001:
                raise RuntimeError(f"{method} {params}: {doc['error']}")
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def browser() -> Any:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    if not chromium or not driver_path:
        return None
    profile = tempfile.mkdtemp(prefix="explorer-bench-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1280,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.profile_dir = profile
    return driver


def time_rendered(driver: Any, route: str, samples: int) -> float:
    times = []
    for i in range(samples):
        seq = int(driver.execute_script("return Number(document.getElementById('main').dataset.rendered || 0)"))
        driver.execute_script("location.hash = arguments[0]", f"#/{route}" + ("" if i % 2 else "?" if "?" not in route else "&"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = driver.execute_script(
                "const m = document.getElementById('main'); return Number(m.dataset.rendered || 0) > arguments[0] "
                "&& m.getAttribute('aria-busy') === 'false' ? m.dataset.renderMs : null", seq)
            if done is not None:
                break
            time.sleep(0.005)
        else:
            raise RuntimeError(f"page {route} did not render within 30 s")
        if "Not available" in driver.find_element("id", "main").text:
            raise RuntimeError(f"page {route}: {driver.find_element('id', 'main').text[:300]}")
        times.append(float(done))
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--contributions", type=int, default=10_000)
    ap.add_argument("--receipts", type=int, default=100_000)
    ap.add_argument("--per-block", type=int, default=100, help="inferences per block")
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dir", help="LevelDB directory to build in or reuse (default: a fresh temporary one)")
    args = ap.parse_args()
    ceiling = ed25519_verify_per_s()
    with tempfile.TemporaryDirectory(prefix="attrchain-bench-explorer-") as tmp:
        path = Path(args.dir or tmp)
        ids_file = path / "bench-explorer-ids.json"
        db = StateDB(path / "state.db")
        chain = Chain(db)
        if chain.height == 0:
            chain.init_genesis(genesis())  # type: ignore[arg-type]
            ids = build(chain, args.contributions, args.receipts, args.per_block, args.seed)
            ids_file.write_text(json.dumps(ids))
        else:
            ids = json.loads(ids_file.read_text())
        ctx = StandaloneContext(chain, genesis(), Mempool(chain), proposer=VALIDATOR.address)  # type: ignore[arg-type]
        ready = threading.Event()
        stop: list[Any] = []
        url_box: list[str] = []

        async def serve() -> None:
            async with serving(ctx, RPCConfig()) as url:
                url_box.append(url)
                stop.append((trio.lowlevel.current_trio_token(), trio.Event()))
                ready.set()
                await stop[0][1].wait()

        thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
        thread.start()
        if not ready.wait(30):
            raise RuntimeError("RPC server did not start")
        url = url_box[0]
        results: dict[str, dict[str, float | None]] = {}
        driver = browser()
        try:
            with httpx.Client(timeout=60) as http:
                rtt = time_served(http, url, [("health", {})], 50)
                if driver is not None:
                    driver.get(url + "/")
                for page, (route, calls) in page_calls(ids).items():
                    served = time_served(http, url, calls, args.samples)
                    rendered = time_rendered(driver, route, args.samples) if driver is not None else None
                    results[page] = {"served_ms": round(served, 1),
                                     "rendered_ms": round(rendered, 1) if rendered is not None else None}
                    flag = "ok" if max(served, rendered or 0) <= LIMIT_MS else "OVER"
                    print(f"{page:13s} served {served:7.1f} ms  rendered "
                          f"{'n/a' if rendered is None else f'{rendered:7.1f} ms'}  (limit {LIMIT_MS} ms) {flag}")
        finally:
            if driver is not None:
                driver.quit()
                shutil.rmtree(driver.profile_dir, ignore_errors=True)
            token, event = stop[0]
            trio.from_thread.run_sync(event.set, trio_token=token)
            thread.join(10)
            db.close()
    print(f"ceiling: health round trip {rtt:.2f} ms, Ed25519 {ceiling:,.0f} verifications/s (one core); "
          f"{args.contributions} contributions, {args.receipts} receipts")
    print(json.dumps({"pages": results, "limit_ms": LIMIT_MS, "contributions": args.contributions,
                      "receipts": args.receipts, "health_rtt_ms": round(rtt, 3),
                      "ed25519_verify_per_s": round(ceiling)}))
    return 0 if all(max(r["served_ms"] or 0, r["rendered_ms"] or 0) <= LIMIT_MS for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
