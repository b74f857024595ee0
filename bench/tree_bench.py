"""State-tree update cost per key at 100k and 1M keys (DESIGN section 4).

Builds a tree of ``n_keys`` random state keys in LevelDB, then times blocks of ``block`` updates
(half new keys, half new values for existing keys). Each timed block is what a node does per
block: prepare the tree update, put it and the state values into one write batch, write the
batch, commit the tree. Reports wall-clock time and the CPU time of the timing thread (the
single-core cost, unaffected by other processes competing for the cores) and of the whole
process (adding LevelDB's background compaction). The last line is one JSON object.

Run: ``.venv/bin/python bench/tree_bench.py [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import plyvel  # noqa: E402

from state.keys import account_key  # noqa: E402
from state.tree.smt import SparseMerkleTree  # noqa: E402

BUILD_BLOCK = 20_000
VALUE_BYTES = 80
# LevelDB options for the bench DB (docs/state_tree.md section 4).
DB_OPTIONS: dict[str, Any] = {
    "write_buffer_size": 32 << 20,
    "lru_cache_size": 64 << 20,
    "bloom_filter_bits": 10,
}


def _key(n: int) -> bytes:
    return account_key(n.to_bytes(20, "big"))


def _write_block(db: Any, tree: SparseMerkleTree, changes: dict[bytes, bytes]) -> None:
    update = tree.prepare(changes)
    batch = db.write_batch()
    for key, value in changes.items():
        batch.put(key, value)
    update.write_to(batch)
    batch.write()
    tree.commit(update)


def build(db: Any, tree: SparseMerkleTree, n_keys: int, rng: random.Random) -> None:
    for start in range(0, n_keys, BUILD_BLOCK):
        stop = min(n_keys, start + BUILD_BLOCK)
        _write_block(db, tree, {_key(i): rng.randbytes(VALUE_BYTES) for i in range(start, stop)})


def measure(
    n_keys: int, block: int = 1000, path: str = "", rounds: int = 200, seed: int = 1
) -> dict[str, float]:
    """Per key update at ``n_keys`` keys: wall, thread CPU and process CPU microseconds."""
    own_dir = not path
    db_dir = tempfile.mkdtemp(prefix="tree_bench_") if own_dir else path
    rng = random.Random(seed)
    db = plyvel.DB(db_dir, create_if_missing=True, **DB_OPTIONS)
    try:
        tree = SparseMerkleTree(db)
        started = time.perf_counter()
        build(db, tree, n_keys, rng)
        print(f"built {n_keys} keys in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        next_key = n_keys
        blocks = []
        for _ in range(rounds):
            changes = {}
            for _ in range(block // 2):
                changes[_key(next_key)] = rng.randbytes(VALUE_BYTES)
                next_key += 1
            while len(changes) < block:
                changes[_key(rng.randrange(n_keys))] = rng.randbytes(VALUE_BYTES)
            blocks.append(changes)
        gc.collect()
        wall, thread, process = time.perf_counter(), time.thread_time(), time.process_time()
        for changes in blocks:
            _write_block(db, tree, changes)
        updates = rounds * block
        return {
            "wall": (time.perf_counter() - wall) / updates * 1e6,
            "cpu": (time.thread_time() - thread) / updates * 1e6,
            "process_cpu": (time.process_time() - process) / updates * 1e6,
        }
    finally:
        db.close()
        if own_dir:
            shutil.rmtree(db_dir, ignore_errors=True)


def sha256_per_s(seconds: float = 0.5) -> float:
    """This machine's rate of the tree's primitive, sha256 of a 65-byte internal node (the same-run
    ceiling: a key update's cost in sha256s holds when the machine's speed drifts)."""
    import hashlib

    data = bytes(65)
    sha = hashlib.sha256
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(1000):
            sha(data).digest()
        count += 1000
    return count / (time.perf_counter() - start)


def measure_tree_us_per_key(n_keys: int, block: int = 1000, path: str = "") -> float:
    """Wall-clock microseconds per key update at ``n_keys`` keys, in blocks of ``block``."""
    return measure(n_keys, block, path)["wall"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k keys only, 50 blocks")
    args = parser.parse_args()
    result: dict[str, float] = {}
    sizes = [("100k", 100_000)] if args.quick else [("100k", 100_000), ("1m", 1_000_000)]
    for label, n_keys in sizes:
        rate = sha256_per_s()
        figures = measure(n_keys, rounds=50 if args.quick else 200)
        rate = (rate + sha256_per_s()) / 2
        print(f"sha256 of 65 bytes: {rate:.0f}/s around the run: a key update costs "
              f"{figures['wall'] * rate / 1e6:.0f} of them")
        print(
            f"{label} keys, blocks of 1000: {figures['wall']:.1f} us wall, "
            f"{figures['cpu']:.1f} us CPU (this thread), "
            f"{figures['process_cpu']:.1f} us CPU (process, with LevelDB threads) per key update"
        )
        result[f"tree_us_per_key_{label}"] = round(figures["wall"], 2)
        result[f"tree_cpu_us_per_key_{label}"] = round(figures["cpu"], 2)
        result[f"tree_process_cpu_us_per_key_{label}"] = round(figures["process_cpu"], 2)
        result[f"sha256_per_s_{label}"] = round(rate)
        result[f"tree_key_update_in_sha256_{label}"] = round(figures["wall"] * rate / 1e6, 1)
    load = os.getloadavg()[0]
    print(f"load average during the run: {load:.1f} on {os.cpu_count()} cores")
    result["load_average"] = round(load, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
