"""The one key schema: every LevelDB key in attrchain is built by a function here.

Two families share one LevelDB:
- STATE keys (prefix ``s``): committed into the authenticated state tree; each value is the
  canonical msgpack of a state structure. ``abci_query`` reads any of them with a proof.
- LOCAL keys (other prefixes): tree nodes, blocks, indexes, receipts-by-recipient, node metadata.
  They are derived data and are not part of the state root.

No other module concatenates key prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable

# ---- state (authenticated) ---------------------------------------------------------------
STATE = b"s"


def _s(tag: bytes, *parts: bytes) -> bytes:
    return STATE + tag + b"".join(parts)


def u64(n: int) -> bytes:
    """Big-endian 8-byte integer, so LevelDB order is numeric order."""
    return n.to_bytes(8, "big")


def account_key(address: bytes) -> bytes:
    return _ACCOUNTS + address  # read and written several times per transaction


_ACCOUNTS = _s(b"a/")


def params_key() -> bytes:
    return _s(b"p/")


def chain_meta_key() -> bytes:
    """Chain-level counters in state (total supply, burned, fee pool, height)."""
    return _s(b"m/")


def datanet_key(datanet_id: bytes) -> bytes:
    return _s(b"dn/", datanet_id)


def curator_key(datanet_id: bytes, curator: bytes) -> bytes:
    return _s(b"cu/", datanet_id, curator)


def contribution_key(contribution_id: bytes) -> bytes:
    return _s(b"c/", contribution_id)


def contribution_sketch_key(contribution_id: bytes) -> bytes:
    """A contribution's registered fingerprint and MinHash (kept while it is pending or accepted)."""
    return _s(b"cs/", contribution_id)


def commitment_key(commitment: bytes) -> bytes:
    """A contribution commitment awaiting its reveal: commitment -> Commitment."""
    return _s(b"cc/", commitment)


def containment_key(fp_hash: int) -> bytes:
    """Containment index over every datanet: sampled fingerprint hash -> contribution ids."""
    return CONTAINMENT_PREFIX + u64(fp_hash)


CONTAINMENT_PREFIX = _s(b"ct/")


def content_hash_key(content_hash: bytes) -> bytes:
    """Exact-duplicate index over every datanet: content hash -> contribution id."""
    return _s(b"ch2/", content_hash)


def lsh_band_key(band: int, band_hash: bytes) -> bytes:
    """Near-duplicate index over every datanet: (LSH band, band hash) -> contribution ids."""
    return _s(b"lsh2/", band.to_bytes(2, "big"), band_hash)


def doc_freq_key(datanet_id: bytes, fp_hash: int) -> bytes:
    """Document frequency of one fingerprint hash within a datanet."""
    return _s(b"df/", datanet_id, u64(fp_hash))


def fp_postings_key(datanet_id: bytes, fp_hash: int) -> bytes:
    """Contributions in a datanet whose fingerprints contain a hash."""
    return _s(b"fp/", datanet_id, u64(fp_hash))


def fp_postings_prefix(datanet_id: bytes) -> bytes:
    """Every posting record of one datanet."""
    return _s(b"fp/", datanet_id)


def fp_postings_keys(datanet_id: bytes, fp_hashes: Iterable[int]) -> list[bytes]:
    """``fp_postings_key`` for many hashes of one datanet at once (the inference hot path)."""
    prefix = fp_postings_prefix(datanet_id)
    return [prefix + h.to_bytes(8, "big") for h in fp_hashes]


def split_fp_postings_key(key: bytes) -> tuple[bytes, int]:
    """(datanet id, fingerprint hash) of a ``fp_postings_key`` (datanet ids are 32-byte hashes)."""
    at = len(_POSTINGS)
    if len(key) != at + 40 or not key.startswith(_POSTINGS):
        raise ValueError(f"not a posting-record key: {key.hex()}")
    return key[at : at + 32], int.from_bytes(key[at + 32 :], "big")


_POSTINGS = fp_postings_prefix(b"")


def model_key(model_id: bytes) -> bytes:
    return _s(b"mo/", model_id)


def adapter_key(adapter_id: bytes) -> bytes:
    return _s(b"ad/", adapter_id)


def agent_key(agent_address: bytes) -> bytes:
    return _s(b"ag/", agent_address)


def agent_action_key(agent_address: bytes, seq: int) -> bytes:
    return _s(b"aa/", agent_address, u64(seq))


def inference_key(inference_id: bytes) -> bytes:
    return _s(b"in/", inference_id)


def receipt_key(inference_id: bytes) -> bytes:
    return _s(b"rc/", inference_id)


def validator_key(operator: bytes) -> bytes:
    return _s(b"v/", operator)


def validator_by_consensus_key(consensus_address: bytes) -> bytes:
    return _s(b"vc/", consensus_address)


def delegation_key(validator: bytes, delegator: bytes) -> bytes:
    return _s(b"de/", validator, delegator)


def unbonding_key(completion_height: int, validator: bytes, delegator: bytes) -> bytes:
    return _s(b"ub/", u64(completion_height), validator, delegator)


def validator_set_key(height: int) -> bytes:
    """The validator set (with proposer priorities) that signs block ``height``."""
    return _s(b"vs/", u64(height))


def signing_info_key(consensus_address: bytes) -> bytes:
    return _s(b"si/", consensus_address)


def evidence_seen_key(evidence_hash: bytes) -> bytes:
    return _s(b"ev/", evidence_hash)


def unbonding_queue_prefix() -> bytes:
    """Every unbonding entry, ordered by completion height."""
    return _s(b"ub/")


def unbonding_by_validator_key(validator: bytes, completion_height: int, delegator: bytes) -> bytes:
    """Index of unbonding entries by validator (slashing reaches them without a full scan)."""
    return _s(b"uv/", validator, u64(completion_height), delegator)


def unbonding_by_validator_prefix(validator: bytes) -> bytes:
    return _s(b"uv/", validator)


# governance (docs/governance.md): proposals by sequential id, their deposits and votes, the
# end-height queues end_block reads, and the software-upgrade plan
def gov_meta_key() -> bytes:
    """Governance counters (the next proposal id)."""
    return _s(b"gov/m/")


def proposal_key(proposal_id: int) -> bytes:
    return _s(b"gov/p/", u64(proposal_id))


def proposals_prefix() -> bytes:
    """Every proposal, by id."""
    return _s(b"gov/p/")


def proposal_deposit_key(proposal_id: int, depositor: bytes) -> bytes:
    """With depositor b"": the prefix of one proposal's deposits."""
    return _s(b"gov/d/", u64(proposal_id), depositor)


def proposal_deposits_prefix() -> bytes:
    """Every escrowed deposit of every proposal."""
    return _s(b"gov/d/")


def proposal_vote_key(proposal_id: int, voter: bytes) -> bytes:
    """With voter b"": the prefix of one proposal's votes."""
    return _s(b"gov/v/", u64(proposal_id), voter)


def deposit_queue_key(end_height: int, proposal_id: int) -> bytes:
    """Proposals in their deposit period, by the height it ends at."""
    return deposit_queue_prefix(end_height) + u64(proposal_id)


def deposit_queue_prefix(end_height: int) -> bytes:
    return _s(b"gov/qd/", u64(end_height))


def voting_queue_key(end_height: int, proposal_id: int) -> bytes:
    """Proposals in their voting period, by the height it ends at (tallied in its end_block)."""
    return voting_queue_prefix(end_height) + u64(proposal_id)


def voting_queue_prefix(end_height: int) -> bytes:
    return _s(b"gov/qv/", u64(end_height))


def upgrade_plan_key() -> bytes:
    """The scheduled software upgrade (at most one)."""
    return _s(b"gov/up/")


def upgrade_done_key(name: str) -> bytes:
    """A software upgrade that took place: name -> height."""
    return _s(b"gov/ud/", name.encode())


# ---- local (not in the state root) -------------------------------------------------------
TREE = b"t"
BLOCK = b"b"
BLOCK_HASH = b"h"
COMMIT = b"k"
TX_INDEX = b"x"
RECIPIENT_INDEX = b"r"
META = b"M"
VALSET_ARCHIVE = b"V"


def tree_node_key(node_path: bytes) -> bytes:
    """A node of the authenticated state tree, addressed by its encoded path."""
    return TREE + node_path


def tree_root_key() -> bytes:
    """The state tree's root record; ``/`` never occurs in a node path (hex nibbles)."""
    return TREE + b"/root"


def block_key(height: int) -> bytes:
    return BLOCK + u64(height)


def block_hash_key(block_hash: bytes) -> bytes:
    """Block hash -> height."""
    return BLOCK_HASH + block_hash


def commit_key(height: int) -> bytes:
    """The commit certificate for block ``height`` as seen by this node (the next block carries
    its canonical copy)."""
    return COMMIT + u64(height)


def results_key(height: int) -> bytes:
    return BLOCK + b"r" + u64(height)


def tx_index_key(tx_hash: bytes) -> bytes:
    """Transaction hash -> (height, index in block, result)."""
    return TX_INDEX + tx_hash


def tx_by_sender_key(sender: bytes, height: int, index: int) -> bytes:
    return TX_INDEX + b"s" + sender + u64(height) + index.to_bytes(4, "big")


def recipient_receipt_key(recipient: bytes, height: int, index: int, inference_id: bytes) -> bytes:
    """Receipts by recipient, ordered by height then position."""
    return RECIPIENT_INDEX + recipient + u64(height) + index.to_bytes(4, "big") + inference_id


def recipient_prefix(recipient: bytes) -> bytes:
    return RECIPIENT_INDEX + recipient


def valset_archive_key(height: int) -> bytes:
    """The validator set that signs ``height``, kept when it differs from the previous height's
    (state prunes old sets; a state-syncing node's light client asks for them)."""
    return VALSET_ARCHIVE + u64(height)


def meta_key(name: str) -> bytes:
    """Node metadata: latest height, latest root, genesis hash, ..."""
    return META + name.encode()


# ---- explorer history (local, non-consensus; state/history.py) -----------------------------
HISTORY = b"H"


def _sized(ident: bytes) -> bytes:
    """An address (20 bytes) or id (32 bytes) with its length first: prefixes never overlap."""
    return bytes([len(ident)]) + ident


def history_earning_key(recipient: bytes, height: int) -> bytes:
    """What ``recipient`` (address, contribution id or datanet id) earned in block ``height``."""
    return HISTORY + b"e" + _sized(recipient) + u64(height)


def history_earning_prefix(recipient: bytes) -> bytes:
    return HISTORY + b"e" + _sized(recipient)


def history_member_key(kind: bytes, parent: bytes, child: bytes) -> bytes:
    """List membership: (kind, parent) -> child, e.g. datanet -> contribution (kinds: state/history.py)."""
    return HISTORY + b"m" + kind + _sized(parent) + child


def history_member_prefix(kind: bytes, parent: bytes) -> bytes:
    return HISTORY + b"m" + kind + _sized(parent)


def history_event_key(subject: bytes, height: int, index: int) -> bytes:
    """One change of a record (a contribution's status or owner) at (height, index in block)."""
    return HISTORY + b"v" + _sized(subject) + u64(height) + index.to_bytes(4, "big")


def history_event_prefix(subject: bytes) -> bytes:
    return HISTORY + b"v" + _sized(subject)


def history_count_key(kind: bytes, parent: bytes) -> bytes:
    """Counters of one list (e.g. a datanet's contributions by status)."""
    return HISTORY + b"c" + kind + _sized(parent)
