"""A block full of maximum-size contributions (issue 13 point 1): two validators propose, agree on
and commit it with its body fetched by hash (it is over `[consensus] proposal_inline_bytes`, so
its proposal is gossiped without it), and a full node that starts afterwards block-syncs it and
serves the texts with proofs that check. Real node processes over libp2p on 127.0.0.1.

The proposer fills up to genesis fees.max_block_bytes (4 MiB); how many of the 20 reveals share
a block depends on when they arrive, so the test asks only that the biggest block be over
proposal_inline_bytes. tests/test_block_limits.py shows a block of over 1 MiB being built."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from attribution_kit import make_text
from netkit import assert_same_chain, height_of, node_log, running_devnet, wait_heights, wait_until
from test_node_network import Client, add_full_node, clients, logs_on_failure, wait_committed_everywhere

from devnet import launcher
from state.attribution.commitments import contribution_commitment
from state.attribution.content_proof import verify_content_proof
from state.crypto import PrivateKey, from_hex, sha256, to_hex
from state.tx import CommitContribution, Contribute, CreateDatanet, Transfer, Tx, sign_tx

pytestmark = pytest.mark.multinode

MAX_CONTENT = 65_536  # the genesis max_content_bytes of the devnet
TEXTS = 20  # 20 x 64 KiB = 1.25 MiB of contributions
INLINE = 512 * 1024  # [consensus] proposal_inline_bytes: larger blocks are fetched by hash
BATCH = 6  # transactions per RPC batch: the HTTP body limit is 1 MB (hex doubles the bytes)
# a block every ~3 s, so the reveals sent are in the mempool when the next block is proposed
PARAMS = {"timeouts": {"commit_ms": 4000, "propose_ms": 4000}}


def _text(seed: int) -> bytes:
    """A text of exactly MAX_CONTENT bytes, its words (almost surely) unique to ``seed``."""
    raw = make_text(seed, words=8_000)[:MAX_CONTENT]
    return raw[: raw.rindex(b" ")].ljust(MAX_CONTENT, b".")


def _send(client: Client, txs: list[Tx]) -> None:
    """broadcast_tx_sync every tx (one sender, consecutive nonces), in batches; from the first the
    node turns away at the door as busy (error -32005: intake share, mempool full) on, they are
    sent again until every one is in (a later nonce is refused while an earlier one is missing)."""
    left = list(txs)

    def step() -> bool:
        while left:
            chunk = left[:BATCH]
            answers = client.batch("broadcast_tx_sync", [{"tx": to_hex(t.raw)} for t in chunk])
            taken = 0
            for a in answers:
                if a.get("code") != 0:
                    break
                taken += 1
            del left[:taken]
            if taken < len(chunk):  # turned away as busy; the later nonces then wait for it
                assert answers[taken].get("code") == -32005, answers[taken]
                return False
        return True

    wait_until(step, 90, f"the node to take {len(left)} transactions", poll=0.5)


def test_a_block_of_maximum_size_contributions_is_committed_and_block_synced(tmp_path: Path) -> None:
    with running_devnet(tmp_path, 2, params=PARAMS, start=[]) as layout, logs_on_failure(layout):
        validators = list(layout.nodes)
        for spec in validators:  # admitting 64 KiB texts is slow: let intake use the whole loop
            home = layout.home(spec)
            cfg = home.load_config()
            cfg.mempool.intake_share_pct = 100
            home.write_config(cfg)
            launcher.start_node(layout, spec)
        full = add_full_node(layout, len(validators))
        with clients(validators) as cs:
            c = cs[0]
            wait_heights(validators, 2, 60)
            chain_id = c.call("status")["chain_id"]
            # two senders, each revealing through its own validator: admission runs on both at once
            faucet = PrivateKey.load(layout.dir / "faucet.key")
            other = PrivateKey.from_int(4242)
            setup = [sign_tx(faucet, chain_id, 0, CreateDatanet("big", "", 0), fee=1),
                     sign_tx(faucet, chain_id, 1, Transfer(other.address, 10**9), fee=1)]
            _send(c, setup)
            wait_committed_everywhere(cs, [t.hash for t in setup], 90)
            datanet = setup[0].hash
            texts = [_text(seed) for seed in range(TEXTS)]
            reveals = [Contribute(datanet, t, sha256(b"salt" + t), 0) for t in texts]
            half = TEXTS // 2
            senders = [(faucet, 2, reveals[:half]), (other, 0, reveals[half:])]
            commits = [[sign_tx(key, chain_id, first + i, CommitContribution(contribution_commitment(
                key.address, datanet, sha256(r.content), r.salt)), fee=1) for i, r in enumerate(mine)]
                for key, first, mine in senders]
            for client, txs in zip(cs, commits):
                _send(client, txs)
            wait_committed_everywhere(cs, [t.hash for txs in commits for t in txs], 90)

            signed = [[sign_tx(key, chain_id, first + half + i, r, fee=1) for i, r in enumerate(mine)]
                      for key, first, mine in senders]
            threads = [threading.Thread(target=_send, args=(client, txs)) for client, txs in zip(cs, signed)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            signed_all = signed[0] + signed[1]
            wait_committed_everywhere(cs, [t.hash for t in signed_all], 120)
            results = c.batch("tx", [{"hash": to_hex(t.hash)} for t in signed_all])
            assert all(r["result"]["code"] == 0 for r in results), [r["result"] for r in results]
            heights = sorted({r["height"] for r in results})
            blocks = {h: c.call("block", {"height": h})["block"]["txs"] for h in heights}
            full_height = max(blocks, key=lambda h: len(blocks[h]))
            size = sum(len(from_hex(t)) for t in blocks[full_height])
            assert size > INLINE, {h: len(b) for h, b in blocks.items()}

            # a full node started now block-syncs the big block and serves its texts with proofs
            launcher.start_node(layout, full)
            target = max(height_of(v) or 0 for v in validators)
            wait_heights([full], target, 120)
            assert "block sync" in node_log(layout, full), "the full node must catch up by block sync"
            assert_same_chain(validators + [full], target)
            with clients([full]) as (fc,):
                for tx, text in zip(signed_all[:: TEXTS // 4], texts[:: TEXTS // 4]):
                    got = fc.call("contribution_content", {"id": to_hex(tx.hash)})
                    block_hash = from_hex(fc.call("block", {"height": got["proof"]["height"]})["block_id"]["hash"])
                    assert verify_content_proof(got["proof"], block_hash) == text
                    assert got["content"].encode() == text
            wait_until(lambda: (height_of(full) or 0) >= target + 2, 60, "the full node to follow new blocks")
