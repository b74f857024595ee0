"""Parameter changes: the genesis validation path, then the invariants of a live chain.

Rule (docs/governance.md, "Parameter changes"): a change is a list of (``section.field``, value).
The new params are built exactly as a genesis.json `params` override is (``with_overrides``: known
names only, each value checked by its field's wire type, then ``Params.validate`` and every
section's own ``validate``), then checked against the invariants below, which a genesis can
ignore (it can be remade) but a running chain cannot. A change that fails is refused at
submission, and checked again when it would be applied (an earlier proposal may have changed
other params meanwhile): then the proposal FAILS and nothing of it is applied.
"""

from __future__ import annotations

from collections.abc import Sequence

from state.params import BPS, Params, with_overrides
from state.tx import MAX_CONTENT, MAX_FINGERPRINT, MAX_MINHASH, MAX_OUTPUT, MAX_TX_BYTES

# Stored fingerprints, MinHash sketches and LSH band keys were computed with these: changing one
# would make new contributions incomparable with registered ones (duplicates would pass unseen).
IMMUTABLE = frozenset({
    "attribution.shingle_k",
    "attribution.winnow_window",
    "attribution.minhash_size",
    "attribution.lsh_bands",
    "attribution.lsh_rows",
    # every accepted contribution's pool units are min(size, pool_unit_cap): joins and leaves must agree
    "attribution.pool_unit_cap",
})
MAX_PERIOD_BLOCKS = 5_000_000  # a longer deposit or voting period would freeze governance itself
MAX_TIMEOUT_MS = 600_000  # a consensus timeout beyond ten minutes stalls the chain at one crash
# attribution fields that wire ceilings bound (present as long as the section has them)
WIRE_CEILINGS = {"fingerprint_max": MAX_FINGERPRINT, "output_fingerprint_max": MAX_FINGERPRINT,
                 "minhash_size": MAX_MINHASH, "max_content_bytes": MAX_CONTENT, "max_output_bytes": MAX_OUTPUT}


class ParamChangeError(ValueError):
    """A parameter change that genesis validation or a live-chain invariant refuses."""


def changed_params(params: Params, changes: Sequence[tuple[str, int]], circulating: int) -> Params:
    """``params`` with ``changes`` applied, all or none; raises ParamChangeError naming the problem.

    ``circulating`` (supply minus burned) bounds min_deposit.
    """
    if not changes:
        raise ParamChangeError("a parameter change needs at least one change")
    overrides: dict[str, dict[str, int]] = {}
    for path, value in changes:
        section, dot, name = path.partition(".")
        if not dot or not section or not name or "." in name:
            raise ParamChangeError(f"{path!r}: a param path is section.field, e.g. attribution.matched_bps")
        if name in overrides.get(section, {}):
            raise ParamChangeError(f"{path}: changed twice in one proposal")
        overrides.setdefault(section, {})[name] = value
    try:
        new = with_overrides(params, overrides)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:  # CodecError is a ValueError
        raise ParamChangeError(str(exc)) from None
    for path, _ in changes:
        section, _, name = path.partition(".")
        if path in IMMUTABLE and getattr(getattr(new, section), name) != getattr(getattr(params, section), name):
            raise ParamChangeError(f"{path} cannot change on a live chain: stored fingerprints, "
                                   "sketches and LSH bands were computed with it")
    check_live_invariants(new, circulating)
    return new


def check_live_invariants(p: Params, circulating: int) -> None:
    """The rules a running chain's params must keep (beyond genesis validation)."""
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ParamChangeError(message)

    need(p.fees.max_block_txs >= 1, "fees.max_block_txs must be at least 1 (else no transaction, "
         "not even a proposal to undo it, could ever be included)")
    need(p.fees.max_block_bytes >= MAX_TX_BYTES,
         f"fees.max_block_bytes must be at least {MAX_TX_BYTES} (the largest transaction)")
    t = p.timeouts
    for name in ("propose_ms", "prevote_ms", "precommit_ms"):
        need(1 <= getattr(t, name) <= MAX_TIMEOUT_MS, f"timeouts.{name} must be in 1..{MAX_TIMEOUT_MS}")
    for name in ("propose_delta_ms", "prevote_delta_ms", "precommit_delta_ms", "commit_ms"):
        need(getattr(t, name) <= MAX_TIMEOUT_MS, f"timeouts.{name} must be at most {MAX_TIMEOUT_MS}")
    need(p.staking.unbonding_blocks >= 1, "staking.unbonding_blocks must be at least 1 "
         "(unbonded stake must stay slashable for the block that saw it bonded)")
    a = p.attribution
    for name, ceiling in WIRE_CEILINGS.items():
        value = getattr(a, name, None)
        need(value is None or value <= ceiling,
             f"attribution.{name} must be at most {ceiling} (the transaction wire limit)")
    g = p.governance
    need(g.threshold_bps < BPS, f"governance.threshold_bps must be below {BPS} (else nothing can pass again)")
    need(g.deposit_period_blocks <= MAX_PERIOD_BLOCKS and g.voting_period_blocks <= MAX_PERIOD_BLOCKS,
         f"governance periods must be at most {MAX_PERIOD_BLOCKS} blocks")
    need(1 <= g.min_deposit <= circulating,
         f"governance.min_deposit must be in 1..{circulating} (the tokens in circulation)")
