"""The infer transaction: pay for one AI output and split the payment along its attribution.

Order of the rule (docs/attribution.md, "Inference"):
  1. checks (payment, output text and hash, model, adapter, agent, balance);
  2. the lineage chain and the relevant datanets; span matching of the output (matching.py);
  3. the pure split (state.attribution.split) into validators, owners, matched contributions and datanets;
  4. payments, pool deposits, matched credits; the inference record and its receipt.
"""

from __future__ import annotations

from dataclasses import replace

from state import keys
from state.accounts import FEE_COLLECTOR, REWARD_POOL, get_account, move
from state.attribution.records import (
    ROLE_ADAPTER_OWNER,
    ROLE_AGENT_OWNER,
    ROLE_DATANET_OWNER,
    ROLE_DATANET_POOL,
    ROLE_MATCHED,
    ROLE_MODEL_OWNER,
    ROLE_VALIDATORS,
    Adapter,
    Agent,
    Inference,
    Model,
    Receipt,
)
from state.attribution.contributions import fingerprint_params, get_contribution, put_contribution
from state.attribution.datanets import put_datanet, require_datanet
from state.attribution.fingerprint import shingle_hashes, words_of
from state.attribution.matching import match_output
from state.crypto import sha256
from state.errors import TxRejected, require
from state.params import AttributionParams
from state.attribution.models import get_agent, lineage, require_adapter_for, require_model
from state.attribution.pools import deposit, has_units
from state.attribution.receipts import Entry, Match, write_receipt
from state.attribution.split import split_data, split_fee, split_lineage, split_pro_rata
from state.store import StateView
from state.context import BlockContext
from state.tx import Infer, Tx


def relevant_datanets(chain: list[tuple[bytes, Model]], adapter: Adapter | None) -> list[bytes]:
    """Datanets whose contributions can be matched: the mixes of the lineage chain and adapter."""
    found = {d for _, m in chain for d, _ in m.datanets}
    if adapter is not None:
        found.update(d for d, _ in adapter.datanets)
    return sorted(found)


def require_agent_for(view: StateView, agent_address: bytes, sender: bytes, model_id: bytes) -> Agent:
    require(agent_address == sender, "agent_not_sender", "an agent can only pay for its own inferences")
    agent = get_agent(view, agent_address)
    require(agent is not None, "unknown_agent", "the agent is not registered")
    assert agent is not None
    require(agent.model == model_id, "agent_model_mismatch", "the agent is registered for another model")
    return agent


def output_shingles(output: bytes, a: AttributionParams) -> list[int]:
    """The output's shingle hashes (positions kept), computed by the validators from its text."""
    require(len(output) <= a.max_output_bytes, "output_too_large",
            f"output of {len(output)} bytes exceeds max_output_bytes {a.max_output_bytes}")
    try:
        text = output.decode("utf-8", "strict")
    except UnicodeDecodeError as exc:
        raise TxRejected("bad_output", f"output is not valid UTF-8 (byte {exc.start})") from None
    params = fingerprint_params(a)
    return shingle_hashes(words_of(text), params)


def process_infer(view: StateView, tx: Tx, ctx: BlockContext) -> None:
    """infer: the sender pays ``payment`` for one output; it is split and a receipt is stored."""
    body: Infer = tx.body
    a = ctx.params.attribution
    require(body.payment > 0, "zero_payment", "an inference must pay something")
    hashes = output_shingles(body.output, a)
    require(not body.output or sha256(body.output) == body.output_hash, "output_hash_mismatch",
            "output_hash is not the sha256 of output")
    model = require_model(view, body.model)
    adapter = require_adapter_for(view, body.adapter, body.model) if body.adapter else None
    agent = require_agent_for(view, body.agent, tx.sender, body.model) if body.agent else None
    require(get_account(view, tx.sender).balance >= body.payment, "insufficient_balance",
            f"balance cannot pay {body.payment}")

    chain = lineage(view, body.model, a.lineage_max_depth)
    datanets = relevant_datanets(chain, adapter)
    ranked = match_output(view, datanets, hashes, a.min_span_shingles, a.idf_scale, a.max_matched, a.winnow_window)
    covered = sum(x.credited for x in ranked)
    fee = split_fee(body.payment, a, adapter is not None, agent is not None)
    matched_part, pool_part = split_data(fee.data, a, covered, len(hashes))
    matched_amounts = split_pro_rata(matched_part, [x.score for x in ranked]) if ranked else []
    per_datanet = split_lineage(pool_part, [(m.datanets, m.lineage_bps) for _, m in chain])

    payer = tx.sender
    entries: list[Entry] = []

    def pay(recipient: bytes, role: int, amount: int) -> None:
        if amount > 0:
            move(view, payer, recipient, amount)
            entries.append((recipient, role, amount))

    pay(FEE_COLLECTOR, ROLE_VALIDATORS, fee.validators)
    pay(model.owner, ROLE_MODEL_OWNER, fee.model)
    if adapter is not None:
        pay(adapter.owner, ROLE_ADAPTER_OWNER, fee.adapter)
    if agent is not None:
        pay(agent.owner, ROLE_AGENT_OWNER, fee.agent)

    matches: list[Match] = []
    for x, amount in zip(ranked, matched_amounts, strict=True):
        c = get_contribution(view, x.contribution)
        assert c is not None  # postings list accepted contributions only
        if amount > 0:
            put_contribution(view, x.contribution, replace(c, unclaimed=c.unclaimed + amount))
            entries.append((x.contribution, ROLE_MATCHED, amount))
        matches.append((x.contribution, c.owner, x.score, amount, tuple(x.spans)))

    to_pool = matched_part
    pools: list[tuple[bytes, int, int, int]] = []
    for datanet_id in sorted(per_datanet):
        amount = per_datanet[datanet_id]
        if amount == 0:
            continue
        dn = require_datanet(view, datanet_id)
        if has_units(dn):
            dn2 = deposit(dn, amount)
            put_datanet(view, datanet_id, dn2)
            to_pool += amount
            entries.append((datanet_id, ROLE_DATANET_POOL, amount))
            pools.append((datanet_id, dn.total_units, dn.accepted, dn2.reward_per_unit - dn.reward_per_unit))
        else:  # nobody to pay through the pool yet: the datanet's owner takes it
            put_datanet(view, datanet_id, replace(dn, rewards_in=dn.rewards_in + amount))
            pay(dn.owner, ROLE_DATANET_OWNER, amount)
    if to_pool > 0:
        move(view, payer, REWARD_POOL, to_pool)

    view.put_obj(keys.inference_key(tx.hash), Inference(
        payer=payer,
        model=body.model,
        adapter=body.adapter,
        agent=body.agent,
        payment=body.payment,
        input_tokens=body.input_tokens,
        output_tokens=body.output_tokens,
        output_hash=body.output_hash,
        output_bytes=len(body.output),
        output_shingles=len(hashes),
        covered_shingles=covered,
        height=ctx.height,
        tx_index=ctx.tx_index,
    ))
    write_receipt(view, tx.hash, Receipt(body.payment, ctx.height, tuple(entries), tuple(matches), tuple(pools)), ctx)
