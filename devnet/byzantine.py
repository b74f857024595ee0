"""A malicious peer for a running devnet: ``python -m devnet.byzantine --dir DIR --attack NAME``.

A real libp2p process with its own fresh identity (a new peer id each run, so a ban earned by one
run does not stop the next). It dials every devnet node, joins the gossip topics and serves the
block-sync protocol, then for ``--duration`` seconds (bounded) runs one attack:

    nonvalidator-proposals  ~700 KB proposals for the height in progress, signed by a key that is
                            in no validator set, each block different (no de-duplication helps)
    future-flood            near-cap (~850 KB) proposals and votes for the next two heights
    bad-signature-votes     prevotes/precommits for the height in progress in the name of real
                            validators, with random signatures, as fast as gossip takes them
    evidence-now            double-sign evidence for the height about to start (sent as soon as a precommit
                            quorum decides the one before), signed with the key
                            of validator ``--validator-key`` (a validator with < 1/3 of the power
                            accusing itself, which crashed every honest proposer before issue 12)
    stalling-sync           answers `status` with height + 10^6, never answers `blocks`
    lying-sync              answers `status` with height + 10^6 and `blocks` with nothing
    replay                  records valid votes and proposals for a third of the time, then
                            publishes them again, over and over, from its own identity
    hello-flood             opens the direct consensus protocol (docs/p2p.md) to every node again
                            and again with a hello signed by its own key, in no validator set

Where the floods go (``--via``):
    gossip   published on the topics: they reach only nodes subscribed to them (full nodes, and
             validators on the gossip fallback because a direct stream to them is down); the
             attack starts once a peer subscribes to every topic it floods
    direct   sent on direct consensus streams opened with the hello of validator ``--validator-key``
             (the byzantine validator whose key only the attacker holds), so they reach validators
             that have left the topics; the attack starts once ``--peers`` streams are accepted

The sync attacks and hello-flood wait for nothing but ``--peers`` connections. It follows the
chain's height from the votes it hears (nodes publish to a subscriber even after leaving a topic).
It prints JSON lines on stdout: ``ready`` (with its peer id), ``progress`` about every 2 s, and
``done`` (messages sent, sync requests answered, hellos refused, proposals and votes heard since
``ready``), then exits 0. Loopback only, like the devnet.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import random
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from devnet.launcher import Layout
from node.config import Home
from node.consensus_links import KIND_PROPOSAL, KIND_VOTE, hello_message
from p2p.direct import ACCEPTED, DirectSpec
from p2p.errors import P2PError
from p2p.framing import write_frame
from p2p.identity import PeerSpec, loopback_addr
from p2p.peers import DialSettings
from p2p.service import MAX_GOSSIP_PAYLOAD, P2PService
from p2p.topics import consensus_protocol, evidence_topic, proposals_topic, sync_protocol, txs_topic, votes_topic
from state.block import (
    EMPTY_COMMIT,
    PRECOMMIT,
    PREVOTE,
    Block,
    DuplicateVoteEvidence,
    Header,
    Proposal,
    SignedProposal,
    SignedVote,
    Vote,
)
from state.codec import CodecError, decode, pack, unpack
from state.crypto import PrivateKey
from state.genesis import load_genesis

log = logging.getLogger("devnet.byzantine")

LIE = 10**6
MAX_DURATION_S = 600.0
RECORD_MAX = 2_000  # replay: messages recorded at most
PROGRESS_S = 2.0
SYNC_ATTACKS = ("stalling-sync", "lying-sync", "hello-flood")  # they wait for no topic
# the gossip topics each flood publishes on (the attack starts once a peer subscribes to them)
FLOOD_TOPICS = {"nonvalidator-proposals": ("proposals",), "future-flood": ("proposals", "votes"),
                "bad-signature-votes": ("votes",), "evidence-now": ("evidence",),
                "replay": ("proposals", "votes")}


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def random_bytes(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


class Byzantine:
    """One malicious peer process: a P2PService plus the attack loops."""

    def __init__(self, layout: Layout, port: int, rate: float, validator_index: int, via: str = "gossip",
                 peers: int = 1) -> None:
        self.layout = layout
        self.chain_id = layout.chain_id
        self.genesis_hash = load_genesis(layout.dir / "genesis.json").hash()
        self.validators: list[PrivateKey] = []
        for spec in layout.nodes:
            key = Home(layout.dir / spec.home).validator_key()
            if key is not None:
                self.validators.append(key)
        self.accused = self.validators[validator_index] if self.validators else None
        self.key = PrivateKey.generate()  # in no validator set
        self.rng = random.Random(os.urandom(16))
        self.rate = rate
        self.topic = {
            "txs": txs_topic(self.chain_id),
            "proposals": proposals_topic(self.chain_id),
            "votes": votes_topic(self.chain_id),
            "evidence": evidence_topic(self.chain_id),
        }
        self.sync = sync_protocol(self.chain_id)
        self.via = via
        self.min_peers = peers
        direct = None
        if via == "direct":
            if self.accused is None or validator_index < 0:
                raise SystemExit("--via direct needs --validator-key (the key whose hello opens the streams)")
            accused = self.accused
            direct = DirectSpec(
                protocol=consensus_protocol(self.chain_id),
                kinds={KIND_PROPOSAL: self.topic["proposals"], KIND_VOTE: self.topic["votes"]},
                hello=lambda peer_id: pack([accused.public_key,
                                            accused.sign(hello_message(self.chain_id, peer_id))]),
                check_hello=lambda peer, hello: b"accepted",  # honest validators may stream to us
            )
        self.service = P2PService(
            os.urandom(32),
            port,
            [PeerSpec(s.peer_id, loopback_addr(s.p2p_port, s.peer_id)) for s in layout.nodes],
            list(self.topic.values()),
            request_handlers={self.sync: self.serve_sync},
            max_message_bytes=MAX_GOSSIP_PAYLOAD,
            dial=DialSettings(inbound_grace=0.0),
            direct=direct,
        )
        self.height = 0  # the highest height heard in votes
        self.precommits: dict[int, set[bytes]] = {}
        self.committed = 0
        self.decided = trio.Event()  # set (and replaced) whenever a height gets a precommit quorum
        self.recorded: list[tuple[str, bytes]] = []
        self.recorded_bytes = 0
        self.sent = 0
        self.publish_errors = 0
        self.sync_answers = 0
        self.sync_mode = ""
        self.hellos_refused = 0
        self.hellos_accepted = 0
        self.heard = {"proposals": 0, "votes": 0}

    # ---- listening ----------------------------------------------------------------------
    async def listen(self, kind: str, record: bool) -> None:
        async for msg in self.service.subscribe(self.topic[kind]):
            if kind in self.heard:
                self.heard[kind] += 1
            if kind == "votes":
                try:
                    vote = decode(SignedVote, msg.data).vote
                except CodecError:
                    continue
                self.height = max(self.height, vote.height)
                if vote.type == PRECOMMIT and vote.block_hash:
                    seen = self.precommits.setdefault(vote.height, set())
                    seen.add(vote.validator)
                    if len(seen) == len(self.validators) * 2 // 3 + 1:
                        self.committed = vote.height  # a quorum of precommits: that height is decided
                        self.decided.set()
                        self.decided = trio.Event()
                        for old in [h for h in self.precommits if h < vote.height - 2]:
                            del self.precommits[old]
            if record and kind in ("votes", "proposals") and len(self.recorded) < RECORD_MAX:
                self.recorded.append((kind, msg.data))
                self.recorded_bytes += len(msg.data)

    async def serve_sync(self, requester: str, payload: bytes) -> bytes:
        self.sync_answers += 1
        try:
            req = unpack(payload, 1024)
        except CodecError:
            return pack(["error", "malformed"])
        if not self.sync_mode:
            return pack(["error", "not serving block sync"])
        if req == ["status"]:
            return pack(["status", self.height + LIE, self.genesis_hash])
        if self.sync_mode == "stalling":
            await trio.sleep_forever()
        return pack(["blocks", []])

    # ---- building messages ----------------------------------------------------------------
    def publish_cost(self) -> float:
        return 1.0 / self.rate

    async def publish(self, kind: str, data: bytes) -> None:
        if self.via == "direct" and kind in ("proposals", "votes"):
            if self.service.send_direct(self.topic[kind], data):
                self.sent += 1
            await trio.lowlevel.checkpoint()
            return
        try:
            await self.service.publish(self.topic[kind], data)
            self.sent += 1
        except P2PError as exc:
            self.publish_errors += 1
            log.debug("publish failed: %s", exc)

    def bogus_block(self, height: int, size: int, proposer: bytes) -> Block:
        txs: list[bytes] = []
        left = size
        while left > 0:
            chunk = min(left, 60_000)
            txs.append(random_bytes(self.rng, chunk))
            left -= chunk
        h = lambda: random_bytes(self.rng, 32)  # noqa: E731
        header = Header(1, self.chain_id, height, 0, h() if height > 1 else b"", h(), h(), h(), h(), h(), h(), h(),
                        proposer)
        return Block(header, tuple(txs), (), EMPTY_COMMIT)

    def proposal_message(self, height: int, round_: int, size: int) -> bytes:
        block = self.bogus_block(height, size, self.key.address)
        proposal = Proposal(height, round_, -1, block.hash(), 0, self.key.address)
        signed = SignedProposal(proposal, self.key.sign(proposal.sign_bytes(self.chain_id)))
        return pack([signed.to_wire(), block.encode()])  # type: ignore[attr-defined]

    def bad_vote(self, height: int) -> bytes:
        validator = self.rng.choice(self.validators).address
        vote = Vote(self.rng.choice((PREVOTE, PRECOMMIT)), height, self.rng.randrange(3),
                    random_bytes(self.rng, 32), 0, validator)
        return SignedVote(vote, random_bytes(self.rng, 64)).encode()  # type: ignore[attr-defined,no-any-return]

    def evidence(self, height: int) -> bytes:
        assert self.accused is not None
        hashes = sorted([random_bytes(self.rng, 32), random_bytes(self.rng, 32)])
        votes = []
        for block_hash in hashes:
            vote = Vote(PREVOTE, height, 0, block_hash, 0, self.accused.address)
            votes.append(SignedVote(vote, self.accused.sign(vote.sign_bytes(self.chain_id))))
        return DuplicateVoteEvidence(votes[0], votes[1]).encode()  # type: ignore[attr-defined,no-any-return]

    # ---- attacks ----------------------------------------------------------------------------
    async def paced(self, make: Callable[[], Awaitable[None]]) -> None:
        """Call ``make`` ``rate`` times a second (publishing waits for gossip back-pressure)."""
        while True:
            await make()
            await trio.sleep(self.publish_cost())  # pacing the attack, not synchronisation

    async def nonvalidator_proposals(self) -> None:
        async def one() -> None:
            await self.publish("proposals", self.proposal_message(self.height, self.rng.randrange(3), 700_000))
        await self.paced(one)

    async def future_flood(self) -> None:
        async def one() -> None:
            future = self.height + self.rng.choice((1, 2))
            await self.publish("proposals", self.proposal_message(future, 0, 850_000))
            for _ in range(20):
                await self.publish("votes", self.bad_vote(self.height + self.rng.choice((1, 2))))
        await self.paced(one)

    async def bad_signature_votes(self) -> None:
        async def one() -> None:
            for _ in range(20):
                await self.publish("votes", self.bad_vote(self.height))
        await self.paced(one)

    async def evidence_now(self) -> None:
        # Evidence for the height about to start, unique each time: an unfixed node accepts it
        # in the commit wait of the height before (it allowed offences up to its height + 1), and
        # its proposer then built a block carrying evidence of the block's own height and died.
        # Sent in bursts the moment a precommit quorum shows a height decided, and steadily.
        async def burst() -> None:
            while True:
                await self.decided.wait()
                for _ in range(5):
                    await self.publish("evidence", self.evidence(self.committed + 1))

        async def steady() -> None:
            await self.publish("evidence", self.evidence(max(self.height, self.committed + 1)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(burst)
            nursery.start_soon(self.paced, steady)

    async def stalling_sync(self) -> None:
        self.sync_mode = "stalling"
        await trio.sleep_forever()

    async def lying_sync(self) -> None:
        self.sync_mode = "lying"
        await trio.sleep_forever()

    async def hello_flood(self) -> None:
        """Open the direct protocol to every connected node, ``rate`` rounds a second, with a
        well-formed hello signed by this process's own key (in no validator set)."""
        host = self.service._require_host()
        protocol = consensus_protocol(self.chain_id)
        hello = pack([self.key.public_key, self.key.sign(hello_message(self.chain_id, self.service.peer_id))])

        async def one(peer: str) -> None:
            try:
                with trio.fail_after(5):
                    stream = await host.new_stream(ID.from_base58(peer), [TProtocol(protocol)])
                    try:
                        await write_frame(stream, hello)
                        answer = await stream.read(1)
                    finally:
                        await stream.reset()
            except Exception:  # noqa: BLE001 - a refused or banned stream is the expected outcome
                self.hellos_refused += 1
                return
            if answer == ACCEPTED:
                self.hellos_accepted += 1
            else:
                self.hellos_refused += 1

        async def round_() -> None:
            async with trio.open_nursery() as nursery:
                for peer in self.service.connected_peers():
                    nursery.start_soon(one, peer)
            self.sent += 1

        await self.paced(round_)

    async def replay(self, duration: float) -> None:
        await trio.sleep(duration / 3)  # recording (the listener keeps what it hears)
        records = list(self.recorded)
        if not records:
            return
        while True:
            for kind, data in records:
                await self.publish(kind, data)
                await trio.sleep(self.publish_cost())

    # ---- main -------------------------------------------------------------------------------
    async def main(self, attack: str, duration: float) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.service.run)
                for kind in self.topic:
                    nursery.start_soon(self.listen, kind, attack == "replay")
                nursery.start_soon(self._stop_on_signal, signals, nursery.cancel_scope)
                await self._wait_ready(attack)
                self.heard = {"proposals": 0, "votes": 0}
                emit({"ev": "ready", "peer_id": self.service.peer_id, "height": self.height,
                      "attack": attack, "via": self.via})
                with trio.move_on_after(duration):
                    async with trio.open_nursery() as attack_nursery:
                        attack_nursery.start_soon(self._progress)
                        runner = getattr(self, attack.replace("-", "_"))
                        if attack == "replay":
                            attack_nursery.start_soon(runner, duration)
                        else:
                            attack_nursery.start_soon(runner)
                emit({"ev": "done", "sent": self.sent, "publish_errors": self.publish_errors,
                      "sync_answers": self.sync_answers, "recorded": len(self.recorded),
                      "height": self.height, "hellos_refused": self.hellos_refused,
                      "hellos_accepted": self.hellos_accepted, "heard": self.heard})
                nursery.cancel_scope.cancel()

    def _ready(self, attack: str) -> bool:
        if len(self.service.connected_peers()) < self.min_peers:
            return False
        if attack in SYNC_ATTACKS:
            return True  # they need no topic: validators with every direct stream up leave them
        if not self.height:
            return False  # a vote heard: the floods aim at the height in progress
        if self.via == "direct" and attack != "evidence-now":
            assert self.service.direct is not None
            return len(self.service.direct.outbound_peers()) >= self.min_peers
        return all(self.service.topic_peers(self.topic[kind]) for kind in FLOOD_TOPICS[attack])

    async def _wait_ready(self, attack: str, timeout: float = 30.0) -> None:
        """Until the attack can reach someone: ``--peers`` connections, and for a flood a vote heard
        and a peer subscribed to every topic it floods (gossip) or ``--peers`` accepted streams."""
        with trio.fail_after(timeout):
            while not self._ready(attack):
                await trio.sleep(0.05)  # polling libp2p state that has no event

    async def _progress(self) -> None:
        while True:
            await trio.sleep(PROGRESS_S)
            emit({"ev": "progress", "sent": self.sent, "height": self.height,
                  "sync_answers": self.sync_answers, "connected": len(self.service.connected_peers())})

    @staticmethod
    async def _stop_on_signal(signals: Any, scope: trio.CancelScope) -> None:
        async for _ in signals:
            scope.cancel()
            return


ATTACKS = ("nonvalidator-proposals", "future-flood", "bad-signature-votes", "evidence-now",
           "stalling-sync", "lying-sync", "replay", "hello-flood")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devnet.byzantine", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="the devnet folder")
    parser.add_argument("--attack", choices=ATTACKS, required=True)
    parser.add_argument("--duration", type=float, default=10.0, help=f"seconds (at most {MAX_DURATION_S:.0f})")
    parser.add_argument("--port", type=int, default=0, help="p2p port (0: any free port)")
    parser.add_argument("--rate", type=float, default=20.0, help="attack rounds per second")
    parser.add_argument("--validator-key", type=int, default=-1,
                        help="evidence-now: index of the devnet validator whose key accuses itself; "
                             "--via direct: the validator whose hello opens the streams")
    parser.add_argument("--via", choices=("gossip", "direct"), default="gossip",
                        help="where proposals and votes go: the gossip topics or direct consensus streams")
    parser.add_argument("--peers", type=int, default=1,
                        help="connections (--via direct: accepted streams) to wait for before attacking")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be in (0, {MAX_DURATION_S:.0f}]")
    faulthandler.register(signal.SIGUSR1)  # a stuck attacker's stacks on stderr (the test asks for them)
    layout = Layout.load(args.dir)
    byzantine = Byzantine(layout, args.port, args.rate, args.validator_key, args.via, args.peers)
    trio.run(byzantine.main, args.attack, args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
