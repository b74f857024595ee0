"""State sync: start a node from a recent snapshot instead of replaying every block since genesis.

Serving side. Every ``snapshot_interval`` blocks a node writes the authenticated state (every key
under ``keys.STATE``, read from a LevelDB snapshot taken right after the commit) into
``data/snapshots/<height>/``: chunks of at most CHUNK_BYTES (canonical msgpack ``[[key, value],
...]``, keys strictly ascending across chunks) and a manifest ``[FORMAT, height, state_root,
[sha256(chunk), ...]]``. The newest ``snapshot_keep`` are kept. Requests on the state-sync
protocol (canonical msgpack arrays, docs/statesync.md):

    ["snapshots"]                  -> ["snapshots", [[height, state_root, [chunk hashes]], ...]]
    ["chunk", height, index]       -> ["chunk", chunk_bytes]
    ["light", from_height, count]  -> ["light", [[header, commit, validator_set or b""], ...]]
    anything else                  -> ["error", message]

Joining side (``StateSyncer``). Nothing a peer says is trusted:
1. light-client verification from the configured trusted header (``trust_height``, whose hash
   must be ``trust_hash``) up to the snapshot height H: for each height h the validator set must
   hash to the previous verified header's ``next_validators_hash`` (a set is sent only when it
   changes and is checked against the header's ``validators_hash``), and the commit for h must
   carry more than 2/3 of that set's power signing header h;
2. every chunk must hash to the manifest's entry (a bad chunk: the peer is scored down and the
   chunk is fetched from another peer);
3. the state rebuilt from the chunks must have header H's ``state_root`` (verified in step 1);
   otherwise the snapshot is refused, the offering peer scored down, and nothing is written.
Then the state, block H and its commit are written in one batch and block sync takes over at H+1.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plyvel
import trio

from consensus.votes import InvalidCommit, verify_commit
from p2p.errors import P2PError
from p2p.scoring import Offence
from state import keys
from state.block import Commit, Header, decode_block
from state.chain import Chain
from state.codec import CodecError, decode, pack, unpack
from state.staking.validator_set import ValidatorSet

log = logging.getLogger(__name__)

FORMAT = 1
CHUNK_BYTES = 1024 * 1024
MAX_CHUNKS = 8_192  # a manifest lists at most this many chunks (8 GiB of state)
MAX_SNAPSHOTS_LISTED = 4
MAX_LIGHT_PER_RESPONSE = 500
MAX_LIGHT_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # also the p2p response limit the node asks with


class StateSyncError(Exception):
    """State sync could not complete (no usable snapshot, or every peer failed); one line."""


class Unavailable(StateSyncError):
    """A peer answered ``["error", reason]``: it does not have what was asked (a snapshot pruned
    since it was listed, for one). Not an offence: the next peer or snapshot is tried."""


class BadPeerAnswer(Exception):
    """A peer's answer does not verify; the peer is scored down."""


def statesync_protocol(chain_id: str) -> str:
    if not chain_id or "/" in chain_id:
        raise ValueError(f"chain id must be non-empty and contain no '/': {chain_id!r}")
    return f"/attrchain/{chain_id}/statesync/1"


# ---- validator sets of past heights (state prunes them; Chain.commit archives each change) ------

def validator_set_for(chain: Chain, height: int, wanted_hash: bytes) -> bytes | None:
    """The stored validator set of ``height`` that hashes to ``wanted_hash`` (state or archive)."""
    candidates = []
    raw = chain.db.raw.get(keys.validator_set_key(height))  # raw reads only: may run in a worker thread
    if raw is not None:
        candidates.append(raw)
    for _k, v in chain.db.raw.iterator(start=keys.valset_archive_key(0), stop=keys.valset_archive_key(height + 1),
                                       reverse=True):
        candidates.append(v)
        break
    for raw in candidates:
        try:
            if ValidatorSet.from_wire(unpack(raw)).hash() == wanted_hash:  # type: ignore[attr-defined]
                return raw
        except (CodecError, ValueError, TypeError):
            continue
    return None


# ---- snapshots on disk -------------------------------------------------------------------------

@dataclass(frozen=True)
class Manifest:
    height: int
    state_root: bytes
    chunk_hashes: tuple[bytes, ...]

    def to_wire(self) -> list[Any]:
        return [self.height, self.state_root, list(self.chunk_hashes)]

    @staticmethod
    def from_wire(obj: Any) -> "Manifest":
        if not (isinstance(obj, list) and len(obj) == 3 and type(obj[0]) is int and obj[0] >= 1
                and type(obj[1]) is bytes and len(obj[1]) == 32 and isinstance(obj[2], list)
                and 1 <= len(obj[2]) <= MAX_CHUNKS
                and all(type(h) is bytes and len(h) == 32 for h in obj[2])):
            raise CodecError("malformed snapshot manifest")
        return Manifest(obj[0], obj[1], tuple(obj[2]))


def write_snapshot(snapshot: Any, height: int, state_root: bytes, out_dir: Path,
                   chunk_bytes: int = CHUNK_BYTES) -> Manifest:
    """Write every state key of a LevelDB ``snapshot`` as chunks + manifest into out_dir/<height>."""
    final = out_dir / str(height)
    tmp = out_dir / f".{height}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    hashes: list[bytes] = []
    items: list[list[bytes]] = []
    size = 0

    def flush() -> None:
        nonlocal items, size
        raw = pack(items)
        (tmp / f"chunk-{len(hashes)}").write_bytes(raw)
        hashes.append(hashlib.sha256(raw).digest())
        items, size = [], 0

    for k, v in snapshot.iterator(prefix=keys.STATE):
        if items and size + len(k) + len(v) + 8 > chunk_bytes:
            flush()
        items.append([k, v])
        size += len(k) + len(v) + 8
    if items or not hashes:
        flush()
    manifest = Manifest(height, state_root, tuple(hashes))
    (tmp / "manifest").write_bytes(pack([FORMAT, *manifest.to_wire()]))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return manifest


class SnapshotStore:
    """The snapshots this node serves: data/snapshots/<height>/{manifest,chunk-N}."""

    def __init__(self, root: Path, interval: int, keep: int) -> None:
        self.root = root
        self.interval = interval
        self.keep = max(1, keep)
        self.manifests: dict[int, Manifest] = {}
        root.mkdir(parents=True, exist_ok=True)
        for d in root.iterdir():
            if d.name.startswith("."):
                shutil.rmtree(d, ignore_errors=True)  # an interrupted write
                continue
            try:
                wire = unpack((d / "manifest").read_bytes())
                if wire[0] != FORMAT:
                    raise CodecError("unknown snapshot format")
                m = Manifest.from_wire(wire[1:])
                self.manifests[m.height] = m
            except (OSError, CodecError, IndexError, TypeError) as exc:
                log.warning("ignoring unreadable snapshot %s: %s", d, exc)
        self._prune()

    def due(self, height: int) -> bool:
        return self.interval > 0 and height % self.interval == 0 and height not in self.manifests

    def take(self, db: plyvel.DB, height: int, state_root: bytes) -> Any:
        """A LevelDB snapshot of the state just committed at ``height`` (cheap; write it with
        ``write`` in a worker thread)."""
        return db.snapshot()

    def write(self, snapshot: Any, height: int, state_root: bytes) -> Manifest:
        m = write_snapshot(snapshot, height, state_root, self.root)
        self.manifests[height] = m
        self._prune()
        log.info("state snapshot height=%d chunks=%d", height, len(m.chunk_hashes))
        return m

    def _prune(self) -> None:
        for h in sorted(self.manifests)[:-self.keep]:
            del self.manifests[h]
            shutil.rmtree(self.root / str(h), ignore_errors=True)

    def chunk(self, height: int, index: int) -> bytes | None:
        m = self.manifests.get(height)
        if m is None or not 0 <= index < len(m.chunk_hashes):
            return None
        try:
            return (self.root / str(height) / f"chunk-{index}").read_bytes()
        except OSError:
            return None


# ---- serving -------------------------------------------------------------------------------------

def handle_statesync_request(chain: Chain, store: SnapshotStore | None, payload: bytes) -> bytes:
    """Answer one state-sync request. Never raises on bad input."""
    try:
        req = unpack(payload, 1024)
    except CodecError as exc:
        return pack(["error", f"malformed request: {exc}"])
    if req == ["snapshots"]:
        listed = [] if store is None else [store.manifests[h].to_wire()
                                           for h in sorted(store.manifests, reverse=True)[:MAX_SNAPSHOTS_LISTED]]
        return pack(["snapshots", listed])
    if (isinstance(req, list) and len(req) == 3 and req[0] == "chunk"
            and type(req[1]) is int and type(req[2]) is int):
        raw = store.chunk(req[1], req[2]) if store is not None else None
        return pack(["chunk", raw]) if raw is not None else pack(["error", "unknown chunk"])
    if (isinstance(req, list) and len(req) == 3 and req[0] == "light"
            and type(req[1]) is int and type(req[2]) is int and req[1] >= 1 and req[2] >= 1):
        return pack(["light", light_items(chain, req[1], min(req[2], MAX_LIGHT_PER_RESPONSE))])
    return pack(["error", "unknown request"])


def light_items(chain: Chain, start: int, count: int) -> list[list[bytes]]:
    """[header, commit, validator set when it differs from the previous item's or first] per height."""
    out: list[list[bytes]] = []
    size = 0
    prev_vals = b""
    for h in range(start, min(chain.height, start + count - 1) + 1):
        block = chain.get_block(h)
        commit = chain.get_commit(h)
        if block is None or commit is None:
            break
        header = block.header
        vals = b""
        if header.validators_hash != prev_vals:
            vals = validator_set_for(chain, h, header.validators_hash) or b""
            if not vals:
                break  # this node no longer has that set
            prev_vals = header.validators_hash
        item = [header.encode(), commit.encode(), vals]  # type: ignore[attr-defined]
        size += sum(len(x) for x in item) + 16
        if out and size > MAX_LIGHT_RESPONSE_BYTES:
            break
        out.append(item)
    return out


# ---- joining -------------------------------------------------------------------------------------

Request = Callable[[str, bytes], Awaitable[bytes]]
Report = Callable[[str, Offence, str], None]
BlockRequest = Callable[[str, bytes], Awaitable[bytes]]


@dataclass(frozen=True)
class Trust:
    height: int
    hash: bytes


def verify_light(chain_id: str, trust: Trust, items: list[Any], state: dict[str, Any]) -> None:
    """Extend the verified header chain in ``state`` (keys: header, valset) by ``items``.

    Raises BadPeerAnswer on anything that does not verify."""
    for item in items:
        if not (isinstance(item, list) and len(item) == 3 and all(type(x) is bytes for x in item)):
            raise BadPeerAnswer("malformed light block")
        try:
            header = decode(Header, item[0])
            commit = decode(Commit, item[1])
            valset = ValidatorSet.from_wire(unpack(item[2])) if item[2] else None  # type: ignore[attr-defined]
        except (CodecError, ValueError, TypeError) as exc:
            raise BadPeerAnswer(f"undecodable light block: {exc}") from exc
        prev: Header | None = state.get("header")
        if prev is None:
            if header.height != trust.height or header.hash() != trust.hash:
                raise BadPeerAnswer(f"header {header.height} is not the trusted header")
            if valset is None or valset.hash() != header.validators_hash:
                raise BadPeerAnswer("validator set of the trusted header does not match it")
            state["header"], state["valset"] = header, valset
            continue
        if header.height != prev.height + 1 or header.chain_id != chain_id:
            raise BadPeerAnswer(f"light block {header.height} out of order (after {prev.height})")
        if header.last_block_hash != prev.hash():
            raise BadPeerAnswer(f"header {header.height} does not link to {prev.height}")
        if header.validators_hash != prev.next_validators_hash:
            raise BadPeerAnswer(f"header {header.height}: validator set differs from the one announced")
        current: ValidatorSet = state["valset"]
        if current.hash() != header.validators_hash:
            if valset is None or valset.hash() != header.validators_hash:
                raise BadPeerAnswer(f"header {header.height}: validator set missing or wrong")
            current = valset
        try:
            verify_commit(chain_id, current, commit, header.height, header.hash())
        except InvalidCommit as exc:
            raise BadPeerAnswer(f"commit {header.height}: {exc}") from exc
        state["header"], state["valset"], state["commit"] = header, current, commit


class StateSyncer:
    """Fetch, verify and install a snapshot from peers (see the module docstring)."""

    def __init__(self, chain: Chain, peers: Callable[[], list[str]], request: Request,
                 block_request: BlockRequest, report: Report, trust: Trust,
                 timeout_s: float = 10.0) -> None:
        self.chain = chain
        self.peers = peers
        self.request = request
        self.block_request = block_request
        self.report = report
        self.trust = trust
        self.timeout_s = timeout_s
        self.progress = ""
        self.received_bytes = 0  # every answer, verified or not (the benchmark reports it)
        self.chunks_fetched = 0

    async def _ask(self, peer: str, req: list[Any]) -> Any:
        with trio.fail_after(self.timeout_s):
            raw = await self.request(peer, pack(req))
        self.received_bytes += len(raw)
        answer = unpack(raw, MAX_ANSWER_BYTES)
        if isinstance(answer, list) and len(answer) == 2 and answer[0] == "error" and isinstance(answer[1], str):
            raise Unavailable(f"peer {peer[-8:]} answered {req[0]}: {answer[1][:80]}")
        if not (isinstance(answer, list) and answer and answer[0] == req[0] and len(answer) == 2):
            raise BadPeerAnswer(f"unexpected answer to {req[0]}: {str(answer)[:80]}")
        return answer[1]

    def _blame(self, peer: str, detail: str) -> None:
        log.warning("state sync: peer %s refused: %s", peer[-8:], detail)
        self.report(peer, Offence.BAD_SYNC_ANSWER, detail)

    async def offers(self) -> list[tuple[Manifest, str]]:
        """(manifest, peer) of every snapshot above the trusted height, newest first."""
        found: list[tuple[Manifest, str]] = []
        for peer in self.peers():
            try:
                listed = await self._ask(peer, ["snapshots"])
                if not isinstance(listed, list) or len(listed) > MAX_SNAPSHOTS_LISTED:
                    raise BadPeerAnswer("malformed snapshot list")
                for wire in listed:
                    m = Manifest.from_wire(wire)
                    if m.height > self.trust.height:
                        found.append((m, peer))
            except (BadPeerAnswer, CodecError) as exc:
                self._blame(peer, f"snapshot list: {exc}")
            except (P2PError, trio.TooSlowError, OSError, Unavailable) as exc:
                log.info("state sync: peer %s: %s", peer[-8:], exc)
        found.sort(key=lambda mp: -mp[0].height)
        return found

    async def verify_header(self, peer: str, height: int) -> tuple[Header, Commit]:
        """Light-client verification from the trusted header up to ``height``."""
        state: dict[str, Any] = {}
        nxt = self.trust.height
        while nxt <= height:
            items = await self._ask(peer, ["light", nxt, height - nxt + 1])
            if not isinstance(items, list) or not items:
                raise BadPeerAnswer(f"no light blocks from height {nxt}")
            verify_light(self.chain.chain_id, self.trust, items, state)
            nxt = state["header"].height + 1
            self.progress = f"light client at {nxt - 1}/{height}"
        return state["header"], state["commit"]

    async def fetch_chunks(self, m: Manifest, peers: list[str]) -> list[bytes]:
        chunks: list[bytes] = []
        for i, want in enumerate(m.chunk_hashes):
            for peer in list(peers):
                try:
                    raw = await self._ask(peer, ["chunk", m.height, i])
                    if type(raw) is not bytes or hashlib.sha256(raw).digest() != want:
                        raise BadPeerAnswer(f"chunk {i} of snapshot {m.height} does not match its hash")
                    chunks.append(raw)
                    self.chunks_fetched += 1
                    break
                except (BadPeerAnswer, CodecError) as exc:
                    self._blame(peer, str(exc))
                    peers.remove(peer)
                except (P2PError, trio.TooSlowError, OSError, Unavailable) as exc:
                    log.info("state sync: chunk %d from %s: %s", i, peer[-8:], exc)
            else:
                raise StateSyncError(f"no peer served chunk {i} of snapshot {m.height}")
            self.progress = f"chunk {i + 1}/{len(m.chunk_hashes)} of snapshot {m.height}"
            if (i + 1) % 50 == 0:
                log.info("state sync: %s", self.progress)
        return chunks

    async def run(self) -> int:
        """Install the newest verifiable snapshot; returns its height. StateSyncError if none."""
        if self.chain.height != 0:
            raise StateSyncError(f"state sync needs an empty home (this one is at height {self.chain.height})")
        offers = await self.offers()
        if not offers:
            raise StateSyncError(f"no peer offers a snapshot above trusted height {self.trust.height}")
        tried: set[tuple[int, bytes]] = set()
        for m, peer in offers:
            key = (m.height, pack(m.to_wire()))
            if key in tried:
                continue
            tried.add(key)
            same = [p for mm, p in offers if mm == m]
            try:
                header, commit = await self.verify_header(peer, m.height)
                if header.state_root != m.state_root:
                    raise BadPeerAnswer(f"snapshot {m.height} claims a state root the chain does not have")
                block_raw = await self._fetch_block(peer, header)
                chunks = await self.fetch_chunks(m, same)
                try:
                    await trio.to_thread.run_sync(install, self.chain, m, header, commit, block_raw, chunks)
                finally:  # values other tasks read from LevelDB while the thread wrote may be stale
                    self.chain.db.committed.clear()
                    self.chain.db.decoded.clear()
                log.info("state sync: installed snapshot height=%d root=%s", m.height, m.state_root.hex()[:12])
                return m.height
            except BadPeerAnswer as exc:
                for p in same:
                    self._blame(p, str(exc))
            except (P2PError, trio.TooSlowError, OSError, StateSyncError) as exc:
                log.info("state sync: snapshot %d from %s failed: %s", m.height, peer[-8:], exc)
        raise StateSyncError("no snapshot offered by peers verifies")

    async def _fetch_block(self, peer: str, header: Header) -> bytes:
        with trio.fail_after(self.timeout_s):
            raw_answer = await self.block_request(peer, pack(["blocks", header.height, 1]))
        self.received_bytes += len(raw_answer)
        answer = unpack(raw_answer)
        try:
            raw = answer[1][0][0]
            if type(raw) is not bytes or decode_block(raw).header.hash() != header.hash():
                raise BadPeerAnswer("snapshot block does not match its verified header")
        except (IndexError, TypeError, KeyError, CodecError) as exc:
            raise BadPeerAnswer(f"snapshot block: {exc}") from exc
        return raw


def install(chain: Chain, m: Manifest, header: Header, commit: Commit, block_raw: bytes,
            chunks: list[bytes]) -> None:
    """Replace the state with the chunks' keys if they lead to ``header.state_root`` (one batch);
    BadPeerAnswer (nothing written) otherwise."""
    db = chain.db
    view = db.view()
    last = b""
    seen: set[bytes] = set()
    for raw in chunks:
        try:
            items = unpack(raw, CHUNK_BYTES + 1024)
        except CodecError as exc:
            raise BadPeerAnswer(f"undecodable chunk: {exc}") from exc
        if not isinstance(items, list):
            raise BadPeerAnswer("chunk is not a list")
        for item in items:
            if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is bytes
                    and type(item[1]) is bytes and item[0][:1] == keys.STATE and item[0] > last):
                raise BadPeerAnswer("chunk holds a non-state key or keys out of order")
            last = item[0]
            seen.add(item[0])
            view.put(item[0], item[1])
    for k, _v in db.raw.iterator(prefix=keys.STATE):
        if k not in seen:
            view.delete(k)  # genesis state the snapshot no longer has
    update = db.preview_root(view)
    if update.root != header.state_root:
        raise BadPeerAnswer(f"snapshot {m.height} state root {update.root.hex()[:12]} is not the verified "
                            f"header's {header.state_root.hex()[:12]}")
    extra = {
        keys.block_key(header.height): block_raw,
        keys.block_hash_key(header.hash()): header.height.to_bytes(8, "big"),
        keys.commit_key(header.height): pack(commit.to_wire()),  # type: ignore[attr-defined]
        keys.meta_key("height"): header.height.to_bytes(8, "big"),
        keys.meta_key("statesync_height"): header.height.to_bytes(8, "big"),
        keys.meta_key("vals_hash"): header.validators_hash,
    }
    vals = view.get(keys.validator_set_key(header.height))
    if vals is not None:
        extra[keys.valset_archive_key(header.height)] = vals
    db.commit(view, extra, update)
