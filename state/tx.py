"""Transactions: the unsigned envelope, one body structure per kind, and the signed form.

Unsigned = [version, kind, sender_public_key, nonce, fee, body]; Signed = [unsigned, signature],
the signature over pack(["attrchain/tx/v1", chain_id, unsigned]). The hash of a transaction is
sha256 of its signed bytes, and the id of anything a transaction creates (datanet, contribution,
model, adapter) is that hash.

Codec limits here are hard ceilings on the wire; genesis params set the tighter rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from state.codec import (
    ADDRESS,
    HASH,
    PUBKEY,
    SIGNATURE,
    U8,
    U16,
    U32,
    U64,
    Bytes,
    CodecError,
    List,
    Nested,
    Str,
    Tuple,
    canonical,
    f,
    pack,
    unpack,
)
from state.crypto import DOMAIN_TX, PrivateKey, address_of, sha256, sign_bytes, verify

TX_VERSION = 1
MAX_TX_BYTES = 96 * 1024
MAX_FINGERPRINT = 4096  # wire ceiling; genesis `fingerprint_max` is the rule
MAX_MINHASH = 256  # wire ceiling; genesis `minhash_size` is the rule
MAX_CONTENT = 64 * 1024
MAX_MIX = 32  # datanets in one model's or adapter's training mix
MAX_CLAIMS = 256
OPT_HASH = Bytes(sizes=(0, 32))  # an optional reference: empty means none
OPT_ADDRESS = Bytes(sizes=(0, 20))
NAME = Str(64)
URI = Str(256)
MIX = List(Tuple((HASH, U16)), MAX_MIX)  # [(datanet id, weight bps)]


@canonical
class Transfer:
    to: bytes = f(ADDRESS)
    amount: int = f(U64)


@canonical
class CreateDatanet:
    name: str = f(NAME)
    metadata_uri: str = f(URI)
    bond_required: int = f(U64)


@canonical
class AddCurator:
    datanet: bytes = f(HASH)
    curator: bytes = f(ADDRESS)


@canonical
class RemoveCurator:
    datanet: bytes = f(HASH)
    curator: bytes = f(ADDRESS)


@canonical
class Contribute:
    """The content itself: validators compute its hash, size, fingerprint and MinHash."""

    datanet: bytes = f(HASH)
    content: bytes = f(Bytes(MAX_CONTENT))  # UTF-8 text, at most genesis max_content_bytes
    salt: bytes = f(HASH)  # reveals the sender's earlier commit_contribution
    bond: int = f(U64)


@canonical
class CommitContribution:
    """sha256(msgpack(["attrchain/contribution-commit/v1", sender, datanet, content_hash, salt]))."""

    commitment: bytes = f(HASH)


@canonical
class Review:
    contribution: bytes = f(HASH)
    accept: int = f(U8)  # 1 accept, 0 reject (pending); 2 reverse (accepted, within the challenge window)


@canonical
class TransferContribution:
    contribution: bytes = f(HASH)
    new_owner: bytes = f(ADDRESS)


@canonical
class RegisterModel:
    name: str = f(NAME)
    datanets: tuple[tuple[bytes, int], ...] = f(MIX)
    parent: bytes = f(OPT_HASH)
    lineage_bps: int = f(U16)


@canonical
class RegisterAdapter:
    name: str = f(NAME)
    base_model: bytes = f(HASH)
    datanets: tuple[tuple[bytes, int], ...] = f(MIX)


@canonical
class RegisterAgent:
    """Sent by the agent's own account; ``owner`` receives the agent-owner share."""

    name: str = f(NAME)
    model: bytes = f(HASH)
    adapter: bytes = f(OPT_HASH)
    owner: bytes = f(ADDRESS)
    stake: int = f(U64)


@canonical
class AgentAction:
    action_hash: bytes = f(HASH)
    outcome_hash: bytes = f(HASH)


@canonical
class Infer:
    model: bytes = f(HASH)
    adapter: bytes = f(OPT_HASH)
    agent: bytes = f(OPT_ADDRESS)
    payment: int = f(U64)
    input_tokens: int = f(U32)
    output_tokens: int = f(U32)
    output_hash: bytes = f(HASH)
    output_fingerprint: tuple[int, ...] = f(List(U64, MAX_FINGERPRINT))


@canonical
class ClaimRewards:
    contributions: tuple[bytes, ...] = f(List(HASH, MAX_CLAIMS))


@canonical
class CreateValidator:
    consensus_public_key: bytes = f(PUBKEY)
    self_stake: int = f(U64)
    moniker: str = f(NAME)


@canonical
class Delegate:
    validator: bytes = f(ADDRESS)
    amount: int = f(U64)


@canonical
class Undelegate:
    validator: bytes = f(ADDRESS)
    amount: int = f(U64)


@canonical
class Unjail:
    pass


MAX_PROPOSAL_CONTENT = 16 * 1024  # canonical bytes of the kind's content (docs/governance.md)


@canonical
class SubmitProposal:
    """``content`` is the canonical encoding of the content structure of ``kind``
    (state/governance/records.py); ``deposit`` is the proposer's initial deposit."""

    kind: int = f(U8)
    title: str = f(Str(140))
    summary: str = f(Str(4096))
    content: bytes = f(Bytes(MAX_PROPOSAL_CONTENT))
    deposit: int = f(U64)


@canonical
class ProposalDeposit:
    proposal: int = f(U64)
    amount: int = f(U64)


@canonical
class ProposalVote:
    proposal: int = f(U64)
    option: int = f(U8)  # 1 yes, 2 abstain, 3 no, 4 no_with_veto (Cosmos x/gov numbering)


# kind number -> (name, body class). Numbers are consensus-critical and never reused (retired: 15).
TX_KINDS: dict[int, tuple[str, type[Any]]] = {
    1: ("transfer", Transfer),
    10: ("create_datanet", CreateDatanet),
    11: ("add_curator", AddCurator),
    12: ("remove_curator", RemoveCurator),
    13: ("contribute", Contribute),
    14: ("review", Review),
    # 15 was "challenge" (reveal content to void a declared fingerprint): retired, content is on chain
    16: ("transfer_contribution", TransferContribution),
    17: ("commit_contribution", CommitContribution),
    20: ("register_model", RegisterModel),
    21: ("register_adapter", RegisterAdapter),
    22: ("register_agent", RegisterAgent),
    23: ("agent_action", AgentAction),
    24: ("infer", Infer),
    25: ("claim_rewards", ClaimRewards),
    30: ("create_validator", CreateValidator),
    31: ("delegate", Delegate),
    32: ("undelegate", Undelegate),
    33: ("unjail", Unjail),
    40: ("submit_proposal", SubmitProposal),
    41: ("deposit", ProposalDeposit),
    42: ("vote", ProposalVote),
}
KIND_BY_NAME: dict[str, int] = {name: kind for kind, (name, _) in TX_KINDS.items()}
KIND_BY_CLASS: dict[type[Any], int] = {cls: kind for kind, (_, cls) in TX_KINDS.items()}


class _Body:
    """Wire type of the body field: the structure named by the envelope's kind."""

    def check(self, value: Any, path: str) -> Any:
        if type(value) not in KIND_BY_CLASS:
            raise CodecError(f"{path}: not a transaction body")
        return value

    def to_wire(self, value: Any) -> list[Any]:
        return value.to_wire()  # type: ignore[no-any-return]

    def from_wire(self, value: Any, path: str) -> Any:
        if type(value) is not list:
            raise CodecError(f"{path}: expected an array")
        return value  # resolved by UnsignedTx.validate once the kind is known

    def describe(self) -> str:
        return "array: the body structure of `kind`"


@canonical
class UnsignedTx:
    version: int = f(U8)
    kind: int = f(U16)
    sender: bytes = f(PUBKEY)
    nonce: int = f(U64)
    fee: int = f(U64)
    body: Any = f(_Body())

    def validate(self, path: str) -> None:
        """The version is known and the body is the structure its kind names."""
        if self.version != TX_VERSION:
            raise CodecError(f"{path}.version: unsupported version {self.version}")
        entry = TX_KINDS.get(self.kind)
        if entry is None:
            raise CodecError(f"{path}.kind: unknown transaction kind {self.kind}")
        if type(self.body) is list:  # just decoded: resolve the body by kind
            object.__setattr__(self, "body", entry[1].from_wire(self.body, f"{path}.body"))
        elif type(self.body) is not entry[1]:
            raise CodecError(f"{path}.kind: {self.kind} does not match the body")


@canonical
class SignedTx:
    unsigned: UnsignedTx = f(Nested(UnsignedTx))
    signature: bytes = f(SIGNATURE)


_SIG_TAIL = 66  # a signature at the end of the signed array: bin8 header (2 bytes) + 64 bytes
_sign_prefix_cache: dict[str, bytes] = {}


def _sign_prefix(chain_id: str) -> bytes:
    """msgpack array-of-3 header + domain + chain id: sign bytes are this + the unsigned bytes."""
    prefix = _sign_prefix_cache.get(chain_id)
    if prefix is None:
        prefix = b"\x93" + pack(DOMAIN_TX) + pack(chain_id)
        if len(_sign_prefix_cache) < 64:
            _sign_prefix_cache[chain_id] = prefix
    return prefix


@dataclass(frozen=True, eq=True)
class Tx:
    """A decoded signed transaction with its canonical bytes and hash, computed once."""

    signed: SignedTx
    raw: bytes
    hash: bytes

    @property
    def unsigned(self) -> UnsignedTx:
        return self.signed.unsigned

    @property
    def sender(self) -> bytes:
        """The sender's address (computed once)."""
        cached = self.__dict__.get("_sender")
        if cached is None:
            cached = address_of(self.signed.unsigned.sender)
            object.__setattr__(self, "_sender", cached)
        return cached  # type: ignore[no-any-return]

    @property
    def kind_name(self) -> str:
        return TX_KINDS[self.signed.unsigned.kind][0]

    @property
    def body(self) -> Any:
        return self.signed.unsigned.body

    def sign_bytes(self, chain_id: str) -> bytes:
        """pack([domain, chain_id, unsigned]); canonical msgpack concatenates, so the unsigned
        part is sliced from the signed bytes instead of being encoded again."""
        return _sign_prefix(chain_id) + self.raw[1:-_SIG_TAIL]

    def has_valid_signature(self, chain_id: str) -> bool:
        """True when the signature verifies for this chain id (the only signature rule)."""
        return verify(self.signed.unsigned.sender, self.signed.signature, self.sign_bytes(chain_id))


def decode_tx(raw: bytes) -> Tx:
    """Decode signed transaction bytes; raises CodecError for anything not canonical."""
    if type(raw) is not bytes:
        raise CodecError("a transaction is bytes")
    if len(raw) > MAX_TX_BYTES:
        raise CodecError(f"transaction of {len(raw)} bytes exceeds the limit of {MAX_TX_BYTES}")
    signed = SignedTx.from_wire(unpack(raw, MAX_TX_BYTES))  # type: ignore[attr-defined]
    return Tx(signed, raw, sha256(raw))


def sign_tx(key: PrivateKey, chain_id: str, nonce: int, body: Any, fee: int = 0) -> Tx:
    """Build, sign and encode a transaction of the body's kind."""
    unsigned = UnsignedTx(TX_VERSION, KIND_BY_CLASS[type(body)], key.public_key, nonce, fee, body)
    sig = key.sign(sign_bytes(DOMAIN_TX, chain_id, unsigned.to_wire()))  # type: ignore[attr-defined]
    signed = SignedTx(unsigned, sig)
    raw = pack(signed.to_wire())  # type: ignore[attr-defined]
    return Tx(signed, raw, sha256(raw))
