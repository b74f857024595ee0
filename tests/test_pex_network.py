"""Peer exchange between real node processes (loopback, so [p2p] allow_private_addresses is on): a
new node configured with one honest seed and one lying seed learns the other validators' addresses,
dials learned peers only up to [p2p] pex_target_peers, takes at most 16 addresses from the liar, and
follows the chain."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from netkit import height_of, rpc, running_devnet, wait_heights, wait_until
from test_node_network import add_full_node

from devnet import launcher
from p2p.identity import peer_id_from_seed

pytestmark = pytest.mark.multinode
REPO = Path(__file__).resolve().parent.parent


def test_new_node_learns_peers_from_a_seed_within_bounds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with running_devnet(tmp_path, 3, start=[]) as layout:
        for spec in layout.nodes:
            home = layout.home(spec)
            cfg = home.load_config()
            cfg.p2p.allow_private_addresses = True
            home.write_config(cfg)
            launcher.start_node(layout, spec)
        seed, *others = list(layout.nodes)
        liar_seed, liar_port = bytes([0xAB]) * 32, launcher.free_base_port(1)
        liar_id = peer_id_from_seed(liar_seed)
        liar = subprocess.Popen([sys.executable, str(REPO / "tests" / "pex_liar.py"), liar_seed.hex(),
                                 str(liar_port), layout.chain_id], cwd=REPO, stdout=subprocess.PIPE,
                                env=dict(os.environ, PYTHONPATH=str(REPO)), text=True)
        try:
            assert liar.stdout is not None and liar.stdout.readline().strip() == "ready"
            joiner = add_full_node(layout, len(layout.nodes))
            home = layout.home(joiner)
            cfg = home.load_config()
            cfg.p2p.persistent_peers = []
            cfg.p2p.seeds = [f"{seed.peer_id}@127.0.0.1:{seed.p2p_port}", f"{liar_id}@127.0.0.1:{liar_port}"]
            cfg.p2p.allow_private_addresses = True
            cfg.p2p.pex_target_peers = 3  # the two seeds + one learned peer
            home.write_config(cfg)
            launcher.start_node(layout, joiner)

            def pex() -> dict[str, int]:
                return rpc(joiner, "net_info")["pex"]  # type: ignore[no-any-return]

            wait_until(lambda: (height_of(joiner) or 0) > 0 and pex()["dialled"] >= 1, 150,
                       "the new node to dial a peer it learned")
            # the liar may connect after the first round; it is asked within a round of connecting
            wait_until(lambda: pex()["refused_addresses"] >= 32 - 16, 90, "the new node to ask the lying seed")
            target = (height_of(seed) or 0) + 2
            wait_heights([joiner], target, 120)  # generous bounds: a loaded 2-core machine
            info = rpc(joiner, "net_info")
            learned = {p["id"] for p in info["peers"]} & {o.peer_id for o in others}
            assert len(learned) >= 1, info["peers"]
            # bounded: PEX dials only free slots (target 3, and the seed was connected before it
            # learned anything), so at most 2 learned peers; the liar filled at most 16 book entries
            assert 1 <= info["pex"]["dialled"] <= 2, info["pex"]
            assert info["pex"]["known_addresses"] <= 2 + len(others) + 16, info["pex"]
        finally:
            liar.terminate()
            liar.wait(10)
