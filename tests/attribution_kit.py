"""Helpers shared by the attribution tests: a chain on real LevelDB, signed txs, texts to fingerprint."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import commit_txs

from state.accounts import get_account, supply_check
from state.attribution.contributions import fingerprint_params
from state.crypto import PrivateKey, sha256
from state.attribution.fingerprint import Fingerprint, fingerprint_output, fingerprint_text
from state.transition import BlockContext, TxResult, apply_tx, load_params
from state.tx import Contribute, Tx, sign_tx

FEE = 1
KEYS = [PrivateKey.from_int(100 + i) for i in range(12)]

_VOCAB = [
    "river", "stone", "cloud", "amber", "falcon", "meadow", "signal", "harbor", "quartz", "willow",
    "ember", "lantern", "orbit", "cedar", "prism", "tundra", "violet", "marble", "canyon", "pepper",
    "saffron", "glacier", "thistle", "copper", "juniper", "mosaic", "nebula", "oasis", "raven", "sable",
]


def make_text(seed: int, words: int = 60) -> bytes:
    """A deterministic text whose 5-grams are (almost surely) unique to ``seed``."""
    rng = random.Random(seed)
    return " ".join(f"{rng.choice(_VOCAB)}{rng.randrange(10_000)}" for _ in range(words)).encode()


@dataclass
class World:
    """A chain plus nonce bookkeeping so tests read as a list of signed actions."""

    chain: Any
    chain_id: str
    _next_nonce: dict[bytes, int] = field(default_factory=dict)

    @property
    def params(self) -> Any:
        return load_params(self.chain.db.view())

    @property
    def a(self) -> Any:
        return self.params.attribution

    def sign(self, key: PrivateKey, body: Any, fee: int = FEE) -> Tx:
        committed = get_account(self.chain.db.view(), key.address).nonce
        nonce = max(committed, self._next_nonce.get(key.address, 0))
        self._next_nonce[key.address] = nonce + 1
        return sign_tx(key, self.chain_id, nonce, body, fee)

    def block(self, *txs: Tx) -> list[TxResult]:
        _, results = commit_txs(self.chain, list(txs))
        self._next_nonce.clear()
        return list(results)

    def ok(self, key: PrivateKey, body: Any) -> Tx:
        tx = self.sign(key, body)
        (result,) = self.block(tx)
        assert result.ok, result
        return tx

    def ctx(self) -> BlockContext:
        return BlockContext(self.chain_id, self.chain.height + 1, 10_000, self.params)

    def try_alone(self, key: PrivateKey, body: Any) -> tuple[TxResult, dict[bytes, Any], dict[bytes, Any]]:
        """Apply one tx on a fresh view without committing: (result, state writes, local writes)."""
        view = self.chain.db.view()
        nonce = get_account(view, key.address).nonce
        result = apply_tx(view, sign_tx(key, self.chain_id, nonce, body, FEE), self.ctx())
        return result, dict(view.block_writes), dict(view.local_writes)

    def view(self) -> Any:
        return self.chain.db.view()

    def balance(self, address: bytes) -> int:
        return get_account(self.view(), address).balance

    def conserved(self) -> bool:
        total, burned, supply = supply_check(self.view())
        return total + burned == supply

    def fingerprint(self, content: bytes) -> Fingerprint:
        return fingerprint_text(content, fingerprint_params(self.a))

    def output_fingerprint(self, text: bytes) -> tuple[int, ...]:
        return fingerprint_output(text, fingerprint_params(self.a))

    def contribute_body(self, datanet: bytes, content: bytes, bond: int = 0) -> Contribute:
        fp = self.fingerprint(content)
        return Contribute(datanet, fp.content_hash, fp.size, fp.fingerprint, fp.minhash, bond)


def rejected(world: World, key: PrivateKey, body: Any, reason: str) -> TxResult:
    """Assert ``body`` is rejected with ``reason`` and that applying it wrote nothing at all."""
    result, writes, local = world.try_alone(key, body)
    assert not result.ok and result.reason == reason, result
    assert writes == {} and local == {}
    return result


def crafted(world: World, datanet: bytes, seed: int, fingerprint: tuple[int, ...], size: int = 100,
            bond: int = 0) -> Contribute:
    """A contribution with a hand-chosen fingerprint (no text behind it) and a valid MinHash that
    shares no value with any other seed's, so it is never a near duplicate."""
    n = world.a.minhash_size
    minhash = tuple(n * (seed + 1) + i for i in range(n))  # value % n == i: each sits in its own bin
    return Contribute(datanet, sha256(b"crafted %d" % seed), size, tuple(sorted(fingerprint)), minhash, bond)


@pytest.fixture(name="world")
def world_fixture(new_chain, chain_id):  # type: ignore[no-untyped-def]
    """A fresh chain where every key in KEYS holds 10**9."""
    return World(new_chain({k.address: 10**9 for k in KEYS}), chain_id)
