"""Validator networks of real node processes on 127.0.0.1 (issue 5, acceptance points 2 to 5):
agreement with transactions submitted to different nodes, each transaction committed exactly once,
gossip to non-proposers, block sync of a node that joins late, and recovery from kill -9."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from netkit import assert_same_chain, height_of, kill9, node_log, running_devnet, wait_heights, wait_until

from devnet import launcher
from devnet.launcher import Layout, NodeSpec
from state.crypto import PrivateKey, from_hex, sha256, to_hex
from state.tx import Tx, Transfer, sign_tx

pytestmark = pytest.mark.multinode

# Short rounds so a few hundred heights take well under a minute; a missing proposer costs
# propose_ms (then the next round's proposer commits).
FAST = {"timeouts": {"commit_ms": 50, "propose_ms": 800, "propose_delta_ms": 200,
                     "prevote_ms": 200, "prevote_delta_ms": 100,
                     "precommit_ms": 200, "precommit_delta_ms": 100}}
SENDER_FUNDS = 10**12
RPC_BATCH = 100  # the server's default max_batch


# ---- helpers ------------------------------------------------------------------------------
@contextmanager
def logs_on_failure(layout: Layout) -> Iterator[None]:
    """On any failure, print the tail of every node's log (pytest shows it with the failure)."""
    try:
        yield
    except BaseException:
        for spec in layout.nodes:
            try:
                lines = node_log(layout, spec).splitlines()
            except OSError:
                continue
            # the routine commit lines hide the events that explain a stall: those, and the last commit
            events = [line for line in lines if "committed height=" not in line][-40:]
            last_commit = [line for line in lines if "committed height=" in line][-1:]
            print(f"---- {spec.name}/node.log: last events, then last commit ----", *events, *last_commit, sep="\n")
            try:
                st = launcher.rpc_call(spec.rpc, "status", timeout=2.0)
                peers = launcher.rpc_call(spec.rpc, "net_info", timeout=2.0)
                print(f"---- {spec.name} now: consensus {st.get('consensus')}, peers "
                      f"{[(p.get('id', '')[-6:], p.get('score')) for p in peers.get('peers', [])]}, banned {peers.get('banned')}")
            except Exception as exc:  # noqa: BLE001 - a dead node is itself the information
                print(f"---- {spec.name} does not answer: {exc}")
        raise


class Client:
    """Keep-alive JSON-RPC client for one node, with batched calls."""

    def __init__(self, spec: NodeSpec) -> None:
        self.spec = spec
        self.http = httpx.Client(timeout=10.0)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, params: Any = None) -> Any:
        doc = self.http.post(self.spec.rpc, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                                  "params": params or {}}).json()
        if "error" in doc:
            raise RPCError(method, doc["error"])
        return doc["result"]

    def batch(self, method: str, params: list[dict[str, Any]]) -> list[Any]:
        """Results (or error objects) of one method called with each params, in order."""
        out: list[Any] = []
        for i in range(0, len(params), RPC_BATCH):
            chunk = params[i:i + RPC_BATCH]
            body = [{"jsonrpc": "2.0", "id": i + j, "method": method, "params": p} for j, p in enumerate(chunk)]
            docs = {d["id"]: d for d in self.http.post(self.spec.rpc, json=body).json()}
            out.extend(docs[i + j].get("result", docs[i + j].get("error")) for j in range(len(chunk)))
        return out


class RPCError(AssertionError):
    def __init__(self, method: str, error: Any) -> None:
        super().__init__(f"{method}: {error}")
        self.error = error


@contextmanager
def clients(specs: list[NodeSpec]) -> Iterator[list[Client]]:
    made = [Client(s) for s in specs]
    try:
        yield made
    finally:
        for c in made:
            c.close()


def add_full_node(layout: Layout, index: int) -> NodeSpec:
    """A node home with the devnet's genesis and every validator as a peer, but no validator key;
    appended to the layout (running_devnet stops every node of the layout at the end)."""
    assert index == len(layout.nodes), (index, len(layout.nodes))
    return launcher.add_full_node(layout, f"full{index}")


def fund(client: Client, faucet: PrivateKey, chain_id: str, first_nonce: int,
         accounts: list[PrivateKey]) -> int:
    """Transfer SENDER_FUNDS to each account through one node; returns the faucet's next nonce."""
    nonce = first_nonce
    for acct in accounts:
        client.call("broadcast_tx_sync", {"tx": to_hex(sign_tx(faucet, chain_id, nonce, Transfer(acct.address, SENDER_FUNDS), fee=1).raw)})
        nonce += 1
    return nonce


def wait_funded(client: Client, accounts: list[PrivateKey], timeout: float = 60.0) -> None:
    wait_until(lambda: all(client.call("account", {"address": to_hex(a.address)})["balance"] >= SENDER_FUNDS
                           for a in accounts), timeout, f"funding to be committed on {client.spec.name}")


def submit(client: Client, key: PrivateKey, chain_id: str, nonce: int, amount: int) -> Tx:
    """broadcast_tx_sync a transfer to a fresh address; fails the test if the node refuses it."""
    to = sha256(key.public_key + nonce.to_bytes(8, "big"))[:20]
    tx = sign_tx(key, chain_id, nonce, Transfer(to, amount), fee=1 + nonce % 7)
    res = client.call("broadcast_tx_sync", {"tx": to_hex(tx.raw)})
    assert from_hex(res["hash"]) == tx.hash, f"{client.spec.name} answered another hash: {res}"
    return tx


def blocks(client: Client, upto: int) -> dict[int, dict[str, Any]]:
    got = client.batch("block", [{"height": h} for h in range(1, upto + 1)])
    return {h: b for h, b in zip(range(1, upto + 1), got)}


def wait_committed_everywhere(cs: list[Client], hashes: list[bytes], timeout: float) -> None:
    def done() -> bool:
        for c in cs:
            found = c.batch("tx", [{"hash": to_hex(h)} for h in hashes])
            if any(not (isinstance(r, dict) and r.get("status") == "committed") for r in found):
                return False
        return True

    wait_until(done, timeout, f"{len(hashes)} accepted transactions to be committed on every node", poll=0.5)


def assert_each_committed_once(cs: list[Client], accepted: list[bytes], upto: int) -> dict[bytes, int]:
    """Every accepted hash occurs in exactly one block slot, and every node's `tx` agrees where.

    Returns tx hash -> height."""
    chain = blocks(cs[0], upto)
    where: dict[bytes, tuple[int, int]] = {}
    seen: Counter[bytes] = Counter()
    for h, b in chain.items():
        for i, raw in enumerate(b["block"]["txs"]):
            tx_hash = sha256(from_hex(raw))
            seen[tx_hash] += 1
            where.setdefault(tx_hash, (h, i))
    wrong = {to_hex(x): seen[x] for x in accepted if seen[x] != 1}
    assert not wrong, f"accepted transactions not committed exactly once in blocks 1..{upto}: {list(wrong.items())[:5]}"
    for c in cs:
        found = c.batch("tx", [{"hash": to_hex(x)} for x in accepted])
        for x, r in zip(accepted, found):
            assert isinstance(r, dict) and r.get("status") == "committed", f"{c.spec.name}: tx {to_hex(x)}: {r}"
            assert (r["height"], r["index"]) == where[x], (
                f"{c.spec.name} indexes {to_hex(x)} at {(r['height'], r['index'])}, the blocks hold it at {where[x]}")
            assert r["result"]["code"] == 0, f"{c.spec.name}: transfer {to_hex(x)} failed: {r['result']}"
    return {x: where[x][0] for x in accepted}


def assert_each_stops_on_sigterm(layout: Layout, specs: list[NodeSpec], within: float = 5.0) -> None:
    """Stop the nodes one after another, as `attrchain devnet down` does: each must exit with
    code 0 within ``within`` seconds of its SIGTERM while its peers are going away around it."""
    problems: list[str] = []
    for spec in specs:
        pid = launcher.read_pid(layout, spec)
        assert pid is not None, f"{spec.name} is not running"
        os.kill(pid, signal.SIGTERM)
        started = time.monotonic()
        code: int | None = None
        while launcher.is_alive(pid) and time.monotonic() - started < within:
            time.sleep(0.02)
        took = time.monotonic() - started
        if launcher.is_alive(pid):
            os.kill(pid, signal.SIGKILL)
            problems.append(f"{spec.name} still running {within:.0f} s after SIGTERM (killed)")
        try:
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped by subprocess' own cleanup of the launcher's Popen
            code = None
        launcher.pid_file(layout, spec).unlink(missing_ok=True)
        if code not in (0, None) and took < within:
            problems.append(f"{spec.name} exited with code {code}")
    assert not problems, "; ".join(problems)


# ---- acceptance point 2 (and 5): four validators, transactions through every node ----------
def test_four_validators_agree_and_commit_each_accepted_tx_exactly_once(tmp_path: Path) -> None:
    with running_devnet(tmp_path, 4, params=FAST) as layout, logs_on_failure(layout), clients(layout.nodes) as cs:
        specs = layout.nodes
        wait_heights(specs, 2, 60)
        chain_id = cs[0].call("status")["chain_id"]
        faucet = PrivateKey.load(layout.dir / "faucet.key")
        senders = [PrivateKey.from_int(7100 + i) for i in range(len(specs))]
        fund(cs[0], faucet, chain_id, 0, senders)
        for c in cs:
            wait_funded(c, senders)

        # each node receives its own sender's transactions, a few per new height, for 50+ heights
        accepted: dict[bytes, int] = {}
        nonces = [0] * len(specs)
        start = height_of(specs[0]) or 0
        target = start + 50
        last = start
        while last < target:
            wait_until(lambda: (height_of(specs[0]) or 0) > last, 30, f"height {last + 1} on node0")
            last = height_of(specs[0]) or 0
            for i, c in enumerate(cs):
                for _ in range(3):
                    tx = submit(c, senders[i], chain_id, nonces[i], 1000 + nonces[i])
                    accepted[tx.hash] = i
                    nonces[i] += 1
        hashes = list(accepted)
        t0 = time.monotonic()
        wait_committed_everywhere(cs, hashes, 60)
        print(f"committed everywhere after {time.monotonic() - t0:.1f} s")
        final = min(height_of(s) or 0 for s in specs)
        assert final >= target, f"the network stopped short of height {target}: {final}"

        t0 = time.monotonic()
        assert_same_chain(specs, final)
        print(f"same chain checked in {time.monotonic() - t0:.1f} s")
        t0 = time.monotonic()
        at_height = assert_each_committed_once(cs, hashes, final)
        print(f"committed once checked in {time.monotonic() - t0:.1f} s")
        assert len({h for h in at_height.values()}) >= 20, "transactions should spread over many blocks"

        # gossip (point 5): every node's transactions also reached blocks proposed by OTHER validators
        chain = blocks(cs[0], final)
        own = [from_hex(c.call("status")["validator_info"]["address"]) for c in cs]
        for i, spec in enumerate(specs):
            elsewhere = [x for x, n in accepted.items() if n == i
                         and from_hex(chain[at_height[x]]["block"]["header"]["proposer"]) != own[i]]
            assert elsewhere, f"no transaction submitted to {spec.name} was committed by another proposer"

        assert_each_stops_on_sigterm(layout, specs)


# ---- acceptance points 3, 4, 5: nodes join late by block sync; a validator is killed and returns ----
def test_late_nodes_block_sync_and_a_killed_validator_catches_up(tmp_path: Path) -> None:
    # Validator 3 stays down for the first 200 heights: 3 of 4 equal validators still have > 2/3,
    # and its proposer turns only cost a short propose timeout. A signing window far longer than
    # the test keeps it from being jailed for that downtime (the devnet window is 100 blocks).
    params = {"timeouts": {**FAST["timeouts"], "commit_ms": 20, "propose_ms": 150, "propose_delta_ms": 100},
              "staking": {"signed_blocks_window": 10_000}}
    with running_devnet(tmp_path, 4, params=params, start=[0, 1, 2]) as layout, logs_on_failure(layout):
        validators = list(layout.nodes)
        late_validator = validators[3]
        full = add_full_node(layout, len(validators))
        everyone = validators + [full]
        with clients(everyone) as cs:
            vcs, fc = cs[:4], cs[4]
            wait_heights(validators[:3], 2, 60)
            chain_id = vcs[0].call("status")["chain_id"]
            faucet = PrivateKey.load(layout.dir / "faucet.key")
            trickle, via_full = PrivateKey.from_int(7200), PrivateKey.from_int(7201)
            fund(vcs[0], faucet, chain_id, 0, [trickle, via_full])
            wait_funded(vcs[0], [trickle, via_full])

            # blocks with transactions up to height 200 (the late nodes will have to execute them)
            accepted: list[bytes] = []
            last = 0
            started = time.monotonic()
            while last < 200:
                wait_until(lambda: (height_of(validators[0]) or 0) > last, 30, f"height {last + 1} on node0")
                last = height_of(validators[0]) or 0
                if len(accepted) < 300:
                    accepted += [submit(vcs[0], trickle, chain_id, n, 1 + n).hash
                                 for n in range(len(accepted), len(accepted) + 2)]
            print(f"200 heights in {time.monotonic() - started:.0f} s")

            # point 3: a full node and the fourth validator join at >= 200 and catch up by block sync
            launcher.start_node(layout, full)
            launcher.start_node(layout, late_validator)
            joined_at = height_of(validators[0]) or 0
            started = time.monotonic()
            wait_heights([full, late_validator], joined_at, 60)
            print(f"late nodes synced {joined_at} heights in {time.monotonic() - started:.0f} s")
            for spec in (full, late_validator):
                assert "block sync" in node_log(layout, spec), f"{spec.name} must catch up by block sync"

            # point 5: transactions sent only to the full node (never a proposer) are committed
            sent = [submit(fc, via_full, chain_id, n, 5 + n).hash for n in range(20)]
            wait_committed_everywhere(vcs, sent, 60)

            # point 4: kill -9 validator 1; validators 0, 2 and the late 3 (so it votes now) keep
            # committing; validator 1 restarts and catches up
            victim = validators[1]
            kill9(layout, victim)
            others = [s for s in everyone if s is not victim]
            down_at = max(height_of(s) or 0 for s in others)
            wait_heights(others, down_at + 10, 60)
            launcher.start_node(layout, victim)
            resume_to = max(height_of(s) or 0 for s in others)
            wait_heights([victim], resume_to, 60)
            wait_heights(everyone, resume_to + 5, 60)  # and the chain goes on with everyone

            final = min(height_of(s) or 0 for s in everyone)
            assert_same_chain(everyone, final)
            assert_each_committed_once(cs, accepted + sent, final)
