"""Every drop of a peer message or buffered event is counted and exported on /metrics as
attrchain_dropped_total{where, reason} (issue 12; node/metrics.py DROP_SITES). Hostile messages go
into a real dev node through the gossip entry points; the counts are read over HTTP from the
node's own RPC server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx

from nodekit import dev_home, running_node, wait_for
from state.block import PREVOTE, SignedVote, Vote
from state.codec import pack
from state.crypto import PrivateKey
from state.genesis import load_genesis
from test_driver_hostile import add_minor_validator


def dropped(text: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("attrchain_dropped_total{"):
            labels, value = line[len("attrchain_dropped_total{"):].rsplit("} ", 1)
            parts = dict(item.split("=", 1) for item in labels.split(","))
            out[(parts["where"].strip('"'), parts["reason"].strip('"'))] = float(value)
    return out


def vote(key: PrivateKey, chain_id: str, height: int, i: int, good: bool = True) -> bytes:
    v = Vote(PREVOTE, height, 0, hashlib.sha256(i.to_bytes(4, "big")).digest(), 1_000, key.address)
    sig = key.sign(v.sign_bytes(chain_id)) if good else hashlib.sha512(bytes([i % 256])).digest()
    return SignedVote(v, sig).encode()  # type: ignore[attr-defined,no-any-return]


async def test_every_dropped_peer_message_is_counted_on_metrics(tmp_path: Path) -> None:
    home = dev_home(tmp_path)
    hostile = add_minor_validator(home)
    # the hostile key never signs: with the devnet's window (50 blocks) it was jailed for downtime
    # before the burst on a busy CI machine (height 57), and its votes were not a validator's
    data = json.loads(home.genesis_file.read_text())
    data["params"]["staking"] = {"signed_blocks_window": 10_000}
    home.genesis_file.write_text(json.dumps(data))
    outsider = PrivateKey.from_int(777)
    chain_id = load_genesis(home.genesis_file).chain_id
    async with running_node(home, future_buffer_peer_bytes=2_000) as node:
        chain, driver = node.chain, node.driver
        await wait_for(lambda: chain.height >= 3 and driver.height == chain.height + 1, 30, "height 4 in progress")
        url = f"http://127.0.0.1:{node.config.rpc.port}/metrics"
        async with httpx.AsyncClient(timeout=10) as http:
            before = dropped((await http.get(url)).text)
            assert ("consensus_buffer", "future_full") in before, "pulled drop counters are exported from the start"
            # one synchronous burst: the height cannot change between these messages
            h = driver.height
            for i in range(5):
                driver.on_vote_message(vote(hostile, chain_id, h, i, good=False), "peer-a")
            for i in range(3):
                driver.on_vote_message(vote(outsider, chain_id, h, i), "peer-b")
            for i in range(2):
                driver.on_vote_message(vote(hostile, chain_id, 1, i), "peer-c")
            for _ in range(4):
                driver.on_vote_message(b"\xc1garbage", "peer-d")
            driver.on_vote_message(vote(hostile, chain_id, h + 1_000, 0), "peer-e")
            for i in range(40):  # valid votes for the next height: buffered within 2,000 bytes per peer
                driver.on_vote_message(vote(hostile, chain_id, h + 1, i), "peer-f")
            for _ in range(2):
                driver.on_evidence_message(b"\x00not evidence", "peer-g")
            await node._on_tx_batch(b"\xc1", "peer-h")
            await node._on_tx_batch(pack([b"\x01", b"\x02", b"\x03", 7]), "peer-h")
            future_dropped = driver.future.dropped
            after = dropped((await http.get(url)).text)
    assert future_dropped > 0
    grown = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    expected = {
        ("consensus_vote", "bad_signature"): 5,
        ("consensus_vote", "not_validator"): 3,
        ("consensus_vote", "old_height"): 2,
        ("consensus_vote", "malformed"): 4,
        ("consensus_vote", "far_height"): 1,
        ("consensus_buffer", "future_full"): future_dropped - before[("consensus_buffer", "future_full")],
        ("evidence", "malformed"): 2,
        ("peer_tx", "malformed_batch"): 1,
        ("peer_tx", "malformed"): 4,
    }
    assert grown == expected
