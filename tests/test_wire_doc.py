"""docs/wire.md is generated from the code; its worked bytes check out with only msgpack,
hashlib and cryptography (no project code), as a client in another language would check them."""

from __future__ import annotations

import re
from pathlib import Path

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.wire_doc import render

DOCS = Path(__file__).resolve().parent.parent / "docs"
WIRE = DOCS / "wire.md"


def hex_after(text: str, title: str, nth: int = 0) -> bytes:
    part = text.split(title, 1)[1]
    blocks = re.findall(r"```\n([0-9a-f\n]+)```", part)
    return bytes.fromhex("".join(blocks[nth].split()))


def test_doc_matches_code() -> None:
    assert WIRE.read_text() == render(), "regenerate: python -m node.wire_doc > docs/wire.md"


def test_tx_batch_holds_the_transfer_of_encoding_md() -> None:
    batch = msgpack.unpackb(hex_after(WIRE.read_text(), "a tx batch holding one transfer"))
    enc = (DOCS / "encoding.md").read_text()
    transfer = enc.split("### `transfer` (kind 1)", 1)[1]
    signed = re.search(r"Signed transaction \(hex\).*?```\n([0-9a-f\n]+)```", transfer, re.S)
    assert signed
    assert batch == [bytes.fromhex("".join(signed.group(1).split()))]


def test_proposal_message_signature_verifies_from_the_doc_alone() -> None:
    text = WIRE.read_text()
    sign_bytes = hex_after(text, "a proposal message without its block", 0)
    message = hex_after(text, "a proposal message without its block", 1)
    (proposal, signature), block = msgpack.unpackb(message)
    assert block == b""  # the large-block form: fetch the body by hash
    assert sign_bytes == msgpack.packb(["attrchain/proposal/v1", "attrchain-example", proposal], use_bin_type=True)
    pub = re.search(r"public key `0x([0-9a-f]{64})`", (DOCS / "encoding.md").read_text())
    assert pub
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(pub.group(1))).verify(signature, sign_bytes)  # raises if wrong


def test_unknown_request_answer_is_an_error_array() -> None:
    bodies = re.findall(r"-> body `([0-9a-f]+)`", WIRE.read_text())
    assert len(bodies) == 3
    answers = [msgpack.unpackb(bytes.fromhex(b)) for b in bodies]
    assert answers[0] == answers[2] == ["error", "unknown request"]
    assert answers[1][0] == "error" and answers[1][1].startswith("malformed request")
