"""docs/encoding.md is generated from the code and its worked examples verify."""

from __future__ import annotations

import re
from pathlib import Path

from state.encoding_doc import CHAIN_ID, render
from state.tx import TX_KINDS, decode_tx

DOC = Path(__file__).resolve().parent.parent / "docs" / "encoding.md"


def test_doc_matches_code() -> None:
    assert DOC.read_text() == render(), "regenerate: python -m state.encoding_doc > docs/encoding.md"


def test_every_worked_example_decodes_and_verifies() -> None:
    text = DOC.read_text()
    blocks = re.findall(r"Signed transaction \(hex\), hash `0x([0-9a-f]{64})`:\n\n```\n(.*?)```", text, re.S)
    assert len(blocks) == len(TX_KINDS)  # one worked example per kind
    for tx_hash, hexdata in blocks:
        tx = decode_tx(bytes.fromhex("".join(hexdata.split())))
        assert tx.hash.hex() == tx_hash
        assert tx.has_valid_signature(CHAIN_ID)
        assert not tx.has_valid_signature(CHAIN_ID + "-other")
