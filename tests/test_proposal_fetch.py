"""Proposals do not depend on fitting a block into one gossip message (py-libp2p drops messages of
1 MiB or more): a block over `[consensus] proposal_inline_bytes` is gossiped as its signed
proposal only, and every peer fetches the body by hash over request/response. Here the threshold
is 0, so EVERY block travels that way: two validators (each needs the other's votes) commit only
if each fetches the other's blocks. Real node processes over libp2p on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from devnet import launcher
from netkit import assert_same_chain, free_base_port, rpc, stop_all, wait_heights

pytestmark = pytest.mark.multinode


def test_two_validators_commit_with_every_block_body_fetched_by_hash(tmp_path: Path) -> None:
    layout = launcher.create(tmp_path / "devnet", 2, free_base_port())
    for spec in layout.nodes:
        home = layout.home(spec)
        cfg = home.load_config()
        cfg.consensus.proposal_inline_bytes = 0
        home.write_config(cfg)
    try:
        for spec in layout.nodes:
            launcher.start_node(layout, spec)
        wait_heights(layout.nodes, 8, timeout=90)
        assert_same_chain(layout.nodes, 8)
        proposers = {rpc(layout.nodes[0], "block", {"height": h})["block"]["header"]["proposer"] for h in range(1, 9)}
        assert len(proposers) == 2, f"one validator proposed every block: {proposers}"
    finally:
        stop_all(layout)
