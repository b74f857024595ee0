"""Accounts, balances, module accounts, burns and the `transfer` transaction.

Conservation rule: every token always sits in exactly one account balance (module accounts hold
escrowed bonds, stakes, reward pools and the fee pool) or has been burned. So at every block
sum(balances) + burned == genesis supply; `supply_check` asserts it.
"""

from __future__ import annotations

from collections.abc import Sequence

from state import keys
from state.codec import U64, canonical, f
from state.crypto import sha256
from state.errors import require
from state.store import StateView
from state.tx import Transfer, Tx


@canonical
class Account:
    balance: int = f(U64)
    nonce: int = f(U64)


@canonical
class ChainMeta:
    """Chain-wide counters kept in state."""

    supply: int = f(U64)  # minted at genesis; never changes
    burned: int = f(U64)


EMPTY_ACCOUNT = Account(0, 0)
U64_MAX = (1 << 64) - 1


def module_address(name: str) -> bytes:
    """Address of a module account: first 20 bytes of sha256("attrchain/module/" + name)."""
    return sha256(b"attrchain/module/" + name.encode())[:20]


FEE_COLLECTOR = module_address("fee_collector")
BOND_ESCROW = module_address("bond_escrow")
REWARD_POOL = module_address("reward_pool")
STAKING_POOL = module_address("staking")
UNBONDING_POOL = module_address("unbonding")
AGENT_STAKE_POOL = module_address("agent_stake")


def get_account(view: StateView, address: bytes) -> Account:
    acct = view.get_obj(keys.account_key(address), Account)
    return acct if acct is not None else EMPTY_ACCOUNT


def set_account(view: StateView, address: bytes, account: Account) -> None:
    if account.balance == 0 and account.nonce == 0:
        view.delete(keys.account_key(address))
    else:
        view.put_obj(keys.account_key(address), account)


def get_chain_meta(view: StateView) -> ChainMeta:
    meta = view.get_obj(keys.chain_meta_key(), ChainMeta)
    return meta if meta is not None else ChainMeta(0, 0)


def move(view: StateView, sender: bytes, recipient: bytes, amount: int) -> None:
    """Move ``amount`` from one balance to another; rejects with insufficient_balance."""
    if amount == 0 or sender == recipient:
        require(get_account(view, sender).balance >= amount, "insufficient_balance",
                f"balance below {amount}")
        return
    src = get_account(view, sender)
    require(src.balance >= amount, "insufficient_balance",
            f"balance {src.balance} is below {amount}")
    set_account(view, sender, Account(src.balance - amount, src.nonce))
    dst = get_account(view, recipient)
    require(dst.balance + amount <= U64_MAX, "balance_overflow", "recipient balance would overflow")
    set_account(view, recipient, Account(dst.balance + amount, dst.nonce))


def credit(view: StateView, address: bytes, amount: int) -> None:
    """Add ``amount`` already debited elsewhere in the same transition (e.g. the block's fees)."""
    if amount == 0:
        return
    acct = get_account(view, address)
    require(acct.balance + amount <= U64_MAX, "balance_overflow", "balance would overflow")
    set_account(view, address, Account(acct.balance + amount, acct.nonce))


def burn(view: StateView, holder: bytes, amount: int) -> None:
    """Destroy ``amount`` from ``holder`` and count it in the chain's burned total."""
    if amount == 0:
        return
    src = get_account(view, holder)
    require(src.balance >= amount, "insufficient_balance", f"cannot burn {amount}")
    set_account(view, holder, Account(src.balance - amount, src.nonce))
    meta = get_chain_meta(view)
    view.put_obj(keys.chain_meta_key(), ChainMeta(meta.supply, meta.burned + amount))


def process_transfer(view: StateView, tx: Tx, body: Transfer) -> None:
    """transfer: a positive amount from the sender to ``to``."""
    require(body.amount > 0, "zero_amount", "transfer amount must be positive")
    move(view, tx.sender, body.to, body.amount)


def fold_transfers(view: StateView, sender: bytes, transfers: Sequence[tuple[int, int, bytes, int]],
                   min_fee: int) -> list[int] | None:
    """Apply one sender's run of plain transfers ``(nonce, fee, to, amount)`` to ``view`` at once:
    the writes ``apply_tx`` makes running them one after another (check_envelope's nonce, fee and
    balance rules, then ``process_transfer``), with one read and one write per account touched.

    Returns the sender's balance before each transfer; None, changing nothing, when one of them
    would be rejected (the caller runs them through apply_tx to learn which). The mempool's way of
    carrying a queue onto a new block (node/mempool.py); tests/test_mempool.py checks it against
    apply_tx."""
    src = get_account(view, sender)
    balance, nonce = src.balance, src.nonce
    credits: dict[bytes, int] = {}
    before: list[int] = []
    for tx_nonce, fee, to, amount in transfers:
        if tx_nonce != nonce or fee < min_fee or amount <= 0 or balance < fee:
            return None
        before.append(balance)
        balance -= fee
        if balance < amount:
            return None
        if to != sender:
            balance -= amount
            credits[to] = credits.get(to, 0) + amount
        nonce += 1
    credited: list[tuple[bytes, Account]] = []
    for to, amount in credits.items():  # credits only grow: the last sum is the largest
        dst = get_account(view, to)
        if dst.balance + amount > U64_MAX:
            return None
        credited.append((to, Account(dst.balance + amount, dst.nonce)))
    set_account(view, sender, Account(balance, nonce))
    for to, account in credited:
        set_account(view, to, account)
    return before


def supply_check(view: StateView) -> tuple[int, int, int]:
    """(sum of balances, burned, supply); conservation holds when sum + burned == supply."""
    total = 0
    for _, raw in view.iter_prefix(keys.account_key(b"")):
        from state.codec import unpack

        total += Account.from_wire(unpack(raw)).balance  # type: ignore[attr-defined]
    meta = get_chain_meta(view)
    return total, meta.burned, meta.supply
