"""Benchmark: the cost of an `infer` and of a `contribute` against a large datanet on LevelDB.

Setup (not timed): one datanet with --contributions accepted contributions (default 10,000)
holding at least --min-hashes fingerprint hashes in total (default 1,000,000), built through
real signed `contribute` and `review` transactions in committed blocks on a StateDB on disk.
Texts are random Zipf-distributed words plus shared boilerplate sentences, so document
frequencies range from 1 to saturated.

Timed: transactions applied one after another in one block's view with `apply_raw_tx` (decode,
signature check, envelope, the attribution rule), after --warmup untimed ones of the same kind:
- infer with 1,024 output-fingerprint hashes (512 held by 8 random contributions, so they match,
  512 fresh);
- contribute (the reveal; its commitment is committed first) of a fresh text of --words words
  (default 3,000): normalisation, fingerprint, MinHash and the duplicate checks.
Timing starts once LevelDB's background compactions triggered by the bulk load have finished
(bounded wait). The headline is the mean CPU time of the applying thread (one core); wall-clock
means and medians and the machine's load average are on the line before it.

The LAST stdout line is JSON: {"infer_ms": .., "contribute_ms": .., "contribute_words": ..,
"ed25519_verify_per_s": ..} (the last: this machine's one-core ceiling measured in the same run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from state.accounts import get_account  # noqa: E402
from state.chain import Chain  # noqa: E402
from state.attribution.contributions import fingerprint_params  # noqa: E402
from state.attribution.commitments import contribution_commitment  # noqa: E402
from bench.node import ed25519_verify_per_s  # noqa: E402
from state.crypto import PrivateKey, to_hex  # noqa: E402
from state.attribution.fingerprint import Fingerprint, fingerprint_text  # noqa: E402
from state.genesis import parse_genesis  # noqa: E402
from state.store import StateDB  # noqa: E402
from state.transition import BlockContext, apply_raw_tx, load_params  # noqa: E402
from state.tx import CommitContribution, Contribute, CreateDatanet, Infer, RegisterModel, Review, Tx, sign_tx  # noqa: E402

CHAIN_ID = "attrchain-bench"
OWNER = PrivateKey.from_int(1)
CONTRIBUTOR = PrivateKey.from_int(2)
USER = PrivateKey.from_int(3)
VALIDATOR = PrivateKey.from_int(9000)
VOCAB = [f"w{i}" for i in range(5000)]
ZIPF = [1 / (i + 1) for i in range(len(VOCAB))]
BLOCK_TXS = 500


def make_text(rng: random.Random, boilerplate: list[str], words: int) -> bytes:
    body = rng.choices(VOCAB, ZIPF, k=words)
    if rng.random() < 0.3:
        at = rng.randrange(words)
        body[at:at] = rng.choice(boilerplate).split()
    return " ".join(body).encode()


def genesis() -> object:
    return parse_genesis({
        "chain_id": CHAIN_ID,
        "genesis_time_ms": 0,
        "params_preset": "devnet",
        "accounts": [{"address": to_hex(k.address), "balance": 10**15} for k in (OWNER, CONTRIBUTOR, USER)],
        "validators": [{
            "operator": to_hex(VALIDATOR.address),
            "consensus_public_key": to_hex(VALIDATOR.public_key),
            "stake": 1_000_000,
        }],
    })


class Builder:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.nonces: dict[bytes, int] = {}
        self.time_ms = 1_000

    def sign(self, key: PrivateKey, body: object) -> Tx:
        n = self.nonces.get(key.address, 0)
        self.nonces[key.address] = n + 1
        return sign_tx(key, CHAIN_ID, n, body, 1)

    def commit(self, txs: list[Tx]) -> None:
        self.time_ms += 1000
        ex = self.chain.build_block(tuple(t.raw for t in txs), self.time_ms, VALIDATOR.address,
                                    txs_verified=frozenset(t.hash for t in txs))
        failed = [r for r in ex.result.tx_results if not r.ok]
        if failed:
            raise RuntimeError(f"setup transaction failed: {failed[0]}")
        self.chain.commit(ex.block, ex)


def build(chain: Chain, contributions: int, min_hashes: int, seed: int) -> tuple[bytes, bytes, list[Fingerprint]]:
    b = Builder(chain)
    params = fingerprint_params(load_params(chain.db.view()).attribution)
    create = b.sign(OWNER, CreateDatanet("bench", "ipfs://bench", 0))
    b.commit([create])
    datanet = create.hash
    model_tx = b.sign(OWNER, RegisterModel("bench-model", ((datanet, 10_000),), b"", 0))
    b.commit([model_tx])
    rng = random.Random(seed)
    boilerplate = [" ".join(rng.choices(VOCAB, k=40)) for _ in range(200)]
    words = max(40, (min_hashes // contributions) * 3 + 30)  # winnowing keeps about 1 in 3
    fps: list[Fingerprint] = []
    total = 0
    t0 = time.perf_counter()
    batch: list[bytes] = []
    while len(fps) < contributions or total < min_hashes:
        content = make_text(rng, boilerplate, words)
        fp = fingerprint_text(content, params)
        fps.append(fp)
        total += len(fp.fingerprint)
        batch.append(content)
        if len(batch) == BLOCK_TXS // 2 or not (len(fps) < contributions or total < min_hashes):
            reveals = commit_then_sign(b, datanet, batch)
            b.commit(reveals)
            b.commit([b.sign(OWNER, Review(t.hash, 1)) for t in reveals])
            batch = []
            if len(fps) % 2000 == 0:
                print(f"  {len(fps)} contributions, {total} hashes, {time.perf_counter() - t0:.0f} s",
                      file=sys.stderr)
    print(f"setup: {len(fps)} accepted contributions, {total} fingerprint hashes, "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return datanet, model_tx.hash, fps


def compaction_written_mb(db: StateDB) -> float:
    """Total MB LevelDB's compactions have written so far (from its ``leveldb.stats``)."""
    total = 0.0
    for line in db.raw.get_property(b"leveldb.stats").decode().splitlines():
        cols = line.split()
        if len(cols) == 6 and cols[0].isdigit():
            total += float(cols[5])
    return total


def wait_for_compactions(db: StateDB, quiet_s: float = 2.0, limit_s: float = 180.0) -> float:
    """Wait (bounded) until LevelDB's background compactions after the bulk load are done: no
    compaction output for ``quiet_s``. A node that is not being bulk-loaded is in that state;
    measured while they run, each point read costs up to twice as much. Returns seconds waited."""
    start = last_change = time.monotonic()
    written = compaction_written_mb(db)
    while time.monotonic() - last_change < quiet_s and time.monotonic() - start < limit_s:
        time.sleep(0.25)
        now = compaction_written_mb(db)
        if now != written:
            written, last_change = now, time.monotonic()
    return time.monotonic() - start


def time_txs(chain: Chain, txs: list[Tx], warmup: int) -> tuple[list[float], list[float]]:
    """Apply ``txs`` one after another in one block's view: (wall ms, CPU ms) of each timed one.

    The first ``warmup`` are applied but not timed: they open the LevelDB tables and fill the
    block cache the way a running node's are.
    """
    view = chain.db.view()
    ctx = BlockContext(CHAIN_ID, chain.height + 1, 10**12, load_params(view), VALIDATOR.address)
    wall, cpu = [], []
    for i, tx in enumerate(txs):
        ctx.tx_index = i
        t0, c0 = time.perf_counter(), time.thread_time()
        _, result = apply_raw_tx(view, tx.raw, ctx)
        t1, c1 = time.perf_counter(), time.thread_time()
        if not result.ok:
            raise RuntimeError(f"timed transaction failed: {result}")
        if i >= warmup:
            wall.append((t1 - t0) * 1000)
            cpu.append((c1 - c0) * 1000)
    return wall, cpu


def infer_txs(fps: list[Fingerprint], model: bytes, nonce: int, count: int, rng: random.Random) -> list[Tx]:
    """Infers of 1,024 output hashes: 512 held by 8 random contributions, 512 fresh."""
    txs = []
    for i in range(count):
        known = sorted({h for fp in rng.sample(fps, 8) for h in fp.fingerprint})
        chosen = set(rng.sample(known, min(512, len(known))))
        while len(chosen) < 1024:
            chosen.add(rng.getrandbits(64))
        body = Infer(model, b"", b"", 1_000_000, 100, 100, rng.randbytes(32), tuple(sorted(chosen)))
        txs.append(sign_tx(USER, CHAIN_ID, nonce + i, body, 1))
    return txs


def salt_of(content: bytes) -> bytes:
    return hashlib.sha256(b"bench salt" + content).digest()


def commit_then_sign(b: Builder, datanet: bytes, contents: list[bytes]) -> list[Tx]:
    """Commit to each content in one block; return the signed reveals (for a later block)."""
    b.commit([b.sign(CONTRIBUTOR, CommitContribution(contribution_commitment(
        CONTRIBUTOR.address, datanet, hashlib.sha256(c).digest(), salt_of(c)))) for c in contents])
    return [b.sign(CONTRIBUTOR, Contribute(datanet, c, salt_of(c), 0)) for c in contents]


def contribute_txs(chain: Chain, datanet: bytes, count: int, words: int, rng: random.Random) -> list[Tx]:
    """Reveals of fresh texts of ``words`` words, their commitments committed in a block first."""
    b = Builder(chain)
    view = chain.db.view()
    b.nonces[CONTRIBUTOR.address] = get_account(view, CONTRIBUTOR.address).nonce
    b.time_ms = chain.get_block(chain.height).header.time_ms  # type: ignore[union-attr]
    boilerplate = [" ".join(rng.choices(VOCAB, k=40)) for _ in range(10)]
    return commit_then_sign(b, datanet, [make_text(rng, boilerplate, words) for _ in range(count)])


def summary(wall: list[float], cpu: list[float]) -> dict[str, float]:
    return {
        "cpu_ms_mean": round(statistics.mean(cpu), 3),
        "cpu_ms_median": round(statistics.median(cpu), 3),
        "wall_ms_mean": round(statistics.mean(wall), 3),
        "wall_ms_median": round(statistics.median(wall), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--contributions", type=int, default=10_000)
    ap.add_argument("--min-hashes", type=int, default=1_000_000)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--dir", help="LevelDB directory (default: a fresh temporary one)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--words", type=int, default=3000, help="words of each timed contribution")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="attrchain-bench-") as tmp:
        db = StateDB(args.dir or tmp)
        chain = Chain(db)
        chain.init_genesis(genesis())  # type: ignore[arg-type]
        datanet, model, fps = build(chain, args.contributions, args.min_hashes, args.seed)
        waited = wait_for_compactions(db)
        print(f"waited {waited:.1f} s for LevelDB's compactions after the bulk load", file=sys.stderr)
        rng = random.Random(args.seed + 1)
        view = db.view()
        n = args.warmup + args.samples
        infers = infer_txs(fps, model, get_account(view, USER.address).nonce, n, rng)
        contributes = contribute_txs(chain, datanet, n, args.words, rng)
        results: dict[str, object] = {
            "contributions": len(fps),
            "fingerprint_hashes": sum(len(fp.fingerprint) for fp in fps),
            "samples": args.samples,
        }
        infer_wall, infer_cpu = time_txs(chain, infers, args.warmup)
        results["infer"] = summary(infer_wall, infer_cpu)
        contribute_wall, contribute_cpu = time_txs(chain, contributes, args.warmup)
        results["contribute"] = summary(contribute_wall, contribute_cpu)
        results["load_average_1m"] = round(os.getloadavg()[0], 2)
        results["ed25519_verify_per_s_one_core"] = round(ed25519_verify_per_s(1.0))
        db.close()
    print(json.dumps(results))
    # Headline: mean CPU time of the applying thread. This machine is shared, so wall time also
    # measures the other processes; both are on the line above.
    print(json.dumps({
        "infer_ms": round(statistics.mean(infer_cpu), 3),
        "contribute_ms": round(statistics.mean(contribute_cpu), 3),
        "contribute_words": args.words,
        "ed25519_verify_per_s": results["ed25519_verify_per_s_one_core"],
    }))


if __name__ == "__main__":
    main()
