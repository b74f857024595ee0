"""A real malicious peer process (devnet/byzantine.py) against a 4-validator devnet (issue 12, A5).

One devnet for the module; each scenario starts a fresh malicious process (a new peer id, so bans
from an earlier scenario do not shield the next), lets it attack for ATTACK_S seconds, and checks:
- the honest validators kept committing: no gap over MAX_GAP_MS between consecutive commits (block
  times, which are BFT times from the validators' own clocks) from the attack's start to its end;
- every honest node's peak RSS (VmHWM, /proc/<pid>/status) stayed under RSS_BOUND_MB;
- no honest node exited.
For the sync attacks the liar is also scored down and banned, visibly in `net_info`.

Where the attacks land, with direct consensus streams on (the default, docs/p2p.md "Direct
consensus streams"): a validator leaves the proposal and vote topics once every other validator
streams to it, so a gossip flood reaches only nodes still subscribed.
- Gossip floods: the byzantine validator below has no node, so no honest validator holds a stream
  from it and all four stay on the topics (the gossip fallback of a validator whose stream is
  down); an observer full node listens too. The attack starts once a peer subscribes.
- The same floods on the direct protocol: the attacker opens streams with the byzantine
  validator's genuine hello (its key is the attacker's), so they reach validators that have left
  the topics; every honest validator must ban it. A non-validator's hellos in a loop are refused
  and banned (`hello-flood`).
- The sync attacks and hello-flood wait for no topic, only for connections.
- Last, once the evidence scenario has removed the byzantine validator, every honest validator
  streams to every other one and leaves the topics: the chain commits under a gossip flood that
  only the observer receives, and the attacker, a plain libp2p subscriber (as a js-libp2p observer
  would be), still hears every proposal and vote.

The network: four honest validator nodes plus a fifth validator with a small stake and no node, a
byzantine validator whose key only the attacker uses (it signs the double votes of the evidence
scenario). When the evidence slashes and removes it, four equal validators remain, and any three
still commit. (Before, the attacker held honest node3's key; its removal left three validators, all
three needed for every commit, so one node slowed by this 2-core machine's load failed a round and
the gap bound, 1 in ~7 module runs: a test of the machine, not of the node.)
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devnet import launcher
from devnet.launcher import Layout, NodeSpec
from node.config import Home
from e2e_kit import describe, wait_for_heights
from netkit import height_of, node_log, rpc, rpc_batch, running_devnet, try_rpc, wait_until

pytestmark = pytest.mark.multinode

REPO = Path(__file__).resolve().parent.parent
ATTACK_S = 6.0
MAX_GAP_MS = 5_000
# A 4-validator devnet node idles at ~110-130 MB RSS on this machine; 400 MB leaves room for the
# bounded buffers (inboxes: 32 MiB per topic, 8 MiB per peer; future messages, candidates) and
# fails for the unbounded ones this harness found (795 MB after 300 bogus proposals).
RSS_BOUND_MB = 400
HONEST = [0, 1, 2, 3]  # the validator nodes that run
BYZANTINE = 4  # a validator whose key only the attacker uses: no node, a small stake
BYZANTINE_STAKE = launcher.VALIDATOR_STAKE // 1000  # 0.1% of an honest validator's power: never proposes here
OBSERVER = BYZANTINE + 1  # a full node (no validator key): always on the consensus topics
# floods on direct consensus streams, opened with the byzantine validator's hello, to every honest validator
DIRECT = ["--via", "direct", "--validator-key", str(BYZANTINE), "--peers", str(len(HONEST))]
# A 1 s commit wait (the devnet preset's is longer, FAST's 50 ms): evidence for the next height
# accepted during it reached the next proposer's block and crashed it before issue 12, and at
# 50 ms the attacker rarely hit the window. ~1.1 s per block keeps the 5 s gap bound meaningful.
# A window long enough that the absent byzantine validator is not jailed for downtime before the
# evidence scenario (the devnet's 100-block window would jail it after 50 missed blocks).
PARAMS = {"timeouts": {"commit_ms": 1000, "propose_ms": 1000}, "staking": {"signed_blocks_window": 2000}}


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    with running_devnet(tmp_path_factory.mktemp("byz"), len(HONEST) + 1, params=PARAMS, start=HONEST,
                        stakes={BYZANTINE: BYZANTINE_STAKE}, direct=True) as layout:
        observer = launcher.add_full_node(layout)
        assert observer.index == OBSERVER
        layout.save()  # the attacker dials every node in devnet.json
        launcher.start_node(layout, observer)
        try:
            wait_for_heights(layout, [layout.nodes[i] for i in [*HONEST, OBSERVER]], 2, 60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{dead_logs(layout)}") from None
        yield layout


def dead_logs(layout: Layout) -> str:
    """The last lines of the log of every node that is not running (for failure messages)."""
    tails = []
    for spec in layout.nodes:
        if launcher.read_pid(layout, spec) is None:
            lines = node_log(layout, spec).splitlines()[-15:]
            tails.append(f"--- {spec.name} (exited):\n" + "\n".join(lines))
    return "\n".join(tails)


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


class Attacker:
    """The malicious process and the JSON events it printed."""

    def __init__(self, layout: Layout, attack: str, extra: list[str]) -> None:
        # stderr to a file: a pipe nobody reads until the end fills with its libp2p warnings and
        # blocks the attacker (it did, flooding peers that are not subscribed to the topic)
        self.log = layout.dir / f"attacker-{attack}-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "devnet.byzantine", "--dir", str(layout.dir), "--attack", attack,
                 "--duration", str(ATTACK_S), *extra],
                stdout=subprocess.PIPE, stderr=err, cwd=str(REPO),
                env=dict(os.environ, PYTHONPATH=str(REPO)),
            )
        self.events: list[dict[str, Any]] = []
        self._buffer = b""

    def wait_event(self, ev: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event["ev"] == ev:
                    return event
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select([self.proc.stdout], [], [], 0)[0]:
                if self.proc.poll() is None:  # stuck: its stacks (faulthandler) on stderr, then stop it
                    self.proc.send_signal(signal.SIGUSR1)
                    time.sleep(0.5)  # let it write them; no event to wait for
                    self.proc.kill()
                    self.proc.wait(10)
                err = self.log.read_text(errors="replace")[-4000:]
                raise AssertionError(f"attacker: no {ev!r} event within {timeout} s; events {self.events}; {err}")
            if select.select([self.proc.stdout], [], [], min(left, 0.5))[0]:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                self._buffer += chunk
                *lines, self._buffer = self._buffer.split(b"\n")
                self.events += [json.loads(line) for line in lines if line.strip()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def block_times(spec: NodeSpec, low: int, high: int) -> list[int]:
    if high < low:
        return []
    blocks = rpc_batch(spec, "block", [{"height": h} for h in range(low, high + 1)])
    return [b["block"]["header"]["time_ms"] for b in blocks]


def run_scenario(layout: Layout, attack: str, extra: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    specs = [layout.nodes[i] for i in HONEST]
    watched = [*specs, layout.nodes[OBSERVER]]
    pids = {s.name: launcher.read_pid(layout, s) for s in watched}
    assert all(pids.values()), f"a node is down before {attack}: {describe(layout)}"
    attacker = Attacker(layout, attack, list(extra))
    try:
        ready = attacker.wait_event("ready", 40)
        t0 = int(time.time() * 1000)
        h0 = min(height_of(s) or 0 for s in specs)
        # the honest validators on the consensus topics when the attack starts (gossip reaches only them)
        listening = [s.name for s in specs if all(direct_report(s)["subscribed"].values())]
        done = attacker.wait_event("done", ATTACK_S + 30)
        t1 = int(time.time() * 1000)
    finally:
        attacker.stop()
    for spec in watched:
        pid = pids[spec.name]
        assert launcher.is_alive(pid), f"{spec.name} exited during {attack}: {describe(layout)}\n{dead_logs(layout)}"
        rss = peak_rss_mb(pid)
        assert rss < RSS_BOUND_MB, f"{spec.name} peaked at {rss:.0f} MB RSS during {attack}"
    reference = specs[0]
    h1 = height_of(reference) or 0
    times = sorted([t0, t1, *block_times(reference, h0 + 1, h1)])
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) <= MAX_GAP_MS, (
        f"{attack}: a gap of {max(gaps)} ms between commits (heights {h0}..{h1}; gaps {gaps}): {describe(layout)}\n"
        + rounds_log(layout, specs))
    assert h1 - h0 >= 3, f"{attack}: only {h1 - h0} blocks committed in {ATTACK_S} s"
    # every honest node is still on the same chain and caught up
    wait_for_heights(layout, specs, h1, 30)
    return {"ready": ready, "done": done, "peer_id": ready["peer_id"], "blocks": h1 - h0, "listening": listening}


def direct_report(spec: NodeSpec) -> dict[str, Any]:
    report: dict[str, Any] = rpc(spec, "net_info")["direct_consensus"]
    assert report["enabled"], f"{spec.name}: direct consensus is off (it is on by default)"
    return report


def rounds_log(layout: Layout, specs: list[NodeSpec]) -> str:
    """Each honest node's log lines about rounds past the first and warnings (for a failed gap)."""
    out = []
    for spec in specs:
        lines = [line for line in node_log(layout, spec).splitlines()
                 if ": round " in line or " WARNING " in line or " ERROR " in line]
        out.append(f"--- {spec.name}:\n" + "\n".join(lines[-20:]))
    return "\n".join(out)


def validator_addresses(spec: NodeSpec) -> set[str]:
    """The addresses in the validator set of the node's latest height."""
    return {v["address"] for v in rpc(spec, "validators", {"per_page": 100})["validators"]}


def banned_by(spec: NodeSpec, peer_id: str) -> dict[str, Any] | None:
    info = try_rpc(spec, "net_info") or {}
    return next((b for b in info.get("banned", []) if b["id"] == peer_id), None)


def assert_banned_by_its_peers(layout: Layout, peer: str, reason: str | tuple[str, ...],
                               among: list[int] = HONEST, at_least: int = 2,
                               elsewhere: tuple[str, ...] | None = None) -> None:
    """At least ``at_least`` of the nodes ``among`` (default: the honest validators) banned the
    attacker, and every node that banned it says why in `net_info`.

    Its gossip reaches only the nodes in its own mesh (at least GossipSub's D_low = 2): honest
    nodes authenticate before forwarding, so the others never see it and have nothing to ban."""
    def banning(indices: list[int]) -> list[dict[str, Any]]:
        return [b for i in indices if (b := banned_by(layout.nodes[i], peer)) is not None]

    wait_until(lambda: len(banning(among)) >= at_least, 10, f"at least {at_least} of nodes {among} to ban {peer}")
    for i, record in [(s.index, b) for s in layout.nodes if (b := banned_by(s, peer)) is not None]:
        reasons = (reason,) if isinstance(reason, str) else reason
        if elsewhere is not None and i not in among:
            reasons = elsewhere
        assert any(r in record["ban_reason"] for r in reasons), (
            f"{layout.nodes[i].name} banned {peer[-8:]} for {record['ban_reason']!r} "
            f"(offences {record.get('offences')}, bans {record.get('bans')}), expected one of {reasons}")


def assert_gossip_reached_validators(result: dict[str, Any]) -> None:
    """A gossip flood was aimed at validators: all four were on the topics when it started
    (the byzantine validator has no node, so none holds every direct stream)."""
    assert len(result["listening"]) == len(HONEST), f"validators on the topics: {result['listening']}"


def test_proposals_from_a_non_validator(devnet: Layout) -> None:
    result = run_scenario(devnet, "nonvalidator-proposals", ["--rate", "20"])
    assert result["done"]["sent"] > 10
    assert_gossip_reached_validators(result)
    assert_banned_by_its_peers(devnet, result["peer_id"], "consensus message from a non-validator")


def test_oversized_and_future_height_floods(devnet: Layout) -> None:
    result = run_scenario(devnet, "future-flood", ["--rate", "10"])
    assert result["done"]["sent"] > 50
    assert_gossip_reached_validators(result)
    assert_banned_by_its_peers(devnet, result["peer_id"], "")  # non-validator proposals or bad signatures


def test_votes_with_bad_signatures(devnet: Layout) -> None:
    result = run_scenario(devnet, "bad-signature-votes", ["--rate", "50"])
    assert result["done"]["sent"] > 200
    assert_gossip_reached_validators(result)
    assert_banned_by_its_peers(devnet, result["peer_id"], "bad signature")


@pytest.mark.parametrize("attack, rate, reason", [
    ("bad-signature-votes", "50", "bad signature: direct message on"),
    ("nonvalidator-proposals", "20", "consensus message from a non-validator: direct message on"),
    ("future-flood", "10", "direct message on"),
])
def test_floods_on_direct_streams(devnet: Layout, attack: str, rate: str, reason: str) -> None:
    """The floods above sent on direct streams (a validator's genuine hello: the byzantine
    validator's key is the attacker's): each message passes the topic's checks before delivery, so
    every honest validator it streams to bans it, by the offence its messages commit there."""
    result = run_scenario(devnet, attack, [*DIRECT, "--rate", rate])
    assert result["ready"]["via"] == "direct"
    assert result["done"]["sent"] >= 1
    # The observer (a full node) gets the flood relayed by the validators as the attacker's own
    # GossipSub messages (docs/p2p.md "Relay on request") and may ban it by the gossip path's
    # offences: a future-height vote a validator could not check yet fails the observer's check
    # when the observer is one height ahead (fresh-clone CI 2026-12-08: "bad signature: vote of ...").
    assert_banned_by_its_peers(devnet, result["peer_id"], reason, at_least=len(HONEST),
                               elsewhere=(reason, "bad signature", "consensus message from a non-validator"))


def test_hello_flood_from_a_non_validator(devnet: Layout) -> None:
    """Direct streams opened in a loop with a well-formed hello from a key in no validator set:
    never accepted, each refusal scored, the opener banned by every validator."""
    result = run_scenario(devnet, "hello-flood", ["--rate", "20", "--peers", str(len(HONEST))])
    assert result["done"]["hellos_accepted"] == 0
    assert result["done"]["hellos_refused"] >= 10
    assert_banned_by_its_peers(devnet, result["peer_id"], "direct consensus stream from a non-validator",
                               at_least=len(HONEST))


def test_stalling_sync_peer_claiming_a_million_blocks_more(devnet: Layout) -> None:
    """The lying/stalling sync peer of issue 12 item 4: before, consensus sat paused while it
    stalled (95 -> 14 blocks in 30 s); now downloads never pause consensus and it is banned."""
    result = run_scenario(devnet, "stalling-sync")
    assert result["done"]["sync_answers"] > 0, "no node asked the liar anything"


def test_lying_sync_peer_is_banned(devnet: Layout) -> None:
    result = run_scenario(devnet, "lying-sync")
    assert result["done"]["sync_answers"] > 0
    assert_banned_by_its_peers(devnet, result["peer_id"], "lied about its height")


def test_replayed_old_messages(devnet: Layout) -> None:
    result = run_scenario(devnet, "replay", ["--rate", "200"])
    assert result["done"]["recorded"] > 0 and result["done"]["sent"] > 0
    assert_gossip_reached_validators(result)


def test_evidence_for_the_height_in_progress(devnet: Layout) -> None:
    """Last: the byzantine validator signs double votes for the height in progress (before issue 12,
    evidence accepted for it crashed the next proposer); it is slashed and leaves the set, the four
    honest validators go on."""
    byzantine = devnet.nodes[BYZANTINE]
    key = Home(devnet.dir / byzantine.home).validator_key()
    assert key is not None
    address = "0x" + key.address.hex()
    assert address in validator_addresses(devnet.nodes[0]), "the byzantine validator is not in the set"
    result = run_scenario(devnet, "evidence-now", ["--rate", "20", "--validator-key", str(BYZANTINE)])
    assert result["done"]["sent"] > 20
    wait_until(lambda: address not in validator_addresses(devnet.nodes[0]), 10,
               "the byzantine validator to be removed from the set by its evidence")
    assert rpc(devnet.nodes[0], "health") == {}


def test_validators_off_the_topics_a_subscriber_still_sees_consensus(devnet: Layout) -> None:
    """After the evidence scenario (it removed the byzantine validator, so this runs after it):
    every honest validator streams to each other one and leaves the consensus topics. A gossip flood
    of bad-signature votes then reaches only the observer full node, which bans it; the chain keeps
    committing; and the attacker, a plain libp2p peer subscribed to the topics (what a js-libp2p
    observer does), hears every height's proposal and votes from the validators' publishes."""
    validators = [devnet.nodes[i] for i in HONEST]
    wait_until(lambda: all(not any(direct_report(v)["subscribed"].values()) for v in validators), 30,
               "every honest validator to leave the consensus topics")
    result = run_scenario(devnet, "bad-signature-votes", ["--rate", "50"])
    assert result["listening"] == [], result["listening"]
    assert result["done"]["sent"] > 200
    # the votes are signed as the byzantine validator, which the evidence scenario just removed from
    # the set: refused either for their signature or as a non-validator's (seen in CI), banned both ways
    assert_banned_by_its_peers(devnet, result["peer_id"], ("bad signature", "from a non-validator"),
                               among=[OBSERVER], at_least=1)
    heard, blocks = result["done"]["heard"], result["blocks"]
    # each committed height: its proposal and at least three prevotes and three precommits
    assert heard["proposals"] >= blocks - 1 and heard["votes"] >= 6 * (blocks - 1), (heard, blocks)
