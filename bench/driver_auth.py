"""Benchmark: how fast the consensus driver turns away hostile votes, next to this machine's
Ed25519 verification rate measured in the same run (one core).

Usage: .venv/bin/python bench/driver_auth.py [--votes 5000]

A real dev node (LevelDB, libp2p host, RPC, driver) runs in this process. Once it has committed
height 2, --votes votes for the height in progress, in the name of the node's own validator with
wrong signatures, are handed to `ConsensusDriver.on_vote_message` as the gossip reader would (each
is decoded, placed, checked for membership, its signature verified, and refused before the WAL).
Figures: rejected_random_sig_votes_per_s (random signature bytes, which Ed25519 mostly refuses
before any curve arithmetic), rejected_wellformed_sig_votes_per_s (real signatures of other bytes:
a full verification each), ed25519_verify_per_s (the ceiling for the latter), their ratio, and the
WAL growth (expected 0). The height must not move during the measurement (the bench asserts it). Progress goes to stderr;
the LAST stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

# bench/ would otherwise be first on the path; the repository root must be
ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

import trio  # noqa: E402

from devnet.launcher import free_base_port  # noqa: E402
from node.app import Node  # noqa: E402
from node.config import Home, init_dev_home  # noqa: E402
from state.block import PREVOTE, SignedVote, Vote  # noqa: E402
from state.crypto import PrivateKey, verify  # noqa: E402

MAX_WAIT_S = 60.0


def ed25519_rate(count: int) -> float:
    key = PrivateKey.from_int(1)
    msg = b"x" * 120
    sig = key.sign(msg)
    started = time.perf_counter()
    for _ in range(count):
        verify(key.public_key, sig, msg)
    return count / (time.perf_counter() - started)


async def measure(votes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp) / "home")
        base = free_base_port(8)
        init_dev_home(home, base + 7, base + 6)
        node = Node(home, home.load_config())
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            with trio.fail_after(MAX_WAIT_S):
                while node.chain.height < 2:
                    await trio.sleep(0.05)
            print(f"node at height {node.chain.height}; sending {votes} badly signed votes", file=sys.stderr)
            assert node.validator_key is not None
            me = node.validator_key.address
            result: dict[str, float] = {}
            height = node.driver.height
            wal_before = home.wal_file.stat().st_size
            for kind in ("random", "wellformed"):
                wires = []
                for i in range(votes):
                    digest = hashlib.sha512(kind.encode() + i.to_bytes(4, "big")).digest()
                    v = Vote(PREVOTE, height, 0, digest[:32], 1_000 + i, me)
                    # random bytes mostly fail Ed25519's scalar range check at once; a real signature
                    # of other bytes costs a full verification
                    sig = digest if kind == "random" else node.validator_key.sign(digest)
                    wires.append(SignedVote(v, sig).encode())  # type: ignore[attr-defined]
                started = time.perf_counter()
                for data in wires:
                    node.driver.on_vote_message(data)
                result[f"rejected_{kind}_sig_votes_per_s"] = round(votes / (time.perf_counter() - started))
            assert node.driver.height == height, "the height moved during the measurement; run again"
            result["wal_growth_bytes"] = home.wal_file.stat().st_size - wal_before
            nursery.cancel_scope.cancel()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--votes", type=int, default=5000)
    args = ap.parse_args()
    ceiling = ed25519_rate(args.votes)
    print(f"ed25519 verify: {ceiling:.0f}/s", file=sys.stderr)
    result = trio.run(measure, args.votes)
    after = ed25519_rate(args.votes)
    result["ed25519_verify_per_s"] = round((ceiling + after) / 2)
    result["ratio_wellformed"] = round(result["rejected_wellformed_sig_votes_per_s"] / result["ed25519_verify_per_s"], 3)
    print(f"rejected {result['rejected_random_sig_votes_per_s']}/s (random signatures), "
          f"{result['rejected_wellformed_sig_votes_per_s']}/s (well-formed wrong signatures) against a ceiling of "
          f"{result['ed25519_verify_per_s']} verifications/s (ratio {result['ratio_wellformed']}); "
          f"WAL growth {result['wal_growth_bytes']} bytes", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
