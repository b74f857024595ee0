"""Shared test fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

settings.register_profile(
    "attrchain", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture], derandomize=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "attrchain"))


@pytest.fixture
def chain_id() -> str:
    return "attrchain-test"


# ---- chain fixtures shared by state tests -------------------------------------------------
from state.crypto import PrivateKey  # noqa: E402

VALIDATOR_KEY = PrivateKey.from_int(9000)


def make_genesis(chain_id: str, balances: dict[bytes, int], preset: str = "devnet", overrides=None):  # type: ignore[no-untyped-def]
    from state.genesis import parse_genesis
    from state.crypto import to_hex

    return parse_genesis(
        {
            "chain_id": chain_id,
            "genesis_time_ms": 1_000,
            "params_preset": preset,
            "params": overrides or {},
            "accounts": [{"address": to_hex(a), "balance": b} for a, b in balances.items()],
            "validators": [
                {
                    "operator": to_hex(VALIDATOR_KEY.address),
                    "consensus_public_key": to_hex(VALIDATOR_KEY.public_key),
                    "stake": 1_000_000,
                    "moniker": "v0",
                }
            ],
        }
    )


@pytest.fixture
def new_chain(tmp_path, chain_id):  # type: ignore[no-untyped-def]
    """Factory: a Chain on a fresh LevelDB with the given balances at genesis."""
    from state.chain import Chain
    from state.store import StateDB

    opened = []

    def factory(balances: dict[bytes, int], **kw):  # type: ignore[no-untyped-def]
        db = StateDB(tmp_path / f"db{len(opened)}")
        opened.append(db)
        chain = Chain(db)
        chain.init_genesis(make_genesis(chain_id, balances, **kw))
        return chain

    yield factory
    for db in opened:
        db.close()


def commit_txs(chain, txs, time_ms=None):  # type: ignore[no-untyped-def]
    """Build, execute and commit the next block holding ``txs``; returns (block, results)."""
    t = time_ms if time_ms is not None else 2_000 + chain.height * 1000
    ex = chain.build_block(tuple(tx.raw if hasattr(tx, "raw") else tx for tx in txs), t, VALIDATOR_KEY.address)
    chain.commit(ex.block, ex)
    return ex.block, ex.result.tx_results


def assert_conserved(chain) -> None:  # type: ignore[no-untyped-def]
    from state.accounts import supply_check

    total, burned, supply = supply_check(chain.db.view())
    assert total + burned == supply, f"balances {total} + burned {burned} != supply {supply}"
