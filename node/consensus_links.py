"""The node's side of direct consensus streams (``p2p/direct.py``, docs/p2p.md "Direct consensus
streams"): the hello that binds a node's peer id to its validator key, the check of a peer's hello,
and the loop that leaves the consensus gossip topics while every other validator reaches this node
directly (and joins them again at once when one does not).

Hello: canonical msgpack ``[validator public key (32 bytes), signature (64 bytes)]``, the signature
by the validator key over ``sign_bytes("attrchain/direct-hello/1", chain_id, peer id bytes)`` (the
opener's libp2p peer id as multihash bytes; Noise has already proven the opener holds it). So a
hello cannot be replayed by another node, and only a member of the validator set of the next
height (or the one after) gets past it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import trio
from libp2p.peer.id import ID

from p2p import topics
from p2p.direct import DirectSpec
from p2p.scoring import Offence
from state.codec import CodecError, pack, unpack
from state.crypto import PrivateKey, sign_bytes, verify
from state.errors import InvalidBlock
from state.staking.validator_set import ValidatorSet

from node.executor import validator_set_at

if TYPE_CHECKING:
    from state.chain import Chain

log = logging.getLogger(__name__)

HELLO_DOMAIN = "attrchain/direct-hello/1"
KIND_PROPOSAL = 1
KIND_VOTE = 2
KIND_TXS = 3  # transaction batches: a bulk kind (p2p/direct.py), never relayed
# a validator leaves the consensus topics only after every other validator's stream has been up
# this long (no flapping when streams reconnect), and checks this often
STABLE_S = 2.0
CHECK_S = 0.5
RELAY_CHECK_S = 1.0  # a full node re-picks its relayers this often (peers come and go)


def hello_message(chain_id: str, peer_id: str) -> bytes:
    return sign_bytes(HELLO_DOMAIN, chain_id, ID.from_base58(peer_id).to_bytes())


class DirectAuth:
    """Builds this node's hello and checks peers' hellos against the validator set."""

    def __init__(self, chain: "Chain", key: PrivateKey | None) -> None:
        self.chain = chain
        self.key = key
        self._sets: dict[int, ValidatorSet] = {}
        # every other validator of the next height has held a direct stream to this node for
        # STABLE_S (set by manage_consensus_subscriptions): the node then sends its transaction
        # batches over its direct streams instead of gossiping them
        self.complete = False

    def valset(self, height: int) -> ValidatorSet | None:
        cached = self._sets.get(height)
        if cached is None:
            try:
                cached = validator_set_at(self.chain.db.view(), height)
            except InvalidBlock:
                return None
            self._sets = {h: s for h, s in self._sets.items() if h >= self.chain.height}
            self._sets[height] = cached
        return cached

    def _member(self, public_key: bytes) -> bool:
        # the next height's set, or the one after (a set change must not cut the streams it keeps)
        for height in (self.chain.height + 1, self.chain.height + 2):
            vs = self.valset(height)
            if vs is not None and any(v.public_key == public_key for v in vs.validators):
                return True
        return False

    def hello(self, peer_id: str) -> bytes | None:
        """Our hello, or None when this node is not a validator now (it opens no streams)."""
        if self.key is None or not self._member(self.key.public_key):
            return None
        return pack([self.key.public_key, self.key.sign(hello_message(self.chain.chain_id, peer_id))])

    def check_hello(self, peer_id: str, data: bytes) -> bytes | Offence:
        """The opener's validator public key, or the offence its hello commits."""
        try:
            wire = unpack(data)
        except CodecError:
            return Offence.MALFORMED
        if not (isinstance(wire, list) and len(wire) == 2 and type(wire[0]) is bytes and type(wire[1]) is bytes
                and len(wire[0]) == 32 and len(wire[1]) == 64):
            return Offence.MALFORMED
        public_key, signature = wire
        if not self._member(public_key):
            return Offence.NOT_A_VALIDATOR_STREAM
        if not verify(public_key, signature, hello_message(self.chain.chain_id, peer_id)):
            return Offence.BAD_SIGNATURE
        return public_key

    def is_validator(self) -> bool:
        """This node's key is in the validator set of the next height or the one after."""
        return self.key is not None and self._member(self.key.public_key)

    def others(self) -> set[bytes]:
        """Public keys of the other validators of the next height."""
        vs = self.valset(self.chain.height + 1)
        mine = self.key.public_key if self.key is not None else b""
        return {v.public_key for v in vs.validators if v.public_key != mine} if vs is not None else set()


def direct_spec(chain_id: str, auth: DirectAuth, refuse_all: bool = False, link_port: int | None = None) -> DirectSpec:
    return DirectSpec(
        protocol=topics.consensus_protocol(chain_id),
        kinds={KIND_PROPOSAL: topics.proposals_topic(chain_id), KIND_VOTE: topics.votes_topic(chain_id),
               KIND_TXS: topics.txs_topic(chain_id)},
        bulk=frozenset({KIND_TXS}),
        hello=auth.hello,
        check_hello=auth.check_hello,
        refuse_all=refuse_all,
        link_port=link_port,
    )


async def manage_consensus_subscriptions(p2p: object, auth: DirectAuth, chain_id: str) -> None:
    """Leave the proposal and vote topics while every other validator of the next height holds
    a direct stream to this node for STABLE_S; join them again as soon as one is missing (gossip
    fallback: liveness never depends on the direct path). A validator that has left the topics
    still bridges them: what it receives directly it relays to its subscribed peers (full nodes,
    validators on the fallback; ``P2PService._relay_direct``)."""
    wanted = [topics.proposals_topic(chain_id), topics.votes_topic(chain_id)]
    complete_since: float | None = None
    while True:
        await trio.sleep(CHECK_S)
        live = p2p.direct.inbound_validators()  # type: ignore[attr-defined]
        others = auth.others()
        complete = bool(others) and others <= live
        now = time.monotonic()
        if complete:
            complete_since = complete_since if complete_since is not None else now
        else:
            complete_since = None
        leave = complete_since is not None and now - complete_since >= STABLE_S
        auth.complete = leave
        # a validator that does not hear every other one directly asks for relaying
        await p2p.update_relay(offer=auth.is_validator(), want=not leave)  # type: ignore[attr-defined]
        for topic in wanted:
            subscribed = p2p.is_subscribed(topic)  # type: ignore[attr-defined]
            if subscribed == (not leave):
                continue
            try:
                await p2p.set_subscribed(topic, not leave)  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - retried next check; never stops the node
                log.warning("could not %s %s: %r", "leave" if leave else "join", topic, exc)
                continue
            if leave:
                log.info("left %s: every other validator (%d) sends directly", topic, len(others))
            else:
                log.info("joined %s: gossip fallback (%d of %d validators send directly)",
                         topic, len(others & live), len(others))


async def ask_for_relaying(p2p: object) -> None:
    """A node without direct streams (a full node) asks validator nodes to relay what they receive
    directly (docs/p2p.md "Relay to subscribers"): validators that have left the gossip topics
    forward nothing, and this node may not be connected to every one of them."""
    while True:
        await p2p.update_relay(offer=False, want=True)  # type: ignore[attr-defined]
        await trio.sleep(RELAY_CHECK_S)
