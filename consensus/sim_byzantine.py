"""Byzantine validators for the simulator: the honest driver with one behaviour changed.

- ``DoubleSigner`` signs every vote twice, for two different values, one to each half;
- ``Equivocator`` proposes two different fresh blocks, one to each half;
- ``BadProposer`` proposes blocks the application rejects;
- ``SplitBrain`` runs two honest machines with one key, each talking to one half.

"Halves" model the worst case of gossip: each half gets one version first, and (unless the
scenario disables relaying) gossip relays the other version to it ``relay_delay_ms`` later.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from consensus.events import ProposalReceived, VoteReceived
from consensus.sim_node import Message, MemoryStorage, NodeStorage, SimNode, make_block
from consensus.votes import NIL
from state.block import Proposal, SignedProposal, SignedVote, Vote
from state.crypto import PrivateKey, sha256

if TYPE_CHECKING:
    from consensus.sim import Sim


class _Byzantine(SimNode):
    honest = False

    def __init__(self, sim: "Sim", index: int, key: PrivateKey, storage: NodeStorage, halves: tuple[list[int], list[int]]) -> None:
        super().__init__(sim, index, key, storage)
        self.halves = halves

    def _split_send(self, first: Message, second: Message) -> None:
        """``first`` to one half, ``second`` to the other; gossip relays each to the rest later."""
        a, b = self.halves
        for j in a:
            self.sim.send(self.index, j, first)
        for j in b:
            self.sim.send(self.index, j, second)
        if self.sim.relay_delay_ms >= 0:
            for j in b:
                self.sim.send(self.index, j, first, self.sim.relay_delay_ms)
            for j in a:
                self.sim.send(self.index, j, second, self.sim.relay_delay_ms)


class DoubleSigner(_Byzantine):
    """Signs every vote twice, for two different values, and sends one to each half."""

    def _sign_vote(self, vote: Vote) -> None:
        chain = self.sim.chain_id
        other = replace(vote, block_hash=NIL if vote.block_hash else sha256(b"fake|%d|%d" % (vote.height, vote.round)))
        sv = SignedVote(vote, self.key.sign(vote.sign_bytes(chain)))
        sv2 = SignedVote(other, self.key.sign(other.sign_bytes(chain)))
        self.sim.double_signers_active.add(self.address)
        self.own.append(("vote", sv))
        self._split_send(("vote", sv), ("vote", sv2))
        self._feed(VoteReceived(sv, self.sim.now), True)


class Equivocator(_Byzantine):
    """As proposer, signs two different fresh blocks and sends one to each half."""

    def _sign_proposal(self, proposal: Proposal) -> None:
        body = self.blocks.get(proposal.block_hash)
        if proposal.pol_round != -1 or body is None:
            super()._sign_proposal(proposal)
            return
        chain = self.sim.chain_id
        body2 = make_block(proposal.height, self.index, proposal.round, 1)
        other = replace(proposal, block_hash=sha256(body2))
        sp = SignedProposal(proposal, self.key.sign(proposal.sign_bytes(chain)))
        sp2 = SignedProposal(other, self.key.sign(other.sign_bytes(chain)))
        self.own.append(("proposal", sp, body))
        self._split_send(("proposal", sp, body), ("proposal", sp2, body2))
        self._feed(ProposalReceived(sp, True, self.sim.now), True, body)


class BadProposer(SimNode):
    """Proposes blocks that the application rejects."""

    honest = False

    def build_block(self, height: int, round_: int) -> bytes:
        return make_block(height, self.index, round_, invalid=True)


class SplitBrain:
    """One key, two honest machines, each talking to one half of the network: it equivocates and
    double-signs whenever the halves' views differ. With more than 1/3 of the power it can fork."""

    honest = False

    def __init__(
        self, sim: "Sim", index: int, key: PrivateKey, halves: tuple[list[int], list[int]], peers: list[int]
    ) -> None:
        self.peers = peers  # other split-brain nodes: brain i talks to their brain i
        self.index = index
        self.address = key.address
        self.halves = halves
        self.brains: list[SimNode] = []
        for i, half in enumerate(halves):
            brain = SimNode(sim, index, key, MemoryStorage())
            brain.honest = False
            brain.targets = list(half)
            brain.variant = i + 2
            brain.broadcast = self._brain_broadcast(brain, i)  # type: ignore[method-assign]
            self.brains.append(brain)
        self.sim = sim
        self.storage = self.brains[0].storage
        self.alive = False

    def _brain_broadcast(self, brain: SimNode, i: int) -> Any:
        def broadcast(msg: Message) -> None:
            for j in self.halves[i]:
                self.sim.send(self.index, j, msg)
            for j in self.peers:
                self.sim.send(self.index, j, msg, side=i)
            if self.sim.relay_delay_ms >= 0:
                for j in self.halves[1 - i]:
                    self.sim.send(self.index, j, msg, self.sim.relay_delay_ms)

        return broadcast

    def boot(self) -> None:
        self.alive = True
        for b in self.brains:
            b.boot()

    def crash(self, power_loss: bool) -> None:
        self.alive = False
        for b in self.brains:
            b.crash(power_loss)

    def on_message(self, frm: int, msg: Message) -> None:
        brain = self.brains[1] if frm in self.halves[1] else self.brains[0]
        brain.on_message(frm, msg)

    def on_side_message(self, side: int, frm: int, msg: Message) -> None:
        self.brains[side].on_message(frm, msg)
