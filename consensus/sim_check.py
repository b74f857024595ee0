"""The checker every simulated run must pass. Each rule returns violations as sentences.

- agreement: no two honest nodes hold different blocks at one height (decided or block-synced);
- prefix: every honest chain is contiguous from height 1 and a prefix of every longer one;
- liveness: after GST every honest node commits a new height within ``Sim.liveness_bound_ms``;
- evidence: every conflicting vote pair an honest machine was fed at its height produced
  evidence naming the signer, and every piece of evidence verifies against the validator set
  (``reported_double_signers`` lets a test also require that double-signers get reported);
- guard: an honest node that never crashed never had a signature refused, and no honest node
  signed two different messages for one (height, round, step).
"""

from __future__ import annotations

from consensus.evidence import InvalidEvidence, verify_duplicate_vote_evidence
from consensus.sim import Sim


def check_agreement(sim: Sim) -> list[str]:
    out: list[str] = []
    by_height: dict[int, dict[bytes, list[int]]] = {}
    for i in sim.honest:
        for h, block_hash in enumerate(sim.nodes[i].storage.chain_hashes(), start=1):
            by_height.setdefault(h, {}).setdefault(block_hash, []).append(i)
    for h in sorted(by_height):
        if len(by_height[h]) > 1:
            groups = "; ".join(f"{bh.hex()[:12]} by {nodes}" for bh, nodes in sorted(by_height[h].items()))
            out.append(f"fork at height {h}: {groups}")
    return out


def check_prefix(sim: Sim) -> list[str]:
    chains = sorted((sim.nodes[i].storage.chain_hashes() for i in sim.honest), key=len)
    out = []
    for shorter, longer in zip(chains, chains[1:]):
        if longer[: len(shorter)] != shorter:
            out.append("an honest chain is not a prefix of a longer honest chain")
    return out


def check_liveness(sim: Sim) -> list[str]:
    if not sim.gst_reached:
        return ["the run ended before GST"]
    bound = sim.liveness_bound_ms()
    deadline = sim.start_ms + sim.scenario.gst_ms + bound
    if sim.live_at_ms is None or sim.live_at_ms > deadline:
        heights = sim.honest_heights()
        return [
            f"no new height on every honest node within {bound} ms after GST "
            f"(height at GST {sim.gst_height}, honest heights now {heights}, round at GST {sim.gst_round})"
        ]
    return []


def check_evidence(sim: Sim) -> list[str]:
    out: list[str] = []
    named: dict[int, set[bytes]] = {i: set() for i in sim.honest}
    for i in sim.honest:
        for ev in sim.evidence[i]:
            accused = ev.vote_a.vote.validator
            named[i].add(accused)
            try:
                verify_duplicate_vote_evidence(sim.chain_id, sim.valset(ev.vote_a.vote.height), ev)
            except InvalidEvidence as exc:
                out.append(f"node {i} produced invalid evidence: {exc}")
    for i, accused in sorted(sim.observed_conflicts):
        if i in named and accused not in named[i]:
            out.append(f"node {i} was fed conflicting votes by {accused.hex()[:12]} but found no evidence")
    return out


def check_guard(sim: Sim) -> list[str]:
    out: list[str] = []
    crashed = {c.node for c in sim.scenario.crashes}
    for i in sim.honest:
        node = sim.nodes[i]
        if node.refusals and i not in crashed:
            out.append(f"honest node {i} had a signature refused without ever crashing")
        conflicts = getattr(node.storage, "conflicting_signatures", 0)
        if conflicts:
            out.append(f"honest node {i} signed {conflicts} conflicting messages")
    return out


def reported_double_signers(sim: Sim) -> tuple[set[int], set[int]]:
    """(double_sign validators that signed conflicting votes, those named by honest evidence)."""
    named = {ev.vote_a.vote.validator for i in sim.honest for ev in sim.evidence[i]}
    active = {
        j
        for j, b in sim.scenario.behaviours.items()
        if b == "double_sign" and sim.keys[j].address in sim.double_signers_active
    }
    return active, {j for j in active if sim.keys[j].address in named}


def check_run(sim: Sim, liveness: bool = True) -> list[str]:
    """All violations of a finished run (empty when it passes)."""
    out = check_agreement(sim) + check_prefix(sim) + check_evidence(sim) + check_guard(sim)
    if liveness:
        out += check_liveness(sim)
    return out
