"""Issue 12 against a real dev node (real LevelDB, libp2p host, RPC, consensus driver) in this
process: hostile consensus messages arrive through the driver's gossip entry points, as from a
peer. Each test reproduces an attack that worked before: evidence that crashed the proposer,
bogus proposals that were decoded, executed and kept, a vote flood that filled the WAL and
starved the node's own timeouts."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import pytest
import trio

import node.driver as driver_module
from consensus.events import STEP_PROPOSE
from consensus.evidence import make_duplicate_vote_evidence
from node.config import Home
from nodekit import dev_home, running_node, wait_for
from state.block import PRECOMMIT, PREVOTE, Proposal, SignedProposal, SignedVote, Vote
from state.codec import pack
from state.crypto import PrivateKey, to_hex
from state.genesis import load_genesis

MINOR_STAKE = 1_000  # a validator far below 1/3 of the power: the dev validator commits alone


def add_minor_validator(home: Home) -> PrivateKey:
    """Give the dev chain a second, tiny validator (a key the test holds, as a hostile validator)."""
    import json

    key = PrivateKey.from_int(4242)
    data = json.loads(home.genesis_file.read_text())
    data["accounts"].append({"address": to_hex(key.address), "balance": 10**12})
    data["validators"].append({"operator": to_hex(key.address), "consensus_public_key": to_hex(key.public_key),
                               "stake": MINOR_STAKE, "moniker": "hostile"})
    home.genesis_file.write_text(json.dumps(data))
    return key


def double_sign(key: PrivateKey, chain_id: str, height: int) -> bytes:
    """Encoded evidence of ``key`` precommitting two blocks at (height, round 0)."""
    votes = []
    for tag in (b"a", b"b"):
        v = Vote(PRECOMMIT, height, 0, hashlib.sha256(tag).digest(), 1_000, key.address)
        votes.append(SignedVote(v, key.sign(v.sign_bytes(chain_id))))
    return make_duplicate_vote_evidence(*votes).encode()  # type: ignore[attr-defined,no-any-return]


async def test_evidence_for_the_height_in_progress_never_crashes_the_proposer(tmp_path: Path) -> None:
    """Attack 1: a validator gossips evidence against itself for the height in progress (and from
    the future). Before, it entered the pool and the next proposal raised evidence_from_future in
    the driver: the node died. Now it waits as pending, enters a block once its height is
    committed, and the node keeps committing."""
    home = dev_home(tmp_path)
    hostile = add_minor_validator(home)
    chain_id = load_genesis(home.genesis_file).chain_id
    async with running_node(home) as node:
        await wait_for(lambda: node.chain.height >= 2, 30, "height 2")
        in_progress = node.chain.height + 1
        node.driver.on_evidence_message(double_sign(hostile, chain_id, in_progress))
        node.driver.on_evidence_message(double_sign(hostile, chain_id, in_progress + 5))
        refused_by_next_block = len(node.driver.evidence_pool)
        start = node.chain.height
        await wait_for(lambda: node.chain.height >= start + 4, 40, "four more blocks after the evidence")
        assert refused_by_next_block == 0, "evidence the next block would refuse entered the pool"
        blocks = [node.chain.get_block(h) for h in range(start, node.chain.height + 1)]
        offences = [ev.vote_a.vote.height for b in blocks if b is not None for ev in b.evidence]
    assert offences == [in_progress], "the real double sign must be put in one block once its height is committed"


async def test_bogus_proposals_cost_no_decoding_execution_or_storage(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack 2: 300 proposals from a non-validator (each with a block that executes fine) and a
    660 KB unsigned one. Before, each was decoded, executed (valid=True: the proposer was never
    checked against the set) and kept. Now none is decoded or executed, none is kept, none
    reaches the WAL, and future-height copies are held within the per-peer byte bound."""
    home = dev_home(tmp_path)
    outsider = PrivateKey.from_int(777)
    decoded: list[int] = []
    executed: list[bytes] = []
    real_decode, real_execute = driver_module.decode_block, driver_module.validate_and_execute

    def spy_decode(raw: bytes) -> Any:
        decoded.append(len(raw))
        return real_decode(raw)

    def spy_execute(chain: Any, block: Any, *args: Any, **kwargs: Any) -> Any:
        executed.append(block.header.proposer)
        return real_execute(chain, block, *args, **kwargs)

    monkeypatch.setattr(driver_module, "decode_block", spy_decode)
    monkeypatch.setattr(driver_module, "validate_and_execute", spy_execute)
    peer_bytes = 1024 * 1024
    async with running_node(home, future_buffer_peer_bytes=peer_bytes) as node:
        chain, driver = node.chain, node.driver
        # in the propose step of a height (not the commit wait, when proposals are for the future)
        await wait_for(lambda: chain.height >= 2 and driver.height == chain.height + 1
                       and driver.state.step == STEP_PROPOSE, 30, "the propose step of height 3 or later")
        view = chain.db.view()
        height = chain.height + 1
        from node.executor import validator_set_at

        bogus = []
        for i in range(300):  # blocks that execute fine; only the proposer is an outsider
            ex = chain.build_block((), chain.get_header(height - 1).time_ms + 1 + i, outsider.address,
                                   last_commit=chain.get_commit(height - 1),
                                   validators_hash=validator_set_at(view, height).hash(),
                                   next_validators_hash=validator_set_at(view, height + 1).hash())
            p = Proposal(height, 0, -1, ex.block.hash(), 1_000, outsider.address)
            sp = SignedProposal(p, outsider.sign(p.sign_bytes(chain.chain_id)))
            bogus.append((ex.block.hash(), pack([sp.to_wire(), ex.block.encode()])))
        wal_before = home.wal_file.stat().st_size
        decoded.clear()
        for _, data in bogus:
            driver.on_proposal_message(data)
        big = pack([SignedProposal(Proposal(height, 0, -1, b"\x01" * 32, 1_000, outsider.address),
                                   b"\x00" * 64).to_wire(), b"\x92" + b"\x00" * 660_000])
        driver.on_proposal_message(big)
        assert decoded == [] and executed.count(outsider.address) == 0
        assert not any(h in driver.candidates for h, _ in bogus)
        # the same flood for a height whose validator set is not stored yet: kept unauthenticated
        # until that height starts, within the per-peer byte bound
        for i in range(300):
            p = Proposal(chain.height + 3, 0, -1, bytes([i % 256]) * 32, 1_000, outsider.address)
            sp = SignedProposal(p, outsider.sign(p.sign_bytes(chain.chain_id)))
            driver.on_proposal_message(pack([sp.to_wire(), b"\x00" * 100_000]), "hostile-peer")
        assert driver.future.bytes <= peer_bytes
        assert home.wal_file.stat().st_size - wal_before < 20_000
        start = chain.height
        await wait_for(lambda: chain.height >= start + 2, 30, "two more blocks")
    assert executed.count(outsider.address) == 0


async def test_a_flood_of_badly_signed_votes_neither_stalls_the_node_nor_grows_its_wal(tmp_path: Path) -> None:
    """Attack 3: 20,000 votes with random signatures for the height in progress. Before, each was
    written to the WAL before its signature was checked (1.5 KB -> 620 KB) and the full inbox
    dropped the node's own timeouts: it sat in one height for good. Now they are refused before
    the WAL, and the node's own events never wait behind them."""
    home = dev_home(tmp_path)
    async with running_node(home) as node:
        await wait_for(lambda: node.chain.height >= 2, 30, "height 2")
        chain, driver = node.chain, node.driver
        assert node.validator_key is not None
        me = node.validator_key.address
        start = chain.height
        largest_wal = 0
        for i in range(20_000):
            h = driver.height
            digest = hashlib.sha512(i.to_bytes(4, "big")).digest()
            v = Vote(PREVOTE if i % 2 else PRECOMMIT, h, i % 3, digest[:32], 1_000 + i, me)
            driver.on_vote_message(SignedVote(v, digest).encode())  # type: ignore[attr-defined]
            if i % 50 == 0:
                largest_wal = max(largest_wal, home.wal_file.stat().st_size)
            await trio.lowlevel.checkpoint()  # as the gossip reader does between messages
        await wait_for(lambda: chain.height >= start + 3, 40, "three blocks after the vote flood")
        assert largest_wal < 64_000, f"the WAL grew to {largest_wal} bytes with unauthenticated votes"


async def test_an_equivocating_validator_cannot_fill_the_queue_or_the_wal(tmp_path: Path) -> None:
    """A validator (with little power) signs 2,000 different prevotes for one round of the height in
    progress, every signature valid. The machine counts at most three values per validator and
    round; the rest are dropped before their signature is even checked: the WAL stays small, the
    double sign becomes evidence, and the node keeps committing."""
    home = dev_home(tmp_path)
    hostile = add_minor_validator(home)
    chain_id = load_genesis(home.genesis_file).chain_id
    async with running_node(home) as node:
        chain, driver = node.chain, node.driver
        await wait_for(lambda: chain.height >= 2 and driver.height == chain.height + 1
                       and driver.state.step == STEP_PROPOSE, 30, "the propose step of height 3 or later")
        height = driver.height
        wal_before = home.wal_file.stat().st_size
        for i in range(2_000):
            v = Vote(PREVOTE, height, 0, hashlib.sha256(i.to_bytes(4, "big")).digest(), 1_000, hostile.address)
            driver.on_vote_message(SignedVote(v, hostile.sign(v.sign_bytes(chain_id))).encode(), "hostile-peer")  # type: ignore[attr-defined]
        queued = len(driver.inbox.peer)
        grown = home.wal_file.stat().st_size - wal_before if driver.height == height else 0
        await wait_for(lambda: chain.height >= height + 2, 30, "two more blocks")
    assert queued <= 3, f"{queued} votes of one validator for one round queued for the machine"
    assert grown < 20_000, f"the WAL grew by {grown} bytes"


async def test_a_late_proposal_for_the_height_just_committed_is_not_scored_invalid(tmp_path: Path) -> None:
    """In the commit wait the chain already holds the height the machine is still on; a proposal of
    a later round of that height (an honest proposer that had not seen the decision, or a
    validator fresh from block sync) used to be executed against the next height, came out
    INVALID_BLOCK and got its sender scored toward a ban. It is dropped as late instead."""
    home = dev_home(tmp_path)
    async with running_node(home) as node:
        chain, driver = node.chain, node.driver
        key = node.validator_key
        assert key is not None
        reports: list[tuple[str, str]] = []
        real_report = node.report_peer

        def spy_report(sender: str, offence: Any, detail: str) -> None:
            reports.append((sender, f"{offence}: {detail}"))
            real_report(sender, offence, detail)

        node.report_peer = spy_report  # type: ignore[method-assign]
        # the commit wait of a height: the machine is still on it, the chain has committed it
        await wait_for(lambda: chain.height >= 2 and driver.state.height == chain.height, 30,
                       "the commit wait of height 2 or later")
        height = chain.height
        committed = chain.get_block(height)
        assert committed is not None
        # another block of that height (the committed one is still a held candidate)
        block = dataclasses.replace(committed, header=dataclasses.replace(committed.header,
                                                                          time_ms=committed.header.time_ms + 1))
        p = Proposal(height, 3, -1, block.hash(), block.header.time_ms, key.address)
        sp = SignedProposal(p, key.sign(p.sign_bytes(chain.chain_id)))
        driver.on_proposal_message(pack([sp.to_wire(), block.encode()]), "late-peer")
        await wait_for(lambda: chain.height >= height + 2, 30, "two more blocks")
    assert [r for r in reports if r[0] == "late-peer"] == [], f"an honest late proposal was scored: {reports}"


async def test_a_vote_dropped_as_too_far_ahead_gets_in_when_rebroadcast(tmp_path: Path) -> None:
    """A vote for a height this node has not reached (too far ahead, as for a validator still
    block-syncing) is dropped; the gossip layer must not keep it as seen, or the signer's
    rebroadcast of the same bytes is refused as a duplicate for good. That stalled a 4-validator
    chain: a validator fresh from block sync never got the next height's votes of the other two."""
    from p2p.gossip import content_key

    home = dev_home(tmp_path)
    async with running_node(home) as node:
        chain, driver = node.chain, node.driver
        key = node.validator_key
        assert key is not None
        await wait_for(lambda: chain.height >= 2, 30, "height 2")
        far = chain.height + 10
        v = Vote(PREVOTE, far, 0, b"", 1_000, key.address)
        data = SignedVote(v, key.sign(v.sign_bytes(chain.chain_id))).encode()  # type: ignore[attr-defined]
        topic = node.topic["votes"]
        dropped = node.metrics.drops.snapshot().get(("consensus_vote", "far_height"), 0)
        for copy in (1, 2):  # the vote, then the signer's rebroadcast of the same bytes
            node.p2p._offer(topic, "peer-ahead", data, "delivered")
            await wait_for(lambda: node.metrics.drops.snapshot().get(("consensus_vote", "far_height"), 0)
                           >= dropped + copy, 10, f"copy {copy} to reach the driver")
        assert content_key(topic, data) not in node.p2p._dedup
