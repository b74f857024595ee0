"""The consensus WAL: framing, torn tails, height rotation, and replaying a machine from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.events import (
    STEP_PREVOTE,
    STEP_PROPOSE,
    Event,
    NewHeight,
    ProposalReceived,
    ProposeBlockReady,
    RequestBlock,
    ScheduleTimeout,
    SignAndBroadcastVote,
    TimeoutElapsed,
    VoteReceived,
)
from consensus.machine import MachineConfig, initial_state, step
from consensus.replay import replay_wal
from consensus.testkit import CHAIN_ID, block_hash, keys_by_address, precommit, prevote, signed_proposal, validator_set
from consensus.wal import ConsensusWAL, WALCorrupt, WALEntry, decode_entry, encode_entry, frame, read_wal
from state.block import PREVOTE

K = keys_by_address(4, offset=800)
VALS = validator_set(K, [1, 1, 1, 1])
X = block_hash("X")


def sample_entries() -> list[WALEntry]:
    return [
        WALEntry(NewHeight(3, VALS, 1000)),
        WALEntry(ProposeBlockReady(3, 0, X, 1001), b"block body"),
        WALEntry(ProposalReceived(signed_proposal(K[0], 3, 0, X), True, 1002), b"block body"),
        WALEntry(ProposalReceived(signed_proposal(K[0], 3, 1, X, pol_round=0), False, 1003), b""),
        WALEntry(VoteReceived(prevote(K[1], 3, 0, X, 7), 1004)),
        WALEntry(VoteReceived(precommit(K[2], 3, 0, b""), 1005)),
        WALEntry(TimeoutElapsed(3, 0, STEP_PREVOTE, 1006)),
    ]


def test_every_entry_kind_round_trips() -> None:
    for entry in sample_entries():
        assert decode_entry(encode_entry(entry)) == entry


def test_append_and_read_back(tmp_path: Path) -> None:
    wal = ConsensusWAL(tmp_path / "wal")
    entries = sample_entries()
    wal.start_height(entries[0])
    for i, e in enumerate(entries[1:]):
        wal.append(e, sync=i % 2 == 0)
    wal.close()
    replay = read_wal(tmp_path / "wal")
    assert replay.entries == entries and replay.torn_bytes == 0 and replay.height == 3


def test_start_height_replaces_the_log(tmp_path: Path) -> None:
    wal = ConsensusWAL(tmp_path / "wal")
    entries = sample_entries()
    wal.start_height(entries[0])
    wal.append(entries[4], sync=True)
    wal.start_height(WALEntry(NewHeight(4, VALS, 2000)))
    wal.append(entries[6], sync=False)
    assert read_wal(tmp_path / "wal").entries == [WALEntry(NewHeight(4, VALS, 2000)), entries[6]]
    assert not (tmp_path / "wal.tmp").exists()
    with pytest.raises(TypeError):
        wal.start_height(entries[4])


def test_every_torn_tail_is_dropped_and_truncated(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    entries = sample_entries()
    wal = ConsensusWAL(path)
    wal.start_height(entries[0])
    for e in entries[1:]:
        wal.append(e, sync=False)
    wal.close()
    data = path.read_bytes()
    last = len(frame(encode_entry(entries[-1])))
    full = len(data)
    for cut in range(full - last, full):
        path.write_bytes(data[:cut])
        replay = read_wal(path)
        assert replay.entries == entries[:-1]
        assert replay.torn_bytes == cut - (full - last)
        reopened = ConsensusWAL(path)  # truncates the torn tail, then appends cleanly
        reopened.append(entries[-1], sync=True)
        reopened.close()
        assert read_wal(path).entries == entries


def test_a_damaged_last_record_is_a_torn_write(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    entries = sample_entries()
    path.write_bytes(b"".join(frame(encode_entry(e)) for e in entries))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert read_wal(path).entries == entries[:-1]


def test_damage_in_the_middle_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    entries = sample_entries()
    frames = [frame(encode_entry(e)) for e in entries]
    data = bytearray(b"".join(frames))
    data[len(frames[0]) + 10] ^= 0xFF  # inside the second record
    path.write_bytes(bytes(data))
    with pytest.raises(WALCorrupt):
        read_wal(path)


def test_a_log_must_start_with_its_height(tmp_path: Path) -> None:
    path = tmp_path / "wal"
    path.write_bytes(frame(encode_entry(sample_entries()[4])))
    with pytest.raises(WALCorrupt):
        read_wal(path)


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=0, max_size=64))
def test_garbage_tails_never_lose_intact_records(tmp_path_factory: pytest.TempPathFactory, tail: bytes) -> None:
    path = tmp_path_factory.mktemp("wal") / "wal"
    entries = sample_entries()
    intact = b"".join(frame(encode_entry(e)) for e in entries)
    path.write_bytes(intact + tail)
    try:
        replay = read_wal(path)
    except WALCorrupt:
        return  # garbage that parses as a framed but undecodable record is reported, never skipped
    assert replay.entries[: len(entries)] == entries


# ---- replay ---------------------------------------------------------------------------------------
def run_and_log(events: list[Event], me: int) -> tuple[list[WALEntry], object]:
    config = MachineConfig(CHAIN_ID, K[me].address)
    state = initial_state(config)
    entries = []
    for ev in events:
        entries.append(WALEntry(ev))
        state, _ = step(state, ev)
    return entries, state


def test_replay_rebuilds_the_state_and_returns_what_is_pending() -> None:
    me = 3
    events: list[Event] = [
        NewHeight(1, VALS, 1000),
        ProposalReceived(signed_proposal(K[0], 1, 0, X), True, 1001),
        VoteReceived(prevote(K[0], 1, 0, X), 1002),
    ]
    entries, state = run_and_log(events, me)
    result = replay_wal(MachineConfig(CHAIN_ID, K[me].address), entries)
    assert (result.state.height, result.state.round, result.state.step) == (1, 0, STEP_PREVOTE)
    # The prevote this node asked for was never logged as signed, so it is still pending, exactly
    # as first requested (same timestamp: the guard returns the same signature for it).
    assert result.pending == [
        ScheduleTimeout(1, 0, STEP_PROPOSE, 3000),
        SignAndBroadcastVote(prevote(K[me], 1, 0, X, 1001).vote),
    ]
    # Once its signed prevote is in the log, the request is fulfilled and it is an own message.
    own = WALEntry(VoteReceived(prevote(K[me], 1, 0, X, 1001), 1003))
    result = replay_wal(MachineConfig(CHAIN_ID, K[me].address), entries + [own])
    assert not any(isinstance(e, SignAndBroadcastVote) for e in result.pending)
    assert result.own_messages == [own]
    assert result.state.prevotes[0].power_for(X) == 2


def test_replay_drops_fulfilled_block_requests_and_timeouts() -> None:
    me = 0  # proposer of round 0
    events: list[Event] = [
        NewHeight(1, VALS, 1000),
        ProposeBlockReady(1, 0, X, 1001),
        TimeoutElapsed(1, 0, STEP_PROPOSE, 4000),
    ]
    entries, _ = run_and_log(events, me)
    result = replay_wal(MachineConfig(CHAIN_ID, K[me].address), entries)
    kinds = [type(e) for e in result.pending]
    assert RequestBlock not in kinds and ScheduleTimeout not in kinds
    assert [e.vote.type for e in result.pending if isinstance(e, SignAndBroadcastVote)] == [PREVOTE]
