"""Contributions: contribute, review, challenge, transfer_contribution, claim_rewards.

Life of a contribution (docs/attribution.md, "Contributions"):

    contribute -> PENDING --review accept--> ACCEPTED (earns; bond escrowed, rewards vest)
                          --review reject--> REJECTED (reject_burn_bps of the bond burned)
    ACCEPTED, within challenge_window_blocks of acceptance:
              --review reverse--> REJECTED (reversal_slash_bps of the bond burned, rewards back to the pool)
    PENDING or ACCEPTED --an earlier-committed original is revealed--> VOIDED (stake to its author)
    ACCEPTED, window closed: claim_rewards pays the rewards and returns the bond

A contribution carries its content; validators compute its hash, size, fingerprint and MinHash.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import replace

from state import keys
from state.accounts import BOND_ESCROW, REWARD_POOL, burn, get_account, move
from state.attribution.records import (
    ACCEPTED,
    PENDING,
    REJECTED,
    VOIDED,
    Contribution,
    Sketch,
    pack_u64s,
    unpack_u64s,
)
from state.crypto import to_hex
from state.attribution.datanets import is_curator, put_datanet, require_datanet
from state.attribution.commitments import consume_commitment
from state.attribution.dedupe import (
    find_containments,
    find_exact_duplicate,
    find_near_duplicates,
    index_containment,
    index_contribution,
    unindex_containment,
    unindex_contribution,
)
from state.errors import TxRejected, require
from state.attribution.fingerprint import (
    FingerprintError,
    FingerprintParams,
    fingerprint_text,
    lsh_band_hashes,
)
from state.params import BPS, AttributionParams
from state.attribution.pools import deposit, has_units, join, leave, settle
from state.attribution.postings import add_postings, remove_postings
from state.store import StateView
from state.context import BlockContext
from state.tx import ClaimRewards, Contribute, Review, TransferContribution, Tx


@functools.lru_cache(maxsize=4)
def fingerprint_params(a: AttributionParams) -> FingerprintParams:
    """The fingerprint algorithm's parameters as genesis sets them (seeds: the algorithm's)."""
    return FingerprintParams(
        shingle_k=a.shingle_k,
        winnow_window=a.winnow_window,
        fingerprint_max=a.fingerprint_max,
        output_fingerprint_max=a.output_fingerprint_max,
        minhash_size=a.minhash_size,
        lsh_bands=a.lsh_bands,
        lsh_rows=a.lsh_rows,
        near_duplicate_bps=a.near_duplicate_bps,
        max_content_bytes=a.max_content_bytes,
        max_output_bytes=a.max_output_bytes,  # what an infer may carry (clients check it before sending)
    )


def get_contribution(view: StateView, contribution_id: bytes) -> Contribution | None:
    return view.get_obj(keys.contribution_key(contribution_id), Contribution)


def require_contribution(view: StateView, contribution_id: bytes) -> Contribution:
    c = get_contribution(view, contribution_id)
    require(c is not None, "unknown_contribution", f"contribution {to_hex(contribution_id)} does not exist")
    assert c is not None
    return c


def put_contribution(view: StateView, contribution_id: bytes, c: Contribution) -> None:
    view.put_obj(keys.contribution_key(contribution_id), c)


def get_sketch(view: StateView, contribution_id: bytes) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(fingerprint, minhash) registered by a pending or accepted contribution."""
    sketch = view.get_obj(keys.contribution_sketch_key(contribution_id), Sketch)
    if sketch is None:
        raise LookupError(f"contribution {to_hex(contribution_id)} has no sketch")
    return unpack_u64s(sketch.fingerprint), unpack_u64s(sketch.minhash)


# ---- contribute ----------------------------------------------------------------------------


def process_contribute(view: StateView, tx: Tx, ctx: BlockContext) -> None:
    """contribute: the content itself, with a bond; validators derive everything else from it."""
    body: Contribute = tx.body
    a = ctx.params.attribution
    fp_params = fingerprint_params(a)
    dn = require_datanet(view, body.datanet)
    require(len(body.content) <= a.max_content_bytes, "content_too_large",
            f"content of {len(body.content)} bytes exceeds max_content_bytes {a.max_content_bytes}")
    try:
        fp = fingerprint_text(body.content, fp_params)
    except FingerprintError as exc:
        raise TxRejected("bad_content", exc.reason) from None
    require(fp.winnowed <= a.fingerprint_max, "content_too_long",
            f"content has {fp.winnowed} fingerprint hashes, over fingerprint_max {a.fingerprint_max}: "
            "split it into parts at paragraph boundaries, each its own contribution")
    require(body.bond >= dn.bond_required, "bond_too_low",
            f"bond {body.bond} is below the datanet's bond_required {dn.bond_required}")
    place = consume_commitment(view, tx.sender, body.datanet, fp.content_hash, body.salt, ctx)
    bands = lsh_band_hashes(fp.minhash, fp_params)
    copies = []  # conflicting contributions committed after this one: voided below
    for cid, reason in conflicts(view, fp.content_hash, fp.minhash, fp.fingerprint, bands, a):
        other = require_contribution(view, cid)
        require((other.commit_height, other.commit_index) > place, reason,
                f"{CONFLICT_TEXT[reason]} contribution {_named(view, cid)}, committed earlier")
        copies.append((cid, other))
    require(get_account(view, tx.sender).balance >= body.bond, "insufficient_balance",
            f"balance cannot pay the bond {body.bond}")

    for cid, other in copies:
        void_copy(view, cid, other, tx.sender, a)
    dn = require_datanet(view, body.datanet)  # a voided copy may have been in this datanet
    move(view, tx.sender, BOND_ESCROW, body.bond)
    put_contribution(view, tx.hash, Contribution(
        datanet=body.datanet,
        owner=tx.sender,
        content_hash=fp.content_hash,
        size=fp.size,
        bond=body.bond,
        status=PENDING,
        created_height=ctx.height,
        fingerprint_len=len(fp.fingerprint),
        reward_entry=0,
        reward_frac=0,
        unclaimed=0,
        claimed=0,
        commit_height=place[0],
        commit_index=place[1],
        accepted_height=0,
    ))
    view.put_obj(keys.contribution_sketch_key(tx.hash), Sketch(
        pack_u64s(fp.fingerprint), pack_u64s(fp.minhash), struct.pack(f">{len(fp.positions)}I", *fp.positions)))
    index_contribution(view, tx.hash, fp.content_hash, bands)
    index_containment(view, tx.hash, fp.fingerprint, a.containment_sample_mod)
    put_datanet(view, body.datanet, replace(dn, submitted=dn.submitted + 1))


CONFLICT_TEXT = {"duplicate_content": "same content as", "near_duplicate": "near duplicate of",
                 "containment": "mostly contained in, or mostly containing,"}


def conflicts(view: StateView, content_hash: bytes, minhash: tuple[int, ...], fingerprint: tuple[int, ...],
              bands: list[bytes], a: AttributionParams) -> list[tuple[bytes, str]]:
    """The live contributions (any datanet) a new content conflicts with, and why (each id once)."""
    out: list[tuple[bytes, str]] = []
    exact = find_exact_duplicate(view, content_hash)
    if exact is not None:
        out.append((exact, "duplicate_content"))
    seen = {exact}
    for cid in find_near_duplicates(view, minhash, bands, fingerprint_params(a)):
        if cid not in seen:
            seen.add(cid)
            out.append((cid, "near_duplicate"))
    for cid in find_containments(view, fingerprint, a.containment_sample_mod, a.fingerprint_max, a.containment_bps):
        if cid not in seen:
            seen.add(cid)
            out.append((cid, "containment"))
    return out


def _named(view: StateView, cid: bytes) -> str:
    """'0xID (datanet 0xDN)': how a rejection names the original it conflicts with."""
    c = require_contribution(view, cid)
    return f"{to_hex(cid)} (datanet {to_hex(c.datanet)})"


# ---- review --------------------------------------------------------------------------------


def process_review(view: StateView, tx: Tx, ctx: BlockContext) -> None:
    """review: a curator accepts (starts earning; bond stays escrowed) or rejects (part of the bond
    burned) a pending contribution, or reverses an accepted one within its challenge window."""
    body: Review = tx.body
    a = ctx.params.attribution
    c = require_contribution(view, body.contribution)
    require(is_curator(view, c.datanet, tx.sender), "not_curator",
            "only a curator of the contribution's datanet may review it")
    require(body.accept in (0, 1, REVERSE), "bad_decision", "accept must be 1 (accept), 0 (reject) or 2 (reverse)")
    if body.accept == REVERSE:
        require(c.status == ACCEPTED, "not_accepted", "only an accepted contribution can be reversed")
        require(ctx.height < vested_at(c, a), "window_closed",
                f"the challenge window closed at height {vested_at(c, a)}: the contribution has vested")
        reverse_contribution(view, body.contribution, c, a)
        return
    require(c.status == PENDING, "not_pending", "only a pending contribution can be accepted or rejected")
    if body.accept:
        accept_contribution(view, body.contribution, c, ctx.height, a.pool_unit_cap)
    else:
        reject_contribution(view, body.contribution, c, a)


def get_positions(view: StateView, contribution_id: bytes) -> tuple[int, ...]:
    """Per fingerprint value, its first shingle index in the contribution (span matching)."""
    sketch = view.get_obj(keys.contribution_sketch_key(contribution_id), Sketch)
    if sketch is None:
        raise LookupError(f"contribution {to_hex(contribution_id)} has no sketch")
    return struct.unpack(f">{len(sketch.positions) // 4}I", sketch.positions)


REVERSE = 2  # review decision: reverse an accepted contribution


def vested_at(c: Contribution, a: AttributionParams) -> int:
    """First height at which an accepted contribution's bond and rewards are its owner's to take."""
    return c.accepted_height + a.challenge_window_blocks


def accept_contribution(view: StateView, cid: bytes, c: Contribution, height: int, cap: int) -> None:
    """The contribution joins its datanet's pool; its bond stays escrowed until it vests."""
    dn = require_datanet(view, c.datanet)
    fingerprint, _ = get_sketch(view, cid)
    positions = get_positions(view, cid)
    dn2, c2 = join(dn, replace(c, accepted_height=height), cap)
    put_datanet(view, c.datanet, dn2)
    put_contribution(view, cid, c2)
    add_postings(view, c.datanet, cid, fingerprint, positions, (c.commit_height, c.commit_index))


def reverse_contribution(view: StateView, cid: bytes, c: Contribution, a: AttributionParams) -> None:
    """A curator takes an acceptance back within the window: the contribution leaves the pool and
    the indexes, ``reversal_slash_bps`` of its bond is burned (the rest goes back to the owner) and
    its unvested rewards go back to the datanet's other contributors (or, if none, its owner)."""
    reclaimed = _leave_pool(view, cid, c, a.pool_unit_cap)
    dn = require_datanet(view, c.datanet)
    if has_units(dn):
        put_datanet(view, c.datanet, replace(deposit(dn, reclaimed), rewards_in=dn.rewards_in))
    else:
        move(view, REWARD_POOL, dn.owner, reclaimed)
    slashed = c.bond * a.reversal_slash_bps // BPS
    burn(view, BOND_ESCROW, slashed)
    move(view, BOND_ESCROW, c.owner, c.bond - slashed)
    forget_sketch(view, cid, c, a)
    put_contribution(view, cid, replace(require_contribution(view, cid), status=REJECTED, bond=0, unclaimed=0))


def _leave_pool(view: StateView, cid: bytes, c: Contribution, cap: int) -> int:
    """An accepted contribution stops earning and leaves the matching index; returns its settled
    unclaimed tokens (still in REWARD_POOL; the caller decides where they go)."""
    dn = require_datanet(view, c.datanet)
    fingerprint, _ = get_sketch(view, cid)
    dn2, c2 = leave(dn, c, cap)
    put_datanet(view, c.datanet, dn2)
    remove_postings(view, c.datanet, cid, fingerprint)
    put_contribution(view, cid, c2)
    return c2.unclaimed


def reject_contribution(view: StateView, cid: bytes, c: Contribution, a: AttributionParams) -> None:
    burned = c.bond * a.reject_burn_bps // BPS
    burn(view, BOND_ESCROW, burned)
    move(view, BOND_ESCROW, c.owner, c.bond - burned)
    forget_sketch(view, cid, c, a)
    put_contribution(view, cid, replace(c, status=REJECTED, bond=0))


def forget_sketch(view: StateView, cid: bytes, c: Contribution, a: AttributionParams) -> None:
    """Free the duplicate-control entries and the stored sketch of a contribution."""
    fingerprint, minhash = get_sketch(view, cid)
    bands = lsh_band_hashes(minhash, fingerprint_params(a))
    unindex_contribution(view, cid, c.content_hash, bands)
    unindex_containment(view, cid, fingerprint, a.containment_sample_mod)
    view.delete(keys.contribution_sketch_key(cid))


# ---- voiding --------------------------------------------------------------------------------


def void_copy(view: StateView, cid: bytes, c: Contribution, author: bytes, a: AttributionParams) -> None:
    """A later-committed copy of what ``author`` revealed: removed everywhere, its stake to the author.

    Its escrowed bond goes to the author. Accepted (always within its challenge window, since
    challenge_window_blocks >= reveal_window_blocks): it also leaves the pool and the matching
    index, and its unvested rewards (earned on the author's text) go to the author.
    """
    if c.status == ACCEPTED:
        move(view, REWARD_POOL, author, _leave_pool(view, cid, c, a.pool_unit_cap))
        c = require_contribution(view, cid)
    move(view, BOND_ESCROW, author, c.bond)
    forget_sketch(view, cid, c, a)
    put_contribution(view, cid, replace(c, status=VOIDED, bond=0, unclaimed=0))


# ---- ownership and claims ------------------------------------------------------------------


def process_transfer_contribution(view: StateView, tx: Tx, ctx: BlockContext) -> None:
    """transfer_contribution: the owner hands the contribution, and all it has not claimed, over."""
    body: TransferContribution = tx.body
    c = require_contribution(view, body.contribution)
    require(tx.sender == c.owner, "not_owner", "only the contribution's owner may transfer it")
    require(body.new_owner != c.owner, "same_owner", "the new owner is already the owner")
    put_contribution(view, body.contribution, replace(c, owner=body.new_owner))


def process_claim_rewards(view: StateView, tx: Tx, ctx: BlockContext) -> None:
    """claim_rewards: the owner of each listed vested contribution is paid exactly what it is
    owed, and its escrowed bond comes back."""
    body: ClaimRewards = tx.body
    a = ctx.params.attribution
    ids = body.contributions
    require(len(ids) > 0, "empty_claim", "name at least one contribution")
    require(len(set(ids)) == len(ids), "duplicate_contribution", "a contribution is listed twice")
    settled: list[tuple[bytes, Contribution]] = []
    for cid in ids:
        c = require_contribution(view, cid)
        require(c.owner == tx.sender, "not_owner", f"contribution {to_hex(cid)} is not the sender's")
        if c.status == ACCEPTED:
            require(ctx.height >= vested_at(c, a), "vesting",
                    f"contribution {to_hex(cid)} vests at height {vested_at(c, a)} (challenge window)")
            c = settle(c, require_datanet(view, c.datanet), ctx.params.attribution.pool_unit_cap)
        settled.append((cid, c))
    total = sum(c.unclaimed for _, c in settled)
    bonds = sum(c.bond for _, c in settled if c.status == ACCEPTED)
    require(total + bonds > 0, "nothing_to_claim", "the listed contributions have no unclaimed rewards or bond")

    for cid, c in settled:  # a pending contribution's bond stays escrowed
        released = c.bond if c.status == ACCEPTED else 0
        put_contribution(view, cid, replace(c, unclaimed=0, claimed=c.claimed + c.unclaimed, bond=c.bond - released))
    move(view, REWARD_POOL, tx.sender, total)
    move(view, BOND_ESCROW, tx.sender, bonds)
