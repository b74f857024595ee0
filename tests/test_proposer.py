"""CometBFT's proposer-priority algorithm: hand-computed cases and long-run fairness.

Keys are sorted by address, so ``k[0] < k[1] < k[2]`` and ties go to the lower index. Every
expected priority below is worked out by hand from the rules in state/staking/validator_set.py.
"""

from __future__ import annotations

import pytest

from consensus.testkit import keys_by_address, validator_set
from state.staking.validator_set import (
    InvalidValidatorUpdate,
    Validator,
    ValidatorSet,
    ValidatorUpdate,
    has_one_third_plus,
    has_two_thirds,
)
from state.codec import CodecError, decode

K = keys_by_address(4)


def prios(vs: ValidatorSet) -> dict[bytes, int]:
    return {v.address: v.proposer_priority for v in vs.validators}


def by_key(*values: int) -> dict[bytes, int]:
    return {K[i].address: p for i, p in enumerate(values)}


def test_genesis_set_is_centred_then_incremented_once() -> None:
    # T = 6: everyone starts at -(6 + 6 // 8) = -6, centring brings all to 0, then +power and the
    # highest (k2, 3) pays the total: k0 1, k1 2, k2 3 - 6 = -3.
    vs = validator_set(K[:3], [1, 2, 3])
    assert prios(vs) == by_key(1, 2, -3)
    assert vs.get_proposer().address == K[2].address
    assert [v.address for v in vs.validators] == [K[2].address, K[1].address, K[0].address]  # power desc


def test_hand_computed_rotation_with_a_tie_broken_by_address() -> None:
    vs = validator_set(K[:3], [1, 2, 3])
    expected = [
        (K[1], (2, -2, 0)),  # (2, 4, 0): k1 is highest
        (K[0], (-3, 0, 3)),  # (3, 0, 3): k0 and k2 tie, k0 has the lower address
        (K[2], (-2, 2, 0)),  # (-2, 2, 6)
        (K[1], (-1, -2, 3)),  # (-1, 4, 3)
        (K[2], (0, 0, 0)),  # (0, 0, 6)
        (K[2], (1, 2, -3)),  # back to the start: the cycle has length 6 = total power
    ]
    for proposer, priorities in expected:
        vs = vs.copy_increment(1)
        assert vs.get_proposer().address == proposer.address
        assert prios(vs) == by_key(*priorities)


def test_equal_powers_alternate_starting_with_the_lowest_address() -> None:
    vs = validator_set(K[:2], [1, 1])
    seen = []
    for _ in range(4):
        seen.append(vs.get_proposer().address)
        vs = vs.copy_increment(1)
    assert seen == [K[0].address, K[1].address] * 2


def test_increment_by_k_equals_k_single_increments_without_rescaling() -> None:
    vs = validator_set(K[:3], [1, 2, 3])
    stepwise = vs
    for _ in range(4):
        stepwise = stepwise.copy_increment(1)
    assert vs.copy_increment(4) == stepwise
    assert vs.proposer_after(4).address == stepwise.get_proposer().address


def test_new_validator_starts_at_minus_one_and_an_eighth_of_the_total() -> None:
    vs = validator_set(K[:2], [10, 10])  # (10, 10) tie -> k0 pays 20: (-10, 10)
    assert prios(vs) == by_key(-10, 10)
    added = vs.update_with_changes([ValidatorUpdate(K[2].public_key, 4)])
    # T = 24 after the update, so k2 starts at -(24 + 3) = -27; spread 37 <= 48: no rescale;
    # centring subtracts floor(-27 / 3) = -9.
    assert prios(added) == by_key(-1, 19, -18)
    assert added.total_power == 24
    assert added.get_proposer().address == K[0].address  # unchanged proposer stays


def test_centring_uses_floor_division() -> None:
    vs = validator_set(K[:2], [10, 10])
    added = vs.update_with_changes([ValidatorUpdate(K[2].public_key, 5)])
    # T = 25: start -(25 + 3) = -28; sum -28, floor(-28 / 3) = -10 (not -9): (0, 20, -18).
    assert prios(added) == by_key(0, 20, -18)


def test_changed_power_keeps_priority_and_removed_validators_leave() -> None:
    vs = validator_set(K[:2], [10, 10]).update_with_changes([ValidatorUpdate(K[2].public_key, 4)])
    changed = vs.update_with_changes([ValidatorUpdate(K[1].public_key, 7), ValidatorUpdate(K[2].public_key, 0)])
    # k0 keeps -1, k1 keeps 19 with power 7; k2 leaves; sum 18, centre by 9.
    assert prios(changed) == by_key(-10, 10)
    assert [(v.address, v.power) for v in changed.validators] == [(K[0].address, 10), (K[1].address, 7)]
    assert changed.total_power == 17


def test_invalid_changes_are_refused() -> None:
    vs = validator_set(K[:2], [10, 10])
    with pytest.raises(InvalidValidatorUpdate):
        vs.update_with_changes([ValidatorUpdate(K[3].public_key, 0)])  # unknown removal
    with pytest.raises(InvalidValidatorUpdate):
        vs.update_with_changes([ValidatorUpdate(K[2].public_key, 1), ValidatorUpdate(K[2].public_key, 2)])
    with pytest.raises(InvalidValidatorUpdate):
        vs.update_with_changes([ValidatorUpdate(K[0].public_key, 0), ValidatorUpdate(K[1].public_key, 0)])


def test_priorities_are_rescaled_when_their_spread_exceeds_twice_the_total() -> None:
    vals = tuple(
        Validator(K[i].address, K[i].public_key, 1, p) for i, p in enumerate((1000, -1000, 0))
    )
    vs = ValidatorSet(vals, b"")
    # Spread 2000 > 2 * 3: divide by ceil(2000 / 6) = 334, truncating toward zero: (2, -2, 0).
    # Centre (sum 0), then +1 each: (3, -1, 1); k0 pays 3.
    nxt = vs.copy_increment(1)
    assert prios(nxt) == by_key(0, -1, 1)
    assert nxt.get_proposer().address == K[0].address


def test_without_a_recorded_proposer_the_highest_priority_proposes() -> None:
    vals = tuple(Validator(K[i].address, K[i].public_key, 1, p) for i, p in enumerate((0, 5, 5)))
    assert ValidatorSet(vals, b"").get_proposer().address == K[1].address


def test_set_structure_rules() -> None:
    v0 = Validator(K[0].address, K[0].public_key, 1, 0)
    v1 = Validator(K[1].address, K[1].public_key, 1, 0)
    with pytest.raises(CodecError):
        ValidatorSet((v1, v0), b"")  # not in (power desc, address asc) order
    with pytest.raises(CodecError):
        ValidatorSet((), b"")
    with pytest.raises(CodecError):
        Validator(K[1].address, K[0].public_key, 1, 0)  # address is not the key's
    vs = validator_set(K[:3], [5, 1, 2])
    assert decode(ValidatorSet, vs.encode()) == vs  # type: ignore[attr-defined]


def test_hash_ignores_priorities() -> None:
    vs = validator_set(K[:3], [5, 1, 2])
    assert vs.copy_increment(3).hash() == vs.hash()
    assert vs.update_with_changes([ValidatorUpdate(K[1].public_key, 2)]).hash() != vs.hash()


def test_power_thresholds_are_strict_integers() -> None:
    assert not has_two_thirds(2, 3) and has_two_thirds(3, 4)
    assert not has_one_third_plus(1, 3) and has_one_third_plus(2, 4)


@pytest.mark.parametrize(
    "powers",
    [
        [1, 2, 3, 4],
        [100, 1, 1, 1, 1],
        [13, 8, 5, 3, 2, 1, 1],
        [37, 11, 83, 2, 54, 19, 7],
        [1] * 10 + [50],
    ],
)
def test_proposals_follow_power_over_ten_thousand_heights(powers: list[int]) -> None:
    keys = keys_by_address(len(powers), offset=900)
    vs = validator_set(keys, powers)
    heights = 10_000
    counts = {k.address: 0 for k in keys}
    for _ in range(heights):
        counts[vs.get_proposer().address] += 1
        vs = vs.copy_increment(1)
    total = sum(powers)
    for key, power in zip(keys, powers):
        # |count - heights * power / total| <= 1% of heights * power / total, in integers
        assert abs(counts[key.address] * total - heights * power) * 100 <= heights * power


def test_tiny_validator_share_stays_within_one_percentage_point() -> None:
    keys = keys_by_address(3, offset=950)
    powers = [10**12, 3 * 10**11, 7]
    vs = validator_set(keys, powers)
    counts = {k.address: 0 for k in keys}
    for _ in range(10_000):
        counts[vs.get_proposer().address] += 1
        vs = vs.copy_increment(1)
    total = sum(powers)
    for key, power in zip(keys, powers):
        assert abs(counts[key.address] * total - 10_000 * power) * 100 <= 10_000 * total
