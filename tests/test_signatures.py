"""Ed25519 keys, addresses and chain-id-bound signatures."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state.block import Proposal, Vote
from state.crypto import KeyFileError, PrivateKey, address_of, from_hex, to_hex, verify, verify_openssl
from state.tx import SignedTx, Transfer, Tx, UnsignedTx, decode_tx, sign_tx
from state.codec import pack
from state.crypto import sha256

A = PrivateKey.from_int(1)
B = PrivateKey.from_int(2)


def test_address_is_first_20_bytes_of_sha256_of_public_key() -> None:
    assert A.address == hashlib.sha256(A.public_key).digest()[:20]
    assert address_of(A.public_key) == A.address
    assert len(to_hex(A.address)) == 42 and to_hex(A.address).startswith("0x")


def test_same_seed_same_key() -> None:
    assert PrivateKey(A.seed).public_key == A.public_key
    assert PrivateKey.from_int(1) == A


def test_signature_is_bound_to_chain_id() -> None:
    tx = sign_tx(A, "chain-a", 0, Transfer(B.address, 5), 1)
    assert tx.has_valid_signature("chain-a")
    assert not tx.has_valid_signature("chain-b")
    assert not tx.has_valid_signature("chain-a ")


def _resign_fields(tx: Tx, **changes: object) -> Tx:
    u = tx.unsigned
    fields = dict(version=u.version, kind=u.kind, sender=u.sender, nonce=u.nonce, fee=u.fee, body=u.body)
    fields.update(changes)
    signed = SignedTx(UnsignedTx(**fields), tx.signed.signature)  # type: ignore[arg-type]
    raw = pack(signed.to_wire())  # type: ignore[attr-defined]
    return decode_tx(raw)


@pytest.mark.parametrize(
    "change",
    [
        {"nonce": 1},
        {"fee": 2},
        {"body": Transfer(A.address, 5)},
        {"body": Transfer(B.address, 6)},
        {"sender": B.public_key},
    ],
)
def test_any_altered_field_breaks_the_signature(change: dict[str, object]) -> None:
    tx = sign_tx(A, "c", 0, Transfer(B.address, 5), 1)
    assert not _resign_fields(tx, **change).has_valid_signature("c")


def test_another_keys_signature_is_rejected() -> None:
    tx = sign_tx(A, "c", 0, Transfer(B.address, 5), 1)
    other = sign_tx(B, "c", 0, Transfer(B.address, 5), 1)
    forged = decode_tx(pack([tx.signed.unsigned.to_wire(), other.signed.signature]))  # type: ignore[attr-defined]
    assert not forged.has_valid_signature("c")


@settings(max_examples=200)
@given(st.binary(min_size=64, max_size=64))
def test_random_signatures_never_verify(sig: bytes) -> None:
    assert not verify(A.public_key, sig, b"message")


def test_verify_rejects_bad_lengths_and_invalid_points() -> None:
    sig = A.sign(b"m")
    assert verify(A.public_key, sig, b"m")
    assert not verify(A.public_key[:31], sig, b"m")
    assert not verify(A.public_key, sig[:63], b"m")
    assert not verify(b"\xff" * 32, sig, b"m")


# The encodings of Ed25519's small-order points (orders 1, 2, 4 and 8), which libsodium refuses as a
# key or as R and OpenSSL does not.
SMALL_ORDER = [bytes.fromhex(h) for h in (
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
)]
ORDER_L = 2**252 + 27742317777372353535851937790883648493


def test_the_rule_is_openssls_where_libsodium_is_stricter() -> None:
    """The identity key with R = identity and s = 0 verifies any message under OpenSSL's rule (the
    chain's, DESIGN section 2); libsodium, the fast path, refuses it. verify() must answer as
    OpenSSL does: a libsodium-only verify would make this False."""
    identity = SMALL_ORDER[0]
    sig = identity + bytes(32)
    assert verify_openssl(identity, sig, b"any message")
    assert verify(identity, sig, b"any message")
    # a non-canonical s (s + L) is refused by both
    good = A.sign(b"m")
    s = int.from_bytes(good[32:], "little") + ORDER_L
    assert not verify(A.public_key, good[:32] + s.to_bytes(32, "little"), b"m")
    assert not verify_openssl(A.public_key, good[:32] + s.to_bytes(32, "little"), b"m")


@settings(max_examples=400)
@given(
    st.one_of(st.sampled_from(SMALL_ORDER), st.just(A.public_key), st.binary(min_size=32, max_size=32)),
    st.one_of(st.sampled_from(SMALL_ORDER), st.just(A.sign(b"m")[:32]), st.binary(min_size=32, max_size=32)),
    st.one_of(st.sampled_from([0, 1, ORDER_L - 1, ORDER_L]), st.integers(0, 2**256 - 1)),
    st.sampled_from([b"m", b"", b"another message"]),
)
def test_verify_answers_as_openssl_on_edge_keys_and_points(key: bytes, r: bytes, s: int, message: bytes) -> None:
    sig = r + s.to_bytes(32, "little")
    assert verify(key, sig, message) == verify_openssl(key, sig, message)


def test_vote_and_proposal_domains_differ_from_tx() -> None:
    v = Vote(1, 1, 0, b"\x01" * 32, 0, A.address)
    p = Proposal(1, 0, -1, b"\x01" * 32, 0, A.address)
    assert v.sign_bytes("c") != v.sign_bytes("d")
    assert len({v.sign_bytes("c"), p.sign_bytes("c")}) == 2
    sig = A.sign(v.sign_bytes("c"))
    assert verify(A.public_key, sig, v.sign_bytes("c"))
    assert not verify(A.public_key, sig, v.sign_bytes("d"))


def test_tx_hash_is_sha256_of_signed_bytes() -> None:
    tx = sign_tx(A, "c", 0, Transfer(B.address, 5), 1)
    assert tx.hash == sha256(tx.raw)


def test_key_file_round_trip_and_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "k.key"
    A.save(p)
    assert PrivateKey.load(p) == A
    assert oct(p.stat().st_mode & 0o777) == "0o600"
    doc = json.loads(p.read_text())
    doc["public_key"] = to_hex(B.public_key)
    p.write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="does not match"):
        PrivateKey.load(p)
    p.write_text("not json")
    with pytest.raises(KeyFileError):
        PrivateKey.load(p)
    with pytest.raises(KeyFileError):
        PrivateKey.load(tmp_path / "missing.key")


def test_from_hex_requires_prefix_and_size() -> None:
    assert from_hex("0x0102") == b"\x01\x02"
    for bad in ("0102", "0xzz", "0x010"):
        with pytest.raises(ValueError):
            from_hex(bad)
    with pytest.raises(ValueError):
        from_hex("0x01", 2)
