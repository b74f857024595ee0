"""Static peer list, address book and redial loops.

Each pair of listed peers should share ONE connection: when both sides dial at once py-libp2p
keeps two. So the peer with the lower peer id (raw multihash bytes) dials; the other side only
dials after ``inbound_grace`` seconds without a connection, which covers a peer that does not
list us. Before every dial the peer is unblocked (py-libp2p blocks a peer for 60 s after one
failed dial) and its address is re-added (addresses given to ``connect`` expire after 120 s).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from p2p.identity import PeerSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DialSettings:
    dial_timeout: float = 5.0
    backoff_initial: float = 0.1
    backoff_max: float = 1.0
    # How long the higher-id side waits for the lower-id side to dial before dialling itself.
    inbound_grace: float = 3.0
    # Upper bound on how long a loop sleeps between connection checks when no event arrives.
    recheck_interval: float = 5.0


def disable_auto_connector(host: IHost) -> None:
    """Stop py-libp2p's AutoConnector from dialling on its own.

    It dials every peerstore entry whenever the connection count is under the midpoint of the
    watermarks (150 by default), at start, every 30 s and after each disconnect: that breaks the
    one-connection-per-pair rule and races our redial loops. Our static peer list owns dialling.
    """

    async def no_auto_connect() -> None:
        await trio.lowlevel.checkpoint()

    network = host.get_network()
    auto_connector = getattr(network, "auto_connector", None)
    if auto_connector is not None:
        auto_connector.maybe_connect = no_auto_connect


def is_dialer(self_id: ID, other: ID) -> bool:
    """True when we, not ``other``, open the connection between us (lower id dials)."""
    return self_id.to_bytes() < other.to_bytes()


def is_connected(host: IHost, peer_id: ID) -> bool:
    """True when the swarm holds a connection to ``peer_id`` that is not closed."""
    for conn in host.get_network().get_connections(peer_id):
        muxed = getattr(conn, "muxed_conn", None)
        if muxed is None or not getattr(muxed, "is_closed", False):
            return True
    return False


class ConnectionEvents(INotifee):
    """Wakes the redial loop of a peer whenever one of its connections opens or closes, and
    tells ``on_connected`` of every new connection (the service drops banned peers there)."""

    def __init__(self, on_connected: Callable[[ID], None] = lambda peer_id: None) -> None:
        self._changed: dict[ID, trio.Event] = {}
        self._on_connected = on_connected

    def event_for(self, peer_id: ID) -> trio.Event:
        event = self._changed.get(peer_id)
        if event is None or event.is_set():
            event = trio.Event()
            self._changed[peer_id] = event
        return event

    def _fire(self, conn: INetConn) -> None:
        peer_id = conn.muxed_conn.peer_id
        event = self._changed.pop(peer_id, None)
        if event is not None:
            event.set()

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._fire(conn)
        self._on_connected(conn.muxed_conn.peer_id)
        await trio.lowlevel.checkpoint()

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._fire(conn)
        await trio.lowlevel.checkpoint()

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        await trio.lowlevel.checkpoint()

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        await trio.lowlevel.checkpoint()

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        await trio.lowlevel.checkpoint()

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        await trio.lowlevel.checkpoint()


class PeerDialer:
    """Keeps a connection to every static peer for as long as ``run`` runs."""

    def __init__(
        self,
        host: IHost,
        peers: list[PeerSpec],
        settings: DialSettings,
        is_banned: Callable[[str], bool] = lambda peer_id: False,
        on_connected: Callable[[ID], None] = lambda peer_id: None,
    ) -> None:
        self._host = host
        self._settings = settings
        self._is_banned = is_banned
        self._events = ConnectionEvents(on_connected)
        self.address_book: dict[str, PeerSpec] = {}
        self_id = host.get_id().to_base58()
        for spec in peers:
            if spec.peer_id != self_id:
                self.address_book[spec.peer_id] = spec
        host.get_network().register_notifee(self._events)
        self._self_id = self_id
        self._nursery: trio.Nursery | None = None
        self.dials = 0
        self.dial_failures = 0

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for spec in sorted(self.address_book.values(), key=lambda s: s.peer_id):
                nursery.start_soon(self._keep_connected, spec)
            # Stay open for peers added later by ``add_peer``.
            await trio.sleep_forever()

    def add_peer(self, spec: PeerSpec) -> bool:
        """Add a static peer at run time; False if it is ourselves or already known."""
        if spec.peer_id == self._self_id or spec.peer_id in self.address_book:
            return False
        self.address_book[spec.peer_id] = spec
        if self._nursery is not None:
            self._nursery.start_soon(self._keep_connected, spec)
        return True

    async def dial(self, spec: PeerSpec) -> bool:
        """One bounded dial attempt; False (and a log line) on failure."""
        info = spec.peer_info()
        self._host.get_network().unblock_peer(info.peer_id)
        self.dials += 1
        try:
            with trio.fail_after(self._settings.dial_timeout):
                await self._host.connect(info)
        except (trio.TooSlowError, BaseLibp2pError, OSError) as error:
            self.dial_failures += 1
            logger.debug("dial %s failed: %s: %s", spec.peer_id, type(error).__name__, error)
            return False
        logger.info("connected to %s", spec.peer_id)
        return True

    async def _keep_connected(self, spec: PeerSpec) -> None:
        peer_id = spec.peer_info().peer_id
        we_dial = is_dialer(self._host.get_id(), peer_id)
        backoff = self._settings.backoff_initial
        disconnected_since = trio.current_time()
        while True:
            changed = self._events.event_for(peer_id)
            if is_connected(self._host, peer_id):
                backoff = self._settings.backoff_initial
                with trio.move_on_after(self._settings.recheck_interval):
                    await changed.wait()
                disconnected_since = trio.current_time()
                continue
            if self._is_banned(spec.peer_id):
                # not dialled while banned; re-checked when the ban may have ended
                with trio.move_on_after(self._settings.recheck_interval):
                    await changed.wait()
                continue
            waited = trio.current_time() - disconnected_since
            if not we_dial and waited < self._settings.inbound_grace:
                # Give the lower-id side its turn; wake early if it connects.
                with trio.move_on_after(self._settings.inbound_grace - waited):
                    await changed.wait()
                continue
            # connect() can return at once without yielding when a closed connection to the peer
            # is still registered; only a live connection counts, else back off (never spin).
            if await self.dial(spec) and is_connected(self._host, peer_id):
                continue
            await trio.lowlevel.checkpoint()
            with trio.move_on_after(backoff):
                await changed.wait()
            backoff = min(backoff * 2, self._settings.backoff_max)
