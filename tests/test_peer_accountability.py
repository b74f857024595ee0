"""Peer accountability without processes: scores and bans (p2p/scoring.py), the byte- and
per-peer-bounded gossip inbox (p2p/inbox.py), and the block-sync policy against lying, stalling
and mute peers (node/sync.py BlockSyncer) on real LevelDB chains."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from node.sync import BlockSyncer, SyncSettings, handle_sync_request
from p2p.errors import ProtocolNotSupported
from p2p.inbox import Inbox, InboxSettings, Received, Refusal
from p2p.scoring import Offence, PeerScores, ScoreSettings
from state.codec import pack, unpack
from tests.test_sync import N_BLOCKS, SENDERS, assert_same_chain, build_source


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- scores and bans ---------------------------------------------------------------------------
def test_one_lie_bans_at_once_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    scores = PeerScores(ScoreSettings(ban_threshold=100, ban_s=60), clock)
    with caplog.at_level(logging.DEBUG, logger="p2p.scoring"):
        assert scores.report("liar", Offence.LIED_HEIGHT, "claimed 1000000") is True
        # further offences while banned neither re-ban nor log a warning
        assert scores.report("liar", Offence.BAD_SIGNATURE) is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "banning peer liar for 60 s: lied about its height" in warnings[0].getMessage()
    assert scores.is_banned("liar") and scores.banned() == ["liar"]
    described = scores.describe("liar")
    assert described["banned"] is True and described["offences"] == {"BAD_SIGNATURE": 1, "LIED_HEIGHT": 1}
    clock.now += 61
    assert not scores.is_banned("liar") and scores.banned() == []


def test_a_slow_peer_needs_several_strikes_and_recovers() -> None:
    clock = FakeClock()
    scores = PeerScores(ScoreSettings(ban_threshold=100, ban_s=60, recovery_per_s=1.0), clock)
    assert not scores.report("slow", Offence.STALLED_REQUEST)
    assert not scores.report("slow", Offence.STALLED_REQUEST)
    assert scores.score("slow") == -68
    clock.now += 68  # recovers one point a second, never above 0
    assert scores.score("slow") == 0
    assert not scores.report("slow", Offence.STALLED_REQUEST)
    assert not scores.report("slow", Offence.STALLED_REQUEST)
    assert scores.report("slow", Offence.STALLED_REQUEST)  # third strike in a row: banned


def test_tracking_is_bounded_but_never_forgets_an_active_ban() -> None:
    scores = PeerScores(ScoreSettings(max_tracked=10), FakeClock())
    scores.report("banned", Offence.INVALID_BLOCK)
    for i in range(100):
        scores.report(f"p{i}", Offence.MALFORMED)
    assert len(scores.tracked()) <= 11
    assert scores.is_banned("banned")


# ---- inbox -------------------------------------------------------------------------------------
def test_inbox_bounds_bytes_per_peer_and_in_total() -> None:
    inbox = Inbox(InboxSettings(max_messages=100, max_bytes=1000, max_peer_bytes=400))
    assert inbox.offer(Received("a", b"x" * 300)) is None
    assert inbox.offer(Received("a", b"x" * 200)) is Refusal.PEER_SHARE  # a's share used up
    assert inbox.offer(Received("b", b"x" * 400)) is None
    assert inbox.offer(Received("c", b"x" * 301)) is Refusal.BYTES  # 1001 > 1000
    assert inbox.offer(Received("c", b"x" * 300)) is None
    assert inbox.bytes == 1000 and len(inbox) == 3
    assert inbox.receive_nowait().sender == "a"
    assert inbox.peer_bytes("a") == 0 and inbox.bytes == 700
    assert inbox.offer(Received("a", b"x" * 300)) is None  # room again once taken


def test_inbox_bounds_the_count() -> None:
    inbox = Inbox(InboxSettings(max_messages=2, max_bytes=10**6, max_peer_bytes=10**6))
    assert inbox.offer(Received("a", b"1")) is None
    assert inbox.offer(Received("a", b"2")) is None
    assert inbox.offer(Received("b", b"3")) is Refusal.FULL
    assert inbox.bytes == 2 and inbox.peer_bytes("b") == 0


# ---- block sync policy ---------------------------------------------------------------------------
class Consensus:
    """Records whether consensus was paused while a peer stalled."""

    def __init__(self, height: int) -> None:
        self._paused = False
        self.paused_log: list[bool] = []
        self.height_started = 0.0
        self._height = height
        self.restarts = 0

    @property
    def paused(self) -> bool:
        return self._paused

    @paused.setter
    def paused(self, value: bool) -> None:
        self._paused = value
        self.paused_log.append(value)

    @property
    def height(self) -> int:
        return self._height

    def restart_after_sync(self) -> None:
        self.restarts += 1


class Peers:
    """Fake peers: ``honest`` serves the source chain; ``liar`` claims +10^6 and stalls or lies."""

    def __init__(self, src, liar_mode: str) -> None:  # type: ignore[no-untyped-def]
        self.src = src
        self.liar_mode = liar_mode
        self.asked: list[tuple[str, str]] = []
        self.reports: list[tuple[str, Offence]] = []
        self.in_stall = False
        self.paused_during_stall = False
        self.consensus: Consensus | None = None

    async def request(self, peer: str, payload: bytes) -> bytes:
        kind = unpack(payload)[0]
        self.asked.append((peer, kind))
        if peer == "honest":
            return handle_sync_request(self.src, payload)
        if peer == "mute":
            raise ProtocolNotSupported("peer mute does not serve /sync")
        if kind == "status":
            claim = self.src.height if self.liar_mode == "modest" else self.src.height + 10**6
            return pack(["status", claim, self.src.genesis_hash])
        if self.liar_mode == "lying":
            return pack(["blocks", []])
        self.in_stall = True
        try:
            await trio.sleep(3600)
        finally:
            self.in_stall = False
        return b""

    def report(self, peer: str, offence: Offence, detail: str) -> None:
        self.reports.append((peer, offence))


@pytest.mark.trio
async def test_in_step_polls_ask_one_slice_yet_reach_a_liar_and_a_wake_or_a_stop_asks_every_peer(
    new_chain, autojump_clock  # type: ignore[no-untyped-def]
) -> None:
    """Idle cost at 16 validators (issue 15): a node committing heights with the others asks one
    slice of its peers per timed poll, yet every peer within ``in_step_slices`` polls, and a peer
    that just connected at the next poll, so a peer lying about its height is asked and reported
    (fresh-clone CI: a liar present for only 6 s was never asked while every node's poll counter
    pointed at other slices); a wake, or heights that stop, ask every peer."""
    dst = new_chain({k.address: 10**12 for k in SENDERS})
    names = [f"p{i:02d}" for i in range(15)]
    connected = list(names)
    asked: list[tuple[float, str, str]] = []
    reports: list[tuple[str, Offence]] = []

    async def request(peer: str, payload: bytes) -> bytes:
        kind = unpack(payload)[0]
        asked.append((trio.current_time(), peer, kind))
        if kind == "status":
            claim = dst.height + 10**6 if peer == "liar" else dst.height
            return pack(["status", claim, dst.genesis_hash])
        return pack(["blocks", []])  # the liar serves nothing of what it claimed

    settings = SyncSettings(poll_s=2, in_step_slices=4)
    consensus = Consensus(height=1)
    syncer = BlockSyncer(dst, lambda: connected, request, lambda b, ex: None,
                         lambda peer, offence, detail: reports.append((peer, offence)), settings,
                         clock=trio.current_time)
    moving = True

    def statuses(since: float = -1.0) -> list[str]:
        return [peer for t, peer, kind in asked if kind == "status" and t >= since]

    async def heights() -> None:
        while True:
            if moving:
                consensus.height_started = trio.current_time()
            await trio.sleep(0.5)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(heights)
        start = trio.current_time()
        nursery.start_soon(syncer.run, consensus)
        await trio.sleep(3 * settings.poll_s + 0.5)
        assert syncer.slice_polls >= 3
        connected.append("liar")  # connects while the node is in step
        await trio.sleep(settings.poll_s + 0.5)
        assert ("liar", Offence.LIED_HEIGHT) in reports, "a node in step did not ask a new peer at the next poll"
        await trio.sleep(41 - (trio.current_time() - start))  # between two polls
        polls = syncer.polls
        assert polls >= 19 and syncer.slice_polls == polls
        for name in names:  # each honest peer once per 4 polls (and at the first, as a new peer)
            assert polls // 4 <= statuses().count(name) <= -(-polls // 4) + 1, (name, statuses().count(name), polls)
        assert len(statuses()) < len(connected) * polls / 3
        woken_at = trio.current_time()
        syncer.wake()
        await trio.sleep(0.5)
        assert sorted(statuses(woken_at)) == names, "a wake must ask every peer (the liar backs off)"
        moving = False
        stopped_at = trio.current_time()
        await trio.sleep(settings.poll_s * 3 + 0.5)
        later = statuses(stopped_at + settings.poll_s)
        assert all(later.count(name) >= 2 for name in names), "heights stopped: every poll asks every peer"
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_stalling_liar_never_pauses_consensus_and_an_honest_peer_is_used(
    new_chain, autojump_clock: trio.testing.MockClock  # type: ignore[no-untyped-def]
) -> None:
    src, _ = build_source(new_chain, src_chain_id := "attrchain-test")
    dst = new_chain({k.address: 10**12 for k in SENDERS})
    peers = Peers(src, "stalling")
    consensus = Consensus(height=1)
    syncer = BlockSyncer(dst, lambda: ["honest", "liar"], peers.request, lambda b, ex: None, peers.report,
                         SyncSettings(request_timeout_s=5), clock=trio.current_time)

    async def watch() -> None:
        while True:
            if peers.in_stall and consensus.paused:
                peers.paused_during_stall = True
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        started = trio.current_time()
        applied = await syncer.catch_up(0, consensus)
        elapsed = trio.current_time() - started
        nursery.cancel_scope.cancel()
    assert src_chain_id == dst.chain_id
    assert applied == N_BLOCKS
    assert_same_chain(src, dst)
    # the honest peer (lower claim) went first; the liar was tried after, timed out once, reported
    assert [p for p, k in peers.asked if k == "blocks"][0] == "honest"
    assert ("liar", Offence.STALLED_REQUEST) in peers.reports
    assert not peers.paused_during_stall, "consensus was paused while the liar stalled"
    assert elapsed <= 5 + 0.5, f"catch_up took {elapsed} s with a 5 s request timeout"
    assert consensus.restarts > 0 and consensus.paused is False
    # backing off: the liar is not asked again before its retry time
    asked = len(peers.asked)
    await syncer.catch_up(0, consensus)
    assert all(p != "liar" for p, _ in peers.asked[asked:])


@pytest.mark.trio
async def test_a_peer_that_stalls_first_is_timed_out_and_another_used_in_the_same_round(
    new_chain, autojump_clock  # type: ignore[no-untyped-def]
) -> None:
    src, _ = build_source(new_chain, "attrchain-test")
    dst = new_chain({k.address: 10**12 for k in SENDERS})
    peers = Peers(src, "modest")  # claims the true height, then never answers `blocks`
    syncer = BlockSyncer(dst, lambda: ["a-liar", "honest"], peers.request, lambda b, ex: None, peers.report,
                         SyncSettings(request_timeout_s=5))
    started = trio.current_time()
    assert await syncer.catch_up(0) == N_BLOCKS
    assert trio.current_time() - started <= 5.5
    assert [p for p, k in peers.asked if k == "blocks"] == ["a-liar", "honest"]
    assert peers.reports == [("a-liar", Offence.STALLED_REQUEST)]
    assert_same_chain(src, dst)


@pytest.mark.trio
async def test_a_peer_that_serves_nothing_of_its_claim_is_reported_for_lying(new_chain, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    src, _ = build_source(new_chain, "attrchain-test")
    dst = new_chain({k.address: 10**12 for k in SENDERS})
    peers = Peers(src, "lying")
    syncer = BlockSyncer(dst, lambda: ["liar"], peers.request, lambda b, ex: None, peers.report,
                         SyncSettings(request_timeout_s=5))
    assert await syncer.catch_up(0) == 0
    assert peers.reports == [("liar", Offence.LIED_HEIGHT)]
    assert dst.height == 0


@pytest.mark.trio
async def test_a_peer_without_the_sync_protocol_gets_one_warning_then_a_long_backoff(
    new_chain, autojump_clock, caplog: pytest.LogCaptureFixture  # type: ignore[no-untyped-def]
) -> None:
    dst = new_chain({k.address: 10**12 for k in SENDERS})
    peers = Peers(dst, "lying")
    syncer = BlockSyncer(dst, lambda: ["mute"], peers.request, lambda b, ex: None, peers.report,
                         SyncSettings(poll_s=2, unsupported_retry_s=300))
    with caplog.at_level(logging.DEBUG, logger="node.sync"):
        for _ in range(50):  # 100 s of polling every 2 s
            await syncer.catch_up(0)
            await trio.sleep(2)
    assert len(peers.asked) == 1, "a peer without the sync protocol was asked again before its backoff"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "does not serve block sync" in warnings[0].getMessage()
    assert peers.reports == []  # not an offence: light clients and other tools do not serve sync


@pytest.mark.trio
async def test_a_peer_of_another_chain_is_not_synced_from(new_chain, autojump_clock) -> None:  # type: ignore[no-untyped-def]
    src, _ = build_source(new_chain, "attrchain-test")
    other = new_chain({SENDERS[0].address: 1})  # another genesis
    peers = Peers(src, "lying")
    syncer = BlockSyncer(other, lambda: ["honest"], peers.request, lambda b, ex: None, peers.report)
    assert await syncer.catch_up(0) == 0
    assert [k for _, k in peers.asked] == ["status"]


# ---- topic validators: authenticate before delivering or forwarding ----------------------------
def _vote(key, height: int, chain_id: str, bad: bool = False) -> bytes:  # type: ignore[no-untyped-def]
    from state.block import PREVOTE, SignedVote, Vote

    vote = Vote(PREVOTE, height, 0, b"\x11" * 32, 0, key.address)
    sig = key.sign(vote.sign_bytes(chain_id))
    return SignedVote(vote, bytes(64) if bad else sig).encode()  # type: ignore[attr-defined,no-any-return]


def _proposal(key, height: int, chain_id: str, bad: bool = False) -> bytes:  # type: ignore[no-untyped-def]
    from state.block import Proposal, SignedProposal

    p = Proposal(height, 0, -1, b"\x22" * 32, 0, key.address)
    sig = key.sign(p.sign_bytes(chain_id))
    return pack([SignedProposal(p, bytes(64) if bad else sig).to_wire(), b"block bytes"])  # type: ignore[attr-defined]


def test_topic_validators_authenticate_votes_and_proposals(new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    from node.gossip_auth import GossipAuthenticator
    from state.crypto import PrivateKey
    from tests.conftest import VALIDATOR_KEY

    src, _ = build_source(new_chain, chain_id)  # height N_BLOCKS, one validator
    auth = GossipAuthenticator(src)
    stranger = PrivateKey.from_int(4242)
    now = src.height + 1
    for check, make in ((auth.vote, _vote), (auth.proposal, _proposal)):
        assert check(make(VALIDATOR_KEY, now, chain_id)) is True
        assert check(make(stranger, now + 1, chain_id)) is Offence.NOT_A_VALIDATOR  # set stored 2 ahead
        assert check(make(stranger, now, chain_id)) is Offence.NOT_A_VALIDATOR
        assert check(make(VALIDATOR_KEY, now, chain_id, bad=True)) is Offence.BAD_SIGNATURE
        assert check(make(VALIDATOR_KEY, now, "another-chain")) is Offence.BAD_SIGNATURE
        assert check(make(stranger, src.height - 1, chain_id)) is False  # old: dropped, not scored
        assert check(make(stranger, now + 3, chain_id)) is True  # set unknown: the driver buffers it
        assert check(b"\xc1 not msgpack") is Offence.MALFORMED
    assert auth.tx_batch(pack([b"tx", b"tx2"])) is True
    assert auth.tx_batch(pack([b"tx", 5])) is Offence.MALFORMED
    assert auth.evidence(b"\x90") is Offence.MALFORMED


def test_a_signature_the_topic_validator_verified_is_not_verified_again_by_the_driver(
    new_chain, chain_id, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    """Issue 15: the node shares the driver's ``VerifiedCache`` with its topic validators, so a
    vote (or proposal) is verified once on arrival; a bad signature is still refused by both."""
    import node.driver
    from node.driver import VerifiedCache
    from node.gossip_auth import GossipAuthenticator
    from state.block import SignedVote
    from state.codec import decode
    from tests.conftest import VALIDATOR_KEY

    src, _ = build_source(new_chain, chain_id)
    cache = VerifiedCache()
    auth = GossipAuthenticator(src, cache)
    good = _vote(VALIDATOR_KEY, src.height + 1, chain_id)
    bad = _vote(VALIDATOR_KEY, src.height + 1, chain_id, bad=True)
    assert auth.vote(good) is True and auth.vote(bad) is Offence.BAD_SIGNATURE
    calls: list[bytes] = []
    real = node.driver.ed25519_verify
    monkeypatch.setattr(node.driver, "ed25519_verify", lambda pk, sig, msg: calls.append(sig) or real(pk, sig, msg))
    for data, ok in ((good, True), (bad, False)):
        sv = decode(SignedVote, data)
        assert cache(VALIDATOR_KEY.public_key, sv.signature, sv.vote.sign_bytes(chain_id)) is ok
    assert calls == [decode(SignedVote, bad).signature], "the good vote was verified a second time"


def test_an_accepted_vote_is_left_decoded_for_the_driver_once_and_a_refused_one_is_not(
        new_chain, chain_id) -> None:  # type: ignore[no-untyped-def]
    """The topic validator leaves each vote it accepted decoded (``DecodedVotes``), by its exact
    bytes, for the driver to take instead of decoding it again; a vote it refused is not left."""
    from node.gossip_auth import DecodedVotes, GossipAuthenticator
    from state.block import SignedVote
    from state.codec import decode
    from state.crypto import PrivateKey
    from tests.conftest import VALIDATOR_KEY

    src, _ = build_source(new_chain, chain_id)
    decoded = DecodedVotes(capacity=2)
    auth = GossipAuthenticator(src, decoded=decoded)
    good = _vote(VALIDATOR_KEY, src.height + 1, chain_id)
    assert auth.vote(good) is True
    assert decoded.take(good) == decode(SignedVote, good)
    assert decoded.take(good) is None  # taken once
    bad = _vote(VALIDATOR_KEY, src.height + 1, chain_id, bad=True)
    stranger = _vote(PrivateKey.from_int(4242), src.height + 1, chain_id)
    assert auth.vote(bad) is Offence.BAD_SIGNATURE and auth.vote(stranger) is Offence.NOT_A_VALIDATOR
    assert decoded.take(bad) is None and decoded.take(stranger) is None
    sv = decode(SignedVote, good)
    for key in (b"a", b"b", b"c"):
        decoded.remember(key, sv)
    assert decoded.take(b"a") is None and decoded.take(b"c") is sv  # bounded: the oldest goes first


@pytest.mark.parametrize("section,key", [("rpc", "max_open_connections"), ("rpc", "read_timeout_s"),
                                         ("p2p", "inbox_bytes"), ("p2p", "sync_request_timeout_s")])
def test_a_limit_of_zero_is_a_clear_config_error(section: str, key: str) -> None:
    from node.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=rf"^\[{section}\] {key} must be at least 1$"):
        parse_config(f"[{section}]\n{key} = 0\n")
    assert getattr(getattr(parse_config(f"[{section}]\n{key} = 3\n"), section), key) == 3
