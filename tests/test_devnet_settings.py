"""What the devnet launcher writes into each node's config for the size of the devnet (files
only, no node started)."""

from __future__ import annotations

from pathlib import Path

from devnet import launcher
from node.config import Home


def test_a_large_devnet_batches_transactions_less_often_and_checks_signatures_in_a_thread(tmp_path: Path) -> None:
    """Above 8 nodes sharing a machine the CPU per transaction limits the devnet: tx batches every
    500 ms and signature checks in a thread of each node; up to 8, 250 ms and worker processes
    (quicker refusals where there is CPU to spare)."""
    for n, batch_ms, processes in ((4, 250, True), (9, 500, False)):
        layout = launcher.create(tmp_path / f"devnet{n}", n, launcher.free_base_port(n))
        for spec in layout.nodes:
            cfg = Home(layout.dir / spec.home).load_config()
            assert cfg.p2p.tx_batch_interval_ms == batch_ms, (n, spec.name)
            assert cfg.mempool.verify_processes is processes, (n, spec.name)
