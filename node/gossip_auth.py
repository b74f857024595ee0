"""The libp2p topic validators of a node: authenticate gossip before it is delivered or forwarded.

py-libp2p runs these synchronously on every received message, before the message reaches the
node's inbox and before it is forwarded to other peers. So what they reject costs the network one
hop, not one hop per node: before, a proposal from a non-validator passed a structural check here,
was forwarded by every honest node to its mesh and only then refused by each driver; at ~700 KB
per message that forwarding alone kept a 4-validator devnet from committing (gaps of 8 s,
tests/test_e2e_byzantine_peers.py).

Checked here (cheap: one decode, one validator-set lookup, one Ed25519 verification):
- votes: canonical decoding, the signer in the validator set of the vote's height, the signature;
- proposals: the envelope ``[signed proposal, block bytes]`` without decoding the block, the
  proposer in the validator set of that height, the signature (the round's proposer, the block
  and its execution stay with the driver, which has the round state);
- evidence and transaction batches: structure only (the driver and the mempool check the rest).
A verdict is ``True`` (accept), ``False`` (drop quietly: an old height, a race an honest peer can
lose) or an ``Offence`` (drop and score the originator, ``p2p/scoring.py``). Heights whose
validator set is not stored yet (more than two ahead: this node is behind) are accepted
unauthenticated; the driver keeps them in its bounded future buffer or starts block sync.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from p2p.scoring import Offence
from state.block import MAX_BLOCK_BYTES, DuplicateVoteEvidence, SignedProposal, SignedVote
from state.chain import Chain
from state.codec import CodecError, decode, unpack
from state.crypto import verify
from state.errors import InvalidBlock
from state.staking.validator_set import ValidatorSet

from node.executor import validator_set_at

Verdict = bool | Offence
VALSET_CACHE = 8  # validator sets kept (by height): the heights in progress and the next two


class DecodedVotes:
    """Votes this authenticator accepted, decoded, by their exact bytes, for the consensus driver
    to take instead of decoding them again (a 16-validator node receives ~30 a height; decoding
    was a tenth of its idle CPU). Bounded: the oldest goes first; a vote the driver never takes
    (dropped on the way) is forgotten. Decoding is deterministic and the result immutable."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._votes: OrderedDict[bytes, SignedVote] = OrderedDict()

    def remember(self, data: bytes, vote: SignedVote) -> None:
        if len(self._votes) >= self.capacity:
            self._votes.popitem(last=False)
        self._votes[data] = vote

    def take(self, data: bytes) -> SignedVote | None:
        return self._votes.pop(data, None)


class GossipAuthenticator:
    """Per-topic validators for ``P2PService(validators=...)`` of one node's chain."""

    def __init__(self, chain: Chain, verify: Callable[[bytes, bytes, bytes], bool] = verify,
                 decoded: DecodedVotes | None = None) -> None:
        """``verify``: Ed25519 verification; the node passes its consensus driver's
        ``VerifiedCache``, so a vote or proposal verified here is not verified again there;
        ``decoded``: where accepted votes are left decoded for the driver."""
        self.chain = chain
        self._verify = verify
        self._decoded = decoded
        self._valsets: OrderedDict[int, ValidatorSet] = OrderedDict()

    def validators(self, topic: dict[str, str]) -> dict[str, Any]:
        """``{topic name: validator}`` for the node's four topics (keys of ``topic``: kinds)."""
        return {
            topic["txs"]: self.tx_batch,
            topic["proposals"]: self.proposal,
            topic["votes"]: self.vote,
            topic["evidence"]: self.evidence,
        }

    def _valset(self, height: int) -> ValidatorSet | None:
        """The validator set of ``height`` once stored (heights up to the chain's + 2)."""
        cached = self._valsets.get(height)
        if cached is not None:
            return cached
        if height > self.chain.height + 2:
            return None
        try:
            valset = validator_set_at(self.chain.db.view(), height)
        except InvalidBlock:
            return None
        self._valsets[height] = valset
        while len(self._valsets) > VALSET_CACHE:
            self._valsets.popitem(last=False)
        return valset

    def _is_old(self, height: int) -> bool:
        # the last committed height's precommits still help a peer one height behind
        return height < self.chain.height

    def vote(self, data: bytes) -> Verdict:
        try:
            sv = decode(SignedVote, data)
        except CodecError:
            return Offence.MALFORMED
        v = sv.vote
        if self._is_old(v.height):
            return False
        valset = self._valset(v.height)
        if valset is None:
            return True
        member = valset.get_by_address(v.validator)
        if member is None:
            return Offence.NOT_A_VALIDATOR
        if not self._verify(member.public_key, sv.signature, v.sign_bytes(self.chain.chain_id)):
            return Offence.BAD_SIGNATURE
        if self._decoded is not None:
            self._decoded.remember(data, sv)
        return True

    def proposal(self, data: bytes) -> Verdict:
        try:
            wire = unpack(data)
            if not (isinstance(wire, list) and len(wire) == 2 and type(wire[1]) is bytes):
                return Offence.MALFORMED
            sp = SignedProposal.from_wire(wire[0])  # type: ignore[attr-defined]
        except (CodecError, TypeError, KeyError, IndexError):
            return Offence.MALFORMED
        if len(wire[1]) > MAX_BLOCK_BYTES:
            return Offence.OVERSIZED
        p = sp.proposal
        if self._is_old(p.height):
            return False
        valset = self._valset(p.height)
        if valset is None:
            return True
        member = valset.get_by_address(p.proposer)
        if member is None:
            return Offence.NOT_A_VALIDATOR
        if not self._verify(member.public_key, sp.signature, p.sign_bytes(self.chain.chain_id)):
            return Offence.BAD_SIGNATURE
        return True

    def evidence(self, data: bytes) -> Verdict:
        try:
            decode(DuplicateVoteEvidence, data)
        except CodecError:
            return Offence.MALFORMED
        return True

    def tx_batch(self, data: bytes) -> Verdict:
        try:
            batch = unpack(data)
        except CodecError:
            return Offence.MALFORMED
        if not (isinstance(batch, list) and all(type(x) is bytes for x in batch)):
            return Offence.MALFORMED
        return True
