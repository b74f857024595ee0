"""The evidence pool admits exactly what the next block would accept (the block rule itself,
`check_evidence`), keeps evidence of the height in progress apart until that height is committed,
and block building never picks evidence that would make the block invalid (issue 12, attack 1).
Real chains on LevelDB."""

from __future__ import annotations

from pathlib import Path

import pytest

import node.evidence_pool as evidence_module
from node.evidence_pool import MAX_EVIDENCE_PER_BLOCK, Admission, EvidencePool
from staking_support import V0, V1, double_sign, make_genesis, next_block, open_chain
from state.crypto import PrivateKey

OUTSIDER = PrivateKey.from_int(556)


def make_chain(tmp_path: Path):  # type: ignore[no-untyped-def]
    balances = {k.address: 5_000_000 for k in (V0, V1)}
    genesis = make_genesis(balances, [(V0, 3_000_000), (V1, 1_000_000)], {"staking": {"evidence_max_age_blocks": 3}})
    return open_chain(tmp_path / "db", genesis)


def test_admission_follows_the_block_rule(tmp_path: Path) -> None:
    c = make_chain(tmp_path)
    for _ in range(6):
        next_block(c)
    pool = EvidencePool(c)
    in_progress = c.height + 1
    assert pool.add(double_sign(V1, in_progress))[0] is Admission.PENDING
    assert pool.add(double_sign(V1, in_progress + 1))[0] is Admission.REFUSED  # from the future
    assert pool.add(double_sign(V1, 1))[0] is Admission.REFUSED  # older than evidence_max_age_blocks
    assert pool.add(double_sign(V1, 5, chain_id="another-chain"))[0] is Admission.INVALID
    assert pool.add(double_sign(OUTSIDER, 5))[0] is Admission.INVALID  # not in the set of height 5
    good = double_sign(V1, 5)
    assert pool.add(good) == (Admission.ADDED, "")
    assert pool.add(good)[0] is Admission.KNOWN
    assert list(pool.pool) == [good.hash()] and len(pool.pending) == 1
    chosen = pool.for_block(c.db.view(), c.height + 1)
    assert chosen == (good,)
    c.build_block((), 9_000, V0.address, evidence=chosen)  # builds: nothing in it is refused
    c.db.close()


def test_pending_evidence_enters_after_its_height_and_processed_evidence_leaves(tmp_path: Path) -> None:
    c = make_chain(tmp_path)
    for _ in range(3):
        next_block(c)
    pool = EvidencePool(c)
    live = double_sign(V1, c.height + 1)
    assert pool.add(live)[0] is Admission.PENDING
    assert pool.for_block(c.db.view(), c.height + 1) == ()  # never in the block of its own height
    next_block(c)  # the offence height is committed
    assert pool.after_commit() == [live] and live.hash() in pool and not pool.pending
    next_block(c, evidence=pool.for_block(c.db.view(), c.height + 1))  # processed by this block
    assert pool.after_commit() == [] and len(pool) == 0
    c.db.close()


def test_pool_is_bounded_overall_and_per_accused_validator(tmp_path: Path) -> None:
    c = make_chain(tmp_path)
    for _ in range(6):
        next_block(c)
    pool = EvidencePool(c, max_items=3, max_per_validator=2)
    results = [pool.add(double_sign(V1, 5, round_=r))[0] for r in range(5)]
    assert results == [Admission.ADDED, Admission.ADDED] + [Admission.REFUSED] * 3
    assert pool.add(double_sign(V0, 5))[0] is Admission.ADDED
    assert pool.add(double_sign(V0, 4))[0] is Admission.REFUSED  # full overall
    assert len(pool) == 3 <= MAX_EVIDENCE_PER_BLOCK
    c.db.close()



def test_a_flood_of_copies_against_one_validator_costs_no_signature_checks(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The evidence-now attack of issue 12: a validator's leaked key signs fresh double signs
    against it for the height in progress, dozens a second, each one valid. Before, every copy
    was verified (two Ed25519 checks and a validator set read) and only then refused for lack of
    room; now a full share is refused first."""
    c = make_chain(tmp_path)
    for _ in range(6):
        next_block(c)
    verified: list[int] = []
    real_pending, real_pool = evidence_module.verify_duplicate_vote_evidence, evidence_module.check_evidence

    def count_pending(*args, **kwargs):  # type: ignore[no-untyped-def]
        verified.append(1)
        return real_pending(*args, **kwargs)

    def count_pool(*args, **kwargs):  # type: ignore[no-untyped-def]
        verified.append(1)
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(evidence_module, "verify_duplicate_vote_evidence", count_pending)
    monkeypatch.setattr(evidence_module, "check_evidence", count_pool)
    pool = EvidencePool(c, max_per_validator=2)
    now = [pool.add(double_sign(V1, c.height + 1, round_=r))[0] for r in range(50)]
    old = [pool.add(double_sign(V1, 5, round_=r))[0] for r in range(50)]
    assert now == [Admission.PENDING] * 2 + [Admission.REFUSED] * 48
    assert old == [Admission.ADDED] * 2 + [Admission.REFUSED] * 48
    assert len(verified) == 4, f"{len(verified)} verifications for 4 pieces kept"
    assert pool.add(double_sign(V0, 5))[0] is Admission.ADDED  # another validator still gets in
    c.db.close()
