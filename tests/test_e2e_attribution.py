"""End to end, real processes, over JSON-RPC only: the attribution story.

Two datanets get contributions (a near duplicate is refused naming the original), a base model,
a fine-tune of it, an adapter and an agent are registered, and inferences whose outputs quote
Alice's text pay for them. Each receipt splits its payment exactly as the genesis basis points
say, Alice's contribution is the one matched, and after everyone claims, what the contributors
received plus the rounding dust left in the reward pool is exactly what the receipts deposited.
Transactions go through every node in turn."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from devnet.launcher import Layout, NodeSpec
from e2e_kit import FAST, final_checks, wait_for, wait_for_heights
from netkit import height_of, running_devnet
from state.accounts import FEE_COLLECTOR, REWARD_POOL
from state.attribution.commitments import contribution_commitment
from state.attribution.contributions import fingerprint_params
from state.crypto import PrivateKey, sha256, to_hex
from state.attribution.fingerprint import fingerprint_output
from state.genesis import load_genesis
from state.tx import (
    ClaimRewards,
    CommitContribution,
    Contribute,
    CreateDatanet,
    Infer,
    RegisterAdapter,
    RegisterAgent,
    RegisterModel,
    Review,
    Transfer,
    sign_tx,
)

pytestmark = pytest.mark.multinode

FEE = 1
FUND = 10**9
BOND = 1_000
BPS = 10_000
WORDS = ["river", "stone", "cloud", "amber", "falcon", "meadow", "signal", "harbor", "quartz", "willow",
         "ember", "lantern", "orbit", "cedar", "prism", "tundra", "violet", "marble", "canyon", "pepper"]


def text(seed: int, words: int = 80) -> list[str]:
    """Words whose 4-word shingles are, with near certainty, unique to ``seed``."""
    rng = random.Random(seed)
    return [f"{rng.choice(WORDS)}{rng.randrange(100_000)}" for _ in range(words)]


class Client:
    """Signs with per-key nonces and submits through the devnet's nodes in turn."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.nodes = itertools.cycle(layout.nodes)
        self.nonces: dict[bytes, int] = {}
        self.committed: dict[bytes, int] = {}
        self.http = httpx.Client(timeout=40.0)

    def call(self, method: str, params: dict[str, Any], spec: NodeSpec | None = None) -> dict[str, Any]:
        spec = spec or self.layout.nodes[0]
        doc = self.http.post(spec.rpc, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()
        assert "result" in doc or "error" in doc, doc
        return doc  # type: ignore[no-any-return]

    def caught_up(self, spec: NodeSpec) -> NodeSpec:
        """Wait until ``spec`` has committed every block we saw commit one of ours (through any
        node): reads and dependent transactions must see the effects of earlier ones."""
        seen = max(self.committed.values(), default=0)
        wait_for(self.layout, lambda: (height_of(spec) or 0) >= seen, 10, f"{spec.name} to reach height {seen}")
        return spec

    def query(self, method: str, **params: Any) -> Any:
        doc = self.call(method, params, self.caught_up(self.layout.nodes[0]))
        assert "result" in doc, f"{method} {params}: {doc.get('error')}"
        return doc["result"]

    def submit(self, key: PrivateKey, body: Any) -> dict[str, Any]:
        """broadcast_tx_commit through the next node; the raw answer (result or error)."""
        nonce = self.nonces.get(key.address, 0)
        tx = sign_tx(key, self.layout.chain_id, nonce, body, FEE)
        doc = self.call("broadcast_tx_commit", {"tx": to_hex(tx.raw)}, self.caught_up(next(self.nodes)))
        if "result" in doc:
            self.nonces[key.address] = nonce + 1
        return doc

    def ok(self, key: PrivateKey, body: Any) -> bytes:
        """Submit, require it committed and applied; returns the tx hash (the id of what it made)."""
        doc = self.submit(key, body)
        r = doc.get("result")
        assert r and r["committed"] and r["result"]["code"] == 0, f"{type(body).__name__}: {doc}"
        tx_hash = bytes.fromhex(r["hash"][2:])
        self.committed[tx_hash] = r["height"]
        return tx_hash

    def balance(self, address: bytes) -> int:
        return int(self.query("account", address=to_hex(address))["balance"])


def test_attribution_story_over_rpc(tmp_path: Path) -> None:
    with running_devnet(tmp_path, 4, params=FAST) as layout:
        wait_for_heights(layout, layout.nodes, 2, 60)
        params = load_genesis(layout.dir / "genesis.json").params
        a = params.attribution
        fp = fingerprint_params(a)
        c = Client(layout)
        faucet = PrivateKey.load(layout.dir / "faucet.key")
        owner, alice, bob, carol, dev, tuner, lora, bot, bot_owner, user = (
            PrivateKey.from_int(7_000 + i) for i in range(10))
        people = [owner, alice, bob, carol, dev, tuner, lora, bot, bot_owner, user]
        c.nonces[faucet.address] = int(c.query("account", address=to_hex(faucet.address))["next_nonce"])
        for k in people:
            c.ok(faucet, Transfer(k.address, FUND))

        # ---- datanets and contributions -------------------------------------------------------
        corpus = c.ok(owner, CreateDatanet("corpus", "ipfs://corpus", BOND))
        dialogues = c.ok(owner, CreateDatanet("dialogues", "ipfs://dialogues", BOND))

        def contribute(key: PrivateKey, datanet: bytes, words: list[str]) -> Contribute:
            """Commit (waiting for its block), then return the reveal."""
            content = " ".join(words).encode()
            salt = sha256(b"salt" + content)
            c.ok(key, CommitContribution(contribution_commitment(key.address, datanet, sha256(content), salt)))
            return Contribute(datanet, content, salt, BOND)

        alice_words, bob_words, carol_words = text(1), text(2), text(3)
        c_alice = c.ok(alice, contribute(alice, corpus, alice_words))
        c_bob = c.ok(bob, contribute(bob, corpus, bob_words))
        c_carol = c.ok(carol, contribute(carol, dialogues, carol_words))
        # Bob resubmits Alice's text with one word changed: refused, naming Alice's contribution
        near = list(alice_words)
        near[40] = "changed"
        refused = c.submit(bob, contribute(bob, corpus, near))
        assert "error" in refused, refused
        err = refused["error"]
        assert err["code"] == -32003 and err["data"]["reason"] == "near_duplicate", err
        assert to_hex(c_alice) in err["data"]["message"]
        for cid in (c_alice, c_bob, c_carol):
            c.ok(owner, Review(cid, 1))
            assert c.query("contribution", id=to_hex(cid))["status"] == "accepted"
        # the bond stays escrowed until the challenge window closes (claimed back below)
        assert c.balance(alice.address) == FUND - 2 * FEE - BOND

        # ---- models, adapter, agent -----------------------------------------------------------
        base = c.ok(dev, RegisterModel("base", ((corpus, BPS),), b"", 0))
        lineage_bps = 3_000
        tuned = c.ok(tuner, RegisterModel("tuned", ((dialogues, BPS),), base, lineage_bps))
        model = c.query("model", id=to_hex(tuned))
        assert (model["parent"], model["depth"], model["lineage_bps"]) == (to_hex(base), 1, lineage_bps)
        adapter = c.ok(lora, RegisterAdapter("lora", tuned, ((corpus, BPS),)))
        c.ok(bot, RegisterAgent("helper", tuned, adapter, bot_owner.address, a.min_agent_stake))
        agent = c.query("agent", address=to_hex(bot.address))
        assert (agent["model"], agent["adapter"], agent["owner"]) == (to_hex(tuned), to_hex(adapter),
                                                                       to_hex(bot_owner.address))

        # ---- inferences quoting Alice ---------------------------------------------------------
        quote = ("As the corpus puts it: " + " ".join(alice_words[10:60]) + ". Hope that helps.").encode()
        out_fp = fingerprint_output(quote, fp)
        assert out_fp
        payments = {}
        before = {k.address: c.balance(k.address) for k in people}
        inf_agent = c.ok(bot, Infer(tuned, adapter, bot.address, 100_003, 12, 80, sha256(quote), out_fp))
        payments[inf_agent] = (100_003, bot, True)
        inf_user = c.ok(user, Infer(base, b"", b"", 50_001, 9, 80, sha256(quote), out_fp))
        payments[inf_user] = (50_001, user, False)
        deposited = 0  # into the reward pool: matched contributions and datanet pools
        owner_paid: dict[str, int] = {}
        for inf, (payment, payer, full) in payments.items():
            assert c.balance(payer.address) == before[payer.address] - payment - FEE
            receipt = c.query("attribution", inference=to_hex(inf))["receipts"][0]
            entries = receipt["entries"]
            assert receipt["payment"] == payment and sum(e["amount"] for e in entries) == payment
            by_role: dict[str, int] = {}
            for e in entries:
                by_role[e["role"]] = by_role.get(e["role"], 0) + e["amount"]
            validators = payment * a.validators_bps // BPS
            model_share = payment * a.model_bps // BPS
            adapter_share = payment * a.adapter_bps // BPS if full else 0
            agent_share = payment * a.agent_bps // BPS if full else 0
            data = payment - validators - model_share - adapter_share - agent_share
            assert by_role["validators"] == validators
            assert by_role["model_owner"] == model_share
            assert by_role.get("adapter_owner", 0) == adapter_share
            assert by_role.get("agent_owner", 0) == agent_share
            matched_part = data * a.matched_bps // BPS
            assert by_role["matched_contribution"] == matched_part
            assert by_role.get("datanet_pool", 0) + by_role.get("datanet_owner", 0) == data - matched_part
            # only Alice's words were quoted: her contribution takes the whole matched part
            assert [(m["contribution"], m["owner"], m["amount"]) for m in receipt["matched"]] == [
                (to_hex(c_alice), to_hex(alice.address), matched_part)]
            assert [e["recipient"] for e in entries if e["role"] == "validators"] == [to_hex(FEE_COLLECTOR)]
            deposited += by_role["matched_contribution"] + by_role.get("datanet_pool", 0)
            for e in entries:
                if e["role"] in ("model_owner", "adapter_owner", "agent_owner"):
                    owner_paid[e["recipient"]] = owner_paid.get(e["recipient"], 0) + e["amount"]
        # the fine-tune's owner is paid by the agent's inference, the base model's by the user's
        assert owner_paid == {
            to_hex(tuner.address): 100_003 * a.model_bps // BPS,
            to_hex(lora.address): 100_003 * a.adapter_bps // BPS,
            to_hex(bot_owner.address): 100_003 * a.agent_bps // BPS,
            to_hex(dev.address): 50_001 * a.model_bps // BPS,
        }
        for k in (tuner, lora, bot_owner, dev):
            assert c.balance(k.address) == before[k.address] + owner_paid[to_hex(k.address)]
        paid_alice = c.query("attribution", recipient=to_hex(alice.address))
        assert {r["inference"] for r in paid_alice["receipts"]} == {to_hex(inf_agent), to_hex(inf_user)}

        # ---- claims -----------------------------------------------------------------------------
        pool_before = c.balance(REWARD_POOL)
        claimed = 0
        for key, cid in ((alice, c_alice), (bob, c_bob), (carol, c_carol)):
            owed = c.query("rewards", contribution=to_hex(cid))["unclaimed"]
            assert owed > 0, f"{to_hex(cid)} earned nothing"
            start = c.balance(key.address)
            c.ok(key, ClaimRewards((cid,)))  # vested: the devnet's window is 2 blocks
            assert c.balance(key.address) == start + owed + BOND - FEE
            assert c.query("rewards", contribution=to_hex(cid))["unclaimed"] == 0
            claimed += owed
        dust = c.balance(REWARD_POOL)
        assert pool_before - dust == claimed
        # all that was deposited was claimed, except rounding dust: under one token per
        # contribution (its reward_frac) and per datanet (its carry)
        assert deposited == claimed + dust and 0 <= dust < 3 + 2
        final_checks(layout, c.committed)
