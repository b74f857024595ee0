"""Generates docs/wire.md: every p2p message layout and the key file format, worked bytes by the code.

Run `python -m node.wire_doc > docs/wire.md`; tests/test_wire_doc.py checks the file matches, and
the error answers shown are produced by calling the real request handlers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from node.config import Home
from node.pex import MAX_ANSWER_ADDRS, pex_protocol
from node.statesync import handle_statesync_request, statesync_protocol
from node.sync import MAX_BLOCKS_PER_RESPONSE, handle_sync_request
from node.tx_intake import MAX_TX_BATCH
from p2p import topics
from p2p.framing import encode_uvarint
from p2p.identity import peer_id_from_seed
from p2p.reqresp import MAX_REASON_BYTES, Status
from state import block as B
from state.codec import pack
from state.encoding_doc import CHAIN_ID, H1, KEY, OTHER, annotate, hexblock
from state.tx import Transfer, sign_tx

STATUS_MEANING = {
    Status.OK: "OK: the body is the answer",
    Status.REJECTED: "rejected by the handler (also: the requester is banned, reason `banned`)",
    Status.INTERNAL_ERROR: "internal error in the handler (details only in the responder's log)",
    Status.REQUEST_TOO_LARGE: "request over the responder's request cap",
    Status.RESPONSE_TOO_LARGE: "response over the responder's response cap",
    Status.BUSY: "busy: too many requests in progress",
    Status.TIMEOUT: "the handler timed out",
}

# protocol id function, request -> answer rows (text), where the handler lives
REQUESTS = [
    (topics.sync_protocol, "block sync (`node/sync.py`)", [
        ('["status"]', '["status", height uint, genesis_hash bin(32) or bin(0)]'),
        ('["blocks", from_height uint >= 1, max_count uint >= 1]',
         f'["blocks", [[block bin, commit bin], ...]]: consecutive committed blocks from from_height, at most '
         f'{MAX_BLOCKS_PER_RESPONSE} and about 8 MiB; empty when the responder has none'),
    ]),
    (statesync_protocol, "state sync (`node/statesync.py`, `statesync.md`)", [
        ('["snapshots"]', '["snapshots", [[height, state_root bin(32), [chunk_hash bin(32), ...]], ...]] newest first'),
        ('["chunk", height uint, index uint]', '["chunk", chunk bin] (chunk = msgpack [[key, value], ...]) or '
                                                '["error", "unknown chunk"]'),
        ('["light", from_height uint >= 1, count uint >= 1]',
         '["light", [[header bin, commit bin, validator_set bin or bin(0)], ...]]: the set (canonical '
         'ValidatorSet bytes) on the first item and where it changes, else empty'),
    ]),
    (topics.proposal_block_protocol, "proposal bodies (`node/app.py`)", [
        ('["proposal_block", block_hash bin(32)]',
         '["proposal_block", block bin] or ["error", "unknown block"] or ["error", "partitioned"]'),
    ]),
    (pex_protocol, "peer exchange (`node/pex.py`)", [
        ('["pex", advertised str]  ("host:port" or "")',
         f'["addrs", [[peer_id str, "host:port"], ...]] at most {MAX_ANSWER_ADDRS}, or ["error", "malformed request"]'),
    ]),
]


def example_proposal_message() -> tuple[bytes, bytes]:
    """A proposal gossip message without its block (the large-block form), and its sign bytes."""
    p = B.Proposal(7, 0, -1, H1, 1_700_000_000_000, KEY.address)
    sp = B.SignedProposal(p, KEY.sign(p.sign_bytes(CHAIN_ID)))
    return pack([sp.to_wire(), b""]), p.sign_bytes(CHAIN_ID)  # type: ignore[attr-defined]


def example_tx_batch() -> bytes:
    return pack([sign_tx(KEY, CHAIN_ID, 7, Transfer(OTHER.address, 250), fee=10).raw])


def render_key_files(out: list[str]) -> None:
    w = out.append
    home = Home(Path("HOME"))
    w("## Key files")
    w("")
    w("Every key (node identity, consensus key, account key) is one JSON file, written with mode")
    w("0600 (atomically: a temporary file, then a rename). The signer of `encoding.md`:")
    w("")
    w("```json")
    out.extend(json.dumps(KEY.to_json(), indent=2).splitlines())
    w("```")
    w("")
    w("- `type` is `ed25519`. `seed` (`0x` + 64 hex digits) is the RFC 8032 32-byte private key seed")
    w("  and the only field needed; `public_key` is its Ed25519 public key and `address` the first 20")
    w("  bytes of `sha256(public_key)`, written for the reader.")
    w("- Loading refuses a file without a valid `seed`, and one whose `public_key` does not match the")
    w("  seed (one error line naming the file).")
    w(f"- In a node home: `{home.node_key_file.relative_to(home.root)}` is the p2p identity; its libp2p")
    w(f"  peer id is that of the Ed25519 key of the seed (the key above gives `{peer_id_from_seed(KEY.seed)}`).")
    w(f"  `{home.validator_key_file.relative_to(home.root)}` is the consensus key; its address is the")
    w("  validator address in headers, votes and commits. An operator (account) key is any such file")
    w("  kept outside the node.")
    w("")


def render() -> str:
    out: list[str] = []
    w = out.append
    w("# attrchain p2p messages and key files")
    w("")
    w("Generated by `python -m node.wire_doc` from the code; `tests/test_wire_doc.py` fails if this")
    w("file and the code disagree. Transport, peers and GossipSub settings: `p2p.md`. Every structure")
    w("named here (signed transaction, `SignedProposal`, `SignedVote`, `Block`, `Commit`, `Header`,")
    w("`DuplicateVoteEvidence`) is the canonical msgpack of `encoding.md`. Worked examples use chain id")
    w(f"`{CHAIN_ID}` and the signer of `encoding.md`.")
    w("")
    w("## Gossip topics")
    w("")
    w("| topic | payload |")
    w("|---|---|")
    w(f"| `{topics.txs_topic(CHAIN_ID)}` | tx batch: msgpack array of signed transactions, each a `bin` "
      f"(the signed bytes); a receiver takes at most {MAX_TX_BATCH} of one batch |")
    w(f"| `{topics.proposals_topic(CHAIN_ID)}` | proposal message: `[SignedProposal, block bin]`; the block "
      "bytes are empty (`c400`) when the block is over `[consensus] proposal_inline_bytes`: fetch it by hash "
      "(`proposal_block` below) and keep it only if its header hashes to the proposal's `block_hash` |")
    w(f"| `{topics.votes_topic(CHAIN_ID)}` | one `SignedVote` |")
    w(f"| `{topics.evidence_topic(CHAIN_ID)}` | one `DuplicateVoteEvidence` |")
    w("")
    w("Validators also exchange proposals and votes on direct streams "
      f"(`{topics.consensus_protocol(CHAIN_ID)}`, `p2p.md`), same payloads.")
    w("")
    w("### Worked example: a tx batch holding one transfer")
    w("")
    batch = example_tx_batch()
    out.extend(hexblock(batch))
    w("")
    w("```")
    out.extend(annotate(batch))
    w("```")
    w("")
    w("### Worked example: a proposal message without its block")
    w("")
    msg, sb = example_proposal_message()
    w("Proposal height 7, round 0, pol_round -1, block_hash `sha256(\"example-1\")`, time_ms")
    w("1700000000000, signed over these sign bytes:")
    w("")
    out.extend(hexblock(sb))
    w("")
    w("Message:")
    w("")
    out.extend(hexblock(msg))
    w("")
    w("```")
    out.extend(annotate(msg))
    w("```")
    w("")
    w("## Requests and answers")
    w("")
    w("Every request opens its own stream on the protocol id, framed as in `p2p.md`:")
    w("")
    w("```")
    w("requester -> responder:  uvarint(len) || request                then half-close")
    w("responder -> requester:  status (1 byte) || uvarint(len) || body  then close")
    w("```")
    w("")
    w("`uvarint` is unsigned LEB128 (minimal, at most 9 bytes); e.g. length 300 is "
      f"`{encode_uvarint(300).hex()}`. Requests and answers are canonical msgpack arrays whose")
    w("first element names them. An answer with status 0 is either the answer named in the tables")
    w("below or `[\"error\", reason str]`. Any other status means the body is a UTF-8 reason of at")
    w(f"most {MAX_REASON_BYTES} bytes, not msgpack:")
    w("")
    w("| status | meaning |")
    w("|---|---|")
    for st in Status:
        w(f"| {int(st)} | {STATUS_MEANING[st]} |")
    w("")
    for proto_fn, name, rows in REQUESTS:
        w(f"### {name}: `{proto_fn(CHAIN_ID)}`")
        w("")
        w("| request | answer |")
        w("|---|---|")
        for req, ans in rows:
            w(f"| `{req}` | {ans} |")
        w("")
    w("### Unknown and malformed requests")
    w("")
    w("A request a handler does not know (well-formed msgpack, another name or shape) is answered with")
    w("status 0 and `[\"error\", \"unknown request\"]`; one that is not canonical msgpack with")
    w("`[\"error\", \"malformed request: ...\"]`. The peer-exchange and proposal-body handlers answer")
    w("both with `[\"error\", \"malformed request\"]` and score the asker `MALFORMED`. The stream is")
    w("then closed; nothing else changes.")
    w("Bytes produced by the block-sync handler:")
    w("")
    unknown = handle_sync_request(None, pack(["nonsense", 1]))  # type: ignore[arg-type]
    w(f"- request `{pack(['nonsense', 1]).hex()}` (`[\"nonsense\", 1]`) -> body `{unknown.hex()}`")
    malformed = handle_sync_request(None, b"\xc1")  # type: ignore[arg-type]
    w(f"- request `c1` (not msgpack) -> body `{malformed.hex()}`")
    unknown_ss = handle_statesync_request(None, None, pack(["nonsense"]))  # type: ignore[arg-type]
    w(f"- state sync, request `{pack(['nonsense']).hex()}` -> body `{unknown_ss.hex()}`")
    w("")
    w("A peer that does not speak a protocol at all refuses the stream during multistream-select")
    w("(`na`): there is no status byte or body, the protocol is simply not supported by that peer.")
    w("")
    render_key_files(out)
    return "\n".join(out)


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
