"""Executing and storing blocks: the bridge between the state transition and LevelDB.

`Chain.execute(block)` applies a block to a fresh view and computes the state root it leads to,
without writing. `Chain.commit(...)` then writes the block's state changes, the state-tree update,
the block itself, its hash index, every transaction's index entry, the results, the receipts and the
explorer history (state/history.py) in ONE atomic LevelDB write batch (fsynced). A crash leaves the store at the last committed block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from state import keys
from state.block import (
    BLOCK_VERSION,
    EMPTY_COMMIT,
    Block,
    Commit,
    DuplicateVoteEvidence,
    Header,
    decode_block,
    evidence_list_hash,
    list_hash,
)
from state.codec import pack, unpack
from state.genesis import Genesis, init_chain
from state.history import block_index
from state.params import Params
from state.store import StateDB, StateView
from state.transition import BlockContext, BlockResult, apply_block, load_handlers, load_params

ZERO_HASH = b"\x00" * 32


@dataclass
class Executed:
    """A block applied in memory: its view, results and the tree update it leads to."""

    block: Block | None
    view: StateView
    result: BlockResult
    tree_update: Any

    @property
    def state_root(self) -> bytes:
        return self.tree_update.root  # type: ignore[no-any-return]


@dataclass(frozen=True)
class TxLocation:
    height: int
    index: int
    code: int
    reason: str
    message: str


class Chain:
    """The committed chain in one LevelDB: state, blocks, indexes."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        # software-upgrade names this node provides (state/governance/upgrade.py); None: no check
        self.upgrades: frozenset[str] | None = None
        load_handlers()  # import every transaction module now, not inside the first block

    # ---- reads ---------------------------------------------------------------------------
    @property
    def height(self) -> int:
        raw = self.db.get_meta("height")
        return int.from_bytes(raw, "big") if raw else 0

    @property
    def chain_id(self) -> str:
        raw = self.db.get_meta("chain_id")
        if raw is None:
            raise LookupError("chain not initialised")
        return raw.decode()

    @property
    def genesis_hash(self) -> bytes | None:
        return self.db.get_meta("genesis_hash")

    @property
    def genesis_time_ms(self) -> int:
        raw = self.db.get_meta("genesis_time_ms")
        return int.from_bytes(raw, "big") if raw else 0

    def params(self) -> Params:
        return load_params(self.db.view())

    def get_block_bytes(self, height: int) -> bytes | None:
        return self.db.raw.get(keys.block_key(height))  # type: ignore[no-any-return]

    def get_block(self, height: int) -> Block | None:
        raw = self.get_block_bytes(height)
        return decode_block(raw) if raw is not None else None

    def get_header(self, height: int) -> Header | None:
        block = self.get_block(height)
        return block.header if block else None

    def height_of_hash(self, block_hash: bytes) -> int | None:
        raw = self.db.raw.get(keys.block_hash_key(block_hash))
        return int.from_bytes(raw, "big") if raw is not None else None

    def get_commit(self, height: int) -> Commit | None:
        """The commit certificate for block ``height`` (from block height+1, else the one seen)."""
        nxt = self.get_block(height + 1)
        if nxt is not None:
            return nxt.last_commit
        raw = self.db.raw.get(keys.commit_key(height))
        return Commit.from_wire(unpack(raw)) if raw is not None else None  # type: ignore[attr-defined,no-any-return]

    def get_tx_location(self, tx_hash: bytes) -> TxLocation | None:
        raw = self.db.raw.get(keys.tx_index_key(tx_hash))
        if raw is None:
            return None
        h, i, code, reason, message = unpack(raw)
        return TxLocation(h, i, code, reason, message)

    def get_results(self, height: int) -> list[list[Any]] | None:
        raw = self.db.raw.get(keys.results_key(height))
        return unpack(raw) if raw is not None else None  # type: ignore[no-any-return]

    # ---- writes --------------------------------------------------------------------------
    def init_genesis(self, genesis: Genesis) -> bytes:
        """Write genesis state at height 0 (once); returns the genesis state root."""
        existing = self.genesis_hash
        if existing is not None:
            if existing != genesis.hash():
                raise ValueError("this home holds a different chain (genesis hash differs)")
            return self.db.root()
        view = self.db.view()
        init_chain(view, genesis)
        extra = {
            keys.meta_key("height"): (0).to_bytes(8, "big"),
            keys.meta_key("chain_id"): genesis.chain_id.encode(),
            keys.meta_key("genesis_hash"): genesis.hash(),
            keys.meta_key("genesis_time_ms"): genesis.genesis_time_ms.to_bytes(8, "big"),
        }
        return self.db.commit(view, extra)

    def execute(self, block: Block, txs_verified: frozenset[bytes] | set[bytes] = frozenset(),
                known_tx: Callable[[bytes], Any] | None = None) -> Executed:
        """Apply ``block`` on top of the committed state in memory; nothing is written."""
        h = block.header
        view = self.db.view()
        ctx = BlockContext(
            chain_id=h.chain_id,
            height=h.height,
            time_ms=h.time_ms,
            params=load_params(view),
            proposer=h.proposer,
            verified=txs_verified,
            upgrades=self.upgrades,
            known_tx=known_tx,
        )
        result = apply_block(view, block.txs, ctx, block.evidence, block.last_commit)
        return Executed(block, view, result, self.db.preview_root(view))

    def build_block(
        self,
        txs: tuple[bytes, ...],
        time_ms: int,
        proposer: bytes,
        last_commit: Commit = EMPTY_COMMIT,
        validators_hash: bytes = ZERO_HASH,
        next_validators_hash: bytes = ZERO_HASH,
        evidence: tuple[DuplicateVoteEvidence, ...] = (),
        txs_verified: frozenset[bytes] | set[bytes] = frozenset(),
        known_tx: Callable[[bytes], Any] | None = None,
    ) -> Executed:
        """Execute ``txs`` on the latest state and assemble the next block with its state root."""
        height = self.height + 1
        prev = self.get_header(height - 1)
        view = self.db.view()
        chain_id = self.chain_id
        ctx = BlockContext(chain_id, height, time_ms, load_params(view), proposer, txs_verified,
                           upgrades=self.upgrades, known_tx=known_tx)
        result = apply_block(view, txs, ctx, evidence, last_commit)
        update = self.db.preview_root(view)
        header = Header(
            version=BLOCK_VERSION,
            chain_id=chain_id,
            height=height,
            time_ms=time_ms,
            last_block_hash=prev.hash() if prev is not None else b"",
            last_commit_hash=last_commit.hash(),
            txs_hash=list_hash(txs),
            evidence_hash=evidence_list_hash(evidence),
            validators_hash=validators_hash,
            next_validators_hash=next_validators_hash,
            state_root=update.root,
            results_hash=result.results_hash(),
            proposer=proposer,
        )
        return Executed(Block(header, tuple(txs), tuple(evidence), last_commit), view, result, update)

    def commit(self, block: Block, executed: Executed, seen_commit: Commit | None = None,
               block_bytes: bytes | None = None, sync: bool = True) -> bytes:
        """Write block + state + indexes + results in one atomic batch; returns the state root.

        ``sync=False`` skips the fsync (block sync does this for all but the last block of a
        downloaded batch: the next synced write makes the earlier ones durable, and a lost tail
        is downloaded again). The batch is atomic either way."""
        h = block.header
        if h.height != self.height + 1:
            raise ValueError(f"cannot commit height {h.height} on top of {self.height}")
        if executed.state_root != h.state_root:
            raise ValueError("executed state root differs from the header's")
        raw = block_bytes if block_bytes is not None else block.encode()  # type: ignore[attr-defined]
        block_hash = h.hash()
        extra: dict[bytes, bytes | None] = {
            keys.block_key(h.height): raw,
            keys.block_hash_key(block_hash): h.height.to_bytes(8, "big"),
            keys.results_key(h.height): pack([r.to_wire() for r in executed.result.tx_results]),
            keys.meta_key("height"): h.height.to_bytes(8, "big"),
        }
        if self.db.get_meta("vals_hash") != h.validators_hash:  # archived for light clients
            vals = executed.view.get(keys.validator_set_key(h.height))
            if vals is not None:
                extra[keys.valset_archive_key(h.height)] = vals
                extra[keys.meta_key("vals_hash")] = h.validators_hash
        if seen_commit is not None:
            extra[keys.commit_key(h.height)] = pack(seen_commit.to_wire())  # type: ignore[attr-defined]
        for i, (tx_hash, r) in enumerate(zip(executed.result.tx_hashes, executed.result.tx_results)):
            # the first inclusion of a hash wins: a later copy of the same bytes only fails
            k = keys.tx_index_key(tx_hash)
            if k not in extra and self.db.raw.get(k) is None:
                extra[k] = pack([h.height, i, r.code, r.reason, r.message])
        extra.update(block_index(self.db, executed.view, h.height, h.time_ms,  # explorer history
                                 tuple(zip(executed.result.tx_hashes, block.txs))))
        return self.db.commit(executed.view, extra, executed.tree_update, sync=sync)
