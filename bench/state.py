"""Benchmark: signed transfers through apply_block on LevelDB, and the state tree's cost per key.

Usage: .venv/bin/python bench/state.py [--blocks N] [--skip-1m]
Prints progress lines, then LAST a JSON object with transfers_per_s, ed25519_verify_per_s, ratio
(= transfers_per_s / ed25519_verify_per_s, one core) and tree_us_per_key_100k / _1m.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# bench/state.py would shadow the `state` package: put the repository root first instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from state.chain import Chain  # noqa: E402
from state.crypto import PrivateKey, to_hex, verify  # noqa: E402
from state.genesis import parse_genesis  # noqa: E402
from state.store import StateDB  # noqa: E402
from state.tx import Transfer, sign_tx  # noqa: E402

CHAIN_ID = "attrchain-bench"
N_SENDERS = 1000
BLOCK = 1000


class VerifyMeter:
    """This machine's bare Ed25519 verify rate, sampled in short bursts interleaved with the work
    so both see the same machine load (the ratio is what holds on a noisy machine)."""

    def __init__(self) -> None:
        key = PrivateKey.from_int(1)
        self.msg = os.urandom(160)
        self.sig = key.sign(self.msg)
        self.pub = key.public_key
        self.count = 0
        self.seconds = 0.0

    def sample(self, seconds: float = 0.25) -> None:
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(200):
                verify(self.pub, self.sig, self.msg)
            n += 200
        self.count += n
        self.seconds += time.perf_counter() - start

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def transfers_per_s(n_blocks: int, tmp: str, meter: VerifyMeter) -> float:
    senders = [PrivateKey.from_int(1000 + i) for i in range(N_SENDERS)]
    validator = PrivateKey.from_int(1)
    genesis = parse_genesis({
        "chain_id": CHAIN_ID,
        "accounts": [{"address": to_hex(k.address), "balance": 10**12} for k in senders],
        "validators": [{"operator": to_hex(validator.address),
                        "consensus_public_key": to_hex(validator.public_key), "stake": 10**6}],
    })
    db = StateDB(Path(tmp) / "transfers")
    chain = Chain(db)
    chain.init_genesis(genesis)
    print(f"signing {n_blocks} blocks of {BLOCK} transfers...", file=sys.stderr, flush=True)
    blocks = []
    for b in range(n_blocks):
        txs = []
        for i in range(BLOCK):
            s = senders[(b * BLOCK + i) % N_SENDERS]
            nonce = (b * BLOCK + i) // N_SENDERS
            to = PrivateKey.from_int(50_000 + (b * 7919 + i * 104729) % 20_000).address
            txs.append(sign_tx(s, CHAIN_ID, nonce, Transfer(to, 1 + i % 100), 1).raw)
        blocks.append(tuple(txs))
    elapsed = 0.0
    for b, txs in enumerate(blocks):
        meter.sample()
        start = time.perf_counter()
        ex = chain.build_block(txs, 10_000 + b, validator.address)
        chain.commit(ex.block, ex)
        elapsed += time.perf_counter() - start
        failed = [r for r in ex.result.tx_results if not r.ok]
        assert not failed, failed[:3]
        print(f"block {b + 1}/{n_blocks}: {BLOCK / (time.perf_counter() - start):.0f} transfers/s",
              file=sys.stderr, flush=True)
    db.close()
    return n_blocks * BLOCK / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--skip-1m", action="store_true", help="skip the 1M-key tree measurement")
    args = ap.parse_args()
    import importlib.util

    spec = importlib.util.spec_from_file_location("tree_bench", Path(__file__).with_name("tree_bench.py"))
    assert spec is not None and spec.loader is not None
    tree_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tree_bench)
    measure_tree_us_per_key = tree_bench.measure_tree_us_per_key

    with tempfile.TemporaryDirectory() as tmp:
        meter = VerifyMeter()
        tps = transfers_per_s(args.blocks, tmp, meter)
        verify_rate = meter.rate
        print(f"ed25519 verify/s (one core, sampled between blocks): {verify_rate:.0f}", file=sys.stderr, flush=True)
        print(f"transfers/s through apply_block + commit: {tps:.0f}", file=sys.stderr, flush=True)
        result = {
            "transfers_per_s": round(tps),
            "ed25519_verify_per_s": round(verify_rate),
            "ratio": round(tps / verify_rate, 3),
        }
        t100k = measure_tree_us_per_key(100_000, 1000, str(Path(tmp) / "tree100k"))
        print(f"tree us/key at 100k keys: {t100k:.1f}", file=sys.stderr, flush=True)
        result["tree_us_per_key_100k"] = round(t100k, 2)
        if not args.skip_1m:
            rate = tree_bench.sha256_per_s()
            t1m = measure_tree_us_per_key(1_000_000, 1000, str(Path(tmp) / "tree1m"))
            rate = (rate + tree_bench.sha256_per_s()) / 2
            print(f"tree us/key at 1M keys: {t1m:.1f} ({t1m * rate / 1e6:.0f} sha256 of 65 bytes "
                  f"at {rate:.0f}/s)", file=sys.stderr, flush=True)
            result["tree_us_per_key_1m"] = round(t1m, 2)
            result["sha256_per_s"] = round(rate)
            result["tree_1m_in_sha256"] = round(t1m * rate / 1e6, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
