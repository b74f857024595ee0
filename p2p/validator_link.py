"""Validator links: the direct consensus frames of one stream carried on a side TCP connection.

py-libp2p spends 60-110 us of CPU per small frame in each direction (Noise, Yamux, multistream
tasks; ``bench/p2p_frames.py``), and with 16 validators every node sends and receives ~90 frames a
height. The same frames as ChaCha20-Poly1305 records on a plain TCP connection cost 20-27 us.

A link belongs to one direct consensus stream (``p2p/direct.py``) and lives exactly as long as it:
the keys are agreed over that stream (Noise-authenticated, its hello checked), so a link carries
only what the stream's validator could have sent on the stream itself. Wire (docs/p2p.md
"Validator links"):

- After its hello the opener sends one more frame on the stream, its *link request*: empty (no
  link) or an ephemeral X25519 public key (32 bytes).
- The acceptor answers ``0x00`` (accepted, no link) or ``0x01 || X25519 public key (32) ||
  port (2, big-endian)``: accepted, and a link is waiting on that TCP port of the address the
  opener reached the acceptor's libp2p listener at.
- Both derive 64 bytes with HKDF-SHA256 (no salt) from the X25519 secret, info
  ``"attrchain/validator-link/1" || opener key || acceptor key || opener peer id || acceptor peer
  id`` (peer ids as multihash bytes): a 32-byte *tag* and a 32-byte ChaCha20-Poly1305 *key*.
- The opener connects to the port and writes the tag, then records: ``u32 big-endian length ||
  ciphertext`` of one batch body each (the frame bodies of the stream), nonce the record's index
  (12 bytes, little-endian, from 0), no associated data. The acceptor never writes on it.

A tag is good for one connection within a few seconds of the answer; an unknown tag, a record
longer than the stream's frame cap or one that does not decrypt closes the connection. Either end
of the pair (stream or link) closing ends both, and the opener opens a fresh stream later. An
opener that cannot connect keeps writing its batches on the stream.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field

import trio
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

logger = logging.getLogger(__name__)

INFO = b"attrchain/validator-link/1"
KEY_BYTES = 32
TAG_BYTES = 32
OFFER = b"\x01"  # the acceptor's answer when a link waits: OFFER || key (32) || port (2)
OFFER_BYTES = 1 + KEY_BYTES + 2
TAG_OVERHEAD = 16  # Poly1305
LENGTH = struct.Struct(">I")
READ_SIZE = 64 * 1024
MAX_HANDSHAKES = 32  # connections that have not yet shown a good tag, at once


class LinkError(Exception):
    """A link record that cannot be taken: oversized, not decrypting, or the connection ended."""


class LinkKey:
    """One side's ephemeral X25519 key for one link."""

    def __init__(self) -> None:
        self._private = X25519PrivateKey.generate()
        self.public = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def derive(self, theirs: bytes, opener_key: bytes, acceptor_key: bytes, opener_id: bytes,
               acceptor_id: bytes) -> tuple[bytes, bytes]:
        """``(tag, key)`` for this link; raises LinkError on a bad public key."""
        if len(theirs) != KEY_BYTES:
            raise LinkError(f"an X25519 key is {KEY_BYTES} bytes, not {len(theirs)}")
        try:
            secret = self._private.exchange(X25519PublicKey.from_public_bytes(theirs))
        except ValueError as error:  # a low-order point: the secret would be all zeros
            raise LinkError(f"bad X25519 key: {error}") from error
        okm = HKDF(algorithm=hashes.SHA256(), length=TAG_BYTES + KEY_BYTES, salt=None,
                   info=INFO + opener_key + acceptor_key + opener_id + acceptor_id).derive(secret)
        return okm[:TAG_BYTES], okm[TAG_BYTES:]


def nonce(index: int) -> bytes:
    return index.to_bytes(12, "little")


class RecordWriter:
    """Encrypts and writes the records of one link, in order."""

    def __init__(self, stream: trio.SocketStream, key: bytes) -> None:
        self.stream = stream
        self._aead = ChaCha20Poly1305(key)
        self._index = 0

    def seal(self, body: bytes) -> bytes:
        sealed = self._aead.encrypt(nonce(self._index), body, None)
        self._index += 1
        return LENGTH.pack(len(sealed)) + sealed

    async def write(self, body: bytes) -> None:
        await self.stream.send_all(self.seal(body))


class RecordReader:
    """Reads and decrypts the records of one link; the length is checked before the body is read."""

    def __init__(self, stream: trio.SocketStream, key: bytes, max_body_bytes: int) -> None:
        self.stream = stream
        self._aead = ChaCha20Poly1305(key)
        self._index = 0
        self._max = max_body_bytes + TAG_OVERHEAD
        self._buffer = bytearray()
        self._pos = 0
        self.received = False  # whether the last read() waited on the socket (a scheduler trip)

    async def _at_least(self, n: int) -> None:
        while len(self._buffer) - self._pos < n:
            if self._pos:
                del self._buffer[:self._pos]
                self._pos = 0
            data = await self.stream.receive_some(READ_SIZE)
            self.received = True
            if not data:
                raise LinkError("the link closed")
            self._buffer += data

    async def read(self) -> bytes:
        self.received = False
        await self._at_least(LENGTH.size)
        (length,) = LENGTH.unpack_from(self._buffer, self._pos)
        if not TAG_OVERHEAD <= length <= self._max:
            raise LinkError(f"a record of {length} bytes (at most {self._max})")
        self._pos += LENGTH.size
        await self._at_least(length)
        sealed = bytes(self._buffer[self._pos:self._pos + length])
        self._pos += length
        try:
            body = self._aead.decrypt(nonce(self._index), sealed, None)
        except InvalidTag as error:
            raise LinkError(f"record {self._index} does not decrypt") from error
        self._index += 1
        return body


@dataclass
class Pending:
    """A link the acceptor offered and waits for: the stream's task takes the connection."""

    peer: str
    key: bytes
    arrived: trio.Event = field(default_factory=trio.Event)
    done: trio.Event = field(default_factory=trio.Event)
    stream: trio.SocketStream | None = None


class LinkListener:
    """The acceptor's TCP listener: matches each connection's tag to a pending link."""

    def __init__(self, handshake_timeout_s: float, counters: dict[str, int]) -> None:
        self.port = 0
        self._pending: dict[bytes, Pending] = {}
        self._handshakes = 0
        self._timeout = handshake_timeout_s
        self._counters = counters

    def expect(self, tag: bytes, peer: str, key: bytes) -> Pending:
        pending = Pending(peer, key)
        self._pending[tag] = pending
        return pending

    def forget(self, tag: bytes) -> None:
        self._pending.pop(tag, None)

    async def serve(self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = listeners[0].socket.getsockname()[1]
        logger.info("validator links listening on %s:%d", host, self.port)
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        # trio closes the connection when this returns: it waits while the stream's task uses it
        if self._handshakes >= MAX_HANDSHAKES:
            self._counters["links_refused"] += 1
            return
        self._handshakes += 1
        try:
            tag = b""
            with trio.move_on_after(self._timeout):
                tag = await receive_exactly(stream, TAG_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, LinkError):
            tag = b""
        finally:
            self._handshakes -= 1
        pending = self._pending.pop(tag, None) if len(tag) == TAG_BYTES else None
        if pending is None:
            self._counters["links_refused"] += 1
            logger.debug("validator link connection without a known tag closed")
            return
        pending.stream = stream
        pending.arrived.set()
        await pending.done.wait()


async def receive_exactly(stream: trio.SocketStream, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        data = await stream.receive_some(n - len(out))
        if not data:
            raise LinkError("the link closed")
        out += data
    return bytes(out)
