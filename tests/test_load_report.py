"""The load generator's commit times (devnet/load.py): pure code, no devnet."""

from __future__ import annotations

from devnet.load import Block, commit_times_s


def test_a_blocks_commit_time_is_the_next_headers_bft_time_not_when_the_tracker_read_it() -> None:
    """Before: latency ended when the load's tracker read the block over RPC, 2-7 s late on a
    saturated 16-validator devnet. Now the commit time of h is the BFT time in h+1's header; only
    the last block read, with no successor, falls back to when the tracker read it."""
    blocks = [Block(5, 10_000, 3, 0.0, lag_ms=4_000), Block(6, 10_700, 2, 0.0, lag_ms=5_000),
              Block(7, 11_300, 1, 0.0, lag_ms=250)]
    assert commit_times_s(blocks) == {5: 10.7, 6: 11.3, 7: 11.55}


def test_a_gap_in_the_tracked_heights_falls_back_to_the_read_time() -> None:
    blocks = [Block(5, 10_000, 1, 0.0, lag_ms=100), Block(7, 12_000, 1, 0.0, lag_ms=300)]
    assert commit_times_s(blocks) == {5: 10.1, 7: 12.3}


def test_the_sweeps_capacity_counts_the_chains_headers_when_the_tracker_fell_behind() -> None:
    """Twice the 16-validator capacity probe reported 0 committed (capacity 10): the tracker was
    20 s behind a flooded node when the point ended. The chain's headers count what committed:
    every transaction of the heights after the start, over the span to the commit time of the
    last block holding any (the next header's BFT time)."""
    from bench.load_sweep import chain_tps

    start = 100.0
    metas = [(11, 100_500, 0), (12, 101_000, 500), (13, 102_000, 1_000), (14, 102_500, 0), (15, 103_000, 0)]
    assert chain_tps(metas, start) == 1_500 / 2.5  # to 14's time: when 13 committed
    assert chain_tps(list(reversed(metas)), start) == 1_500 / 2.5  # `blockchain` answers newest first
    assert chain_tps([(12, 101_000, 0)], start) == 0.0
    assert chain_tps([(12, 101_000, 300)], start) == 300 / 1.0  # no successor read: its own time


def test_the_block_readers_claim_each_height_once_and_count_read_heights_without_gaps() -> None:
    """Several trackers read blocks in parallel, each from its own node (one reader fell 20 s
    behind a flooded 16-validator devnet): a height is claimed by one reader, a reader's node
    that has not committed it yet does not get it, a height that failed is read again, and the
    drain's "tracked height" only counts heights with every one below read."""
    from types import SimpleNamespace

    from devnet.load import LoadConfig, LoadGenerator
    from state.crypto import PrivateKey

    layout = SimpleNamespace(nodes=[SimpleNamespace(index=i) for i in range(4)], chain_id="x", dir="/nonexistent")
    gen = LoadGenerator(layout, LoadConfig(rate=1, duration_s=1, senders=2), faucet=PrivateKey.from_int(1))  # type: ignore[arg-type]
    gen._tracked_height, gen._next_height = 10, 11
    assert [gen._claim(13), gen._claim(13), gen._claim(13), gen._claim(13)] == [11, 12, 13, None]
    gen._given_back.append(12)  # its reader failed
    assert gen._claim(11) is None  # a node at height 11 cannot serve 12
    assert gen._claim(14) == 12
    gen._mark_read(13)
    assert gen.tracked_height == 10  # 11 and 12 not read yet
    gen._mark_read(11)
    assert gen.tracked_height == 11
    gen._mark_read(12)
    assert gen.tracked_height == 13
