"""The state transition: `apply_tx` and `apply_block`, pure functions over a StateView.

apply_block(view, block_txs, ctx):
    begin_block (governance: a scheduled upgrade; staking: evidence, liveness)  ->
    apply_tx for each transaction  ->  the community pool's share of the new fees  ->
    end_block (staking: fee and reward distribution, unbonding, validator-set changes;
    then governance: expired deposit periods, tallies and passed proposals)

apply_tx(view, tx, ctx):
    check the envelope (signature for this chain id, nonce, fee)  ->  charge the fee, bump the
    nonce  ->  dispatch to the one small function of the transaction's kind.
A transaction that breaks any rule is recorded with its reason and changes nothing; a block stays
valid whatever its transactions do (the proposer's mempool keeps failing ones out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from state import keys
from state.accounts import FEE_COLLECTOR, Account, credit, get_account, process_transfer, set_account
from state.codec import CodecError, pack, unpack
from state.context import BlockContext
from state.crypto import sha256
from state.errors import TxRejected, require
from state.params import Params
from state.store import StateView
from state.tx import Transfer, Tx, decode_tx

OK = 0
FAILED = 1


@dataclass(frozen=True)
class TxResult:
    code: int
    reason: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.code == OK

    def to_wire(self) -> list[Any]:
        return [self.code, self.reason, self.message]


_SUCCEEDED = TxResult(OK)  # frozen: one shared instance for every successful transaction


@dataclass
class BlockResult:
    tx_results: list[TxResult]
    tx_hashes: list[bytes]
    validator_updates: Any = None

    def results_hash(self) -> bytes:
        return sha256(pack([r.to_wire() for r in self.tx_results]))


Handler = Callable[[StateView, Tx, BlockContext], None]


def _handlers() -> dict[type[Any], Handler]:
    from state.attribution import handlers as attribution
    from state.governance import handlers as governance
    from state.staking import handlers as staking

    table: dict[type[Any], Handler] = {Transfer: lambda v, tx, ctx: process_transfer(v, tx, tx.body)}
    table.update(attribution.HANDLERS)
    table.update(staking.HANDLERS)
    table.update(governance.HANDLERS)
    return table


_HANDLERS: dict[type[Any], Handler] | None = None


def load_handlers() -> dict[type[Any], Handler]:
    """The handler of every transaction kind (imports the attribution and staking rules once)."""
    global _HANDLERS
    if _HANDLERS is None:
        _HANDLERS = _handlers()
    return _HANDLERS


def get_handler(body_type: type[Any]) -> Handler | None:
    return load_handlers().get(body_type)


def check_envelope(view: StateView, tx: Tx, ctx: BlockContext) -> Account:
    """Signature for this chain, exact next nonce, fee at least the minimum and affordable."""
    if tx.hash not in ctx.verified:
        require(
            tx.has_valid_signature(ctx.chain_id),
            "invalid_signature",
            f"signature does not verify for chain {ctx.chain_id!r} "
            "(wrong chain id, wrong key or altered transaction)",
        )
    u = tx.unsigned
    acct = get_account(view, tx.sender)
    require(u.nonce >= acct.nonce, "stale_nonce", f"nonce {u.nonce} already used; next is {acct.nonce}")
    require(u.nonce == acct.nonce, "future_nonce", f"nonce {u.nonce} is ahead; next is {acct.nonce}")
    min_fee = ctx.params.fees.min_fee
    require(u.fee >= min_fee, "fee_too_low", f"fee {u.fee} is below the minimum {min_fee}")
    require(acct.balance >= u.fee, "insufficient_balance",
            f"balance {acct.balance} cannot pay the fee {u.fee}")
    return acct


def apply_tx(view: StateView, tx: Tx, ctx: BlockContext) -> TxResult:
    """Apply one decoded transaction; on any rule broken, nothing changes and the reason is returned."""
    try:
        with view.transaction():
            acct = check_envelope(view, tx, ctx)
            handler = get_handler(type(tx.body))
            require(handler is not None, "unsupported_kind", f"{tx.kind_name} is not enabled")
            # fee and nonce in one write; the fee reaches FEE_COLLECTOR once per block
            set_account(view, tx.sender, Account(acct.balance - tx.unsigned.fee, acct.nonce + 1))
            handler(view, tx, ctx)  # type: ignore[misc]
    except TxRejected as exc:
        return TxResult(FAILED, exc.reason, exc.message)
    ctx.fees += tx.unsigned.fee
    return _SUCCEEDED


def apply_raw_tx(view: StateView, raw: bytes, ctx: BlockContext) -> tuple[bytes, TxResult]:
    """Decode then apply; undecodable bytes are a `malformed` rejection."""
    tx = ctx.known_tx(raw) if ctx.known_tx is not None else None
    if tx is None:
        try:
            tx = decode_tx(raw)
        except CodecError as exc:
            return sha256(raw), TxResult(FAILED, "malformed", str(exc))
    return tx.hash, apply_tx(view, tx, ctx)


def apply_block(
    view: StateView,
    txs: Iterable[bytes],
    ctx: BlockContext,
    evidence: tuple[Any, ...] = (),
    last_commit: Any = None,
) -> BlockResult:
    """Apply a block's transactions between the staking begin/end hooks.

    ``evidence`` (DuplicateVoteEvidence) and ``last_commit`` (who signed the previous block) feed
    slashing and liveness in begin_block.
    """
    from state.governance import handlers as governance
    from state.staking import handlers as staking

    governance.begin_block(view, ctx)
    staking.begin_block(view, ctx, evidence, last_commit)
    fee_carry = get_account(view, FEE_COLLECTOR).balance
    results: list[TxResult] = []
    hashes: list[bytes] = []
    for i, raw in enumerate(txs):
        ctx.tx_index = i
        h, r = apply_raw_tx(view, raw, ctx)
        hashes.append(h)
        results.append(r)
    credit(view, FEE_COLLECTOR, ctx.fees)
    governance.fund_community_pool(view, ctx, fee_carry)
    updates = staking.end_block(view, ctx)
    governance.end_block(view, ctx)
    return BlockResult(results, hashes, updates)


def load_params(view: StateView) -> Params:
    raw = view.get(keys.params_key())
    if raw is None:
        raise LookupError("state has no params: genesis was not applied")
    return Params.from_wire(unpack(raw))  # type: ignore[attr-defined,no-any-return]
