"""Generates docs/encoding.md from the code: every structure's fields and a worked hex example.

Run `python -m state.encoding_doc > docs/encoding.md`; tests/test_encoding_doc.py checks the file
matches, so the document can never drift from the code.
"""

from __future__ import annotations

import sys
from typing import Any

from state import block as B
from state import tx as T
from state.codec import pack, schema_rows
from state.crypto import DOMAIN_TX, PrivateKey, sha256, sign_bytes, to_hex
from state.params import DEVNET, Params

CHAIN_ID = "attrchain-example"
KEY = PrivateKey.from_int(1)
OTHER = PrivateKey.from_int(2)
H1 = sha256(b"example-1")
H2 = sha256(b"example-2")


def annotate(data: bytes) -> list[str]:
    """One line per msgpack token: offset, bytes, meaning."""
    lines: list[str] = []
    pos = 0

    def emit(start: int, end: int, text: str, depth: int) -> None:
        chunk = data[start:end]
        shown = chunk.hex() if len(chunk) <= 12 else chunk[:12].hex() + f"… ({len(chunk)} bytes)"
        lines.append(f"{start:5d}  {'  ' * depth}{shown:<40} {text}")

    def read(depth: int) -> None:
        nonlocal pos
        b = data[pos]
        start = pos
        if b <= 0x7F:
            pos += 1
            emit(start, pos, f"positive fixint {b}", depth)
        elif 0x90 <= b <= 0x9F or b in (0xDC, 0xDD):
            if b <= 0x9F:
                n, pos = b & 0x0F, pos + 1
            elif b == 0xDC:
                n, pos = int.from_bytes(data[pos + 1:pos + 3], "big"), pos + 3
            else:
                n, pos = int.from_bytes(data[pos + 1:pos + 5], "big"), pos + 5
            emit(start, pos, f"array of {n}", depth)
            for _ in range(n):
                read(depth + 1)
        elif 0xA0 <= b <= 0xBF or b in (0xD9, 0xDA, 0xDB):
            if b <= 0xBF:
                n, hdr = b & 0x1F, 1
            else:
                hdr = {0xD9: 2, 0xDA: 3, 0xDB: 5}[b]
                n = int.from_bytes(data[pos + 1:pos + hdr], "big")
            pos += hdr + n
            emit(start, pos, f"str({n}) {data[start + hdr:pos].decode()!r}", depth)
        elif b in (0xC4, 0xC5, 0xC6):
            hdr = {0xC4: 2, 0xC5: 3, 0xC6: 5}[b]
            n = int.from_bytes(data[pos + 1:pos + hdr], "big")
            pos += hdr + n
            emit(start, pos, f"bin({n})", depth)
        elif b in (0xCC, 0xCD, 0xCE, 0xCF):
            size = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}[b]
            v = int.from_bytes(data[pos + 1:pos + 1 + size], "big")
            pos += 1 + size
            emit(start, pos, f"uint{size * 8} {v}", depth)
        elif b in (0xD0, 0xD1, 0xD2, 0xD3):
            size = {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}[b]
            v = int.from_bytes(data[pos + 1:pos + 1 + size], "big", signed=True)
            pos += 1 + size
            emit(start, pos, f"int{size * 8} {v}", depth)
        elif b >= 0xE0:
            pos += 1
            emit(start, pos, f"negative fixint {b - 256}", depth)
        else:
            raise ValueError(f"unexpected msgpack byte {b:#x} at {pos}")

    while pos < len(data):
        read(0)
    return lines


def field_table(cls: Any) -> list[str]:
    out = ["| # | field | wire type |", "|---|---|---|"]
    for i, (name, desc) in enumerate(schema_rows(cls)):
        out.append(f"| {i} | `{name}` | {desc} |")
    return out


def example_bodies() -> list[Any]:
    return [
        T.Transfer(OTHER.address, 250),
        T.CreateDatanet("medical-qa", "ipfs://bafy-example", 100),
        T.AddCurator(H1, OTHER.address),
        T.RemoveCurator(H1, OTHER.address),
        T.CommitContribution(H2),
        T.Contribute(H1, "The quick brown fox jumps over the lazy dog.".encode(), H2, 100),
        T.Review(H1, 1),
        T.TransferContribution(H1, OTHER.address),
        T.RegisterModel("base-7b", ((H1, 6000), (H2, 4000)), b"", 0),
        T.RegisterAdapter("legal-lora", H1, ((H2, 10000),)),
        T.RegisterAgent("helper", H1, b"", OTHER.address, 500),
        T.AgentAction(H1, H2),
        T.Infer(H1, b"", b"", 1000, 120, 80, sha256(b"The answer quotes a contribution."),
                b"The answer quotes a contribution."),
        T.ClaimRewards((H1, H2)),
        T.CreateValidator(OTHER.public_key, 10_000, "val-1"),
        T.Delegate(OTHER.address, 500),
        T.Undelegate(OTHER.address, 200),
        T.Unjail(),
        T.SubmitProposal(2, "raise matched_bps", "pay matched spans more", pack([[["attribution.matched_bps", 7000]]]),
                         10_000),
        T.ProposalDeposit(1, 2_500),
        T.ProposalVote(1, 1),
    ]


def state_records() -> list[tuple[str, tuple[Any, ...], Any, str]]:
    """Every provable state record: key function, example arguments, value class, meaning."""
    from state import accounts as A
    from state.attribution import records as AR
    from state.governance import records as GR
    from state.staking import records as SR
    from state.staking.validator_set import ValidatorSet

    a, b = KEY.address, OTHER.address
    return [
        ("account_key", (a,), A.Account, "balance and nonce of an address (absent = 0, 0)"),
        ("chain_meta_key", (), A.ChainMeta, "genesis supply and burned total"),
        ("params_key", (), Params, "the chain parameters in force"),
        ("validator_key", (a,), SR.Validator, "a validator by operator address"),
        ("validator_by_consensus_key", (b,), SR.ConsensusLink, "consensus address to operator"),
        ("delegation_key", (a, b), SR.Delegation, "a delegation (validator, delegator)"),
        ("unbonding_key", (100, a, b), SR.UnbondingEntry, "an unbonding (completion height, validator, delegator)"),
        ("signing_info_key", (b,), SR.SigningInfo, "liveness record of a consensus address"),
        ("validator_set_key", (5,), ValidatorSet, "the validator set that signs a height"),
        ("datanet_key", (H1,), AR.Datanet, "a datanet by id"),
        ("contribution_key", (H1,), AR.Contribution, "a contribution by id"),
        ("contribution_sketch_key", (H1,), AR.Sketch, "a contribution's similarity sketch"),
        ("model_key", (H1,), AR.Model, "a model by id"),
        ("adapter_key", (H1,), AR.Adapter, "an adapter by id"),
        ("agent_key", (a,), AR.Agent, "an agent by address"),
        ("agent_action_key", (a, 3), AR.AgentActionRecord, "an agent's action by sequence number"),
        ("inference_key", (H1,), AR.Inference, "an inference by id"),
        ("receipt_key", (H1,), AR.Receipt, "the receipt of an inference"),
        ("gov_meta_key", (), GR.GovMeta, "governance counters"),
        ("proposal_key", (1,), GR.Proposal, "a governance proposal by id"),
        ("proposal_deposit_key", (1, a), GR.DepositRecord, "a deposit (proposal id, depositor)"),
        ("proposal_vote_key", (1, a), GR.VoteRecord, "a vote (proposal id, voter)"),
        ("upgrade_plan_key", (), GR.UpgradePlan, "the scheduled upgrade"),
        ("upgrade_done_key", ("v2",), GR.UpgradeDone, "an upgrade already applied"),
    ]


def example_validator_set() -> Any:
    from state.staking.validator_set import ValidatorSet

    return ValidatorSet.new([(KEY.public_key, 10), (OTHER.public_key, 30)])


def render_state_records(out: list[str]) -> None:
    from state import accounts as A
    from state import keys as K

    w = out.append
    w("## State records a client may prove")
    w("")
    w("Every state key starts with `s` (0x73) and a tag; integers in keys are 8-byte big-endian")
    w("(so LevelDB order is numeric order), addresses are 20 raw bytes, ids 32 raw bytes, names UTF-8.")
    w("The value under a key is the canonical msgpack array of its record (fields below, in order).")
    w("Ask `abci_query` with the key's hex and `prove: true`; an absent key has an absence proof.")
    w("")
    w("| key function | example arguments | example key (hex) | value | meaning |")
    w("|---|---|---|---|---|")
    for fn, args, cls, meaning in state_records():
        key = getattr(K, fn)(*args)
        shown = ", ".join(to_hex(x) if isinstance(x, bytes) else repr(x) for x in args)
        w(f"| `{fn}` | {shown} | `{key.hex()}` | `{cls.__name__}` | {meaning} |")
    w("")
    w(f"### Worked example: the account of `{to_hex(KEY.address)}`")
    w("")
    acct = A.Account(1_000_000, 7)
    key = K.account_key(KEY.address)
    w(f"Key = `73` (`s`) `612f` (`a/`) + the 20-byte address = `{key.hex()}`.")
    w(f"Value for balance 1000000, nonce 7 = `{pack(acct.to_wire()).hex()}`:")  # type: ignore[attr-defined]
    w("")
    w("```")
    out.extend(annotate(pack(acct.to_wire())))  # type: ignore[attr-defined]
    w("```")
    seen: set[str] = set()
    for _fn, _args, cls, _m in state_records():
        if cls.__name__ in seen or cls is Params:
            continue
        seen.add(cls.__name__)
        w("")
        w(f"### `{cls.__name__}`")
        w("")
        out.extend(field_table(cls))
    w("")
    w("`Params` is listed under Genesis parameters.")
    w("")
    w("## Validator set hashes")
    w("")
    w("`validators_hash` (the set signing this height) and `next_validators_hash` (the set signing")
    w("the next height) in a header are both `sha256(msgpack([[address, public_key, power], ...]))`")
    w("over the set's validators in set order: power descending, then address ascending. Proposer")
    w("priorities are not hashed. The set signing height h is the `ValidatorSet` stored under")
    w("`validator_set_key(h)` (provable, table above): `validators_hash` of block h hashes that record's")
    w("members and `next_validators_hash` those under `validator_set_key(h + 1)`.")
    vs = example_validator_set()
    w("")
    w("Example, two validators in set order:")
    w("")
    for v in vs.validators:
        w(f"- address `{v.address.hex()}`, public key `{v.public_key.hex()}`, power {v.power}")
    w("")
    rows = [[v.address, v.public_key, v.power] for v in vs.validators]
    w("```")
    out.extend(annotate(pack(rows)))
    w("```")
    w("")
    w(f"validators_hash = `{vs.hash().hex()}`")
    w("")


def render_first_block(out: list[str]) -> None:
    from state.staking.records import POWER_REDUCTION

    w = out.append
    w("## The first block and the genesis hash")
    w("")
    w("Heights start at 1; genesis is not a block. `genesis_hash` (the `status` sync answer, and what")
    w("peers compare before syncing) = `sha256(msgpack([chain_id, genesis_time_ms, params,")
    w("[[address, balance], ...], [[operator, consensus_public_key, stake, moniker], ...]]))`, accounts")
    w("and validators in the order of `genesis.json`, `params` as under Genesis parameters.")
    w("")
    w("Block 1 follows these conventions (everything else is as for any block):")
    w("")
    empty = pack(B.EMPTY_COMMIT.to_wire())  # type: ignore[attr-defined]
    w("- `last_block_hash` is empty (`c400`); later: the previous header's hash.")
    w(f"- `last_commit` is the empty commit `Commit(0, 0, 32 zero bytes, [])` = `{empty.hex()}`,")
    w(f"  so `last_commit_hash` = `{B.EMPTY_COMMIT.hash().hex()}`; later: the commit of the previous")
    w("  height, which must verify against that height's validator set.")
    w("- `time_ms` must be strictly after `genesis_time_ms`; later: exactly the BFT time of the last")
    w("  commit (the power-weighted median of its signatures' `time_ms`).")
    w("- `validators_hash` is the hash of the genesis set: `ValidatorSet.new` of the genesis")
    w(f"  validators with power = stake // {POWER_REDUCTION}; `next_validators_hash` is the hash")
    w("  of the same members (set 2 = set 1 with priorities advanced once, and priorities are not")
    w("  hashed). A change made in block H takes effect at height H+2, so `next_validators_hash` of")
    w("  block H+1 is the first to show it.")
    w("")


def hexblock(data: bytes) -> list[str]:
    h = data.hex()
    return ["```", *[h[i:i + 96] for i in range(0, len(h), 96)], "```"]


def render() -> str:
    out: list[str] = []
    w = out.append
    w("# attrchain encoding")
    w("")
    w("Generated by `python -m state.encoding_doc` from the code; `tests/test_encoding_doc.py` fails")
    w("if this file and the code disagree. Everything here is enough to build, sign and submit a")
    w("transaction from another language and to verify a state proof (see `state_tree.md`).")
    w("The p2p message layouts (gossip, sync requests and answers) are in `wire.md`.")
    w("")
    w("## Rules")
    w("")
    w("- Every consensus-critical structure is a **msgpack array** with the fields in the order")
    w("  listed below (never a map). Integers are msgpack ints in their shortest form (positive")
    w("  fixint, uint8/16/32/64; negative values only where a type says `int64`), byte strings are")
    w("  `bin` (8/16/32), text is `str` (UTF-8). No nil, bool, float, map or ext values exist.")
    w("- A decoder accepts a byte string only if re-encoding what it decoded gives the same bytes:")
    w("  trailing bytes, non-minimal integers or lengths, wrong types and extra or missing fields are")
    w("  rejected. Sizes shown as `bin(32)` are exact; `bin(0 or 32)` means empty = absent.")
    w("- Keys are Ed25519 (RFC 8032). An address is the first 20 bytes of `sha256(public_key)`,")
    w("  written `0x` + 40 lowercase hex digits.")
    w(f"- Sign bytes: `msgpack([domain, chain_id, unsigned])` with domain `{DOMAIN_TX}` for")
    w("  transactions, `attrchain/vote/v1` for votes and `attrchain/proposal/v1` for proposals. The")
    w("  signature is Ed25519 over those bytes, so it is bound to one chain and one message kind.")
    w("- Verification is OpenSSL's (the `cryptography` package): `s` must be below the group order,")
    w("  `[s]B - [h]A` is compared with `R` by its encoding (cofactorless), and small-order keys and `R`")
    w("  are not refused (a consensus key is: docs/staking.md). Nodes try libsodium first, which is")
    w("  twice as fast and stricter, and let OpenSSL decide every signature libsodium refuses.")
    w("- A signed transaction is `[unsigned, signature]`; its hash is `sha256(signed bytes)`; the")
    w("  id of a datanet, contribution, model or adapter is the hash of the transaction creating it.")
    w(f"- Limits: a signed transaction is at most {T.MAX_TX_BYTES} bytes.")
    w("")
    w("## Transaction envelope")
    w("")
    w("`UnsignedTx`:")
    w("")
    out.extend(field_table(T.UnsignedTx))
    w("")
    w("`SignedTx`:")
    w("")
    out.extend(field_table(T.SignedTx))
    w("")
    w("### Transaction kinds")
    w("")
    w("| kind | name | body |")
    w("|---|---|---|")
    for kind, (name, cls) in sorted(T.TX_KINDS.items()):
        w(f"| {kind} | `{name}` | `{cls.__name__}` |")
    w("")
    w(f"## Worked examples (chain id `{CHAIN_ID}`)")
    w("")
    w(f"Signer: seed `{to_hex(KEY.seed)}`, public key `{to_hex(KEY.public_key)}`,")
    w(f"address `{to_hex(KEY.address)}`. Nonce 7, fee 10. Ed25519 signatures are deterministic, so")
    w("these bytes are reproducible.")
    for body in example_bodies():
        kind = T.KIND_BY_CLASS[type(body)]
        name = T.TX_KINDS[kind][0]
        tx = T.sign_tx(KEY, CHAIN_ID, 7, body, fee=10)
        sb = sign_bytes(DOMAIN_TX, CHAIN_ID, tx.unsigned.to_wire())  # type: ignore[attr-defined]
        w("")
        w(f"### `{name}` (kind {kind})")
        w("")
        w(f"Body `{type(body).__name__}`:")
        w("")
        out.extend(field_table(type(body)))
        w("")
        w(f"Body value: `{body!r}`")
        w("")
        w("Sign bytes (hex):")
        w("")
        out.extend(hexblock(sb))
        w("")
        w("Signed transaction (hex), hash " f"`{to_hex(tx.hash)}`:")
        w("")
        out.extend(hexblock(tx.raw))
        w("")
        w("Byte by byte:")
        w("")
        w("```")
        out.extend(annotate(tx.raw))
        w("```")
    w("")
    w("### Proposal contents")
    w("")
    w("`SubmitProposal.content` is the canonical msgpack of the content structure of its `kind`")
    w("(`state/governance/records.py`, rules in `governance.md`). Vote options: 1 yes, 2 abstain,")
    w("3 no, 4 no_with_veto.")
    from state.governance import records as GR

    for kind, cls in sorted(GR.CONTENT_TYPES.items()):
        w("")
        w(f"`{cls.__name__}` (kind {kind}, `{GR.KIND_NAMES[kind]}`):")
        w("")
        if cls.WIRE_FIELDS:
            out.extend(field_table(cls))
        else:
            w("an empty array (`90`).")
    w("")
    w("## Blocks and consensus messages")
    for cls in (B.Header, B.Block, B.Commit, B.CommitSig, B.Vote, B.SignedVote, B.Proposal,
                B.SignedProposal, B.DuplicateVoteEvidence):
        w("")
        w(f"### `{cls.__name__}`")
        w("")
        out.extend(field_table(cls))
    w("")
    w("Block hash = `sha256(msgpack(header))`. `txs_hash` = `sha256(msgpack([sha256(tx) for tx in")
    w("txs]))`. `evidence_hash` = `sha256(msgpack([evidence...]))`. `last_commit_hash` =")
    w("`sha256(msgpack(commit))`. `results_hash` = `sha256(msgpack([[code, reason, message] per tx]))`.")
    w("Vote type 1 = prevote, 2 = precommit; an empty `block_hash` is a vote for nil. A commit")
    w("signature signs the precommit `Vote(2, height, round, block_hash, time_ms, validator)`.")
    w("")
    vote = B.Vote(B.PRECOMMIT, 5, 0, H1, 1_700_000_000_000, KEY.address)
    w("Example precommit sign bytes (hex):")
    w("")
    out.extend(hexblock(vote.sign_bytes(CHAIN_ID)))
    w("")
    w("```")
    out.extend(annotate(vote.sign_bytes(CHAIN_ID)))
    w("```")
    w("")
    w("## Genesis parameters")
    w("")
    for section, _ in schema_rows(Params):
        w(f"`{section}`:")
        w("")
        out.extend(field_table(type(getattr(DEVNET, section))))
        w("")
    w("Example (`devnet` preset) canonical bytes (hex):")
    w("")
    out.extend(hexblock(pack(DEVNET.to_wire())))  # type: ignore[attr-defined]
    w("")
    render_state_records(out)
    render_first_block(out)
    w("## State proofs")
    w("")
    w("State keys, values and the tree are described in `state_tree.md` (the collapsed binary")
    w("sparse Merkle tree, its hashing and the proof structure) and the key schema in")
    w("`state/keys.py`. A proof from `abci_query` with `prove: true` is the canonical encoding of")
    w("the `Proof` structure; verify it against `state_root` of the header of the height returned.")
    w("")
    return "\n".join(out)


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
