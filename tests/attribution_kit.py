"""Helpers shared by the attribution tests: a chain on real LevelDB, signed txs, texts to fingerprint."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import commit_txs

from state import queries
from state.accounts import get_account, supply_check
from state.attribution.contributions import fingerprint_params
from state.crypto import PrivateKey, sha256
from state.attribution.fingerprint import Fingerprint, fingerprint_output, fingerprint_text
from state.transition import BlockContext, TxResult, apply_tx, load_params
from state.attribution.commitments import contribution_commitment
from state.tx import CommitContribution, Contribute, Tx, sign_tx

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
    auto_commit: bool = True  # ok() and try_alone() commit a Contribute's commitment first
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

    def commit_for(self, key: PrivateKey, body: Contribute) -> Tx:
        """Commit (in its own block) to the contribution ``key`` will reveal with ``body``."""
        commitment = contribution_commitment(key.address, body.datanet, sha256(body.content), body.salt)
        tx = self.sign(key, CommitContribution(commitment))
        (result,) = self.block(tx)
        assert result.ok, result
        return tx

    def ok(self, key: PrivateKey, body: Any) -> Tx:
        if type(body) is Contribute and self.auto_commit:
            self.commit_for(key, body)
        tx = self.sign(key, body)
        (result,) = self.block(tx)
        assert result.ok, result
        return tx

    def ctx(self) -> BlockContext:
        return BlockContext(self.chain_id, self.chain.height + 1, 10_000, self.params)

    def try_alone(self, key: PrivateKey, body: Any) -> tuple[TxResult, dict[bytes, Any], dict[bytes, Any]]:
        """Apply one tx on a fresh view without committing: (result, state writes, local writes)."""
        if type(body) is Contribute and self.auto_commit:
            self.commit_for(key, body)
        view = self.chain.db.view()
        nonce = get_account(view, key.address).nonce
        result = apply_tx(view, sign_tx(key, self.chain_id, nonce, body, FEE), self.ctx())
        return result, dict(view.block_writes), dict(view.local_writes)

    def view(self) -> Any:
        return self.chain.db.view()

    def vest(self, contribution_id: bytes) -> None:
        """Commit empty blocks until the accepted contribution's challenge window has closed."""
        vests_at = queries.pending_rewards(self.chain.db, contribution_id)["vests_at"]  # type: ignore[index]
        while self.chain.height + 1 < vests_at:
            self.block()

    def balance(self, address: bytes) -> int:
        return get_account(self.view(), address).balance

    def conserved(self) -> bool:
        total, burned, supply = supply_check(self.view())
        return total + burned == supply

    def fingerprint(self, content: bytes) -> Fingerprint:
        return fingerprint_text(content, fingerprint_params(self.a))

    def output_fingerprint(self, text: bytes) -> tuple[int, ...]:
        return fingerprint_output(text, fingerprint_params(self.a))

    def contribute_body(self, datanet: bytes, content: bytes, bond: int = 0, salt: bytes = b"") -> Contribute:
        return Contribute(datanet, content, salt or sha256(b"salt:" + content), bond)

    def sym(self, *symbols: int) -> tuple[int, ...]:
        """The fingerprint hashes standing for ``symbols`` (see ``crafted``), sorted."""
        return tuple(sorted({symbol_hash(self, s) for s in symbols}))


def rejected(world: World, key: PrivateKey, body: Any, reason: str) -> TxResult:
    """Assert ``body`` is rejected with ``reason`` and that applying it wrote nothing at all."""
    result, writes, local = world.try_alone(key, body)
    assert not result.ok and result.reason == reason, result
    assert writes == {} and local == {}
    return result


PHRASE_WORDS = 8  # shingle_k + winnow_window - 1: the phrase's shingles are exactly one window


def _tag(symbol: int) -> str:
    letters = ""
    n = symbol
    while True:
        letters = "abcdefghijklmnopqrstuvwxyz"[n % 26] + letters
        n //= 26
        if n == 0:
            return letters


def symbol_phrase(symbol: int) -> list[str]:
    """Eight words unique to ``symbol``: its shingles form one winnowing window, so the smallest of
    their hashes is in the fingerprint of every text that contains the phrase."""
    return [f"{_tag(symbol)}{j}" for j in range(PHRASE_WORDS)]


def symbol_hash(world: World, symbol: int) -> int:
    from state.attribution.fingerprint import shingle_hashes, words_of

    p = fingerprint_params(world.a)
    return min(shingle_hashes(words_of(" ".join(symbol_phrase(symbol))), p))


def crafted(world: World, datanet: bytes, seed: int, symbols: tuple[int, ...], size: int = 100,
            bond: int = 0) -> Contribute:
    """A real text holding the phrase of each symbol (``world.sym`` gives their hashes), then filler
    words unique to (seed, size), padded with spaces to ``size`` bytes (or the few bytes more the
    phrases and filler need). Texts sharing symbols stay far from near duplicates."""
    words = [w for s in symbols for w in symbol_phrase(s)]
    filler = [sha256(b"%d/%d/%d" % (seed, size, n)).hex()[:5] for n in range(4 * max(1, len(symbols)))]
    text = " ".join(words + filler)
    n = len(filler)
    while len(text) + 6 <= size:  # more filler while it fits
        text += " " + sha256(b"%d/%d/%d" % (seed, size, n)).hex()[:5]
        n += 1
    content = text.encode().ljust(size, b" ")
    return Contribute(datanet, content, sha256(b"salt:" + content), bond)


@pytest.fixture(name="world")
def world_fixture(new_chain, chain_id):  # type: ignore[no-untyped-def]
    """A fresh chain where every key in KEYS holds 10**9."""
    return World(new_chain({k.address: 10**9 for k in KEYS}), chain_id)
