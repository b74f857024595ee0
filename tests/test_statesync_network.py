"""State sync between real node processes over libp2p (loopback): validators snapshot every 5 blocks;
a new node configured with [statesync] and a trusted height+hash installs a snapshot (never replaying the
blocks before it), then block-syncs and follows the chain with the same state roots."""

from __future__ import annotations

import pytest
from netkit import block_hashes, height_of, node_log, rpc_batch, running_devnet, wait_heights, wait_until
from test_node_network import add_full_node

from devnet import launcher

pytestmark = pytest.mark.multinode


def test_new_node_state_syncs_from_a_devnet(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with running_devnet(tmp_path, 3, start=[]) as layout:
        for spec in layout.nodes:
            home = layout.home(spec)
            cfg = home.load_config()
            cfg.statesync.snapshot_interval = 5
            home.write_config(cfg)
            launcher.start_node(layout, spec)
        validators = list(layout.nodes)
        wait_heights(validators, 12, 180)  # generous bounds: a loaded 2-core machine
        trusted = block_hashes(validators[0], 2)[2][0]
        joiner = add_full_node(layout, len(validators))
        home = layout.home(joiner)
        cfg = home.load_config()
        cfg.statesync.enable = True
        cfg.statesync.trust_height = 2
        cfg.statesync.trust_hash = trusted
        home.write_config(cfg)
        launcher.start_node(layout, joiner)
        wait_until(lambda: "state sync done" in node_log(layout, joiner), 150, "state sync on the new node")
        target = (height_of(validators[0]) or 0) + 2
        wait_heights([joiner], target, 120)
        log = node_log(layout, joiner)
        assert "installed snapshot height=" in log
        snap = int(log.split("installed snapshot height=")[1].split()[0])
        assert snap >= 10 and snap % 5 == 0
        heights = [{"height": h} for h in range(snap, target + 1)]
        mine = [(b["block_id"], b["block"]["header"]) for b in rpc_batch(joiner, "block", heights)]
        assert mine == [(b["block_id"], b["block"]["header"]) for b in rpc_batch(validators[1], "block", heights)]
        with pytest.raises(launcher.DevnetError):
            block_hashes(joiner, 3)  # blocks before the snapshot were never downloaded
