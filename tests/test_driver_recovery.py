"""The WAL recovery branch is reached and keeps what the node signed (issue 12, attack 5): a real
dev node stopped in the middle of a height (after it signed its proposal and votes, before the
decision) resumes that height from its WAL on the next start and commits the very block it had
proposed and voted for, instead of starting the height afresh."""

from __future__ import annotations

from pathlib import Path

import trio

from consensus.events import STEP_PRECOMMIT, STEP_PREVOTE, ProposeBlockReady
from consensus.wal import read_wal
from node.app import Node
from nodekit import dev_home, wait_for
from state.accounts import get_account
from state.crypto import PrivateKey
from state.tx import Transfer, sign_tx


async def test_a_node_stopped_mid_height_resumes_it_from_the_wal_with_its_block(tmp_path: Path) -> None:
    home = dev_home(tmp_path)
    node = Node(home, home.load_config())
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await wait_for(lambda: node.chain.height >= 2, 30, "height 2")
        driver = node.driver
        # a transaction in the block the node is about to build: a fresh start of the height (the
        # mempool is not kept across restarts) would build another block without it
        dev = PrivateKey.load(home.dev_key_file)
        nonce = get_account(node.chain.db.view(), dev.address).nonce
        node.mempool.submit(sign_tx(dev, node.chain.chain_id, nonce, Transfer(b"\x07" * 20, 1), fee=1).raw)
        with trio.fail_after(30):  # stop between the node's own votes and its decision
            while not (driver.height == node.chain.height + 1 and driver.state.step in (STEP_PREVOTE, STEP_PRECOMMIT)
                       and any(len(c.block.txs) == 1 for c in driver.candidates.values())):
                await trio.lowlevel.checkpoint()
        height = driver.height
        assert node.chain.height == height - 1
        nursery.cancel_scope.cancel()
    built = [e.event.block_hash for e in read_wal(home.wal_file).entries if isinstance(e.event, ProposeBlockReady)]
    assert len(built) == 1, "the WAL should hold the block the node built and proposed"

    again = Node(home, home.load_config())
    assert again.driver.recovery is not None and again.driver.recovery.state.height == height
    async with trio.open_nursery() as nursery:
        await nursery.start(again.run)
        await wait_for(lambda: again.chain.height >= height + 1, 30, f"height {height + 1} after the restart")
        committed = again.chain.get_header(height)
        txs = again.chain.get_block(height).txs
        nursery.cancel_scope.cancel()
    assert committed is not None and committed.hash() == built[0], "the resumed height committed another block"
    assert len(txs) == 1
