"""The node's mempool: checked transactions waiting for a block, in per-sender nonce queues.

Admission runs the block rules: every transaction is checked with `state.transition.apply_tx` on a
view of the latest committed state with the sender's queued transactions applied first, so what
the pool holds is what a block would accept (see docs/node.md, "Mempool", for the rules and the
approximations). Each signature is verified once; `verified_hashes()` lets block application skip
signatures the pool already verified.

Per sender the pool holds a queue of consecutive nonces starting at the sender's committed nonce.
A nonce past the end of the queue is rejected (`future_nonce`), never held. Proposal order
(`pending`) takes, across senders, the highest-fee eligible transaction first, where only the
first not-yet-taken transaction of each sender is eligible; ties go to the earlier arrival.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from state.accounts import Account, fold_transfers, get_account
from state.chain import Chain
from state.codec import CodecError
from state.crypto import sha256
from state.errors import TxRejected, require
from state.params import BPS, Params
from state.store import StateView
from state.transition import BlockContext, TxResult, apply_tx, load_params
from state.tx import (
    MAX_TX_BYTES,
    Contribute,
    CreateValidator,
    Delegate,
    Infer,
    RegisterAgent,
    Transfer,
    Tx,
    decode_tx,
)

log = logging.getLogger(__name__)

# The body field each kind moves out of the sender's balance, on top of the fee.
DEBIT_FIELDS: dict[type[Any], str] = {
    Transfer: "amount",
    Delegate: "amount",
    Infer: "payment",
    Contribute: "bond",
    RegisterAgent: "stake",
    CreateValidator: "self_stake",
}


COMMIT_LOG_BLOCKS = 64  # recent blocks remembered for the commit rate
DECODED_KEPT = 8_192  # transactions the signature thread decoded, kept until their admission


@dataclass(frozen=True)
class MempoolConfig:
    """Limits of the pool. A ``verified_cache_size`` set by hand should stay well above ``max_txs``."""

    max_txs: int = 10_000
    max_bytes: int = 64 * 1024 * 1024
    max_per_sender: int = 64
    rbf_bump_bps: int = 1000  # a replacement pays at least old fee * (1 + bump)
    max_tx_bytes: int = MAX_TX_BYTES
    verified_cache_size: int = 0  # 0: four times max_txs
    eviction_scan_limit: int = 1024  # candidates looked at before answering mempool_full
    gossip_peer_txs: bool = False  # re-announce transactions that arrived by gossip
    full_recheck: bool = False  # after a block, replay every queue, not only changed senders

    def __post_init__(self) -> None:
        for name in ("max_txs", "max_bytes", "max_per_sender", "max_tx_bytes", "eviction_scan_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"mempool {name} must be positive")
        if self.rbf_bump_bps < 0 or self.verified_cache_size < 0:
            raise ValueError("mempool rbf_bump_bps and verified_cache_size must not be negative")

    @property
    def verified_capacity(self) -> int:
        return self.verified_cache_size or 4 * self.max_txs


@dataclass(frozen=True)
class RecheckStats:
    committed: int  # pool transactions removed because a block included them
    dropped: int  # pool transactions the new state made stale, gapped or invalid


@dataclass(eq=False, slots=True)
class _Entry:
    tx: Tx
    seq: int  # arrival order, for deterministic tie-breaks
    sender: bytes
    nonce: int
    fee: int
    size: int
    # the sender's balance just before this tx, when it was last applied in the pool's view:
    # a later state where the balance at this point is at least as high keeps it valid
    balance_before: int
    local: bool = False  # submitted by this node's clients (not a peer's): counted in local_size


@dataclass(eq=False, slots=True)
class _Queue:
    """One sender's consecutive nonces; entries[i].nonce == account.nonce + i."""

    account: Account  # the sender's committed account when the queue was last checked
    entries: list[_Entry]
    view: StateView | None  # committed state with every entry applied; None: rebuild on demand


@dataclass(slots=True)
class _Plan:
    """What admission found before the signature check: where the tx goes and what it evicts."""

    tx: Tx
    account: Account
    idx: int
    view: StateView
    balance: int
    cuts: dict[bytes, int]


def debit_of(tx: Tx) -> int:
    """What ``tx`` takes from its sender's balance at most up front: the fee plus what it moves."""
    field_name = DEBIT_FIELDS.get(type(tx.body))
    moved: int = getattr(tx.body, field_name) if field_name is not None else 0
    return tx.unsigned.fee + moved


def is_replacement_priced(old_fee: int, new_fee: int, bump_bps: int) -> bool:
    """A replacement must pay at least ``old_fee * (1 + bump_bps / BPS)``, in integers."""
    return new_fee * BPS >= old_fee * (BPS + bump_bps)


class Mempool:
    """Transactions checked against the latest committed state, ready for proposal and gossip."""

    def __init__(self, chain: Chain, config: MempoolConfig | None = None) -> None:
        self.chain = chain
        self.config = config or MempoolConfig()
        self.chain_id = chain.chain_id
        self._by_hash: dict[bytes, _Entry] = {}
        self._queues: dict[bytes, _Queue] = {}
        # lazy min-heap of (fee, -seq, hash) over every entry: eviction takes the cheapest, newest
        self._evict_heap: list[tuple[int, int, bytes]] = []
        self._bytes = 0
        self.local_size = 0  # pooled transactions this node's clients submitted (node/tx_intake.py)
        self._seq = 0
        self._verified: set[bytes] = set()
        self._verified_order: deque[bytes] = deque()
        # transactions the signature thread decoded and verified, by their exact bytes, oldest first
        # (mark_verified_txs): admission takes them instead of decoding the same bytes again
        self._decoded: OrderedDict[bytes, Tx] = OrderedDict()
        self._gossip: deque[tuple[bytes, int]] = deque(maxlen=self.config.max_txs)
        # (when sent, hash, seq) of what take_new_for_gossip handed out, oldest first: sent once more
        # if still pooled after a while (take_for_resend)
        self._sent: deque[tuple[float, bytes, int]] = deque(maxlen=self.config.max_txs)
        # hashes of recently committed transactions, oldest first (bounded like the verified set):
        # a copy gossiped after its block is refused by hash, before any decoding or signature work.
        # An OrderedDict: a dict's oldest key (next(iter(d))) is found by scanning past every key
        # deleted since its last resize, 28 us at this bound's 200,000 (node default max_txs x 4)
        # for each committed transaction, where popitem(last=False) is O(1)
        self._committed: OrderedDict[bytes, None] = OrderedDict()
        # (when, transactions, of them this node's clients') per committed block
        self.commit_log: deque[tuple[float, int, int]] = deque(maxlen=COMMIT_LOG_BLOCKS)
        self.blocks_seen = 0  # update_after_block calls: a door snapshot older than this is stale
        self._height = -1
        self._params: Params = load_params(chain.db.view())
        self._time_ms = 0
        self._sync()

    # ---- reads ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self._by_hash)

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._by_hash)

    def contains(self, tx_hash: bytes) -> bool:
        return tx_hash in self._by_hash

    __contains__ = contains

    def get(self, tx_hash: bytes) -> bytes | None:
        """The raw bytes of a pooled transaction, or None."""
        entry = self._by_hash.get(tx_hash)
        return entry.tx.raw if entry is not None else None

    def seen(self, tx_hash: bytes) -> str | None:
        """Why a transaction is refused by its hash alone: ``duplicate`` (in the pool) or
        ``committed`` (in a recent block; its nonce is spent); None when the hash says nothing."""
        if tx_hash in self._by_hash:
            return "duplicate"
        if tx_hash in self._committed:
            return "committed"
        return None

    def next_nonce(self, address: bytes) -> int:
        """The nonce the sender's next transaction must carry (committed nonce + queued count)."""
        self._sync()
        q = self._queues.get(address)
        if q is None:
            return get_account(self.chain.db.view(), address).nonce
        return q.account.nonce + len(q.entries)

    def pooled_tx(self, raw: bytes) -> Tx | None:
        """The pooled transaction with exactly these bytes, already decoded: block execution takes
        it instead of decoding the block's copy again (``BlockContext.known_tx``)."""
        e = self._by_hash.get(sha256(raw))
        return e.tx if e is not None and e.tx.raw == raw else None

    def verified_hashes(self) -> set[bytes]:
        """Hashes whose signatures verified for this chain id: pass as BlockContext.verified.

        A live, bounded set (oldest forgotten first); callers must not modify it.
        """
        return self._verified

    def pending(self, limit: int, max_bytes: int | None = None) -> list[bytes]:
        """Raw transactions in proposal order, at most ``limit`` of them and ``max_bytes`` in total.

        Highest fee first among the senders' next transactions; a sender's later nonce becomes
        eligible only once its previous one is taken. Ties: earlier arrival first.
        A transaction that does not fit the byte budget holds back its sender's later ones.
        """
        self._sync()
        out: list[bytes] = []
        if limit <= 0:
            return out
        # (-fee, arrival, sender, index): arrival numbers are unique, so the order is total
        heap = [(-q.entries[0].fee, q.entries[0].seq, sender, 0) for sender, q in self._queues.items()]
        heapq.heapify(heap)
        budget = max_bytes
        while heap and len(out) < limit:
            _, _, sender, i = heapq.heappop(heap)
            entries = self._queues[sender].entries
            e = entries[i]
            if budget is not None:
                if e.size > budget:
                    continue
                budget -= e.size
            out.append(e.tx.raw)
            if budget == 0:
                break
            if i + 1 < len(entries):
                nxt = entries[i + 1]
                heapq.heappush(heap, (-nxt.fee, nxt.seq, sender, i + 1))
        return out

    def take_new_for_gossip(self, now: float | None = None) -> list[bytes]:
        """Raw transactions accepted since the last call and still pooled, in acceptance order."""
        out: list[bytes] = []
        when = time.monotonic() if now is None else now
        while self._gossip:
            tx_hash, seq = self._gossip.popleft()
            entry = self._by_hash.get(tx_hash)
            if entry is not None and entry.seq == seq:
                out.append(entry.tx.raw)
                self._sent.append((when, tx_hash, seq))
        return out

    def take_for_resend(self, older_than_s: float, now: float | None = None) -> list[bytes]:
        """Transactions handed out by take_new_for_gossip at least ``older_than_s`` ago and still
        pooled, in acceptance order, each once. A peer that dropped one of a sender's transactions
        (its intake was busy) refused every later nonce of that sender as a gap, and had none of
        them when it proposed; sent again in order, they fill the gap (a peer that has them drops
        them by hash before any work). Local wall-clock time of this node's gossip, never consensus."""
        cutoff = (time.monotonic() if now is None else now) - older_than_s
        out: list[bytes] = []
        while self._sent and self._sent[0][0] <= cutoff:
            _, tx_hash, seq = self._sent.popleft()
            entry = self._by_hash.get(tx_hash)
            if entry is not None and entry.seq == seq:
                out.append(entry.tx.raw)
        return out

    # ---- admission -----------------------------------------------------------------------
    def submit(self, raw: bytes) -> bytes:
        """Check and add a transaction from a client; returns its hash or raises TxRejected."""
        entry = self._admit(raw, local=True)
        self._gossip.append((entry.tx.hash, entry.seq))
        return entry.tx.hash

    def add_from_peer(self, raw: bytes) -> bool:
        """Same checks as submit for a gossiped transaction; False instead of an exception."""
        return self.admit_from_peer(raw) is None

    def admit_from_peer(self, raw: bytes) -> str | None:
        """Same checks as submit for a gossiped transaction: None when pooled, else the reason."""
        try:
            entry = self._admit(raw)
        except TxRejected as exc:
            log.debug("peer tx rejected: %s", exc)
            return exc.reason
        if self.config.gossip_peer_txs:
            self._gossip.append((entry.tx.hash, entry.seq))
        return None

    def precheck(self, raw: bytes) -> Tx:
        """The admission checks that need no signature (decoding, duplicate, fee, nonce, balance,
        room: ``mempool_full``); raises TxRejected, changes nothing. The door of node/tx_intake.py."""
        return self._plan(raw).tx

    def is_verified(self, tx_hash: bytes) -> bool:
        return tx_hash in self._verified

    def mark_verified(self, tx_hashes: Iterable[bytes]) -> None:
        """Hashes whose signature a worker verified for this chain id (node/tx_intake.py)."""
        for h in tx_hashes:
            if h not in self._verified:
                self._remember_verified(h)

    def mark_verified_txs(self, txs: Iterable[Tx]) -> None:
        """Transactions the signature thread decoded and verified for this chain id: marked
        verified, and kept (at most DECODED_KEPT) for their admission to take instead of decoding
        their bytes again (node/tx_intake.py)."""
        decoded = self._decoded
        for tx in txs:
            if tx.hash not in self._verified:
                self._remember_verified(tx.hash)
            decoded[tx.raw] = tx
        for _ in range(len(decoded) - DECODED_KEPT):
            decoded.popitem(last=False)

    def _plan(self, raw: bytes) -> _Plan:
        """Every check but the signature and the trial apply, cheapest first; mutates nothing."""
        self._sync()
        tx = self._decode(raw)
        require(tx.hash not in self._by_hash, "duplicate", "transaction already in the mempool")
        u = tx.unsigned
        min_fee = self._params.fees.min_fee
        require(u.fee >= min_fee, "fee_too_low",
                f"fee {u.fee} is below the minimum {min_fee}")
        sender = tx.sender
        q = self._queues.get(sender)
        old: _Entry | None = None
        if q is None:
            view = self.chain.db.view()
            account = get_account(view, sender)
            idx = self._queue_index(None, account, u.nonce)
        else:
            account = q.account
            idx = self._queue_index(q, account, u.nonce)
            if idx < len(q.entries):
                old = q.entries[idx]
                self._require_replacement_priced(old, u.fee)
            view = self._view_before(sender, q, idx)
            q = self._queues.get(sender)  # replaying may have shortened the queue
            require(idx <= (len(q.entries) if q is not None else 0), "future_nonce",
                    f"nonce {u.nonce} leaves a gap after the sender's queue")
        balance = self._require_affordable(view, tx)
        size = len(raw)
        cuts = self._plan_eviction(sender, u.fee, 0 if old is not None else 1,
                                   size - (old.size if old is not None else 0))
        return _Plan(tx, account, idx, view, balance, cuts)

    def _admit(self, raw: bytes, local: bool = False) -> _Entry:
        """Every check first (cheap ones before the signature and the rules), then the mutation."""
        plan = self._plan(raw)
        tx, u = plan.tx, plan.tx.unsigned
        self._require_signature(tx)
        self._trial_apply(plan.view, tx)
        # mutation: nothing below may reject
        for victim, cut in sorted(plan.cuts.items()):
            self._drop_tail(victim, self._queues[victim], cut, "evicted")
        entry = self._insert(tx.sender, plan.account, plan.idx,
                             _Entry(tx, 0, tx.sender, u.nonce, u.fee, len(raw), plan.balance, local), plan.view)
        log.debug("mempool accepted %s nonce %d fee %d", tx.hash.hex(), u.nonce, u.fee)
        return entry

    def _decode(self, raw: bytes) -> Tx:
        if type(raw) is not bytes:
            raise TxRejected("malformed", "a transaction is bytes")
        require(len(raw) <= self.config.max_tx_bytes, "tx_too_large",
                f"transaction of {len(raw)} bytes exceeds the limit of {self.config.max_tx_bytes}")
        tx = self._decoded.pop(raw, None)
        if tx is not None:
            return tx
        try:
            return decode_tx(raw)
        except CodecError as exc:
            raise TxRejected("malformed", str(exc)) from exc

    def _queue_index(self, q: _Queue | None, account: Account, nonce: int) -> int:
        """Position of ``nonce`` in the sender's queue: stale below it, a gap past its end."""
        queued = len(q.entries) if q is not None else 0
        require(nonce >= account.nonce, "stale_nonce",
                f"nonce {nonce} already used; next is {account.nonce}")
        require(nonce <= account.nonce + queued, "future_nonce",
                f"nonce {nonce} leaves a gap: the sender's next nonce is {account.nonce + queued} "
                f"({queued} queued)")
        idx = nonce - account.nonce
        if idx == queued:
            require(queued < self.config.max_per_sender, "sender_queue_full",
                    f"the sender already has {queued} queued transactions")
        return idx

    def _require_replacement_priced(self, old: _Entry, fee: int) -> None:
        """Same sender and nonce replaces only for at least ``rbf_bump_bps`` more fee."""
        bump = self.config.rbf_bump_bps
        require(is_replacement_priced(old.fee, fee, bump), "replacement_underpriced",
                f"replacing nonce {old.nonce} needs a fee of at least "
                f"{-(-old.fee * (BPS + bump) // BPS)}; got {fee}")

    def _require_affordable(self, view: StateView, tx: Tx) -> int:
        """Balance after the sender's earlier queued txs covers the fee plus what ``tx`` moves."""
        balance = get_account(view, tx.sender).balance
        need = debit_of(tx)
        require(balance >= need, "insufficient_balance",
                f"balance {balance} (after the sender's queued transactions) cannot cover {need}")
        return balance

    def _require_signature(self, tx: Tx) -> None:
        """Verify once per hash for this chain id; remember the success."""
        if tx.hash in self._verified:
            return
        require(tx.has_valid_signature(self.chain_id), "invalid_signature",
                f"signature does not verify for chain {self.chain_id!r} "
                "(wrong chain id, wrong key or altered transaction)")
        self._remember_verified(tx.hash)

    def _remember_verified(self, tx_hash: bytes) -> None:
        self._verified.add(tx_hash)
        self._verified_order.append(tx_hash)
        if len(self._verified_order) > self.config.verified_capacity:
            self._verified.discard(self._verified_order.popleft())

    def _plan_eviction(self, sender: bytes, fee: int, add_count: int, add_bytes: int) -> dict[bytes, int]:
        """Which queue tails to drop to make room: {sender: first index dropped}; mutates nothing.

        Victims are taken cheapest first (newest first among equal fees). Dropping a transaction
        drops its sender's later nonces too, so a victim qualifies only if it and every later
        nonce of its sender pay strictly less than ``fee``. The newcomer's own sender is never a
        victim (that could gap the newcomer itself).
        """
        need_count = len(self._by_hash) + add_count - self.config.max_txs
        need_bytes = self._bytes + add_bytes - self.config.max_bytes
        if need_count <= 0 and need_bytes <= 0:
            return {}
        cuts: dict[bytes, int] = {}
        popped: list[tuple[int, int, bytes]] = []
        heap = self._evict_heap
        try:
            while need_count > 0 or need_bytes > 0:
                if not heap or len(popped) >= self.config.eviction_scan_limit:
                    raise self._full(fee)
                item = heapq.heappop(heap)
                e = self._by_hash.get(item[2])
                if e is None or e.seq != -item[1]:
                    continue  # stale heap item: leave it out for good
                popped.append(item)
                if e.fee >= fee:
                    raise self._full(fee)
                if e.sender == sender:
                    continue
                q = self._queues[e.sender]
                i = e.nonce - q.account.nonce
                cut = cuts.get(e.sender, len(q.entries))
                if i >= cut:
                    continue
                group = q.entries[i:cut]
                if any(g.fee >= fee for g in group):
                    continue
                cuts[e.sender] = i
                need_count -= len(group)
                need_bytes -= sum(g.size for g in group)
        finally:
            for item in popped:
                heapq.heappush(heap, item)
        return cuts

    def _full(self, fee: int) -> TxRejected:
        return TxRejected("mempool_full",
                          f"mempool is full ({len(self._by_hash)} txs, {self._bytes} bytes) and no "
                          f"queued transaction it may evict pays less than fee {fee}")

    def _insert(self, sender: bytes, account: Account, idx: int, entry: _Entry,
                view: StateView) -> _Entry:
        """Add (or replace at ``idx``); ``view`` has the queue up to and including ``entry`` applied."""
        self._seq += 1
        entry.seq = self._seq
        tx, size = entry.tx, entry.size
        q = self._queues.get(sender)
        if q is None:
            q = self._queues[sender] = _Queue(account, [], None)
        self._by_hash[tx.hash] = entry
        self._bytes += size
        self.local_size += entry.local
        heapq.heappush(self._evict_heap, (entry.fee, -entry.seq, tx.hash))
        self._compact_heap()
        if idx == len(q.entries):
            q.entries.append(entry)
            q.view = view
            return entry
        old = q.entries[idx]
        self._forget(old)
        q.entries[idx] = entry
        ctx = self._ctx()
        for j in range(idx + 1, len(q.entries)):
            r = self._apply_entry(view, q.entries[j], ctx)
            if not r.ok:  # the replacement spends more: later nonces it starves are dropped
                self._drop_tail(sender, q, j, r.reason)
                break
        q.view = view
        log.debug("mempool replaced %s with %s", old.tx.hash.hex(), tx.hash.hex())
        return entry

    def _forget(self, e: _Entry) -> None:
        if self._by_hash.get(e.tx.hash) is e:
            del self._by_hash[e.tx.hash]
            self._bytes -= e.size
            self.local_size -= e.local

    def _drop_tail(self, sender: bytes, q: _Queue, i: int, reason: str) -> int:
        """Remove entries[i:] of a sender (later nonces would be gapped); returns how many."""
        dropped = q.entries[i:]
        for e in dropped:
            self._forget(e)
        del q.entries[i:]
        q.view = None
        if not q.entries:
            del self._queues[sender]
        if dropped:
            log.debug("mempool dropped %d txs of %s from nonce %d: %s",
                      len(dropped), sender.hex(), dropped[0].nonce, reason)
        return len(dropped)

    def _compact_heap(self) -> None:
        if len(self._evict_heap) > 2 * len(self._by_hash) + 1024:
            self._evict_heap = [(e.fee, -e.seq, h) for h, e in self._by_hash.items()]
            heapq.heapify(self._evict_heap)

    # ---- state -----------------------------------------------------------------------------
    def _ctx(self) -> BlockContext:
        """The next block as far as the pool can know it: height + 1 at the last block's time."""
        return BlockContext(self.chain_id, self._height + 1, self._time_ms, self._params,
                            b"", self._verified)

    def _trial_apply(self, view: StateView, tx: Tx) -> None:
        """Apply ``tx`` to the pool's view of its sender, or raise TxRejected changing nothing. A
        plain transfer goes through ``fold_transfers``: the writes apply_tx makes (tests/
        test_mempool.py checks the two agree) without its transaction layer and handler dispatch,
        about half the cost of admitting a transfer's trial apply; only when it would fail does
        apply_tx run, for the reason."""
        body = tx.body
        if type(body) is Transfer:
            u = tx.unsigned
            if fold_transfers(view, tx.sender, [(u.nonce, u.fee, body.to, body.amount)],
                              self._params.fees.min_fee) is not None:
                return
        result = apply_tx(view, tx, self._ctx())
        if not result.ok:
            raise TxRejected(result.reason, result.message)

    @staticmethod
    def _apply_entry(view: StateView, e: _Entry, ctx: BlockContext) -> TxResult:
        e.balance_before = get_account(view, e.sender).balance
        return apply_tx(view, e.tx, ctx)

    def _replay(self, sender: bytes, q: _Queue, upto: int) -> StateView:
        """Committed state with entries[:upto] applied; a failing entry drops it and its successors."""
        view = self.chain.db.view()
        ctx = self._ctx()
        for i in range(min(upto, len(q.entries))):
            r = self._apply_entry(view, q.entries[i], ctx)
            if not r.ok:
                self._drop_tail(sender, q, i, r.reason)
                break
        return view

    def _rebuild(self, sender: bytes, q: _Queue) -> StateView | None:
        """Committed state with a queue of plain transfers applied from their amounts and fees
        (``fold_transfers``) instead of one apply_tx each: after every block each sender's next
        admission needs this view, and replaying the queue cost as much as admitting new
        transactions. None when the queue holds another kind or a transfer would now fail: the
        caller replays it."""
        moves = []
        for e in q.entries:
            body = e.tx.body
            if type(body) is not Transfer:
                return None
            moves.append((e.nonce, e.fee, body.to, body.amount))
        view = self.chain.db.view()
        before = fold_transfers(view, sender, moves, self._params.fees.min_fee)
        if before is None:
            return None
        for e, balance in zip(q.entries, before):
            e.balance_before = balance
        return view

    def _view_before(self, sender: bytes, q: _Queue, idx: int) -> StateView:
        """A view with the sender's entries before ``idx`` applied (the cached one when appending)."""
        if idx < len(q.entries):
            return self._replay(sender, q, idx)
        if q.view is None:
            view = self._rebuild(sender, q)
            if view is None:
                view = self._replay(sender, q, len(q.entries))
            if sender in self._queues:
                q.view = view
            return view
        return q.view

    def _sync(self) -> None:
        """Recheck against the committed state if a block landed since the last look."""
        height = self.chain.height
        if height != self._height:
            self._recheck(height)

    def update_after_block(self, committed_tx_hashes: Iterable[bytes]) -> RecheckStats:
        """Remove the block's transactions, then recheck the rest against the new state.

        O(pending): one account read per sender, stale and gapped nonces dropped. A queue is
        re-checked (carried from amounts by ``_rebuild`` when it holds only transfers, else replayed
        through apply_tx; dropping what now fails) only when its sender is poorer than when the
        queue was checked, or always, by replay, with ``full_recheck``. Order is kept.
        """
        committed = 0
        n_block = 0
        n_local = 0
        recent = self._committed
        for tx_hash in committed_tx_hashes:
            n_block += 1
            recent[tx_hash] = None
            e = self._by_hash.get(tx_hash)
            if e is not None:
                self._forget(e)
                committed += 1
                n_local += e.local
        for _ in range(len(recent) - self.config.verified_capacity):
            recent.popitem(last=False)
        # node/tx_intake.py's backlog bound reads the rate and this node's clients' share of it.
        # Local wall-clock time of this node's admission policy, never consensus.
        self.commit_log.append((time.monotonic(), n_block, n_local))
        self.blocks_seen += 1
        dropped = self._recheck(self.chain.height)
        log.debug("mempool after block %d: %d committed, %d dropped, %d pending",
                  self._height, committed, dropped, len(self._by_hash))
        return RecheckStats(committed, dropped)

    def _recheck(self, height: int) -> int:
        """Drop stale, gapped and (for changed senders) now-invalid entries; returns how many."""
        view = self.chain.db.view()
        self._height = height
        self._params = load_params(view)
        header = self.chain.get_header(height) if height > 0 else None
        self._time_ms = header.time_ms if header is not None else self.chain.genesis_time_ms
        dropped = 0
        for sender in list(self._queues):
            q = self._queues[sender]
            account = get_account(view, sender)
            kept: list[_Entry] = []
            for e in q.entries:
                if self._by_hash.get(e.tx.hash) is not e:
                    continue  # included in the block: already removed
                if e.nonce != account.nonce + len(kept):  # stale, or gapped behind a missing nonce
                    self._forget(e)
                    dropped += 1
                    continue
                kept.append(e)
            q.account, q.entries, q.view = account, kept, None
            if not kept:
                del self._queues[sender]
                continue
            if account.balance >= kept[0].balance_before and not self.config.full_recheck:
                continue  # no poorer than when the queue was checked; the view is rebuilt on demand
            before = len(kept)
            q.view = None if self.config.full_recheck else self._rebuild(sender, q)
            if q.view is None:
                q.view = self._replay(sender, q, before)
            dropped += before - (len(q.entries) if sender in self._queues else 0)
        return dropped
