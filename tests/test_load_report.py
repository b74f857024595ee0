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
