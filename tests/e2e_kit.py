"""Helpers of the end-to-end tests (tests/test_e2e_*.py): real devnets of node processes on
127.0.0.1, light load through every node, and the two invariants every scenario ends with:
identical blocks at every height on every node, and every transaction seen committed is in every
node's chain and index."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from devnet import launcher
from devnet.launcher import Layout, NodeSpec
from devnet.load import LoadConfig, LoadGenerator, LoadReport
from netkit import assert_same_chain, height_of, running_devnet, try_rpc, wait_until
from state.chain import Chain
from state.crypto import to_hex
from state.store import StateDB

# Fast consensus for tests: 50 ms between heights; a missing proposer costs 1 s, not 3.
FAST = {"timeouts": {"commit_ms": 50, "propose_ms": 1000}}
# Light background load: enough transactions to check the second invariant, little CPU.
LIGHT = LoadConfig(rate=15.0, duration_s=120.0, max_txs=3_000, senders=8, batch=10, drain_s=30.0)


def heights(layout: Layout) -> list[int | None]:
    return [height_of(s) for s in layout.nodes]


def describe(layout: Layout) -> str:
    """Each node's pid, committed height, consensus (height, round, step) and peer count."""
    rows = []
    for spec in layout.nodes:
        st, ni = try_rpc(spec, "status"), try_rpc(spec, "net_info")
        consensus = tuple(st["consensus"].values()) if st and "consensus" in st else None
        height = st["sync_info"]["latest_block_height"] if st else None
        rows.append(f"{spec.name}: pid {launcher.read_pid(layout, spec)} height {height} "
                    f"consensus {consensus} peers {ni['n_peers'] if ni else None}")
    return "; ".join(rows)


def wait_for(layout: Layout, cond: Callable[[], bool], timeout: float, what: str) -> None:
    """netkit.wait_until, and on timeout the state of every node in the message."""
    try:
        wait_until(cond, timeout, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {describe(layout)}") from None


def wait_for_heights(layout: Layout, specs: list[NodeSpec], height: int, timeout: float) -> None:
    wait_for(layout, lambda: all((height_of(s) or 0) >= height for s in specs), timeout,
             f"{[s.name for s in specs]} to reach height {height}")


_http = httpx.Client()  # one keep-alive client: a client per call costs ~50 ms


def rpc_batch(spec: NodeSpec, calls: list[tuple[str, dict[str, Any]]], timeout: float = 10.0) -> list[dict[str, Any]]:
    """One JSON-RPC batch; answers (result or error objects) in call order."""
    body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    answers = _http.post(spec.rpc, json=body, timeout=timeout).json()
    by_id = {a["id"]: a for a in answers}
    return [by_id[i] for i in range(len(calls))]


def start_load(layout: Layout, config: LoadConfig = LIGHT) -> LoadGenerator:
    gen = LoadGenerator(layout, config)
    gen.fund()
    gen.start()
    return gen


def wait_committed_more(gen: LoadGenerator, count: int, timeout: float) -> None:
    """Wait until ``count`` more of the load's transactions are committed than now."""
    target = len(gen.committed) + count
    wait_for(gen.layout, lambda: len(gen.committed) >= target, timeout, f"{count} more committed load transactions")


def assert_committed_everywhere(specs: list[NodeSpec], committed: dict[bytes, int]) -> None:
    """Each transaction is committed, at the same height, in every node's chain and tx index."""
    items = sorted(committed.items())
    for spec in specs:
        for start in range(0, len(items), 100):
            chunk = items[start:start + 100]
            answers = rpc_batch(spec, [("tx", {"hash": to_hex(h)}) for h, _ in chunk])
            for (h, height), a in zip(chunk, answers):
                assert "result" in a, f"{spec.name}: tx {to_hex(h)} not found: {a.get('error')}"
                r = a["result"]
                assert r["status"] == "committed" and r["height"] == height, (
                    f"{spec.name}: tx {to_hex(h)} is {r['status']} at {r.get('height')}, expected height {height}")


def final_checks(layout: Layout, committed: dict[bytes, int], timeout: float = 60.0) -> int:
    """Every node reaches the highest height any transaction was seen at (and the height the
    leader has now); then blocks are identical everywhere and every transaction is everywhere.
    Returns the height checked up to."""
    specs = layout.nodes
    target = max([*committed.values(), *(h or 0 for h in heights(layout))])
    wait_for(layout, lambda: all((h or 0) >= target for h in heights(layout)), timeout,
             f"every node to reach height {target}")
    assert_same_chain(specs, target)
    assert_committed_everywhere(specs, committed)
    return target


def height_on_disk(layout: Layout, spec: NodeSpec) -> int:
    """A stopped node's committed height, read from its own database."""
    db = StateDB(layout.home(spec).db_dir)
    try:
        return Chain(db).height
    finally:
        db.close()


def stop_load(gen: LoadGenerator) -> LoadReport:
    report = gen.stop()
    assert report.committed, "the load committed nothing"
    return report


@contextmanager
def devnet_under_load(tmp_path: Path, ready_height: int) -> Iterator[tuple[Layout, LoadGenerator]]:
    """Four validators with FAST timeouts, at ``ready_height`` or above, under the LIGHT load.
    When the scenario ends the load stops and, if the scenario passed, ``final_checks`` runs."""
    with running_devnet(tmp_path, 4, params=FAST) as layout:
        wait_for_heights(layout, layout.nodes, ready_height, 60)
        gen = start_load(layout)
        try:
            yield layout, gen
        finally:
            report = stop_load(gen)
        final_checks(layout, report.committed)
