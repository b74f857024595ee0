"""Canonical encoding: round trips, canonical-only decoding, and fuzzed input."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state import tx as T
from state.block import (
    Block,
    Commit,
    CommitSig,
    DuplicateVoteEvidence,
    Header,
    Proposal,
    SignedProposal,
    SignedVote,
    Vote,
    decode_block,
)
from state.codec import CodecError, decode, encode, pack, unpack
from state.crypto import PrivateKey
from state.params import DEFAULT, DEVNET, Params
from state.tx import TX_KINDS, decode_tx, sign_tx

KEY = PrivateKey.from_int(1)
h32 = st.binary(min_size=32, max_size=32)
a20 = st.binary(min_size=20, max_size=20)
u64 = st.integers(0, 2**64 - 1)
u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 2**16 - 1)
name = st.text(max_size=20)
mix = st.lists(st.tuples(h32, u16), max_size=4)
fp = st.lists(u64, max_size=40)

BODIES = {
    T.Transfer: st.builds(T.Transfer, a20, u64),
    T.CreateDatanet: st.builds(T.CreateDatanet, name, name, u64),
    T.AddCurator: st.builds(T.AddCurator, h32, a20),
    T.RemoveCurator: st.builds(T.RemoveCurator, h32, a20),
    T.Contribute: st.builds(T.Contribute, h32, st.binary(max_size=200), h32, u64),
    T.CommitContribution: st.builds(T.CommitContribution, h32),
    T.Review: st.builds(T.Review, h32, st.integers(0, 1)),
    T.TransferContribution: st.builds(T.TransferContribution, h32, a20),
    T.RegisterModel: st.builds(T.RegisterModel, name, mix, st.sampled_from([b"", b"\x01" * 32]), u16),
    T.RegisterAdapter: st.builds(T.RegisterAdapter, name, h32, mix),
    T.RegisterAgent: st.builds(T.RegisterAgent, name, h32, st.sampled_from([b"", b"\x02" * 32]), a20, u64),
    T.AgentAction: st.builds(T.AgentAction, h32, h32),
    T.Infer: st.builds(T.Infer, h32, st.just(b""), st.sampled_from([b"", b"\x03" * 20]), u64, u32, u32, h32, fp),
    T.ClaimRewards: st.builds(T.ClaimRewards, st.lists(h32, max_size=4)),
    T.CreateValidator: st.builds(T.CreateValidator, h32, u64, name),
    T.Delegate: st.builds(T.Delegate, a20, u64),
    T.Undelegate: st.builds(T.Undelegate, a20, u64),
    T.Unjail: st.just(T.Unjail()),
    T.SubmitProposal: st.builds(T.SubmitProposal, st.integers(0, 255), name, name, st.binary(max_size=64), u64),
    T.ProposalDeposit: st.builds(T.ProposalDeposit, u64, u64),
    T.ProposalVote: st.builds(T.ProposalVote, u64, st.integers(0, 255)),
}


def test_every_kind_has_a_strategy() -> None:
    assert set(BODIES) == {cls for _, cls in TX_KINDS.values()}


any_body = st.one_of(*BODIES.values())
signed_txs = st.builds(lambda b, n, fee: sign_tx(KEY, "c", n, b, fee), any_body, u64, u64)


@settings(max_examples=400)
@given(signed_txs)
def test_tx_round_trip(tx: T.Tx) -> None:
    again = decode_tx(tx.raw)
    assert again == tx
    assert again.signed.encode() == tx.raw  # type: ignore[attr-defined]


votes = st.builds(Vote, st.sampled_from([1, 2]), u64, u32, st.sampled_from([b"", b"\x07" * 32]), u64, a20)
headers = st.builds(Header, st.just(1), st.text(max_size=10), u64, u64, st.sampled_from([b"", b"\x01" * 32]),
                    h32, h32, h32, h32, h32, h32, h32, a20)
commits = st.builds(Commit, u64, u32, h32, st.lists(st.builds(CommitSig, a20, u64, st.binary(min_size=64, max_size=64)), max_size=3))


@settings(max_examples=200)
@given(headers, st.lists(st.binary(max_size=50), max_size=3), commits)
def test_block_round_trip(header: Header, txs: list[bytes], commit: Commit) -> None:
    block = Block(header, tuple(txs), (), commit)
    data = encode(block)
    assert decode_block(data) == block
    assert encode(decode_block(data)) == data


@settings(max_examples=200)
@given(votes, st.binary(min_size=64, max_size=64))
def test_vote_round_trip(vote: Vote, sig: bytes) -> None:
    sv = SignedVote(vote, sig)
    assert decode(SignedVote, encode(sv)) == sv


def test_params_round_trip() -> None:
    for p in (DEFAULT, DEVNET):
        assert decode(Params, encode(p)) == p


def test_evidence_requires_conflict_and_order() -> None:
    a = SignedVote(Vote(1, 5, 0, b"\x01" * 32, 0, b"\x09" * 20), b"\x00" * 64)
    b = SignedVote(Vote(1, 5, 0, b"\x02" * 32, 0, b"\x09" * 20), b"\x00" * 64)
    ev = DuplicateVoteEvidence(a, b)
    assert decode(DuplicateVoteEvidence, encode(ev)) == ev
    with pytest.raises(CodecError, match="canonical order"):
        DuplicateVoteEvidence(b, a)
    with pytest.raises(CodecError, match="do not conflict"):
        DuplicateVoteEvidence(a, a)


def test_proposal_round_trip() -> None:
    sp = SignedProposal(Proposal(3, 1, -1, b"\x05" * 32, 99, b"\x01" * 20), b"\x02" * 64)
    assert decode(SignedProposal, encode(sp)) == sp


# ---- canonical-only decoding --------------------------------------------------------------
GOOD = sign_tx(KEY, "c", 3, T.Transfer(b"\x01" * 20, 10), 1)


def test_rejects_trailing_bytes() -> None:
    with pytest.raises(CodecError):
        decode_tx(GOOD.raw + b"\x00")


def test_rejects_non_minimal_int() -> None:
    # nonce 3 encoded as uint16 (0xcd 0x00 0x03) instead of fixint
    wire = GOOD.signed.to_wire()  # type: ignore[attr-defined]
    raw = pack(wire)
    fixed = raw.replace(b"\x03\x01\x92", b"\xcd\x00\x03\x01\x92", 1)
    assert fixed != raw
    with pytest.raises(CodecError, match="canonical"):
        decode_tx(fixed)


def test_rejects_map_float_nil_bool_and_extra_fields() -> None:
    wire = GOOD.signed.to_wire()  # type: ignore[attr-defined]
    for bad in (
        msgpack.packb({"a": 1}),
        msgpack.packb([wire[0], wire[1], 1]),  # extra field
        msgpack.packb([wire[0]]),  # missing field
        msgpack.packb([1.5, wire[1]]),
        msgpack.packb([None, wire[1]]),
        msgpack.packb([True, wire[1]]),
        msgpack.packb([wire[0], "text-not-bin"]),
    ):
        with pytest.raises(CodecError):
            decode_tx(bad)


def test_rejects_str_as_bin_and_wrong_lengths() -> None:
    u = GOOD.signed.unsigned.to_wire()  # type: ignore[attr-defined]
    u[2] = u[2][:31]
    with pytest.raises(CodecError, match="32"):
        decode_tx(msgpack.packb([u, GOOD.signed.signature], use_bin_type=True))


def test_rejects_unknown_kind_and_version() -> None:
    u = GOOD.signed.unsigned.to_wire()  # type: ignore[attr-defined]
    for i, v in ((1, 99), (0, 2)):
        w = list(u)
        w[i] = v
        with pytest.raises(CodecError):
            decode_tx(msgpack.packb([w, GOOD.signed.signature], use_bin_type=True))


@settings(max_examples=3000)
@given(st.binary(max_size=300))
def test_fuzzed_bytes_raise_only_codec_error(data: bytes) -> None:
    try:
        tx = decode_tx(data)
    except CodecError:
        return
    assert tx.raw == data


@settings(max_examples=3000)
@given(st.data())
def test_mutated_tx_bytes_raise_only_codec_error(data: st.DataObject) -> None:
    raw = bytearray(GOOD.raw)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        pos = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            raw.insert(pos, data.draw(st.integers(0, 255)))
        elif len(raw) > 1:
            del raw[pos]
    try:
        tx = decode_tx(bytes(raw))
    except CodecError:
        return
    assert encode(tx.signed) == bytes(raw)  # accepted means canonical


@settings(max_examples=1000)
@given(st.recursive(st.one_of(st.integers(-(2**63), 2**64 - 1), st.binary(max_size=8), st.text(max_size=8)),
                    lambda inner: st.lists(inner, max_size=4), max_leaves=12))
def test_unpack_then_pack_is_identity(value: object) -> None:
    data = pack(value)
    assert pack(unpack(data)) == data
