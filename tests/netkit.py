"""Helpers for tests that run real node processes on 127.0.0.1 (through devnet/)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from devnet import launcher
from node.config import Home
from devnet.launcher import Layout, NodeSpec


def free_base_port() -> int:
    return launcher.free_base_port(8)


def rpc(spec: NodeSpec, method: str, params: Any = None, timeout: float = 5.0) -> Any:
    return launcher.rpc_call(spec.rpc, method, params, timeout)


def try_rpc(spec: NodeSpec, method: str, params: Any = None) -> Any | None:
    try:
        return rpc(spec, method, params, timeout=2.0)
    except (httpx.HTTPError, launcher.DevnetError, ValueError):
        return None


def height_of(spec: NodeSpec) -> int | None:
    st = try_rpc(spec, "status")
    return int(st["sync_info"]["latest_block_height"]) if st else None


def wait_until(cond: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> None:
    """Wait for ``cond`` with a bound; fail with ``what`` when it does not hold in time."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def wait_heights(specs: list[NodeSpec], height: int, timeout: float) -> None:
    wait_until(lambda: all((height_of(s) or 0) >= height for s in specs), timeout,
               f"{[s.name for s in specs]} to reach height {height}")


RPC_BATCH = 100  # the server's default max_batch
_http = httpx.Client()


def rpc_batch(spec: NodeSpec, method: str, params: list[Any], timeout: float = 10.0) -> list[Any]:
    """One method called with each params, as JSON-RPC batches; results in order (errors raise)."""
    out: list[Any] = []
    for first in range(0, len(params), RPC_BATCH):
        chunk = params[first:first + RPC_BATCH]
        body = [{"jsonrpc": "2.0", "id": i, "method": method, "params": p} for i, p in enumerate(chunk)]
        docs = {d["id"]: d for d in _http.post(spec.rpc, json=body, timeout=timeout).json()}
        for i in range(len(chunk)):
            if "error" in docs[i]:
                raise launcher.DevnetError(f"{method} {chunk[i]} on {spec.name}: {docs[i]['error']}")
            out.append(docs[i]["result"])
    return out


def block_hashes(spec: NodeSpec, upto: int) -> dict[int, tuple[str, str]]:
    """height -> (block hash, state root) for heights 1..upto."""
    heights = list(range(1, upto + 1))
    blocks = rpc_batch(spec, "block", [{"height": h} for h in heights])
    return {h: (b["block_id"]["hash"], b["block"]["header"]["state_root"]) for h, b in zip(heights, blocks)}


def assert_same_chain(specs: list[NodeSpec], upto: int) -> None:
    """Every node has identical block hashes and state roots at every height up to ``upto``."""
    reference = block_hashes(specs[0], upto)
    for spec in specs[1:]:
        other = block_hashes(spec, upto)
        diff = [h for h in reference if reference[h] != other[h]]
        assert not diff, f"{spec.name} differs from {specs[0].name} at heights {diff[:5]}"


@contextmanager
def running_devnet(tmp: Path, validators: int, params: dict[str, Any] | None = None,
                   double_sign: tuple[int, ...] = (), start: list[int] | None = None,
                   stakes: dict[int, int] | None = None, direct: bool | None = None) -> Iterator[Layout]:
    """Create a devnet in ``tmp``, start the nodes in ``start`` (default all), stop them all after.
    ``direct``: set ``[p2p] direct_consensus`` on every node (None: the default)."""
    layout = launcher.create(tmp / "devnet", validators, free_base_port(), double_sign, params, stakes)
    if direct is not None:
        for spec in layout.nodes:
            home = Home(layout.dir / spec.home)
            cfg = home.load_config()
            cfg.p2p.direct_consensus = direct
            home.write_config(cfg)
    try:
        for spec in layout.nodes:
            if start is None or spec.index in start:
                launcher.start_node(layout, spec)
        yield layout
    finally:
        stop_all(layout)


def stop_all(layout: Layout, timeout: float = 10.0) -> None:
    """SIGTERM every running node at once, then wait for each (SIGKILL after ``timeout``).

    One by one took ~1 s per node, and each survivor spent it redialling the stopped ones."""
    running = [(spec, pid) for spec in layout.nodes if (pid := launcher.read_pid(layout, spec)) is not None]
    for _, pid in running:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for spec, pid in running:
        while launcher.is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if launcher.is_alive(pid):
            launcher.stop_node(layout, spec, timeout=0.1, sig=signal.SIGKILL)
            continue
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        launcher.pid_file(layout, spec).unlink(missing_ok=True)


def kill9(layout: Layout, spec: NodeSpec) -> None:
    launcher.stop_node(layout, spec, timeout=0.1, sig=signal.SIGKILL)


def node_log(layout: Layout, spec: NodeSpec) -> str:
    return (layout.dir / spec.home / "node.log").read_text(errors="replace")
