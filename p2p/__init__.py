"""attrchain p2p: libp2p host, GossipSub topics, request/response and static peers.

Public API: ``P2PService``, ``PeerSpec``, ``Received``, ``peer_id_from_seed``, the settings
dataclasses, the topic-name functions of ``p2p.topics`` and the ``P2PError`` family.
"""

from p2p.errors import (
    MessageTooLarge,
    NotRunning,
    P2PError,
    PeerBanned,
    PeerUnknown,
    ProtocolNotSupported,
    RemoteError,
    RequestRejected,
    RequestTimeout,
    RequestTooLarge,
    ResponseTooLarge,
    TransportError,
    UnknownTopic,
)
from p2p.gossip import GossipSettings
from p2p.identity import PeerSpec, loopback_addr, peer_id_from_seed
from p2p.inbox import Inbox, InboxSettings, Received
from p2p.peers import DialSettings
from p2p.reqresp import ReqRespLimits, RequestHandler, Status
from p2p.scoring import Offence, PeerScores, ScoreSettings
from p2p.service import P2PService

__all__ = [
    "DialSettings",
    "GossipSettings",
    "Inbox",
    "InboxSettings",
    "Offence",
    "PeerBanned",
    "PeerScores",
    "ScoreSettings",
    "MessageTooLarge",
    "NotRunning",
    "P2PError",
    "P2PService",
    "PeerSpec",
    "PeerUnknown",
    "ProtocolNotSupported",
    "Received",
    "RemoteError",
    "ReqRespLimits",
    "RequestHandler",
    "RequestRejected",
    "RequestTimeout",
    "RequestTooLarge",
    "ResponseTooLarge",
    "Status",
    "TransportError",
    "UnknownTopic",
    "loopback_addr",
    "peer_id_from_seed",
]
