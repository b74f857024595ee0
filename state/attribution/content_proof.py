"""Proof that a contribution's text is what a committed block carried (docs/attribution.md, "Content").

The chain keeps a contribution's text in the block that carried its `contribute` transaction; state
keeps only what matching needs (hash, size, fingerprint, MinHash). Any full node serves the text with:

    {contribution, height, index, tx, header, tx_hashes}

`tx` is the signed transaction (its sha256 is the contribution id), `tx_hashes` the sha256 of every
transaction of the block in order, `header` the block header (canonical msgpack). A reader who
trusts a block hash (from a commit signed by more than 2/3 of the validators, RPC `commit`) checks
the rest with ``verify_content_proof``: no further trust in the serving node is needed.
"""

from __future__ import annotations

from typing import Any

from state.block import Block, Header
from state.codec import CodecError, pack, unpack
from state.crypto import from_hex, sha256, to_hex
from state.tx import Contribute, decode_tx


class ContentProofError(ValueError):
    """A proof that does not tie the text to the block."""


def content_proof(block: Block, index: int) -> dict[str, Any]:
    """The proof for transaction ``index`` of ``block`` (which must be a `contribute`)."""
    raw = block.txs[index]
    return {
        "contribution": to_hex(sha256(raw)),
        "height": block.header.height,
        "index": index,
        "tx": to_hex(raw),
        "header": to_hex(pack(block.header.to_wire())),  # type: ignore[attr-defined]
        "tx_hashes": [to_hex(sha256(t)) for t in block.txs],
    }


def verify_content_proof(proof: dict[str, Any], block_hash: bytes) -> bytes:
    """The content the proof carries, once every link up to ``block_hash`` checks; else raises."""
    try:
        header_bytes = from_hex(proof["header"])
        header = Header.from_wire(unpack(header_bytes))  # type: ignore[attr-defined]
        tx_hashes = [from_hex(h) for h in proof["tx_hashes"]]
        raw = from_hex(proof["tx"])
        index = proof["index"]
        tx = decode_tx(raw)
    except (KeyError, TypeError, ValueError, CodecError) as exc:
        raise ContentProofError(f"malformed content proof: {exc}") from None
    if header.hash() != block_hash:
        raise ContentProofError("the header is not the trusted block's")
    if header.height != proof.get("height"):
        raise ContentProofError("the header is not at the stated height")
    if sha256(pack(tx_hashes)) != header.txs_hash:
        raise ContentProofError("tx_hashes do not hash to the header's txs_hash")
    if type(index) is not int or not 0 <= index < len(tx_hashes) or tx_hashes[index] != tx.hash:
        raise ContentProofError("the transaction is not at the stated index of the block")
    if proof.get("contribution") != to_hex(tx.hash):
        raise ContentProofError("the transaction is not the named contribution")
    if type(tx.body) is not Contribute:
        raise ContentProofError("the transaction is not a contribute")
    return tx.body.content  # type: ignore[no-any-return]
