"""libp2p identity from a 32-byte Ed25519 seed, and the static peer list entries.

The same seed gives the same key as ``cryptography``'s ``Ed25519PrivateKey.from_private_bytes``,
so a node's p2p identity can be derived from (or shared with) its node key file.
"""

from __future__ import annotations

from dataclasses import dataclass

import multiaddr
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr


def key_pair_from_seed(seed: bytes) -> KeyPair:
    """The libp2p Ed25519 key pair of a 32-byte seed."""
    if len(seed) != 32:
        raise ValueError(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
    return create_new_key_pair(seed)


def peer_id_from_seed(seed: bytes) -> str:
    """The base58 libp2p peer id (``12D3KooW...``) of a 32-byte Ed25519 seed."""
    return ID.from_pubkey(key_pair_from_seed(seed).public_key).to_base58()


def loopback_addr(port: int, peer_id: str | None = None) -> str:
    """``/ip4/127.0.0.1/tcp/<port>[/p2p/<peer_id>]``."""
    base = f"/ip4/127.0.0.1/tcp/{port}"
    return f"{base}/p2p/{peer_id}" if peer_id else base


@dataclass(frozen=True)
class PeerSpec:
    """A static peer: its base58 peer id and a dialable multiaddr ending in ``/p2p/<peer_id>``."""

    peer_id: str
    addr: str

    def __post_init__(self) -> None:
        info = self.peer_info()
        if info.peer_id.to_base58() != self.peer_id:
            raise ValueError(f"address {self.addr} names peer {info.peer_id}, not {self.peer_id}")

    @classmethod
    def parse(cls, addr: str) -> "PeerSpec":
        """A spec from a full multiaddr ``/ip4/.../tcp/N/p2p/<id>``."""
        info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        return cls(peer_id=info.peer_id.to_base58(), addr=addr)

    @classmethod
    def loopback(cls, seed: bytes, port: int) -> "PeerSpec":
        """The spec of the node with this seed listening on 127.0.0.1:port."""
        peer_id = peer_id_from_seed(seed)
        return cls(peer_id=peer_id, addr=loopback_addr(port, peer_id))

    def peer_info(self) -> PeerInfo:
        return info_from_p2p_addr(multiaddr.Multiaddr(self.addr))
