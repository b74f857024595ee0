"""Handlers of the CometBFT-style chain methods: node status, blocks, commits, transactions, state.

Each handler is ``(env, params) -> JSON-able result``; params are already parsed by the method
table's schema (node/rpc/methods.py), so handlers only check cross-parameter rules and existence.
"""

from __future__ import annotations

from typing import Any

import msgpack

from node.rpc.encode import block_json, block_meta_json, commit_json, header_json, raw_tx_json
from node.rpc.env import RPCEnv
from node.rpc.errors import InternalError, InvalidParams, NotAvailable, NotFound
from state import keys
from state.crypto import address_of, sha256, to_hex

BLOCKCHAIN_MAX = 20  # headers per `blockchain` call, like CometBFT
SCAN_MAX_BLOCKS = 1_000  # blocks one tx_search call may read
SCAN_MAX_TXS = 50_000  # transactions one tx_search call may look at


def health(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    return {}


def status(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    ctx = env.ctx
    chain = ctx.chain
    height = chain.height
    if height > 0:
        h = env.header(height)
        latest = {
            "latest_block_hash": to_hex(h.hash()),
            "latest_state_root": to_hex(h.state_root),
            "latest_block_height": height,
            "latest_block_time_ms": h.time_ms,
            "earliest_block_height": 1,
        }
    else:
        latest = {
            "latest_block_hash": None,
            "latest_state_root": to_hex(chain.db.root()),
            "latest_block_height": 0,
            "latest_block_time_ms": ctx.genesis.genesis_time_ms,
            "earliest_block_height": 0,
        }
    latest["catching_up"] = ctx.is_syncing()
    return {
        "node_info": ctx.node_info(),
        "chain_id": ctx.genesis.chain_id,
        "genesis_hash": env.genesis_json()["genesis_hash"],
        "sync_info": latest,
        "validator_info": ctx.validator_info(),
        "consensus": ctx.consensus_info(),
    }


def net_info(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    return env.ctx.net_info()


def genesis(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    return {"genesis": env.genesis_json()}


def validators(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    try:
        from state.staking.handlers import validator_set_at
    except ImportError:
        raise NotAvailable("validator sets (state.staking.handlers.validator_set_at)") from None
    latest = env.latest_height()
    height = p["height"] if p["height"] is not None else max(latest, 1)
    # sets are stored up to two heights ahead (changes take effect at H+2)
    if height > latest + 2:
        raise NotFound(f"no validator set is known for height {height} (latest is {latest})")
    vset = validator_set_at(env.chain.db.view(), height)
    if vset is None:
        raise NotFound(f"the validator set of height {height} is not stored (pruned or never known)")
    per_page = p["per_page"]
    start = (p["page"] - 1) * per_page
    vals = vset["validators"]
    if start and start >= len(vals):
        raise InvalidParams(f"page {p['page']} is past the last page")
    out = dict(vset)
    out["validators"] = vals[start:start + per_page]
    out["count"] = len(out["validators"])
    out["page"] = p["page"]
    out["per_page"] = per_page
    return out


def block(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    height = env.resolve_height(p["height"])
    return block_json(env.block(height))


def block_by_hash(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    height = env.chain.height_of_hash(p["hash"])
    if height is None:
        raise NotFound(f"no block with hash {to_hex(p['hash'])}")
    return block_json(env.block(height))


def commit(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    height = env.resolve_height(p["height"])
    header = env.header(height)
    c = env.chain.get_commit(height)
    if c is None:
        raise NotFound(f"no commit is known for height {height} yet")
    return {
        "signed_header": {"header": header_json(header), "commit": commit_json(c)},
        # canonical: the copy carried by block height+1 (final); otherwise the one this node saw
        "canonical": height < env.latest_height(),
    }


def blockchain(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    latest = env.latest_height()
    if p["min_height"] is not None and p["max_height"] is not None and p["min_height"] > p["max_height"]:
        raise InvalidParams("min_height is above max_height")
    hi = min(p["max_height"] if p["max_height"] is not None else latest, latest)
    lo = max(p["min_height"] if p["min_height"] is not None else 1, hi - BLOCKCHAIN_MAX + 1)
    metas = []
    for height in range(hi, lo - 1, -1):
        raw = env.chain.get_block_bytes(height)
        if raw is None:
            raise InternalError(f"block {height} is missing from the store")
        metas.append(block_meta_json(env.block(height), len(raw)))
    return {"last_height": latest, "block_metas": metas}


def tx(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    tx_hash = p["hash"]
    loc = env.chain.get_tx_location(tx_hash)
    if loc is None:
        pooled = getattr(env.ctx.mempool, "get", None)
        raw = pooled(tx_hash) if pooled is not None else None
        if raw is not None:
            return {"hash": to_hex(tx_hash), "status": "pending", "tx": to_hex(raw), "decoded": raw_tx_json(raw)}
        raise NotFound(f"transaction {to_hex(tx_hash)} is not committed (nor in this node's mempool)")
    blk = env.block(loc.height)
    raw = blk.txs[loc.index]
    return {
        "hash": to_hex(tx_hash),
        "status": "committed",
        "height": loc.height,
        "index": loc.index,
        "result": {"code": loc.code, "reason": loc.reason, "message": loc.message},
        "tx": to_hex(raw),
        "decoded": raw_tx_json(raw),
    }


def _sender_of(raw: bytes) -> bytes | None:
    """The sender address of stored transaction bytes without full validation (None if malformed)."""
    try:
        obj = msgpack.unpackb(raw, raw=False)
        pub = obj[0][2]
    except (ValueError, TypeError, IndexError, KeyError, msgpack.UnpackException):
        return None
    return address_of(pub) if type(pub) is bytes and len(pub) == 32 else None


def tx_search(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    """Scan a window of blocks (newest first by default) for transactions, optionally by sender.

    One call reads at most SCAN_MAX_BLOCKS blocks and SCAN_MAX_TXS transactions and returns at
    most ``per_page`` transactions; when it stops early, ``next`` holds the exact params that
    continue the scan (``skip`` counts matches of the first block already returned).
    """
    latest = env.latest_height()
    per_page = p["per_page"]
    lo = p["min_height"] if p["min_height"] is not None else 1
    hi = p["max_height"] if p["max_height"] is not None else latest
    if lo > hi and p["min_height"] is not None and p["max_height"] is not None:
        raise InvalidParams("min_height is above max_height")
    hi = min(hi, latest)
    sender = p["sender"]
    desc = p["order"] == "desc"
    heights = range(hi, lo - 1, -1) if desc else range(lo, hi + 1)
    first = heights[0] if heights else None
    step = -1 if desc else 1
    found: list[dict[str, Any]] = []
    scanned_blocks = scanned_txs = 0
    next_params: dict[str, Any] | None = None
    for height in heights:
        if scanned_blocks >= SCAN_MAX_BLOCKS or scanned_txs >= SCAN_MAX_TXS:
            next_params = _continue(p, height, 0)
            break
        blk = env.block(height)
        results = env.chain.get_results(height) or []
        scanned_blocks += 1
        scanned_txs += len(blk.txs)
        order = range(len(blk.txs) - 1, -1, -1) if desc else range(len(blk.txs))
        matches = [i for i in order if sender is None or _sender_of(blk.txs[i]) == sender]
        offset = p["skip"] if height == first else 0
        matches = matches[offset:]
        room = per_page - len(found)
        if len(matches) > room:
            next_params = _continue(p, height, offset + room)
            matches = matches[:room]
        for i in matches:
            raw = blk.txs[i]
            code, reason, message = results[i] if i < len(results) else (0, "", "")
            found.append({
                "hash": to_hex(sha256(raw)), "height": height, "index": i,
                "result": {"code": code, "reason": reason, "message": message},
                "tx": to_hex(raw), "decoded": raw_tx_json(raw),
            })
        if next_params is None and len(found) == per_page and height + step in heights:
            next_params = _continue(p, height + step, 0)
        if next_params is not None:
            break
    return {"txs": found, "count": len(found), "scanned_blocks": scanned_blocks, "next": next_params}


def _continue(p: dict[str, Any], height: int, skip: int) -> dict[str, Any]:
    """The params of the call that resumes a scan at ``height`` after ``skip`` matches there."""
    nxt: dict[str, Any] = {k: v for k, v in p.items() if v is not None}
    if p["sender"] is not None:
        nxt["sender"] = to_hex(p["sender"])
    nxt["max_height" if p["order"] == "desc" else "min_height"] = height
    nxt["skip"] = skip
    return nxt


def unconfirmed_txs(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    limit = p["limit"]
    mp = env.ctx.mempool
    txs = mp.pending(limit)
    return {
        "n_txs": mp.size,
        "total_bytes": mp.bytes,
        "count": len(txs),
        "txs": [{"hash": to_hex(sha256(raw)), "tx": to_hex(raw)} for raw in txs],
    }


def abci_query(env: RPCEnv, p: dict[str, Any]) -> dict[str, Any]:
    """Any state key's committed value, with an optional proof against the latest state root.

    Everything is read without yielding to the event loop, so value, proof, root and height all
    come from the same committed state.
    """
    key = p["key"]
    if key[:1] != keys.STATE:
        raise InvalidParams("key: only state keys (first byte 0x73, 's') are in the state tree")
    chain = env.chain
    height = chain.height
    if p["height"] is not None and p["height"] != height:
        raise InvalidParams(
            f"height: state is kept only at the latest height ({height}); query without a height"
        )
    value = chain.db.raw.get(key)
    root = chain.db.root()
    if height > 0 and env.header(height).state_root != root:
        raise InternalError("the latest header's state root differs from the tree's root")
    out: dict[str, Any] = {
        "key": to_hex(key),
        "value": to_hex(value) if value is not None else None,
        "exists": value is not None,
        "height": height,
        "state_root": to_hex(root),
    }
    if p["prove"]:
        proof = chain.db.tree.get_proof(key)
        out["proof"] = to_hex(proof.encode())  # type: ignore[attr-defined]
    return out
