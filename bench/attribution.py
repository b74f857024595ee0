"""Benchmark: the cost of an `infer` and of a `contribute` against a large datanet on LevelDB.

Setup (not timed): one datanet with --contributions accepted contributions (default 10,000)
holding at least --min-hashes fingerprint hashes in total (default 1,000,000), built through
real signed `contribute` and `review` transactions in committed blocks on a StateDB on disk
(progress on stderr). Texts are random Zipf-distributed words; 30% of them also quote one of 200
passages of 40 words of real English (tests/english_corpus.py), so document frequencies range
from 1 to saturated and the timed English texts find candidates in the duplicate indexes.
The built state is kept in a cache directory keyed by the build parameters and by the source of
the state code that defines what is stored (--cache-dir; --rebuild forces a new build). Each run
works on a copy of it (the immutable LevelDB tables hard-linked), so runs do not change it.

Timed: transactions applied one after another in one block's view with `apply_raw_tx` (decode,
signature check, envelope, the attribution rule), after --warmup untimed ones of the same kind:
- infer carrying a --output-bytes output text (default 4 KiB): half of it 40-word passages
  quoted from 8 random contributions, so they match as spans, half fresh words; validators
  normalise and shingle it and run span matching (issue 14);
- contribute (the reveal; its commitment is committed first) of a fresh real-English text of
  --words words (default 3,000): consecutive windows of the CPython reference topics and stdlib
  docstrings (tests/english_corpus.py), each window kept only if no earlier one conflicts with it;
  normalisation, fingerprint, MinHash and the duplicate and containment checks.
--profile prints the cProfile of the timed contributes and infers to stderr.
Timing starts once LevelDB's background compactions triggered by the bulk load have finished
(bounded wait). The headline is the mean CPU time of the applying thread (one core); wall-clock
means and medians and the machine's load average are on the line before it.

The LAST stdout line is JSON: {"infer_ms": .., "contribute_ms": .., "contribute_words": ..,
"ed25519_verify_per_s": ..} (the last: this machine's one-core ceiling measured in the same run).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import json
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from english_corpus import build_corpus  # noqa: E402

from state.accounts import get_account  # noqa: E402
from state.chain import Chain  # noqa: E402
from state.attribution.contributions import fingerprint_params  # noqa: E402
from state.attribution.commitments import contribution_commitment  # noqa: E402
from state.attribution.dedupe import pair_conflict  # noqa: E402
from bench.node import ed25519_verify_per_s  # noqa: E402
from state.crypto import PrivateKey, to_hex  # noqa: E402
from state.attribution.fingerprint import Fingerprint, FingerprintParams, fingerprint_text  # noqa: E402
from state.genesis import parse_genesis  # noqa: E402
from state.params import AttributionParams  # noqa: E402
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
BUILD_VERSION = 2  # bump when build() makes a different state from the same parameters
# The state code whose changes change what build() stores; the pure fingerprint, normalisation
# and matching code is left out (its speed-ups must not change results: the tests pin those).
STATE_SOURCES_EXCLUDED = {"fingerprint.py", "normalise.py", "unicode_data.py", "matching.py"}


def english_windows(words: int) -> list[str]:
    """Consecutive ``words``-word windows of the corpus's non-licence documents, in corpus order."""
    corpus = [t for name, t in build_corpus(max_words=100_000, limit=1000) if not name.startswith("licence:")]
    all_words = " ".join(corpus).split()
    return [" ".join(all_words[i : i + words]) for i in range(0, len(all_words) - words + 1, words)]


def english_passages(rng: random.Random, count: int, length: int = 40) -> list[str]:
    """``count`` passages of ``length`` consecutive words of the corpus (the shared quotes)."""
    all_words = " ".join(english_windows(1000)).split()
    return [" ".join(all_words[at : at + length]) for at in rng.sample(range(len(all_words) - length), count)]


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


def build(chain: Chain, contributions: int, min_hashes: int, seed: int) -> tuple[bytes, bytes, list[bytes], int]:
    """The datanet, the model and the accepted texts (and their fingerprint hashes in total)."""
    b = Builder(chain)
    params = fingerprint_params(load_params(chain.db.view()).attribution)
    create = b.sign(OWNER, CreateDatanet("bench", "ipfs://bench", 0))
    b.commit([create])
    datanet = create.hash
    model_tx = b.sign(OWNER, RegisterModel("bench-model", ((datanet, 10_000),), b"", 0))
    b.commit([model_tx])
    rng = random.Random(seed)
    boilerplate = english_passages(rng, 200)
    words = max(40, (min_hashes // contributions) * 3 + 30)  # winnowing keeps about 1 in 3
    texts: list[bytes] = []
    total = 0
    t0 = last = time.perf_counter()
    batch: list[bytes] = []
    while len(texts) < contributions or total < min_hashes:
        content = make_text(rng, boilerplate, words)
        total += len(fingerprint_text(content, params).fingerprint)
        texts.append(content)
        batch.append(content)
        if len(batch) == BLOCK_TXS // 2 or not (len(texts) < contributions or total < min_hashes):
            reveals = commit_then_sign(b, datanet, batch)
            b.commit(reveals)
            b.commit([b.sign(OWNER, Review(t.hash, 1)) for t in reveals])
            batch = []
            now = time.perf_counter()
            if now - last >= 5 or len(texts) >= contributions:
                last = now
                rate = len(texts) / (now - t0)
                left = max(contributions - len(texts), (min_hashes - total) * len(texts) // max(total, 1))
                print(f"  build: {len(texts):,}/{contributions:,} contributions, {total:,} hashes, "
                      f"{now - t0:.0f} s, {rate:.0f}/s, ~{left / rate:.0f} s left", file=sys.stderr, flush=True)
    print(f"setup: {len(texts):,} accepted contributions, {total:,} fingerprint hashes, "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return datanet, model_tx.hash, texts, total


def cache_key(contributions: int, min_hashes: int, seed: int) -> str:
    """What a cached state depends on: the parameters, this builder and the stored-format code."""
    h = hashlib.sha256(json.dumps([contributions, min_hashes, seed, BUILD_VERSION]).encode())
    sources = sorted(p for p in (ROOT / "state").rglob("*.py") if p.name not in STATE_SOURCES_EXCLUDED)
    for p in sources:
        h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def cached_state(cache_dir: Path, contributions: int, min_hashes: int, seed: int, rebuild: bool) -> Path:
    """The directory of the built state for these parameters (built now if missing)."""
    final = cache_dir / f"attribution-{contributions}-{min_hashes}-{seed}-{cache_key(contributions, min_hashes, seed)}"
    if final.is_dir() and not rebuild:
        print(f"setup: cached state {final}", file=sys.stderr)
        return final
    building = final.with_name(final.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    shutil.rmtree(final, ignore_errors=True)
    db = StateDB(building / "db")
    chain = Chain(db)
    chain.init_genesis(genesis())  # type: ignore[arg-type]
    datanet, model, texts, total = build(chain, contributions, min_hashes, seed)
    db.close()
    (building / "meta.json").write_text(json.dumps({
        "datanet": datanet.hex(), "model": model.hex(), "contributions": len(texts), "fingerprint_hashes": total}))
    with open(building / "texts.bin", "wb") as fh:
        for t in texts:
            fh.write(len(t).to_bytes(4, "big") + t)
    building.rename(final)
    return final


def copy_state(src: Path, dst: Path) -> None:
    """A working copy of a LevelDB directory: the table files (never modified in place) hard
    linked, everything else (manifest, log, current) copied."""
    dst.mkdir(parents=True)
    for p in src.iterdir():
        if p.suffix in (".ldb", ".sst"):
            os.link(p, dst / p.name)
        else:
            shutil.copy2(p, dst / p.name)


def load_texts(path: Path) -> list[bytes]:
    data = path.read_bytes()
    texts, at = [], 0
    while at < len(data):
        n = int.from_bytes(data[at : at + 4], "big")
        texts.append(data[at + 4 : at + 4 + n])
        at += 4 + n
    return texts


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


def time_txs(chain: Chain, txs: list[Tx], warmup: int, profile: cProfile.Profile | None = None
             ) -> tuple[list[float], list[float]]:
    """Apply ``txs`` one after another in one block's view: (wall ms, CPU ms) of each timed one.

    The first ``warmup`` are applied but not timed: they open the LevelDB tables and fill the
    block cache the way a running node's are.
    """
    view = chain.db.view()
    ctx = BlockContext(CHAIN_ID, chain.height + 1, 10**12, load_params(view), VALIDATOR.address)
    wall, cpu = [], []
    for i, tx in enumerate(txs):
        ctx.tx_index = i
        if profile is not None and i == warmup:
            profile.enable()
        t0, c0 = time.perf_counter(), time.thread_time()
        _, result = apply_raw_tx(view, tx.raw, ctx)
        t1, c1 = time.perf_counter(), time.thread_time()
        if not result.ok:
            raise RuntimeError(f"timed transaction failed: {result}")
        if i >= warmup:
            wall.append((t1 - t0) * 1000)
            cpu.append((c1 - c0) * 1000)
    if profile is not None:
        profile.disable()
    return wall, cpu


def make_output(texts: list[bytes], rng: random.Random, size: int) -> bytes:
    """An output of ``size`` bytes: half of it passages of 40 words quoted from 8 random
    contributions, between runs of fresh Zipf words."""
    parts: list[str] = []
    for text in rng.sample(texts, 8):
        words = text.split()
        at = rng.randrange(max(1, len(words) - 40))
        parts.append(" ".join(rng.choices(VOCAB, ZIPF, k=40)))
        parts.append(b" ".join(words[at : at + 40]).decode())
    out = " ".join(parts)
    while len(out) < size:
        out += " " + rng.choice(VOCAB)
    return out.encode()[:size].rsplit(b" ", 1)[0]


def infer_txs(texts: list[bytes], model: bytes, nonce: int, count: int, rng: random.Random,
              size: int) -> list[Tx]:
    """Infers carrying an output text of ``size`` bytes (``make_output``)."""
    txs = []
    for i in range(count):
        output = make_output(texts, rng, size)
        body = Infer(model, b"", b"", 1_000_000, 100, 100, hashlib.sha256(output).digest(), output)
        txs.append(sign_tx(USER, CHAIN_ID, nonce + i, body, 1))
    return txs


def salt_of(content: bytes) -> bytes:
    return hashlib.sha256(b"bench salt" + content).digest()


def commit_then_sign(b: Builder, datanet: bytes, contents: list[bytes]) -> list[Tx]:
    """Commit to each content in one block; return the signed reveals (for a later block)."""
    b.commit([b.sign(CONTRIBUTOR, CommitContribution(contribution_commitment(
        CONTRIBUTOR.address, datanet, hashlib.sha256(c).digest(), salt_of(c)))) for c in contents])
    return [b.sign(CONTRIBUTOR, Contribute(datanet, c, salt_of(c), 0)) for c in contents]


def timed_english(count: int, words: int, a: AttributionParams) -> list[bytes]:
    """``count`` windows of ``words`` words of real English, no two of them in conflict."""
    params: FingerprintParams = fingerprint_params(a)
    picked: list[tuple[bytes, Fingerprint]] = []
    for window in english_windows(words):
        content = window.encode()
        fp = fingerprint_text(content, params)
        if all(pair_conflict(other, fp, params, a.containment_bps, a.containment_sample_mod) is None
               for _, other in picked):
            picked.append((content, fp))
            if len(picked) == count:
                return [c for c, _ in picked]
    raise SystemExit(f"the corpus has only {len(picked)} distinct windows of {words} words; lower --samples")


def contribute_txs(chain: Chain, datanet: bytes, contents: list[bytes]) -> list[Tx]:
    """Reveals of ``contents``, their commitments committed in a block first."""
    b = Builder(chain)
    view = chain.db.view()
    b.nonces[CONTRIBUTOR.address] = get_account(view, CONTRIBUTOR.address).nonce
    b.time_ms = chain.get_block(chain.height).header.time_ms  # type: ignore[union-attr]
    return commit_then_sign(b, datanet, contents)


def summary(wall: list[float], cpu: list[float]) -> dict[str, float]:
    return {
        "cpu_ms_mean": round(statistics.mean(cpu), 3),
        "cpu_ms_median": round(statistics.median(cpu), 3),
        "cpu_ms_max": round(max(cpu), 3),
        "wall_ms_mean": round(statistics.mean(wall), 3),
        "wall_ms_median": round(statistics.median(wall), 3),
    }


def print_profile(what: str, profile: cProfile.Profile) -> None:
    for order in ("tottime", "cumulative"):
        print(f"---- cProfile of the timed {what} ({order}) ----", file=sys.stderr)
        pstats.Stats(profile, stream=sys.stderr).sort_stats(order).print_stats(25)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--contributions", type=int, default=10_000)
    ap.add_argument("--min-hashes", type=int, default=1_000_000)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--cache-dir", default=os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                                                        "attrchain-bench"),
                    help="where built states are kept (default: ~/.cache/attrchain-bench)")
    ap.add_argument("--rebuild", action="store_true", help="build the state again even if cached")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--words", type=int, default=3000, help="words of each timed contribution")
    ap.add_argument("--output-bytes", type=int, default=4096, help="bytes of each timed infer's output text")
    ap.add_argument("--profile", action="store_true", help="cProfile the timed transactions (stderr)")
    args = ap.parse_args()

    cached = cached_state(Path(args.cache_dir), args.contributions, args.min_hashes, args.seed, args.rebuild)
    meta = json.loads((cached / "meta.json").read_text())
    datanet, model = bytes.fromhex(meta["datanet"]), bytes.fromhex(meta["model"])
    texts = load_texts(cached / "texts.bin")
    with tempfile.TemporaryDirectory(prefix="attrchain-bench-") as tmp:
        t0 = time.perf_counter()
        copy_state(cached / "db", Path(tmp) / "db")
        db = StateDB(Path(tmp) / "db")
        chain = Chain(db)
        print(f"setup: working copy opened in {time.perf_counter() - t0:.1f} s "
              f"({len(db.postings):,} posting records in memory)", file=sys.stderr)
        gc.collect()  # as the node does after opening its state (node/app.py)
        gc.freeze()
        waited = wait_for_compactions(db)
        print(f"waited {waited:.1f} s for LevelDB's compactions", file=sys.stderr)
        rng = random.Random(args.seed + 1)
        view = db.view()
        n = args.warmup + args.samples
        infers = infer_txs(texts, model, get_account(view, USER.address).nonce, n, rng, args.output_bytes)
        contributes = contribute_txs(chain, datanet, timed_english(n, args.words, load_params(view).attribution))
        results: dict[str, object] = {
            "contributions": meta["contributions"],
            "fingerprint_hashes": meta["fingerprint_hashes"],
            "samples": args.samples,
        }
        profiles = {"infers": cProfile.Profile(), "contributes": cProfile.Profile()} if args.profile else {}
        infer_wall, infer_cpu = time_txs(chain, infers, args.warmup, profiles.get("infers"))
        results["infer"] = summary(infer_wall, infer_cpu)
        contribute_wall, contribute_cpu = time_txs(chain, contributes, args.warmup, profiles.get("contributes"))
        results["contribute"] = summary(contribute_wall, contribute_cpu)
        params = fingerprint_params(load_params(view).attribution)
        fingerprint_cpu = []
        for tx in contributes[args.warmup :]:  # the pure part alone: normalise, shingle, winnow, MinHash
            c0 = time.thread_time()
            fingerprint_text(tx.body.content, params)
            fingerprint_cpu.append((time.thread_time() - c0) * 1000)
        results["contribute_fingerprint_cpu_ms_mean"] = round(statistics.mean(fingerprint_cpu), 3)
        results["load_average_1m"] = round(os.getloadavg()[0], 2)
        results["ed25519_verify_per_s_one_core"] = round(ed25519_verify_per_s(1.0))
        db.close()
    for what, profile in profiles.items():
        print_profile(what, profile)
    print(json.dumps(results))
    # Headline: mean CPU time of the applying thread. This machine is shared, so wall time also
    # measures the other processes; both are on the line above.
    print(json.dumps({
        "infer_ms": round(statistics.mean(infer_cpu), 3),
        "infer_wall_ms": round(statistics.mean(infer_wall), 3),
        "contribute_ms": round(statistics.mean(contribute_cpu), 3),
        "contribute_wall_ms": round(statistics.mean(contribute_wall), 3),
        "contribute_fingerprint_ms": results["contribute_fingerprint_cpu_ms_mean"],
        "contribute_words": args.words,
        "infer_output_bytes": args.output_bytes,
        "ed25519_verify_per_s": results["ed25519_verify_per_s_one_core"],
    }))


if __name__ == "__main__":
    main()
