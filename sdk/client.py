"""The attrchain Python SDK client: JSON-RPC calls, transactions, commits and verified state.

    from sdk import Client, load_key
    with Client("http://127.0.0.1:26657") as c:
        key = load_key("alice.json")
        res = c.submit(key, "transfer", to="0x..", amount=5)        # signed, sent, committed
        acct = c.verified_account(key.address)                        # proven against the header

Every JSON-RPC method is a typed method (sdk/methods.py, generated from node/rpc/methods.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from sdk.methods import RPCMethods
from sdk.txbuild import make_body
from state.crypto import KeyFileError, PrivateKey, from_hex, to_hex
from state.tx import Tx, sign_tx

DEFAULT_RPC = os.environ.get("ATTRCHAIN_RPC", "http://127.0.0.1:26657")
# Kinds whose transaction hash is the id of what they create.
NOT_FOUND = -32001  # node/rpc/errors.py
CREATES = {"create_datanet": "datanet", "contribute": "contribution", "register_model": "model",
           "register_adapter": "adapter", "infer": "inference"}


class SDKError(Exception):
    """Base of every SDK error."""


class Unreachable(SDKError):
    """No node answers at the URL."""


class RPCError(SDKError):
    """The node answered a JSON-RPC error."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.code = error.get("code")
        self.message = error.get("message")
        self.data = error.get("data")
        self.error = error
        detail = f" ({json.dumps(self.data)})" if self.data is not None else ""
        super().__init__(f"error {self.code}: {self.message}{detail}")


class TxFailed(SDKError):
    """A transaction was committed with a non-zero result code, or not committed in time."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


class ProofError(SDKError):
    """A state proof, header or commit certificate that does not verify."""


def _wire(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return to_hex(bytes(value))
    if isinstance(value, (list, tuple)):
        return [_wire(v) for v in value]
    return value


def load_key(path: str | os.PathLike[str]) -> PrivateKey:
    """An account key file (``attrchain keys new --out FILE``)."""
    try:
        return PrivateKey.load(path)
    except KeyFileError as exc:
        raise SDKError(str(exc)) from None


@dataclass(frozen=True)
class Verified:
    """A state value proven against the state root of a header at ``height``."""

    key: bytes
    value: bytes | None
    height: int
    state_root: bytes
    commit_power: int | None  # signed voting power of the commit checked, None when none was available


class Client(RPCMethods):
    """A synchronous JSON-RPC 2.0 client over one keep-alive HTTP connection (thread-safe calls)."""

    def __init__(self, url: str = DEFAULT_RPC, timeout: float = 15.0, chain_id: str | None = None) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=timeout)
        self._id = 0
        self._lock = threading.Lock()
        self._chain_id = chain_id or None  # asked from `status` when not given

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- JSON-RPC ------------------------------------------------------------------------------

    def call(self, method: str, params: Any = None, timeout: float | None = None) -> Any:
        """Call one method; ``params`` a dict (None values are left out) or a list."""
        if isinstance(params, dict):
            params = {k: _wire(v) for k, v in params.items() if v is not None}
        elif isinstance(params, (list, tuple)):
            params = [_wire(v) for v in params]
        with self._lock:
            self._id += 1
            rid = self._id
        req = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params if params is not None else {}}
        try:
            r = self.http.post("/", json=req, timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach the node at {self.url}: {exc}") from exc
        try:
            body = r.json()
        except ValueError:
            raise SDKError(f"the node answered HTTP {r.status_code} without JSON") from None
        if not isinstance(body, dict):
            raise SDKError("unexpected answer from the node")
        if "error" in body:
            raise RPCError(body["error"])
        return body.get("result")

    def batch(self, calls: list[tuple[str, Any]], timeout: float | None = None) -> list[Any]:
        """One JSON-RPC batch (one HTTP request): each call's result, or its RPCError, in order."""
        if not calls:
            return []
        with self._lock:
            first = self._id + 1
            self._id += len(calls)
        reqs = [{"jsonrpc": "2.0", "id": first + i, "method": m,
                 "params": {k: _wire(v) for k, v in (p or {}).items() if v is not None}}
                for i, (m, p) in enumerate(calls)]
        try:
            r = self.http.post("/", json=reqs, timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach the node at {self.url}: {exc}") from exc
        try:
            body = r.json()
        except ValueError:
            raise SDKError(f"the node answered HTTP {r.status_code} without JSON") from None
        if isinstance(body, dict) and "error" in body:
            raise RPCError(body["error"])
        if not isinstance(body, list):
            raise SDKError("unexpected answer from the node")
        by_id = {item.get("id"): item for item in body if isinstance(item, dict)}
        out: list[Any] = []
        for i in range(len(calls)):
            item = by_id.get(first + i)
            if item is None:
                out.append(SDKError("no answer in the batch"))
            elif "error" in item:
                out.append(RPCError(item["error"]))
            else:
                out.append(item.get("result"))
        return out

    def websocket(self, timeout: float = 15.0) -> Any:
        """A WebSocket connection for the subscription methods and their events (sdk/ws.py)."""
        from sdk.ws import WebSocket

        return WebSocket(self.url, timeout)

    # ---- chain facts ---------------------------------------------------------------------------

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = self.status()["chain_id"]
        return self._chain_id

    def min_fee(self) -> int:
        """The minimum fee in force now (governance may change it)."""
        return int(self.params()["params"]["fees"]["min_fee"])

    def fingerprint_params(self) -> Any:
        """The chain's FingerprintParams, from the attribution params in force."""
        from state.attribution.contributions import fingerprint_params
        from state.params import AttributionParams

        section = self.params()["params"]["attribution"]
        try:
            return fingerprint_params(AttributionParams(**section))
        except (TypeError, ValueError) as exc:
            raise SDKError(f"the node's attribution params are not understood by this SDK: {exc}") from None

    def next_nonce(self, address: bytes | str) -> int:
        """The next nonce of an account, counting the transactions the node holds in its mempool."""
        acct = self.account(address)
        return int(acct.get("next_nonce", acct["nonce"]))

    # ---- transactions --------------------------------------------------------------------------

    def body(self, kind: str, /, **values: Any) -> Any:
        """The body of ``kind`` (sdk/txbuild.py); fingerprints use this chain's params."""
        return make_body(kind, self.fingerprint_params, **values)

    def sign(self, key: PrivateKey, kind_or_body: Any, /, *, fee: int | None = None, nonce: int | None = None,
             **values: Any) -> Tx:
        """Build (when given a kind name) and sign a transaction; fee and nonce asked if not given."""
        body = self.body(kind_or_body, **values) if isinstance(kind_or_body, str) else kind_or_body
        if nonce is None:
            nonce = self.next_nonce(key.address)
        if fee is None:
            fee = self.min_fee()
        return sign_tx(key, self.chain_id, nonce, body, fee)

    def broadcast(self, tx: Tx | bytes, *, wait: bool = False, timeout: int | None = None) -> dict[str, Any]:
        """Send signed bytes: checked into the mempool, or (``wait``) until a block commits them."""
        raw = tx.raw if isinstance(tx, Tx) else tx
        if not wait:
            return dict(self.broadcast_tx_sync(raw))
        http_timeout = max(15.0, (timeout or 30) + 10)
        return dict(self.call("broadcast_tx_commit", {"tx": raw, "timeout": timeout}, timeout=http_timeout))

    def submit(self, key: PrivateKey, kind: str, /, *, fee: int | None = None, nonce: int | None = None,
               wait: bool = True, timeout: int | None = None, check: bool = True, **values: Any) -> dict[str, Any]:
        """Build, sign and submit; with ``wait`` until committed. The answer has ``hash`` and, for kinds
        that create something, ``<thing>_id``. ``check`` raises TxFailed unless committed with code 0."""
        commitment = None
        if kind == "contribute":  # commit first, wait for its block, then reveal
            body = self.body(kind, **values)
            commitment = self.commit_for(key, body, fee=fee, nonce=nonce, timeout=timeout)
            tx = self.sign(key, body, fee=fee)
        else:
            tx = self.sign(key, kind, fee=fee, nonce=nonce, **values)
        out: dict[str, Any] = {"hash": to_hex(tx.hash), "kind": kind, "nonce": tx.unsigned.nonce,
                               "fee": tx.unsigned.fee}
        if commitment is not None:
            out["commitment"] = commitment
        if kind in CREATES:
            out[CREATES[kind] + "_id"] = to_hex(tx.hash)
        out.update(self.broadcast(tx, wait=wait, timeout=timeout))
        if wait and check:
            if not out.get("committed"):
                raise TxFailed(f"{kind} {out['hash']} not committed within the timeout", out)
            if out["result"]["code"] != 0:
                raise TxFailed(f"{kind} failed in block {out['height']}: {out['result']['reason']}: "
                               f"{out['result']['message']}", out)
        return out

    def commit_for(self, key: PrivateKey, contribute: Any, *, fee: int | None = None, nonce: int | None = None,
                   timeout: int | None = None) -> dict[str, Any]:
        """Step 1 of a contribution: commit to (sender, datanet, content hash, salt) of the ``contribute``
        body and wait until a block holds it, so its reveal lands in a later block
        (docs/attribution.md, "Commit and reveal"). Returns ``{hash, height}``."""
        from state.attribution.commitments import contribution_commitment

        commitment = contribution_commitment(key.address, contribute.datanet, hashlib.sha256(contribute.content).digest(),
                                             contribute.salt)
        res = self.submit(key, "commit_contribution", fee=fee, nonce=nonce, timeout=timeout, commitment=commitment)
        return {"hash": res["hash"], "height": res["height"]}

    def wait_for_tx(self, tx_hash: bytes | str, timeout: float = 30.0, poll: float = 0.1) -> dict[str, Any]:
        """Poll ``tx`` until the transaction is committed; raises TxFailed after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                res = self.tx(tx_hash)
                if res.get("status") == "committed":
                    return dict(res)
            except RPCError as exc:
                if exc.code != NOT_FOUND:  # not found (yet): keep waiting
                    raise
            if time.monotonic() >= deadline:
                raise TxFailed(f"transaction {_wire(tx_hash)} not committed within {timeout} s", {})
            time.sleep(poll)

    # ---- verified state ------------------------------------------------------------------------

    def prove(self, key: bytes, *, check_commit: bool = True) -> Verified:
        """A state key's value proven: the sparse-Merkle proof against the state root, the root
        against the header at that height, and (``check_commit``, when the node has one) the header
        against its commit certificate, signed by more than 2/3 of the set whose hash it names."""
        from state.block import Header
        from state.codec import decode
        from state.tree.proof import Proof, verify_proof

        res = self.abci_query(key, prove=True)
        value = from_hex(res["value"]) if res["value"] is not None else None
        root = from_hex(res["state_root"], 32)
        height = int(res["height"])
        try:
            proof = decode(Proof, from_hex(res["proof"]))
        except ValueError as exc:
            raise ProofError(f"undecodable proof: {exc}") from None
        if not verify_proof(root, key, value, proof):
            raise ProofError(f"the proof of key {to_hex(key)} does not verify against root {to_hex(root)}")
        if height == 0:
            return Verified(key, value, 0, root, None)
        hj = self.block(height=height)["block"]["header"]
        header = Header(**{k: (from_hex(v) if k not in ("version", "chain_id", "height", "time_ms") else v)
                           for k, v in hj.items()})
        if header.state_root != root:
            raise ProofError(f"state root {to_hex(root)} is not the one of the header at height {height}")
        if header.chain_id != self.chain_id:
            raise ProofError(f"header of chain {header.chain_id!r}, expected {self.chain_id!r}")
        power = self._check_commit(header) if check_commit else None
        return Verified(key, value, height, root, power)

    def _check_commit(self, header: Any) -> int | None:
        from consensus.votes import verify_commit
        from state.block import Commit, CommitSig
        from state.codec import pack
        from state.crypto import sha256
        from state.staking.validator_set import Validator, ValidatorSet

        try:
            cj = self.commit(height=header.height)["signed_header"]["commit"]
        except RPCError as exc:
            if exc.code == NOT_FOUND:  # this node keeps no commit for it (e.g. a standalone RPC)
                return None
            raise
        vj = self.validators(height=header.height, per_page=100)
        vals = tuple(Validator(from_hex(v["address"]), from_hex(v["pub_key"]), int(v["voting_power"]),
                               int(v["proposer_priority"])) for v in vj["validators"])
        if sha256(pack([[v.address, v.public_key, v.power] for v in vals])) != header.validators_hash:
            raise ProofError("the validator set does not hash to the header's validators_hash")
        commit = Commit(int(cj["height"]), int(cj["round"]), from_hex(cj["block_hash"]),
                        tuple(CommitSig(from_hex(s["validator"]), int(s["time_ms"]), from_hex(s["signature"]))
                              for s in cj["signatures"]))
        try:
            return verify_commit(self.chain_id, ValidatorSet(vals, b""), commit, header.height, header.hash())
        except ValueError as exc:
            raise ProofError(f"commit certificate: {exc}") from None

    def verified_account(self, address: bytes | str) -> dict[str, int]:
        """Balance and nonce read from a proven state value."""
        from state.accounts import Account
        from state.codec import decode
        from state.keys import account_key

        v = self.prove(account_key(from_hex(address, 20) if isinstance(address, str) else address))
        if v.value is None:
            return {"balance": 0, "nonce": 0, "height": v.height}
        acct = decode(Account, v.value)
        return {"balance": acct.balance, "nonce": acct.nonce, "height": v.height}
