"""Every gossip topic and request/response protocol name of attrchain, in one place.

Names carry the chain id so nodes of different chains never mix messages on one topic, and a
trailing version so an encoding change gets a new name instead of a silent incompatibility.
"""

from __future__ import annotations

TOPIC_PREFIX = "attrchain"
TOPIC_VERSION = "1"
# 2: batch items may carry the sender's GossipSub envelope (seqno, signature); a /1 acceptor would
# reset a stream carrying such an item. 3: kind 3 carries transaction batches (a /2 acceptor
# resets a stream on an unknown kind). 4: the opener's second frame is its validator-link request
# and the acceptor may answer with a link offer (p2p/validator_link.py)
CONSENSUS_PROTOCOL_VERSION = "4"


def _topic(chain_id: str, kind: str) -> str:
    if not chain_id or "/" in chain_id:
        raise ValueError(f"chain id must be non-empty and contain no '/': {chain_id!r}")
    return f"{TOPIC_PREFIX}/{chain_id}/{kind}/{TOPIC_VERSION}"


def txs_topic(chain_id: str) -> str:
    """Batches of signed transactions newly accepted by a node's mempool."""
    return _topic(chain_id, "txs")


def relay_topic(chain_id: str) -> str:
    """Never published on. A validator node subscribes to it to offer relaying what it receives on
    direct consensus streams; a node subscribes to ``relay_topic(...) + "/" + relayer peer id`` to
    ask that relayer for it (docs/p2p.md "Relay to subscribers")."""
    return _topic(chain_id, "relay")


def proposals_topic(chain_id: str) -> str:
    """Signed block proposals."""
    return _topic(chain_id, "proposals")


def votes_topic(chain_id: str) -> str:
    """Signed prevotes and precommits."""
    return _topic(chain_id, "votes")


def evidence_topic(chain_id: str) -> str:
    """Double-sign evidence."""
    return _topic(chain_id, "evidence")


def all_topics(chain_id: str) -> list[str]:
    """The topics a full node subscribes to."""
    return [
        txs_topic(chain_id),
        proposals_topic(chain_id),
        votes_topic(chain_id),
        evidence_topic(chain_id),
    ]


def sync_protocol(chain_id: str) -> str:
    """Request/response protocol id for block sync."""
    if not chain_id or "/" in chain_id:
        raise ValueError(f"chain id must be non-empty and contain no '/': {chain_id!r}")
    return f"/{TOPIC_PREFIX}/{chain_id}/sync/{TOPIC_VERSION}"


def proposal_block_protocol(chain_id: str) -> str:
    """Request/response protocol id for fetching a proposed block's body by hash (docs/p2p.md)."""
    if not chain_id or "/" in chain_id:
        raise ValueError(f"chain id must be non-empty and contain no '/': {chain_id!r}")
    return f"/{TOPIC_PREFIX}/{chain_id}/proposal-block/{TOPIC_VERSION}"


def consensus_protocol(chain_id: str) -> str:
    """Stream protocol id of the direct consensus streams between validators (docs/p2p.md)."""
    if not chain_id or "/" in chain_id:
        raise ValueError(f"chain id must be non-empty and contain no '/': {chain_id!r}")
    return f"/{TOPIC_PREFIX}/{chain_id}/consensus/{CONSENSUS_PROTOCOL_VERSION}"
