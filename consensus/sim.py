"""Deterministic simulation of N validators running the pure machine in one process.

A virtual clock and one seeded ``random.Random`` (allowed here: this is the test harness, not
consensus code) drive a network with per-message delay, loss, duplication and hence reordering,
timed partitions, crashes and restarts (optionally losing WAL records written without fsync), and
byzantine validators (``double_sign``, ``equivocate``, ``bad_proposer``, ``silent``,
``split_brain``). At ``gst_ms`` the network heals: no more loss or partitions, bounded delay, and
every crashed honest node restarts. Same scenario, same run: the only source of order is the event
queue, keyed by (time, sequence number).

Signatures are real Ed25519. Verification goes through a cache keyed by (public key, signature,
message) shared by all simulated nodes (``verify_mode="shared"``), or one cache per node that only
knows the node's own signatures (``"per_node"``, the benchmark's honest cost: every node verifies
every message it receives from others once).

``check_run`` (``consensus/sim_check.py``) judges a finished run.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from consensus.params import ConsensusParams
from consensus.sim_byzantine import BadProposer, DoubleSigner, Equivocator, SplitBrain
from consensus.sim_node import MemoryStorage, Message, NodeStorage, SimNode
from state.staking.validator_set import ValidatorSet
from state.block import PRECOMMIT, PREVOTE, DuplicateVoteEvidence
from state.crypto import PrivateKey
from state.crypto import verify as ed25519_verify

BEHAVIOURS = ("double_sign", "equivocate", "bad_proposer", "silent", "split_brain")

SIM_PARAMS = ConsensusParams(
    timeout_propose_ms=200,
    timeout_propose_delta_ms=50,
    timeout_prevote_ms=100,
    timeout_prevote_delta_ms=50,
    timeout_precommit_ms=100,
    timeout_precommit_delta_ms=50,
    timeout_commit_ms=50,
)


@dataclass(frozen=True)
class Partition:
    start_ms: int
    end_ms: int
    groups: tuple[tuple[int, ...], ...]  # every node in exactly one group


@dataclass(frozen=True)
class Blackout:
    """Votes of ``vote_type`` from ``senders`` to ``targets`` are lost during the window (an
    adversarial scheduler: some nodes see a round's quorum while the others time out and move on,
    which is where locks matter)."""

    start_ms: int
    end_ms: int
    vote_type: int
    senders: tuple[int, ...]
    targets: tuple[int, ...]


@dataclass(frozen=True)
class Crash:
    node: int
    at_ms: int
    restart_ms: int
    power_loss: bool  # drop WAL records written without fsync


@dataclass(frozen=True)
class Scenario:
    seed: int
    powers: tuple[int, ...]
    behaviours: dict[int, str] = field(default_factory=dict)
    params: ConsensusParams = SIM_PARAMS
    delay_ms: tuple[int, int] = (1, 20)  # before GST
    post_gst_delay_ms: tuple[int, int] = (1, 20)
    loss: float = 0.0
    duplication: float = 0.0
    partitions: tuple[Partition, ...] = ()
    blackouts: tuple[Blackout, ...] = ()
    crashes: tuple[Crash, ...] = ()
    gst_ms: int = 0
    relay_delay_ms: int = 30  # gossip relay of byzantine half-sends; -1: no relay
    regossip_ms: int = 150
    sync_ms: int = 200
    post_gst_heights: int = 2  # run until every honest node has this many new heights
    max_heights: int = 1_000_000
    # A scripted adversary for targeted tests: drop(sim, frm, to, msg) -> True loses the message
    # (consulted before GST only).
    drop: Callable[["Sim", int, int, Message], bool] | None = None

    @property
    def n(self) -> int:
        return len(self.powers)


def sim_key(i: int) -> PrivateKey:
    return _KEYS[i] if i < len(_KEYS) else PrivateKey.from_int(10_000 + i)


_KEYS = [PrivateKey.from_int(10_000 + i) for i in range(64)]


class Sim:
    def __init__(
        self,
        scenario: Scenario,
        *,
        chain_id: str = "attrchain-sim",
        start_ms: int = 0,
        storages: Sequence[NodeStorage] | None = None,
        verify_mode: str = "shared",
    ) -> None:
        self.scenario = scenario
        self.chain_id = chain_id
        self.params = scenario.params
        self.rng = random.Random(scenario.seed)
        self.now = start_ms
        self.start_ms = start_ms
        self.n = scenario.n
        self.regossip_ms = scenario.regossip_ms
        self.sync_ms = scenario.sync_ms
        self.relay_delay_ms = scenario.relay_delay_ms
        self._queue: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self.stats: Counter[str] = Counter()
        self.verify_mode = verify_mode
        self._shared_cache: dict[tuple[bytes, bytes, bytes], bool] = {}
        self._node_caches: list[dict[tuple[bytes, bytes, bytes], bool]] = [{} for _ in range(self.n)]
        self.keys = [sim_key(i) for i in range(self.n)]
        self._valsets: list[ValidatorSet] = [
            ValidatorSet.new([(k.public_key, p) for k, p in zip(self.keys, scenario.powers)])
        ]
        self.evidence: dict[int, list[DuplicateVoteEvidence]] = {i: [] for i in range(self.n)}
        self.observed_conflicts: set[tuple[int, bytes]] = set()
        self.double_signers_active: set[bytes] = set()
        self.honest = [i for i in range(self.n) if i not in scenario.behaviours]
        self.gst_reached = False
        self.gst_height = 0
        self.gst_round = 0
        self.live_at_ms: int | None = None
        self._heights_changed = False
        self.nodes: list[Any] = []
        for i in range(self.n):
            storage: NodeStorage = storages[i] if storages is not None else MemoryStorage()
            self.nodes.append(self._make_node(i, storage))

    def _make_node(self, i: int, storage: NodeStorage) -> Any:
        behaviour = self.scenario.behaviours.get(i)
        key = self.keys[i]
        if behaviour is None or behaviour == "silent":
            return SimNode(self, i, key, storage)
        others = [j for j in range(self.n) if j != i]
        order = others[:]
        self.rng.shuffle(order)
        halves = (sorted(order[: len(order) // 2]), sorted(order[len(order) // 2 :]))
        if behaviour == "double_sign":
            return DoubleSigner(self, i, key, storage, halves)
        if behaviour == "equivocate":
            return Equivocator(self, i, key, storage, halves)
        if behaviour == "bad_proposer":
            return BadProposer(self, i, key, storage)
        if behaviour == "split_brain":
            return SplitBrain(self, i, key, self._split_brain_halves(halves), self._split_brain_peers(i))
        raise ValueError(f"unknown behaviour {behaviour}")

    def _split_brain_peers(self, i: int) -> list[int]:
        return [j for j, b in sorted(self.scenario.behaviours.items()) if b == "split_brain" and j != i]

    def _split_brain_halves(self, default: tuple[list[int], list[int]]) -> tuple[list[int], list[int]]:
        """The two sides a split-brain node talks to: the first partition's two groups when it has
        two, else a random split; other split-brain nodes are reached side by side instead."""
        brains = set(self._split_brain_peers(-1))
        for p in self.scenario.partitions:
            if len(p.groups) == 2:
                return [j for j in p.groups[0] if j not in brains], [j for j in p.groups[1] if j not in brains]
        return [j for j in default[0] if j not in brains], [j for j in default[1] if j not in brains]

    # ---- validator sets and verification -----------------------------------------------------
    def valset(self, height: int) -> ValidatorSet:
        """The set for ``height``: genesis incremented once per height (fixed membership)."""
        while len(self._valsets) < height:
            self._valsets.append(self._valsets[-1].copy_increment(1))
        return self._valsets[height - 1]

    def verifier_for(self, index: int) -> Callable[[bytes, bytes, bytes], bool]:
        cache = self._shared_cache if self.verify_mode == "shared" else self._node_caches[index]
        stats = self.stats

        def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
            key = (public_key, signature, message)
            hit = cache.get(key)
            if hit is None:
                stats["verifications"] += 1
                hit = cache[key] = ed25519_verify(public_key, signature, message)
            return hit

        return verify

    def verifier_learn(self, index: int, public_key: bytes, signature: bytes, message: bytes) -> None:
        """A node does not need to verify what it signed itself (per-node caches only: the shared
        cache must verify every signature once)."""
        if self.verify_mode == "per_node":
            self._node_caches[index][(public_key, signature, message)] = True

    # ---- scheduling and network --------------------------------------------------------------
    def schedule(self, at: int, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, fn, args))

    def _is_cut(self, a: int, b: int) -> bool:
        if self.gst_reached:
            return False
        for p in self.scenario.partitions:
            if p.start_ms <= self.now - self.start_ms < p.end_ms:
                ga = gb = -1
                for k, g in enumerate(p.groups):
                    if a in g:
                        ga = k
                    if b in g:
                        gb = k
                if ga >= 0 and gb >= 0 and ga != gb:
                    return True
        return False

    def _is_blacked_out(self, frm: int, to: int, msg: Message) -> bool:
        if self.gst_reached or msg[0] != "vote":
            return False
        t = self.now - self.start_ms
        for b in self.scenario.blackouts:
            if b.start_ms <= t < b.end_ms and msg[1].vote.type == b.vote_type and frm in b.senders and to in b.targets:
                return True
        return False

    def send(self, frm: int, to: int, msg: Message, extra_ms: int = 0, side: int | None = None) -> None:
        if frm == to or self._is_cut(frm, to):
            return
        sc = self.scenario
        if sc.blackouts and self._is_blacked_out(frm, to, msg):
            self.stats["blacked_out"] += 1
            return
        if sc.drop is not None and not self.gst_reached and sc.drop(self, frm, to, msg):
            self.stats["dropped"] += 1
            return
        if not self.gst_reached and sc.loss and self.rng.random() < sc.loss:
            self.stats["lost"] += 1
            return
        lo, hi = sc.post_gst_delay_ms if self.gst_reached else sc.delay_ms
        self.stats["sent"] += 1
        self.schedule(self.now + self.rng.randint(lo, hi) + extra_ms, self._deliver, to, frm, msg, side)
        if sc.duplication and self.rng.random() < sc.duplication:
            self.stats["duplicated"] += 1
            self.schedule(self.now + self.rng.randint(lo, hi) + extra_ms, self._deliver, to, frm, msg, side)

    def broadcast(self, frm: int, msg: Message) -> None:
        for j in range(self.n):
            if j != frm:
                self.send(frm, j, msg)

    def _deliver(self, to: int, frm: int, msg: Message, side: int | None) -> None:
        self.stats["delivered"] += 1
        node = self.nodes[to]
        if side is not None and isinstance(node, SplitBrain):
            node.on_side_message(side, frm, msg)
        else:
            node.on_message(frm, msg)

    # ---- observations ------------------------------------------------------------------------
    def on_commit(self, index: int, height: int, block_hash: bytes) -> None:
        self.stats["commits"] += 1
        self._heights_changed = True

    def on_evidence(self, index: int, evidence: DuplicateVoteEvidence) -> None:
        self.evidence[index].append(evidence)

    def honest_heights(self) -> list[int]:
        return [self.nodes[i].storage.chain_height() for i in self.honest]

    # ---- running -----------------------------------------------------------------------------
    def _boot(self, i: int) -> None:
        node = self.nodes[i]
        if not node.alive:
            node.boot()

    def _crash(self, i: int, power_loss: bool) -> None:
        node = self.nodes[i]
        if node.alive:
            node.crash(power_loss)
            self.stats["crashes"] += 1

    def _on_gst(self) -> None:
        self.gst_reached = True
        for i in self.honest:
            self._boot(i)
        self.gst_height = max(self.honest_heights())
        rounds = [
            self.nodes[i].state.round
            for i in self.honest
            if self.nodes[i].state is not None and self.nodes[i].state.height == self.gst_height + 1
        ]
        self.gst_round = max(rounds, default=0)

    def liveness_bound_ms(self) -> int:
        """Time after GST within which every honest node must commit a new height.

        From the highest round honest nodes are in at GST, allow n + 3 more rounds (the weighted
        round robin gives honest validators, who hold more than 2/3 of the power, the proposer
        slot in most of them), each taking at most its three timeouts plus a message delay per
        step, plus one commit wait and block-sync and re-gossip intervals for nodes that lag.
        """
        p = self.params
        delay = self.scenario.post_gst_delay_ms[1] + max(self.relay_delay_ms, 0)
        total = 0
        for r in range(self.gst_round, self.gst_round + self.n + 4):
            total += p.timeout_propose(r) + p.timeout_prevote(r) + p.timeout_precommit(r) + 4 * delay
        return total + p.timeout_commit_ms + 2 * self.sync_ms + 2 * self.regossip_ms + 4 * delay

    def run(self) -> "Sim":
        sc = self.scenario
        for i in range(self.n):
            if sc.behaviours.get(i) != "silent":
                self.schedule(self.start_ms, self._boot, i)
        for c in sc.crashes:
            self.schedule(self.start_ms + c.at_ms, self._crash, c.node, c.power_loss)
            self.schedule(self.start_ms + c.restart_ms, self._boot, c.node)
        self.schedule(self.start_ms + sc.gst_ms, self._on_gst)
        hard_stop: int | None = None
        queue = self._queue
        while queue:
            at, _, fn, args = heapq.heappop(queue)
            self.now = at
            fn(*args)
            if self.gst_reached and hard_stop is None:
                hard_stop = self.now + 2 * self.liveness_bound_ms()
                self._heights_changed = True
            if hard_stop is not None and self.now >= hard_stop:
                break
            if not self._heights_changed:
                continue
            self._heights_changed = False
            heights = self.honest_heights()
            if not heights:
                continue
            if self.gst_reached:
                if self.live_at_ms is None and min(heights) > self.gst_height:
                    self.live_at_ms = self.now
                if min(heights) >= self.gst_height + sc.post_gst_heights:
                    break
            if max(heights) >= sc.max_heights:
                break
        return self


def random_scenario(seed: int, n: int) -> Scenario:
    """A seeded random scenario: unequal stake, byzantine power below 1/3, faults before GST."""
    rng = random.Random(seed * 1_000_003 + n)
    powers = tuple(rng.choice((1, 2, 3, 5, 8, 13)) * rng.randint(1, 4) for _ in range(n))
    total = sum(powers)
    order = list(range(n))
    rng.shuffle(order)
    behaviours: dict[int, str] = {}
    byz_power = 0
    budget = rng.randint(0, n // 3 + 1)
    for i in order:
        if len(behaviours) >= budget:
            break
        if 3 * (byz_power + powers[i]) < total:
            behaviours[i] = rng.choice(BEHAVIOURS)
            byz_power += powers[i]
    honest = [i for i in range(n) if i not in behaviours]
    gst = rng.randint(600, 2000)
    partitions: list[Partition] = []
    t = 0
    for _ in range(rng.randint(0, 2)):
        start = rng.randint(t, gst - 100)
        end = rng.randint(start + 50, gst)
        nodes = list(range(n))
        rng.shuffle(nodes)
        cut = rng.randint(1, n - 1)
        partitions.append(Partition(start, end, (tuple(sorted(nodes[:cut])), tuple(sorted(nodes[cut:])))))
        t = end
        if t >= gst - 150:
            break
    blackouts: list[Blackout] = []
    for _ in range(rng.randint(0, 2)):
        start = rng.randint(0, gst - 100)
        senders = tuple(sorted(rng.sample(range(n), rng.randint(1, n))))
        targets = tuple(sorted(rng.sample(range(n), rng.randint(1, n - 1))))
        end = rng.randint(start + 50, gst)
        blackouts.append(Blackout(start, end, rng.choice((PREVOTE, PRECOMMIT)), senders, targets))
    crashes: list[Crash] = []
    for i in rng.sample(honest, k=rng.randint(0, min(2, len(honest)))):
        at = rng.randint(0, gst - 50)
        crashes.append(Crash(i, at, rng.randint(at + 1, gst), rng.random() < 0.5))
    dmax = rng.choice((5, 20, 40, 80))
    return Scenario(
        seed=seed,
        powers=powers,
        behaviours=behaviours,
        delay_ms=(1, dmax),
        post_gst_delay_ms=(1, 20),
        loss=rng.choice((0.0, 0.05, 0.2)),
        duplication=rng.choice((0.0, 0.05)),
        partitions=tuple(partitions),
        blackouts=tuple(blackouts),
        crashes=tuple(crashes),
        gst_ms=gst,
    )
