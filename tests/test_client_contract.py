"""A mini-verifier written only from docs/encoding.md's worked examples (hashlib, no project code)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

DOC_DIR = Path(__file__).resolve().parent.parent / "docs"
DOC = (DOC_DIR / "encoding.md").read_text()


def mp_uint(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    for tag, size in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
        if n < 1 << (8 * size):
            return bytes([tag]) + n.to_bytes(size, "big")
    raise ValueError(n)


def mp_bin(b: bytes) -> bytes:
    assert len(b) < 256
    return bytes([0xC4, len(b)]) + b


def mp_array(items: list[bytes]) -> bytes:
    assert len(items) < 16
    return bytes([0x90 + len(items)]) + b"".join(items)


def test_account_key_and_value_from_the_doc() -> None:
    m = re.search(r"Worked example: the account of `0x([0-9a-f]{40})`.*?address = `([0-9a-f]+)`\.\n"
                  r"Value for balance (\d+), nonce (\d+) = `([0-9a-f]+)`", DOC, re.S)
    assert m, "account worked example missing from docs/encoding.md"
    address, key_hex, balance, nonce, value_hex = m.groups()
    assert bytes.fromhex(key_hex) == b"sa/" + bytes.fromhex(address)
    assert bytes.fromhex(value_hex) == mp_array([mp_uint(int(balance)), mp_uint(int(nonce))])


def test_validators_hash_from_the_doc() -> None:
    rows = re.findall(r"- address `([0-9a-f]{40})`, public key `([0-9a-f]{64})`, power (\d+)", DOC)
    assert len(rows) == 2
    want = re.search(r"validators_hash = `([0-9a-f]{64})`", DOC)
    assert want
    vals = [(bytes.fromhex(a), bytes.fromhex(pk), int(p)) for a, pk, p in rows]
    for addr, pk, _ in vals:
        assert hashlib.sha256(pk).digest()[:20] == addr
    # set order as documented: power descending, then address ascending
    assert vals == sorted(vals, key=lambda v: (-v[2], v[0]))
    packed = mp_array([mp_array([mp_bin(a), mp_bin(pk), mp_uint(p)]) for a, pk, p in vals])
    assert hashlib.sha256(packed).hexdigest() == want.group(1)


def test_first_block_empty_commit_from_the_doc() -> None:
    m = re.search(r"the empty commit .*? = `([0-9a-f]+)`,\n  so `last_commit_hash` = `([0-9a-f]{64})`", DOC)
    assert m, "first-block conventions missing from docs/encoding.md"
    commit, commit_hash = bytes.fromhex(m.group(1)), m.group(2)
    assert commit == mp_array([mp_uint(0), mp_uint(0), mp_bin(bytes(32)), mp_array([])])
    assert hashlib.sha256(commit).hexdigest() == commit_hash


def test_key_file_example_from_the_doc() -> None:
    import json

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    wire = (DOC_DIR / "wire.md").read_text()
    m = re.search(r"```json\n(.*?)```", wire, re.S)
    assert m, "key file example missing from docs/wire.md"
    key = json.loads(m.group(1))
    assert key["type"] == "ed25519"
    pub = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key["seed"][2:])).public_key()
    raw = pub.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert "0x" + raw.hex() == key["public_key"]
    assert "0x" + hashlib.sha256(raw).digest()[:20].hex() == key["address"]
