"""End to end, real processes: a validator holding 1/4 of the power signs conflicting votes (the
devnet's double-sign fault). The evidence is committed, its stake is slashed by
`double_sign_slash_bps`, it is tombstoned and leaves the set, and the chain goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devnet.launcher import VALIDATOR_STAKE, Layout, NodeSpec
from e2e_kit import FAST, final_checks, start_load, stop_load, wait_committed_more, wait_for, wait_for_heights
from netkit import height_of, rpc, running_devnet
from node.config import Home
from state import keys
from state.codec import decode
from state.crypto import from_hex, to_hex
from state.staking.records import Validator

pytestmark = pytest.mark.multinode

BYZANTINE = 3


def _validator_record(spec: NodeSpec, operator: bytes) -> Validator | None:
    """The staking record of ``operator``, read through `abci_query` of its state key."""
    answer = rpc(spec, "abci_query", {"key": to_hex(keys.validator_key(operator))})
    return decode(Validator, from_hex(answer["value"])) if answer["exists"] else None


def _evidence_heights(spec: NodeSpec, upto: int) -> dict[int, list[Any]]:
    found = {}
    for h in range(1, upto + 1):
        evidence = rpc(spec, "block", {"height": h})["block"]["evidence"]
        if evidence:
            found[h] = evidence
    return found


def _operator(layout: Layout, index: int) -> bytes:
    key = Home(layout.dir / layout.nodes[index].home).validator_key()
    assert key is not None
    return key.address  # the devnet's validators operate with their consensus key's address


def test_double_signer_is_slashed_tombstoned_and_the_chain_goes_on(tmp_path: Path) -> None:
    with running_devnet(tmp_path, 4, params=FAST, double_sign=(BYZANTINE,)) as layout:
        honest = layout.nodes[:BYZANTINE] + layout.nodes[BYZANTINE + 1:]
        observer = honest[0]
        byzantine = _operator(layout, BYZANTINE)
        wait_for_heights(layout, layout.nodes, 2, 60)
        genesis = rpc(observer, "genesis")["genesis"]
        slash_bps = genesis["consensus_params"]["staking"]["double_sign_slash_bps"]
        assert 0 < slash_bps < 10_000
        gen = start_load(layout)
        try:
            wait_for(layout, lambda: (r := _validator_record(observer, byzantine)) is not None and r.tombstoned == 1,
                     60, "the double signer to be tombstoned")
            tombstoned_at = height_of(observer) or 0
            # it left the validator set (at most two heights later), and the others go on without it
            wait_for_heights(layout, honest, tombstoned_at + 5, 30)
            members = rpc(observer, "validators", {"height": tombstoned_at + 3})["validators"]
            assert to_hex(byzantine) not in [v["operator"] for v in members]
            assert len(members) == 3
            wait_committed_more(gen, 10, 30)
        finally:
            report = stop_load(gen)
        record = _validator_record(observer, byzantine)
        assert record is not None
        assert (record.tombstoned, record.jailed) == (1, 1)
        # one slash only, however many conflicting votes it signed: stake * (1 - bps)
        assert record.tokens == VALIDATOR_STAKE - VALIDATOR_STAKE * slash_bps // 10_000
        for i in range(len(layout.nodes)):
            if i != BYZANTINE:
                honest_record = _validator_record(observer, _operator(layout, i))
                assert honest_record is not None and honest_record.tokens == VALIDATOR_STAKE
                assert honest_record.tombstoned == 0
        top = final_checks(layout, report.committed)
        evidence = _evidence_heights(observer, top)
        assert evidence, "no block holds the double-sign evidence"
        first = min(evidence)
        assert first <= tombstoned_at
