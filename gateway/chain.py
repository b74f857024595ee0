"""The gateway's chain side: sign one `infer` per completion at once (no waiting on the chain),
journal it, and submit the journal in nonce order, in JSON-RPC batches, in the background.

A lane is one payer key with its own nonce sequence; completions take the lanes in turn, so several
keys (`--key` repeated) multiply what the mempool's per-sender cap lets through per block.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

import sdk
from gateway.journal import Entry, Journal
from state.crypto import PrivateKey, to_hex
from state.tx import sign_tx

log = logging.getLogger(__name__)

FACTS_FILE = "chain.json"
# Mempool refusals that mean "already there or already committed": the bytes are on their way.
ALREADY = {"duplicate", "stale_nonce"}
# Refusals to retry later unchanged (the queue or the account will change).
RETRY = {"sender_queue_full", "mempool_full", "future_nonce", "insufficient_balance", "max_txs", "max_bytes"}


@dataclass
class Facts:
    """What signing needs from the chain; cached on disk so a restart during an outage can sign."""

    chain_id: str
    min_fee: int
    fp_params: dict[str, int]

    def fingerprint_params(self) -> Any:
        from state.attribution.fingerprint import FingerprintParams

        return FingerprintParams(**self.fp_params)


@dataclass
class Lane:
    key: PrivateKey
    address: str
    next_nonce: int  # the next nonce to sign
    committed: int = 0  # the chain's nonce: every lower nonce is final
    sent_upto: int = 0  # nonces below were accepted by the node's mempool (as far as we know)
    last_progress: float = field(default_factory=time.monotonic)


@dataclass
class Pricing:
    model: bytes
    adapter: bytes = b""
    agent: bytes = b""
    price_per_1k: int = 1000  # payment per 1,000 tokens (input + output), rounded up, at least 1

    def payment(self, input_tokens: int, output_tokens: int) -> int:
        return max(1, math.ceil((input_tokens + output_tokens) * self.price_per_1k / 1000))


class ChainSide:
    def __init__(self, client: sdk.Client, journal: Journal, keys: list[PrivateKey], pricing: Pricing,
                 batch: int = 100, in_flight: int = 64, resend_s: float = 10.0) -> None:
        self.client = client
        self.journal = journal
        self.keys = keys
        self.pricing = pricing
        self.batch = batch
        self.in_flight = in_flight
        self.resend_s = resend_s
        self.facts: Facts | None = None
        self.lanes: list[Lane] = []
        self._turn = 0
        self._wake = trio.Event()
        self.recorded = 0
        self.submitted = 0
        self.chain_up = False

    # ---- start -------------------------------------------------------------------------------

    def _facts_path(self) -> Path:
        return self.journal.dir / FACTS_FILE

    def fetch_facts(self) -> Facts:
        p = self.client.fingerprint_params()
        names = [n for n, _ in type(p).WIRE_FIELDS]
        facts = Facts(self.client.chain_id, self.client.min_fee(), {n: getattr(p, n) for n in names})
        tmp = self._facts_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(facts.__dict__))
        tmp.replace(self._facts_path())
        return facts

    async def start(self, wait_s: float = 60.0) -> None:
        """Learn chain id, fee and fingerprint params, and each lane's next nonce; during an outage
        fall back on the cached facts and the journal when they exist, else retry up to ``wait_s``."""
        deadline = time.monotonic() + wait_s
        chain_nonces: dict[str, int] = {}
        while True:
            try:
                self.facts = await trio.to_thread.run_sync(self.fetch_facts)
                for key in self.keys:
                    acct = await trio.to_thread.run_sync(self.client.account, key.address)
                    chain_nonces[to_hex(key.address)] = int(acct["nonce"])
                self.chain_up = True
                break
            except sdk.Unreachable as exc:
                cached = self._facts_path()
                if cached.exists():
                    self.facts = Facts(**json.loads(cached.read_text()))
                    log.warning("chain unreachable (%s); signing with cached chain facts, submitting later", exc)
                    break
                if time.monotonic() > deadline:
                    raise
                log.warning("chain unreachable (%s); retrying", exc)
                await trio.sleep(1.0)
        for key in self.keys:
            addr = to_hex(key.address)
            committed = chain_nonces.get(addr, self.journal.committed.get(addr, 0))
            if addr in chain_nonces:
                self.journal.mark_committed(addr, committed)
            journaled = self.journal.next_nonce(addr)
            nxt = max(committed, journaled or 0)
            self.lanes.append(Lane(key, addr, nxt, committed=committed, sent_upto=committed))
        log.info("gateway lanes: %s", ", ".join(f"{l.address} next nonce {l.next_nonce}" for l in self.lanes))

    # ---- recording (called by the HTTP handlers; never waits) ----------------------------------

    def record(self, output: bytes, input_tokens: int, output_tokens: int) -> str:
        """Sign and journal the infer of one completion; returns its id (the tx hash). Raises
        JournalFull or OSError (then nothing was recorded)."""
        assert self.facts is not None
        lane = self.lanes[self._turn % len(self.lanes)]
        self._turn += 1
        p = self.pricing
        body = sdk.make_body("infer", self.facts.fingerprint_params, model=p.model, adapter=p.adapter,
                             agent=p.agent, payment=p.payment(input_tokens, output_tokens),
                             input_tokens=min(input_tokens, 2**32 - 1), output_tokens=min(output_tokens, 2**32 - 1),
                             output=output)
        tx = sign_tx(lane.key, self.facts.chain_id, lane.next_nonce, body, self.facts.min_fee)
        self.journal.append(Entry(lane.address, lane.next_nonce, to_hex(tx.hash), tx.raw))
        lane.next_nonce += 1
        self.recorded += 1
        self._wake.set()
        return to_hex(tx.hash)

    # ---- submitting (background) ---------------------------------------------------------------

    async def run(self, tick: float = 0.02, confirm_every: float = 0.25) -> None:
        backoff = 0.5
        last_confirm = 0.0
        while True:
            with trio.move_on_after(tick if self.journal.size else 1.0):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                now = time.monotonic()
                if now - last_confirm >= confirm_every or not self.chain_up:
                    await self._confirm()
                    last_confirm = now
                await self._send()
                if not self.chain_up:
                    log.info("chain reachable again; %d completion(s) queued", self.journal.size)
                self.chain_up = True
                backoff = 0.5
            except (sdk.Unreachable, sdk.SDKError) as exc:
                if self.chain_up:
                    log.warning("chain unreachable (%s); completions queue in %s", exc, self.journal.path)
                self.chain_up = False
                for lane in self.lanes:
                    lane.sent_upto = lane.committed
                await trio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    # The journal is touched only on the trio thread; worker threads only talk to the node.

    async def _resign(self, lane: Lane, e: Entry) -> None:
        """Governance raised the minimum fee: sign the same body at the same nonce with the new fee."""
        from state.tx import decode_tx

        assert self.facts is not None
        self.facts = await trio.to_thread.run_sync(self.fetch_facts)
        old = decode_tx(e.raw)
        if old.unsigned.fee >= self.facts.min_fee:
            return
        tx = sign_tx(lane.key, self.facts.chain_id, e.nonce, old.body, self.facts.min_fee)
        self.journal.replace(Entry(lane.address, e.nonce, to_hex(tx.hash), tx.raw))
        log.warning("inference %s re-signed as %s: the minimum fee rose to %d (same nonce: only one can commit)",
                    e.hash, to_hex(tx.hash), self.facts.min_fee)

    async def _confirm(self) -> None:
        calls = [("account", {"address": lane.address}) for lane in self.lanes]
        answers = await trio.to_thread.run_sync(self.client.batch, calls)
        now = time.monotonic()
        for lane, acct in zip(self.lanes, answers):
            if isinstance(acct, Exception):
                raise acct
            nonce = int(acct["nonce"])
            if nonce > lane.committed:
                self.journal.mark_committed(lane.address, nonce)
                lane.committed = nonce
                lane.last_progress = now
                lane.sent_upto = max(lane.sent_upto, nonce)
            elif lane.sent_upto > lane.committed and now - lane.last_progress > self.resend_s:
                log.warning("lane %s: nothing committed for %.0f s; re-broadcasting from nonce %d",
                            lane.address, self.resend_s, lane.committed)
                lane.sent_upto = lane.committed
                lane.last_progress = now

    async def _send(self) -> None:
        for lane in self.lanes:
            room = self.in_flight - (lane.sent_upto - lane.committed)
            if room <= 0:
                continue
            entries = self.journal.queued(lane.address, lane.sent_upto, min(self.batch, room))
            if not entries:
                continue
            calls = [("broadcast_tx_sync", {"tx": e.raw}) for e in entries]
            answers = await trio.to_thread.run_sync(self.client.batch, calls)
            for e, ans in zip(entries, answers):
                if isinstance(ans, sdk.RPCError):
                    reason = ans.data.get("reason") if isinstance(ans.data, dict) else None
                    if reason in ALREADY:
                        lane.sent_upto = max(lane.sent_upto, e.nonce + 1)
                        continue
                    if reason == "fee_too_low":
                        await self._resign(lane, e)
                    if reason not in RETRY:
                        log.warning("lane %s nonce %d refused (%s); will retry", lane.address, e.nonce, ans)
                    break
                if isinstance(ans, Exception):
                    raise ans
                lane.sent_upto = max(lane.sent_upto, e.nonce + 1)
                self.submitted += 1
