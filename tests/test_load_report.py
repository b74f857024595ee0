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
