"""THE method table: every JSON-RPC method, its handler, its params and what it returns.

docs/rpc.md is generated from this table (python -m node.rpc.docs); a test checks they match.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from node.rpc import chain_methods as c
from node.rpc import domain_methods as d
from node.rpc import explorer_methods as x
from node.rpc import governance_methods as g
from node.rpc import tx_methods as t
from node.rpc import unsafe_methods as u
from node.rpc.params import (
    ADDRESS,
    HASH,
    AddressOrId,
    Bool,
    Enum,
    Height,
    Hex,
    Int,
    Param,
    PerPage,
    Schema,
    TX,
    Str,
)

MAX_STATE_KEY = 256
COMMIT_TIMEOUT_MAX = 3600


@dataclass(frozen=True)
class Method:
    name: str
    group: str
    summary: str
    params: tuple[Param, ...]
    result: str
    handler: Callable[..., Any] | None  # None: served by the WebSocket session itself
    ws_only: bool = False
    is_async: bool = field(init=False, default=False)
    schema: Schema = field(init=False, default=Schema())

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.handler))
        object.__setattr__(self, "schema", Schema(self.params))


def page(default: int = 1) -> Param:
    return Param("page", Int(1, 1 << 31), "page number, from 1", default=default)


def per_page(default: int = 30) -> Param:
    return Param("per_page", PerPage(), "items per page", default=default)


def order() -> Param:
    return Param("order", Enum(("desc", "asc")), "newest first (desc) or oldest first (asc)", default="desc")


HEIGHT = Param("height", Height(), 'block height; omitted or "latest": the latest')

_TABLE: tuple[Method, ...] = (
    # ---- node ------------------------------------------------------------------------------
    Method("health", "node", "Liveness: an empty object while the node answers.", (), "`{}`", c.health),
    Method(
        "status", "node", "Node identity, latest block and sync state, validator key, consensus progress.", (),
        "`node_info` {id, moniker, network, version, listen_addr, external_address, rpc_addr}; `chain_id`; `genesis_hash`; "
        "`sync_info` {latest_block_hash, latest_state_root, latest_block_height, latest_block_time_ms, "
        "earliest_block_height, catching_up}; `validator_info` {address, pub_key, voting_power} or null; "
        "`consensus` {height, round, step}",
        c.status,
    ),
    Method("net_info", "node", "P2P listening state, connected peers with their scores, banned peers "
           "(docs/security.md), direct consensus links and peer exchange counters.", (),
           "`{listening, n_peers, peers: [{id, score, offences: {NAME: count}, banned}], "
           "banned: [{id, score, offences, banned, bans, ban_reason, ban_remaining_s}], "
           "direct_consensus: {enabled, relay: {offering, via, asked_by}, outbound, inbound, linked: {outbound, inbound}, link_port, subscribed, "
           "received: {topic: {direct, gossip, gossip_copies, relayed}}, "
           "...counters} (docs/p2p.md), pex: {known_addresses, dialled, refused_addresses, target_peers} "
           "(docs/p2p.md)}`", c.net_info),
    Method("genesis", "node", "The genesis document this chain started from.", (),
           "`genesis` {chain_id, genesis_time_ms, params_preset, params, accounts, validators, genesis_hash, "
           "consensus_params (every genesis parameter by section)}", c.genesis),
    Method(
        "validators", "chain", "The validator set that signs a height (with proposer priorities).",
        (Param("height", Height(), "height whose signers to list; sets are known up to latest+2; default latest"),
         page(), per_page(100)),
        "`{block_height, hash, total, total_voting_power, proposer, validators: [{address, pub_key, operator, "
        "voting_power, proposer_priority}], count, page, per_page}`",
        c.validators,
    ),
    # ---- blocks ----------------------------------------------------------------------------
    Method("block", "chain", "A committed block.", (HEIGHT,),
           "`block_id` {hash}; `block` {header, txs: [0x hex], evidence, last_commit}. Header fields: version, "
           "chain_id, height, time_ms, last_block_hash, last_commit_hash, txs_hash, evidence_hash, validators_hash, "
           "next_validators_hash, state_root (after this block), results_hash, proposer", c.block),
    Method("block_by_hash", "chain", "A committed block by its hash.",
           (Param("hash", HASH, "block hash", required=True),), "as `block`", c.block_by_hash),
    Method("commit", "chain", "The header of a height and the commit certificate that finalised it.", (HEIGHT,),
           "`signed_header` {header, commit {height, round, block_hash, signatures: [{validator, time_ms, "
           "signature}]}}; `canonical`: true when taken from the next block (final), false for the copy this "
           "node saw for the latest block", c.commit),
    Method("blockchain", "chain", "Headers of a height range, newest first, at most 20 per call.",
           (Param("min_height", Height(), "lowest height; default max(1, max_height - 19)"),
            Param("max_height", Height(), "highest height; default latest")),
           "`{last_height, block_metas: [{block_id, block_size, header, num_txs}]}`", c.blockchain),
    # ---- transactions ----------------------------------------------------------------------
    Method("tx", "tx", "A transaction by hash: where it was committed and its result, or pending.",
           (Param("hash", HASH, "transaction hash", required=True),),
           "`{hash, status: \"committed\", height, index, result {code, reason, message}, tx, decoded}` or "
           "`{hash, status: \"pending\", tx, decoded}` while in this node's mempool. `decoded`: {hash, kind, "
           "sender, public_key, nonce, fee, body {fields of the kind}, signature}", c.tx),
    Method("tx_search", "tx",
           "Committed transactions in a height window, optionally only those sent by one address. Scans at "
           "most 1,000 blocks / 50,000 transactions per call; `next` continues the scan.",
           (Param("sender", ADDRESS, "only transactions signed by this address"),
            Param("min_height", Height(), "lowest height scanned; default 1"),
            Param("max_height", Height(), "highest height scanned; default latest"),
            order(), per_page(),
            Param("skip", Int(0, 1 << 31), "matches of the first scanned block to skip (from `next`)", default=0)),
           "`{txs: [{hash, height, index, result, tx, decoded}], count, scanned_blocks, next}`; `next` is null "
           "when the window is exhausted, else the params of the call that continues", c.tx_search),
    Method("unconfirmed_txs", "tx", "Transactions waiting in this node's mempool, in proposal order.",
           (Param("limit", PerPage(), "at most this many", default=30),),
           "`{n_txs, total_bytes, count, txs: [{hash, tx}]}`", c.unconfirmed_txs),
    Method("broadcast_tx_sync", "tx", "Check a transaction against the latest state and add it to the mempool.",
           (TX,), "`{hash, code: 0}`; a refused transaction is error -32003 with `data` {reason, message, hash}; refused "
           "at the door before any signature check (`mempool_full`, `intake_busy`: the node is busy, retry): "
           "-32005 with the same `data`",
           t.broadcast_tx_sync),
    Method("broadcast_tx_async", "tx",
           "Queue a transaction for the mempool and return its hash at once (only decoding is checked).",
           (TX,), "`{hash}`", t.broadcast_tx_async),
    Method("broadcast_tx_commit", "tx",
           "Submit a transaction and wait until a block commits it or the timeout passes.",
           (TX, Param("timeout", Int(1, COMMIT_TIMEOUT_MAX),
                      "seconds to wait; capped by the server's commit_timeout_s (default 30)")),
           "`{hash, committed: true, height, index, result {code, reason, message}}` (code 0: applied; a "
           "committed transaction can still have failed) or `{hash, committed: false, timeout_s}`; refused by "
           "the mempool: error -32003 (-32005 at the door, like broadcast_tx_sync)", t.broadcast_tx_commit),
    Method("abci_query", "state",
           "Any state key's committed value, with an optional sparse-Merkle proof against the latest state "
           "root (the `state_root` of the header at `height`).",
           (Param("key", Hex(max=MAX_STATE_KEY, what="state key"), "a state key (state/keys.py; first byte 0x73)",
                  required=True),
            Param("prove", Bool(), "include the proof", default=False),
            Param("height", Height(low=0), "must be the latest height if given (state is not versioned)")),
           "`{key, value (0x hex or null), exists, height, state_root, proof}`; `proof` is the canonical "
           "msgpack of the `Proof` structure (state/tree/proof.py) as 0x hex; check it with "
           "`verify_proof(state_root, key, value, proof)` after checking `state_root` against the header "
           "of block `height` (at height 0: the genesis state root)", c.abci_query),
    # ---- attribution domain ----------------------------------------------------------------
    Method("account", "domain", "Balance and nonce of an account.",
           (Param("address", ADDRESS, "account address", required=True),),
           "`{address, balance, nonce, height, next_nonce}`; `next_nonce` counts this node's queued transactions",
           d.account),
    Method("datanet", "domain", "A datanet.", (Param("id", HASH, "datanet id", required=True),),
           "`{id, owner, name, metadata_uri, bond_required, created_height, curators: [address], submitted, "
           "accepted, total_units, reward_per_unit, carry, rewards_in}` (the last three as decimal strings)",
           d.datanet),
    Method("contribution", "domain", "A contribution with its status and unclaimed rewards.",
           (Param("id", HASH, "contribution id", required=True),
            Param("sketch", Bool(), "also return the registered fingerprint and MinHash", default=False)),
           "`{id, datanet, owner, content_hash, size, bond, status (pending|accepted|rejected|voided), "
           "created_height, fingerprint_len, unclaimed, claimed, sketch?}`", d.contribution),
    Method("contribution_content", "domain",
           "A contribution's text, from the block that carried it, with the proof tying it to that block.",
           (Param("id", HASH, "contribution id", required=True),),
           "`{content (UTF-8 text), content_hash, proof: {contribution, height, index, tx, header, tx_hashes}}`; "
           "`header` is the canonical msgpack of the block header (its sha256 is the block hash: check it "
           "against `commit` of `height`), `tx_hashes` the sha256 of every transaction of the block (they hash to "
           "the header's `txs_hash`); `verify_content_proof(proof, block_hash)` (state/attribution/"
           "content_proof.py) returns the text once every link checks", d.contribution_content),
    Method("model", "domain", "A registered model.", (Param("id", HASH, "model id", required=True),),
           "`{id, owner, name, datanets: [{datanet, weight_bps}], parent, lineage_bps, depth, created_height}`",
           d.model),
    Method("adapter", "domain", "A registered adapter (LoRA).", (Param("id", HASH, "adapter id", required=True),),
           "`{id, owner, name, base_model, datanets: [{datanet, weight_bps}], created_height}`", d.adapter),
    Method("agent", "domain", "An agent and its most recent recorded actions.",
           (Param("address", ADDRESS, "agent account address", required=True),
            Param("actions", Int(0, 100), "recent actions to include", default=10)),
           "`{address, owner, name, model, adapter, stake, actions, recent_actions: [{seq, action_hash, "
           "outcome_hash, height, tx_hash}], created_height}`", d.agent),
    Method("inference", "domain", "A recorded inference.", (Param("id", HASH, "inference id (its tx hash)",
                                                                   required=True),),
           "`{id, payer, model, adapter, agent, payment, input_tokens, output_tokens, output_hash, "
           "output_bytes, attributed, output_shingles, covered_shingles, height, tx_index, output, output_spans: "
           "[{contribution, start, end}], pending_matches: [{contribution, datanet, status, shingles, spans, note}]}` "
           "(`output`: the text from the block that carried it, null when unattributed; `output_spans`: character "
           "ranges of the paid spans in it; `pending_matches`: contributions it quotes that were not accepted when it "
           "ran, so were paid nothing: status `pending` (still) or `accepted_later` (accepted after it; newest 50 "
           "per status and datanet are checked))", d.inference),
    Method("attribution", "domain",
           "Attribution receipts: the receipt of one inference, or a page of the receipts that paid a "
           "recipient (an address, a contribution id or a datanet id).",
           (Param("inference", HASH, "inference id"),
            Param("recipient", AddressOrId(), "recipient address or id"),
            page(), per_page(20), order()),
           "by inference: `{inference, receipts: [receipt], total: 1, pending_matches}` (pending_matches: "
           "contributions the output quotes that were not accepted when it ran, so were paid nothing, as in "
           "`inference`); by recipient: `{recipient, total, page, "
           "per_page, order, receipts}`. A receipt: `{inference, height, payment, entries: [{recipient, role, "
           "amount}], data_share: {amount, absent_parties, absent_note, matched_part, pool_part, covered_shingles, "
           "output_shingles, why}, pool_rule, pool_unit_cap, pools: [{datanet, amount, total_units, accepted, "
           "reward_per_unit_added}], matched: [{contribution, owner, score, amount, spans: [{output_shingle, "
           "contribution_shingle, shingles, credited, weight}]}]}` (`pools`: each datanet_pool deposit; a "
           "contribution earned min(size, pool_unit_cap) * reward_per_unit_added / 10**18 of it)", d.attribution),
    Method("rewards", "domain", "What claim_rewards would pay for a contribution now, and to whom.",
           (Param("contribution", HASH, "contribution id", required=True),),
           "`{contribution, owner, status, unclaimed, claimed, bond, vests_at}` (vests_at: the height from which "
           "an accepted contribution can claim, bond included; null unless accepted)", d.rewards),
    # ---- explorer history (state/history.py: written with each block, not in the state root) -----
    Method("earnings", "explorer",
           "What a recipient (an address, a contribution id or a datanet id) earned from attribution "
           "receipts, by role and over time. An address is credited its direct payouts and the matched "
           "payouts of the contributions it owned; a datanet its pool deposits and its contributions' matched "
           "payouts.",
           (Param("recipient", AddressOrId(), "address or id", required=True),
            Param("min_height", Height(), "lowest height; default 1"),
            Param("max_height", Height(), "highest height; default latest"),
            Param("points", Int(1, 1000), "at most this many points in `series`", default=200)),
           "`{recipient, min_height, max_height, total, by_role: {role: amount}, blocks, series: [{height, "
           "time_ms, amount, cumulative}], truncated}`: each point sums the earning blocks of an equal height "
           "range and carries the last one's height and time; `truncated` when more than 200,000 earning "
           "blocks were in range", x.earnings),
    Method("contributions", "explorer",
           "A page of the contributions of a datanet (optionally one status) or of an owner, newest first.",
           (Param("datanet", HASH, "datanet id"), Param("owner", ADDRESS, "owner address"),
            Param("status", Enum(("pending", "accepted", "rejected", "voided")), "datanet only: this status"),
            page(), per_page(20)),
           "`{datanet or owner, page, per_page, total, contributions: [contribution]}`; for a datanet also "
           "`counts: {pending, accepted, rejected, voided}` and `status`", x.contributions),
    Method("inferences", "explorer", "A page of the inferences of a model, adapter, agent or payer, newest first.",
           (Param("model", HASH, "model id"), Param("adapter", HASH, "adapter id"),
            Param("agent", ADDRESS, "agent address"), Param("payer", ADDRESS, "payer address"),
            page(), per_page(20)),
           "`{model|adapter|agent|payer, total, page, per_page, inferences: [inference]}`", x.inferences),
    Method("sent_txs", "explorer", "A page of the transactions an address signed, newest first (from the "
           "history index: no block scan).",
           (Param("address", ADDRESS, "sender address", required=True), page(), per_page(20)),
           "`{address, total, page, per_page, txs: [{hash, height, index, result, tx, decoded}]}` (as `tx_search`)",
           x.sent_txs),
    Method("lineage", "explorer", "A model with its ancestors, fine-tunes, adapters and agents (100 of each).",
           (Param("id", HASH, "model id", required=True),),
           "`{model, ancestors: [model], children: [model], children_total, adapters: [adapter], adapters_total, "
           "agents: [address], agents_total}`", x.lineage),
    Method("datanet_models", "explorer", "The models and adapters trained on a datanet (100 of each).",
           (Param("id", HASH, "datanet id", required=True),),
           "`{datanet, models: [model], models_total, adapters: [adapter], adapters_total}`", x.datanet_models),
    Method("contribution_history", "explorer",
           "Every block in which a contribution was created or changed status or owner (first 1,000).",
           (Param("id", HASH, "contribution id", required=True),),
           "`{contribution, events: [{height, status, owner}]}`", x.contribution_history),
    Method("validator_stats", "explorer",
           "Every validator with its voting power, its uptime over the liveness window and its slashing history.",
           (), "`{height, window, validators: [{operator, consensus_address, moniker, tokens, voting_power, "
               "jailed, tombstoned, missed_blocks, uptime_bps, slashing: [{height, jailed, tombstoned, "
               "tokens_before, tokens_after, slashed}], ...}]}`", x.validator_stats),
    Method("search", "explorer",
           "What a query names: a height, an address (and agent), a transaction or block hash, a datanet, "
           "contribution, model, adapter or inference id.",
           (Param("q", Str(100), "decimal height or 0x hex", required=True),),
           "`{q, results: [{kind (block|address|agent|tx|datanet|contribution|model|adapter|inference), id}]}`; "
           "empty when nothing matches", x.search),
    # ---- WebSocket only --------------------------------------------------------------------
    Method("subscribe", "ws", "Receive an event stream (WebSocket only).",
           (Param("event", Enum(("new_block", "tx")), "event kind", required=True),),
           "`{subscription}`: an id; events then arrive as notifications `{\"jsonrpc\": \"2.0\", \"method\": "
           "\"event\", \"params\": {subscription, event, data}}`", None, ws_only=True),
    Method("unsubscribe", "ws", "Stop one subscription (WebSocket only).",
           (Param("subscription", Int(1, 1 << 31), "id returned by subscribe", required=True),),
           "`{unsubscribed: true}`", None, ws_only=True),
    Method("unsubscribe_all", "ws", "Stop every subscription of this connection (WebSocket only).", (),
           "`{unsubscribed: n}`", None, ws_only=True),
    # ---- devnet fault injection (only with config [faults] admin = true; else -32601) --------
    Method("unsafe_set_peer_deny_list", "unsafe",
           "Devnet only: replace this node's deny list; it drops all gossip from these peers and refuses "
           "their block-sync requests (a network partition, see docs/devnet.md). An empty list heals.",
           (Param("peers", u.PeerIds(), "peer ids to cut off (as in `net_info`)", required=True),),
           "the deny list now in force, sorted; -32601 unless the node's config sets `[faults] admin = true`",
           u.unsafe_set_peer_deny_list),
    # ---- governance (docs/governance.md) ---------------------------------------------------
    Method("proposals", "governance", "Governance proposals by id, oldest first.",
           (Param("status", Enum(("deposit_period", "voting_period", "passed", "rejected", "failed")),
                  "only proposals with this status"),
            Param("proposer", ADDRESS, "only proposals submitted by this address"),
            page(), per_page()),
           "`{height, total, page, per_page, proposals: [proposal]}`; a proposal: `{id, kind, title, summary, "
           "content, proposer, tx_hash, status, submit_height, deposit_end_height, voting_start_height, "
           "voting_end_height, total_deposit, deposits (held|refunded|burned), final_tally, result}`",
           g.proposals),
    Method("proposal", "governance", "One proposal with its escrowed deposits.",
           (Param("id", Int(1), "proposal id", required=True),),
           "a proposal (see `proposals`) plus `deposit_count` and `escrowed_deposits: [{depositor, amount}]` "
           "(the first 100); `content` by kind: param_change `{changes: [{path, value}]}`, "
           "community_pool_spend `{recipient, amount}`, software_upgrade `{name, height, info}`, else `{}`",
           g.proposal),
    Method("votes", "governance", "The votes cast on a proposal, by voter address.",
           (Param("proposal", Int(1), "proposal id", required=True), page(), per_page()),
           "`{proposal, total, page, per_page, votes: [{voter, option, height}]}`", g.votes),
    Method("tally", "governance",
           "A proposal's tally: the stored final one once it ended, else the live one from the current state.",
           (Param("proposal", Int(1), "proposal id", required=True),),
           "`{height, proposal, status, final, tally {yes, abstain, no, no_with_veto, voted, bonded} or null, "
           "result}`", g.tally),
    Method("params", "governance", "The params in force for the next block (genesis params as changed by "
           "governance), by section.", (),
           "`{height, params: {fees, attribution, staking, timeouts, governance}}`", g.params),
    Method("community_pool", "governance", "The community pool and the deposits held in escrow.", (),
           "`{height, address, balance, escrow_address, escrowed_deposits, circulating_supply}`",
           g.community_pool),
    Method("upgrade_plan", "governance", "The scheduled software upgrade, and whether a named one took place.",
           (Param("name", Str(64), "also report the height at which the upgrade of this name took place"),),
           "`{height, plan: {name, height, info, proposal} or null, applied?: {name, height or null}}`",
           g.upgrade_plan),
)

METHODS: dict[str, Method] = {m.name: m for m in _TABLE}
GROUPS: tuple[tuple[str, str], ...] = (
    ("node", "Node"),
    ("chain", "Blocks and validators"),
    ("tx", "Transactions"),
    ("state", "State and proofs"),
    ("domain", "Attribution domain"),
    ("explorer", "Explorer history"),
    ("ws", "WebSocket subscriptions"),
    ("unsafe", "Devnet fault injection (unsafe)"),
    ("governance", "Governance"),
)
