"""Genesis parameters, grouped by the rules they govern, with `devnet` and `default` presets.

Every number a validator must agree on lives here and is stored in state under keys.params_key().
"""

from __future__ import annotations

import dataclasses
from typing import Any

from state.codec import U16, U32, U64, Nested, canonical, f

BPS = 10_000


@canonical
class FeeParams:
    min_fee: int = f(U64)  # flat minimum fee per transaction
    max_block_txs: int = f(U32)
    max_block_bytes: int = f(U32)


@canonical
class AttributionParams:
    # inference fee split (sum to BPS)
    validators_bps: int = f(U16)
    model_bps: int = f(U16)
    adapter_bps: int = f(U16)
    agent_bps: int = f(U16)
    data_bps: int = f(U16)
    matched_bps: int = f(U16)  # of the data share, to matched contributions
    lineage_max_depth: int = f(U16)
    reject_burn_bps: int = f(U16)  # of a rejected contribution's bond
    challenge_reward_bps: int = f(U16)  # of a voided contribution's bond, to the challenger
    idf_scale: int = f(U64)  # SCALE in score = sum SCALE // document_frequency
    max_matched: int = f(U16)  # contributions paid from one inference's matched share
    # fingerprinting (docs/attribution.md)
    shingle_k: int = f(U16)
    winnow_window: int = f(U16)
    fingerprint_max: int = f(U16)
    output_fingerprint_max: int = f(U16)
    minhash_size: int = f(U16)
    lsh_bands: int = f(U16)
    lsh_rows: int = f(U16)
    near_duplicate_bps: int = f(U16)
    max_content_bytes: int = f(U32)
    min_agent_stake: int = f(U64)
    reveal_window_blocks: int = f(U32)  # a contribution reveals its commitment within this many blocks
    containment_bps: int = f(U16)  # fingerprint share of one text found in another that makes a containment
    containment_sample_mod: int = f(U16)  # fingerprint hashes h with h % mod == 0 go into the containment index
    challenge_window_blocks: int = f(U32)  # after acceptance: bond escrowed, rewards vest, reversal possible (>= reveal window)
    reversal_slash_bps: int = f(U16)  # of the bond of an accepted contribution its curator reverses, burned
    # inference evidence (issue 14, docs/attribution.md "Inference")
    max_output_bytes: int = f(U32)  # largest output text an infer carries (wire ceiling MAX_OUTPUT)
    min_span_shingles: int = f(U16)  # L: a matched span pays only with at least L credited shingles
    pool_unit_cap: int = f(U64)  # pool weight of one contribution: min(size, cap)


@canonical
class StakingParams:
    max_validators: int = f(U16)
    min_self_stake: int = f(U64)
    unbonding_blocks: int = f(U32)
    double_sign_slash_bps: int = f(U16)
    downtime_slash_bps: int = f(U16)
    signed_blocks_window: int = f(U32)
    min_signed_bps: int = f(U16)  # below this share of the window a validator is jailed
    jail_blocks: int = f(U32)
    evidence_max_age_blocks: int = f(U32)


@canonical
class ConsensusTimeouts:
    propose_ms: int = f(U32)
    propose_delta_ms: int = f(U32)
    prevote_ms: int = f(U32)
    prevote_delta_ms: int = f(U32)
    precommit_ms: int = f(U32)
    precommit_delta_ms: int = f(U32)
    commit_ms: int = f(U32)  # pause after a commit before the next height (block interval floor)


@canonical
class GovernanceParams:
    """Proposals, deposits, votes and the community pool (docs/governance.md)."""

    min_deposit: int = f(U64)  # total deposit that moves a proposal into its voting period
    min_initial_deposit_bps: int = f(U16)  # of min_deposit, paid by the proposer at submission
    deposit_period_blocks: int = f(U32)
    voting_period_blocks: int = f(U32)
    quorum_bps: int = f(U16)  # of bonded stake that must vote
    threshold_bps: int = f(U16)  # yes must exceed this share of non-abstain votes
    veto_bps: int = f(U16)  # no_with_veto above this share of all votes rejects and burns
    community_pool_bps: int = f(U16)  # of every block's fee pool, to the community pool

    def validate(self, path: str) -> None:
        from state.codec import CodecError

        for name in ("min_initial_deposit_bps", "quorum_bps", "threshold_bps", "veto_bps", "community_pool_bps"):
            if getattr(self, name) > BPS:
                raise CodecError(f"{path}.{name} exceeds {BPS}")
        if self.deposit_period_blocks == 0 or self.voting_period_blocks == 0:
            raise CodecError(f"{path}: deposit_period_blocks and voting_period_blocks must be > 0")


@canonical
class Params:
    fees: FeeParams = f(Nested(FeeParams))
    attribution: AttributionParams = f(Nested(AttributionParams))
    staking: StakingParams = f(Nested(StakingParams))
    timeouts: ConsensusTimeouts = f(Nested(ConsensusTimeouts))
    governance: GovernanceParams = f(Nested(GovernanceParams))

    def validate(self, path: str) -> None:
        from state.codec import CodecError

        a = self.attribution
        split = a.validators_bps + a.model_bps + a.adapter_bps + a.agent_bps + a.data_bps
        if split != BPS:
            raise CodecError(f"{path}.attribution: fee split sums to {split}, not {BPS}")
        for name in ("matched_bps", "reject_burn_bps", "challenge_reward_bps", "near_duplicate_bps"):
            if getattr(a, name) > BPS:
                raise CodecError(f"{path}.attribution.{name} exceeds {BPS}")
        if a.lsh_bands * a.lsh_rows != a.minhash_size:
            raise CodecError(f"{path}.attribution: lsh_bands * lsh_rows != minhash_size")
        if not 1 <= a.containment_bps <= BPS or a.containment_sample_mod < 1:
            raise CodecError(f"{path}.attribution: containment_bps must be in 1..{BPS}, containment_sample_mod >= 1")
        if a.reversal_slash_bps > BPS:
            raise CodecError(f"{path}.attribution.reversal_slash_bps exceeds {BPS}")
        if a.reveal_window_blocks < 1:
            raise CodecError(f"{path}.attribution.reveal_window_blocks must be at least 1")
        from state.tx import MAX_OUTPUT

        if not 1 <= a.max_output_bytes <= MAX_OUTPUT:
            raise CodecError(f"{path}.attribution.max_output_bytes must be 1..{MAX_OUTPUT}")
        if a.min_span_shingles < 1 or a.pool_unit_cap < 1:
            raise CodecError(f"{path}.attribution: min_span_shingles and pool_unit_cap must be at least 1")
        from state.block import MAX_BLOCK_TX_BYTES

        if self.fees.max_block_bytes > MAX_BLOCK_TX_BYTES:
            raise CodecError(f"{path}.fees.max_block_bytes must be at most {MAX_BLOCK_TX_BYTES} "
                             "(a larger block could not be decoded)")
        s = self.staking
        for name in ("double_sign_slash_bps", "downtime_slash_bps", "min_signed_bps"):
            if getattr(s, name) > BPS:
                raise CodecError(f"{path}.staking.{name} exceeds {BPS}")
        if s.max_validators == 0 or s.signed_blocks_window == 0:
            raise CodecError(f"{path}.staking: max_validators and signed_blocks_window must be > 0")


_ATTRIBUTION = AttributionParams(
    validators_bps=1000,
    model_bps=2500,
    adapter_bps=1000,
    agent_bps=500,
    data_bps=5000,
    matched_bps=6000,
    lineage_max_depth=4,
    reject_burn_bps=5000,
    challenge_reward_bps=5000,
    idf_scale=1_000_000,
    max_matched=64,
    shingle_k=4,
    winnow_window=5,
    fingerprint_max=4096,  # every winnowed hash of 64 KiB of English (~3,000); more is refused
    output_fingerprint_max=1024,
    minhash_size=128,
    lsh_bands=32,
    lsh_rows=4,
    near_duplicate_bps=5000,
    max_content_bytes=65536,
    min_agent_stake=0,
    reveal_window_blocks=600,
    containment_bps=5000,
    containment_sample_mod=4,
    challenge_window_blocks=1200,
    reversal_slash_bps=10_000,
    max_output_bytes=16 * 1024,
    min_span_shingles=6,
    pool_unit_cap=16 * 1024,
)

DEFAULT = Params(
    fees=FeeParams(min_fee=1, max_block_txs=10_000, max_block_bytes=4 * 1024 * 1024),
    attribution=_ATTRIBUTION,
    staking=StakingParams(
        max_validators=100,
        min_self_stake=1_000_000,
        unbonding_blocks=100_800,
        double_sign_slash_bps=500,
        downtime_slash_bps=1,
        signed_blocks_window=10_000,
        min_signed_bps=5000,
        jail_blocks=600,
        evidence_max_age_blocks=100_000,
    ),
    timeouts=ConsensusTimeouts(3000, 500, 1000, 500, 1000, 500, 1000),
    governance=GovernanceParams(
        min_deposit=10_000_000,
        min_initial_deposit_bps=2500,
        deposit_period_blocks=100_800,
        voting_period_blocks=100_800,
        quorum_bps=3340,
        threshold_bps=5000,
        veto_bps=3340,
        community_pool_bps=200,
    ),
)

# The devnet differs from the default only in short periods and small stakes.
DEVNET = dataclasses.replace(
    DEFAULT,
    staking=dataclasses.replace(
        DEFAULT.staking,
        min_self_stake=1_000,
        unbonding_blocks=20,
        downtime_slash_bps=100,
        signed_blocks_window=100,
        jail_blocks=20,
        evidence_max_age_blocks=1000,
    ),
    timeouts=ConsensusTimeouts(1000, 300, 400, 200, 400, 200, 300),
    governance=dataclasses.replace(
        DEFAULT.governance, min_deposit=10_000, deposit_period_blocks=50, voting_period_blocks=20,
    ),
    # a 2-block challenge window: demos and tests claim right away. Below reveal_window_blocks, so a
    # copy can vest (and be claimed) before an earlier-committed original is revealed; never in production.
    attribution=dataclasses.replace(DEFAULT.attribution, challenge_window_blocks=2),
)

PRESETS: dict[str, Params] = {"default": DEFAULT, "devnet": DEVNET}


def with_overrides(base: Params, overrides: dict[str, dict[str, Any]]) -> Params:
    """A copy of ``base`` with {section: {field: value}} replaced (genesis.json `params` section)."""
    sections = {}
    for fd in dataclasses.fields(base):  # type: ignore[arg-type]
        section = getattr(base, fd.name)
        changes = overrides.get(fd.name, {})
        unknown = set(changes) - {x.name for x in dataclasses.fields(section)}
        if unknown:
            raise ValueError(f"unknown params in {fd.name}: {sorted(unknown)}")
        sections[fd.name] = dataclasses.replace(section, **changes)
    unknown_sections = set(overrides) - set(sections)
    if unknown_sections:
        raise ValueError(f"unknown params sections: {sorted(unknown_sections)}")
    return Params(**sections)


def to_dict(params: Params) -> dict[str, dict[str, int]]:
    return {
        fd.name: dataclasses.asdict(getattr(params, fd.name))
        for fd in dataclasses.fields(params)  # type: ignore[arg-type]
    }
