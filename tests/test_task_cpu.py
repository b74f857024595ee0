"""Where a node's CPU goes, counted by the node itself (``rpc.task_cpu``; node/metrics.py TaskCPU):
the CPU time of each event-loop task step, summed by task name and exported on /metrics as
attrchain_task_cpu_seconds_total{task}. bench/devnet_load.py --task-cpu reads it; a sampling
profiler on an oversubscribed machine also counts the time a process waits for a core."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import trio

from node.metrics import Metrics
from nodekit import dev_home, running_node, wait_for

SERIES = "attrchain_task_cpu_seconds_total{"


def task_cpu(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(SERIES):
            labels, value = line[len(SERIES):].rsplit("} ", 1)
            out[labels.removeprefix('task="').removesuffix('"')] = float(value)
    return out


async def test_each_tasks_cpu_is_counted_under_its_name() -> None:
    metrics = Metrics()
    counter = metrics.count_task_cpu()
    spent: list[float] = []

    async def burn() -> None:
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.02:  # one task step of at least 20 ms of CPU
            pass
        spent.append(time.thread_time() - t0)
        await trio.lowlevel.checkpoint()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(burn, name="attrchain-test.burn")
    finally:
        trio.lowlevel.remove_instrument(counter)
    assert counter.seconds["attrchain-test.burn"] >= spent[0] >= 0.02
    assert task_cpu(metrics.render().decode())["attrchain-test.burn"] >= 0.02


async def test_a_node_exports_its_tasks_cpu_only_when_asked(tmp_path: Path) -> None:
    for enabled in (False, True):
        home = dev_home(tmp_path / str(enabled))
        cfg = home.load_config()
        cfg.rpc.task_cpu = enabled
        home.write_config(cfg)
        async with running_node(home) as node:
            await wait_for(lambda: node.chain.height >= 2, 30, "height 2")
            async with httpx.AsyncClient(timeout=10) as http:
                text = (await http.get(f"http://127.0.0.1:{node.config.rpc.port}/metrics")).text
        counted = task_cpu(text)
        if not enabled:
            assert counted == {}
            continue
        # the consensus driver and the p2p service ran: their CPU is there, under their names
        assert counted.get("node.driver.ConsensusDriver.run", 0) > 0, sorted(counted)
        assert sum(counted.values()) > 0
