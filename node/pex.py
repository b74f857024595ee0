"""Peer exchange (PEX): a node that knows only its seeds learns other peers' addresses from the
peers it is connected to, and dials them until it has ``[p2p] pex_target_peers`` connections.

Protocol ``/attrchain/<chain_id>/pex/1`` (request/response, canonical msgpack, docs/p2p.md):

    request   ["pex", advertised]     advertised: "host:port" this node listens on, or ""
    answer    ["addrs", [[peer_id, "host:port"], ...]]   at most MAX_ANSWER_ADDRS entries
    refusal   ["error", reason]

What an address must be to enter the book or an answer (``check_address``): an IP literal (no DNS
name: a peer must not make us resolve or dial names it picks), a port in 1..65535, a valid peer id
that is not ours; never unspecified, multicast, link-local or reserved; loopback and private
ranges only with ``[p2p] allow_private_addresses``. The book holds at most ``capacity`` addresses
and at most ``per_source`` learned from one peer, so one lying peer cannot fill it; an address is
never overwritten by a later answer (a liar cannot redirect a known peer), and one that fails
MAX_FAILURES dials in a row is dropped. A node shares only what it has reason to believe: its
configured peers, addresses it dialled successfully, and the advertised address of a connected
peer whose IP is the one the connection comes from.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from node.config import split_host_port, split_peer
from p2p.errors import P2PError, ProtocolNotSupported
from p2p.identity import PeerSpec
from p2p.scoring import Offence
from state.codec import CodecError, pack, unpack

log = logging.getLogger(__name__)

MAX_ANSWER_ADDRS = 32
MAX_ANSWER_BYTES = 8 * 1024
MAX_FAILURES = 3
ASK_EVERY_S = 60.0          # one peer is asked at most this often
ROUND_S = 2.0               # a round while below the target; ten times less often once reached
RETRY_BASE_S = 5.0          # a failed address is retried after 5 s, 10 s, ... (doubling)
REQUEST_TIMEOUT_S = 5.0


def pex_protocol(chain_id: str) -> str:
    return f"/attrchain/{chain_id}/pex/1"


def check_address(host: str, port: int, allow_private: bool) -> str | None:
    """Why ``host:port`` may not be learned or shared, or None when it may."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "not an IP address"
    if not 0 < port < 65536:
        return "bad port"
    if ip.is_unspecified or ip.is_multicast or ip.is_link_local or ip.is_reserved:
        return "unroutable address"
    if (ip.is_loopback or ip.is_private) and not allow_private:
        return "private or loopback address (allowed with [p2p] allow_private_addresses)"
    return None


def advertised_address(host: str, port: int, external_address: str) -> tuple[str, str | None]:
    """(what this node advertises in its PEX requests, why peers will not pass it on or None).

    ``[p2p] external_address`` when set (a host behind NAT: its public IP and forwarded port),
    else the listen address unless it is unspecified (0.0.0.0 / ::), else nothing. Peers keep an
    advertised address only when it passes ``check_address`` (a DNS name, fine in persistent_peers,
    does not) and its host is the IP the connection comes from."""
    if not external_address:
        return ("" if host in ("0.0.0.0", "::", "[::]") else f"{host}:{port}"), None
    hp = split_host_port(external_address)
    why = "not \"host:port\"" if hp is None else check_address(hp[0], hp[1], allow_private=True)
    return external_address, why


def same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a.strip("[]")) == ipaddress.ip_address(b.strip("[]"))
    except ValueError:
        return False


def to_spec(peer_id: str, hostport: str) -> PeerSpec:
    """The dialable spec of ``peer_id`` at ``host:port`` (an IP literal); ValueError when invalid."""
    hp = split_host_port(hostport)
    if hp is None:
        raise ValueError(f"{hostport!r} is not host:port")
    host = hp[0].strip("[]")
    proto = "ip4" if ipaddress.ip_address(host).version == 4 else "ip6"
    return PeerSpec(peer_id, f"/{proto}/{host}/tcp/{hp[1]}/p2p/{peer_id}")


@dataclass
class Entry:
    addr: str               # "host:port"
    source: str             # the peer it was learned from ("" for configured or advertised)
    shareable: bool         # dialled successfully, configured, or advertised by a connected peer
    failures: int = 0
    retry_at: float = 0.0


class AddressBook:
    """Learned peer addresses, bounded in total and per source (pure: no I/O)."""

    def __init__(self, self_id: str, allow_private: bool, capacity: int = 256, per_source: int = 16) -> None:
        self.self_id = self_id
        self.allow_private = allow_private
        self.capacity = capacity
        self.per_source = per_source
        self.entries: dict[str, Entry] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def from_source(self, source: str) -> int:
        return sum(1 for e in self.entries.values() if e.source == source)

    def add(self, peer_id: str, hostport: str, source: str, shareable: bool = False) -> str | None:
        """Add one address; the reason when it is refused, None when added (or already known)."""
        hp = split_host_port(hostport) if isinstance(hostport, str) else None
        if hp is None:
            return "not host:port"
        why = check_address(hp[0], hp[1], self.allow_private)
        if why is not None:
            return why
        if peer_id == self.self_id:
            return "ourselves"
        try:
            to_spec(peer_id, hostport)
        except ValueError:
            return "not a peer id"
        known = self.entries.get(peer_id)
        if known is not None:
            if shareable and not source:
                known.shareable = True
            return None  # first address wins: an answer cannot redirect a known peer
        if source and self.from_source(source) >= self.per_source:
            return "too many addresses from this peer"
        if len(self.entries) >= self.capacity:
            return "address book full"
        self.entries[peer_id] = Entry(hostport, source, shareable)
        return None

    def dialled(self, peer_id: str, ok: bool, now: float) -> None:
        entry = self.entries.get(peer_id)
        if entry is None:
            return
        if ok:
            entry.failures, entry.retry_at, entry.shareable = 0, 0.0, True
            return
        entry.failures += 1
        if entry.failures >= MAX_FAILURES and entry.source:
            del self.entries[peer_id]
            return
        entry.retry_at = now + RETRY_BASE_S * 2 ** min(entry.failures - 1, 6)

    def candidates(self, exclude: set[str], now: float) -> list[str]:
        """Peer ids worth dialling now: not excluded, not waiting for a retry; fewest failures first,
        then each source's first address before any source's second (a liar's many addresses
        do not come before the one an honest peer gave)."""
        rank: dict[str, int] = {}
        ready = []
        for pid in sorted(self.entries):
            e = self.entries[pid]
            rank[e.source] = rank.get(e.source, -1) + 1
            if pid not in exclude and e.retry_at <= now:
                ready.append((e.failures, rank[e.source], pid))
        return [pid for _, _, pid in sorted(ready)]

    def share(self, exclude: str, rng: random.Random) -> list[list[str]]:
        """At most MAX_ANSWER_ADDRS shareable addresses (not ``exclude``'s own), in random order."""
        pool = sorted([pid, e.addr] for pid, e in self.entries.items() if e.shareable and pid != exclude)
        return rng.sample(pool, min(len(pool), MAX_ANSWER_ADDRS))


def parse_answer(data: bytes) -> list[tuple[str, str]]:
    """``["addrs", [[peer_id, host:port], ...]]`` -> pairs; CodecError for anything else."""
    if len(data) > MAX_ANSWER_BYTES:
        raise CodecError(f"answer of {len(data)} bytes over {MAX_ANSWER_BYTES}")
    msg = unpack(data)
    if not (isinstance(msg, list) and len(msg) == 2 and msg[0] == "addrs" and isinstance(msg[1], list)):
        raise CodecError("expected ['addrs', [[peer id, host:port], ...]]")
    if len(msg[1]) > MAX_ANSWER_ADDRS:
        raise CodecError(f"{len(msg[1])} addresses, more than {MAX_ANSWER_ADDRS}")
    out = []
    for item in msg[1]:
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise CodecError("an address is [peer id, host:port]")
        out.append((item[0], item[1]))
    return out


class PeerExchange:
    """Serves the PEX protocol and runs the ask-and-dial loop of one node."""

    def __init__(
        self,
        book: AddressBook,
        advertised: str,
        target: int,
        connected: Callable[[], list[str]],
        static: Callable[[], set[str]],
        remote_ip: Callable[[str], str | None],
        request: Callable[[str, bytes], Awaitable[bytes]],
        dial: Callable[[PeerSpec], Awaitable[bool]],
        report: Callable[[str, Offence, str], None],
        is_banned: Callable[[str], bool],
    ) -> None:
        self.book = book
        self.advertised = advertised
        self.target = target
        self._connected = connected
        self._static = static
        self._remote_ip = remote_ip
        self._request = request
        self._dial = dial
        self._report = report
        self._is_banned = is_banned
        self._asked: dict[str, float] = {}
        self._unsupported: set[str] = set()
        self._rng = random.Random()
        self.dialled_ok = 0
        self.refused = 0

    def info(self) -> dict[str, int]:
        return {"known_addresses": len(self.book), "dialled": self.dialled_ok, "refused_addresses": self.refused,
                "target_peers": self.target}

    # ---- serving ---------------------------------------------------------------------
    def serve(self, requester: str, payload: bytes) -> bytes:
        try:
            req = unpack(payload)
            if not (isinstance(req, list) and len(req) == 2 and req[0] == "pex" and isinstance(req[1], str)):
                raise CodecError("expected ['pex', advertised host:port or '']")
        except CodecError as exc:
            self._report(requester, Offence.MALFORMED, f"pex request: {exc}")
            return pack(["error", "malformed request"])
        if req[1]:
            self._learn_advertised(requester, req[1])
        return pack(["addrs", self.book.share(requester, self._rng)])

    def _learn_advertised(self, requester: str, hostport: str) -> None:
        """A connected peer's own listen address, kept only when its IP is the connection's."""
        hp = split_host_port(hostport)
        seen = self._remote_ip(requester)
        if hp is None or seen is None or not same_ip(hp[0], seen):
            log.debug("pex: %s advertised %r from %s; not kept", requester[-8:], hostport, seen)
            return
        if self.book.add(requester, hostport, "", shareable=True) is None:
            log.debug("pex: %s listens on %s", requester[-8:], hostport)

    # ---- asking and dialling -----------------------------------------------------------
    async def run(self) -> None:
        while True:
            await self.round()
            short = len(self._connected()) < self.target
            await trio.sleep(ROUND_S if short else ROUND_S * 10)

    async def round(self) -> None:
        now = time.monotonic()
        for peer in self._connected():
            if peer in self._unsupported or now - self._asked.get(peer, -ASK_EVERY_S) < ASK_EVERY_S:
                continue
            self._asked[peer] = now
            await self._ask(peer)
        await self._dial_more()

    async def _ask(self, peer: str) -> None:
        try:
            data = await self._request(peer, pack(["pex", self.advertised]))
        except ProtocolNotSupported:
            self._unsupported.add(peer)  # an older node: not asked again
            return
        except P2PError as exc:
            log.debug("pex: asking %s failed: %s", peer[-8:], exc)
            return
        try:
            pairs = parse_answer(data)
        except CodecError as exc:
            self._report(peer, Offence.MALFORMED, f"pex answer: {exc}")
            return
        added = 0
        for peer_id, hostport in pairs:
            if (why := self.book.add(peer_id, hostport, peer)) is not None:
                self.refused += 1
                log.debug("pex: address %s@%r from %s refused: %s", peer_id[-8:], hostport, peer[-8:], why)
            else:
                added += 1
        log.info("pex: %s gave %d addresses (%d refused); book holds %d", peer[-8:], len(pairs),
                 len(pairs) - added, len(self.book))

    async def _dial_more(self) -> None:
        connected = set(self._connected())
        need = self.target - len(connected)
        if need <= 0:
            return
        exclude = connected | self._static()
        picks = [p for p in self.book.candidates(exclude, time.monotonic()) if not self._is_banned(p)][:need]
        results: dict[str, bool] = {}

        async def one(peer_id: str) -> None:
            results[peer_id] = await self._dial(to_spec(peer_id, self.book.entries[peer_id].addr))

        async with trio.open_nursery() as nursery:
            for peer_id in picks:
                nursery.start_soon(one, peer_id)
        for peer_id, ok in sorted(results.items()):
            self.book.dialled(peer_id, ok, time.monotonic())
            if ok:
                self.dialled_ok += 1
                log.info("pex: dialled %s (learned); %d peers connected", peer_id[-8:], len(self._connected()))


def configured(book: AddressBook, peers: list[str]) -> None:
    """Configured peers ("id@host:port") enter the book as shareable when they pass the checks."""
    for text in peers:
        parts = split_peer(text)
        if parts is not None:
            book.add(parts[0], f"{parts[1]}:{parts[2]}", "", shareable=True)
