"""Request/response over one Yamux stream per request.

Wire (both directions are frames from ``p2p.framing``):
- requester -> responder: ``uvarint(len) || request``, then the requester half-closes;
- responder -> requester: ``status (1 byte) || uvarint(len) || body``, then the responder closes.
  Status 0 is success and the body is the response; any other status is an error and the body is
  a short UTF-8 reason.

Every wait is bounded: the requester by one ``trio.fail_after`` around dial, send and the full
response; the responder by a read timeout, a handler timeout and a write timeout.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID
from libp2p.protocol_muxer.exceptions import MultiselectClientError

from p2p.errors import (
    P2PError,
    ProtocolNotSupported,
    RemoteError,
    RequestRejected,
    RequestTimeout,
    RequestTooLarge,
    ResponseTooLarge,
    TransportError,
)
from p2p.framing import FrameError, FrameReader, FrameTooLarge, write_frame

logger = logging.getLogger(__name__)

RequestHandler = Callable[[str, bytes], Awaitable[bytes]]
"""``await handler(requester_peer_id, request) -> response``; raise ``RequestRejected`` to refuse."""

MAX_REASON_BYTES = 1024
CLEANUP_TIMEOUT = 1.0


class Status(enum.IntEnum):
    OK = 0
    REJECTED = 1
    INTERNAL_ERROR = 2
    REQUEST_TOO_LARGE = 3
    RESPONSE_TOO_LARGE = 4
    BUSY = 5
    TIMEOUT = 6


@dataclass(frozen=True)
class ReqRespLimits:
    """Size caps and timeouts of the request/response protocols (both roles)."""

    max_request_bytes: int = 1024 * 1024
    max_response_bytes: int = 16 * 1024 * 1024
    read_timeout: float = 10.0
    handler_timeout: float = 20.0
    write_timeout: float = 30.0
    max_concurrent_inbound: int = 32
    # one peer may hold this many of those slots, so a peer that opens requests and never reads
    # the answers (each held up to write_timeout) cannot make the responder busy for everyone
    max_concurrent_per_peer: int = 4


async def _reset_quietly(stream: INetStream | None) -> None:
    if stream is None:
        return
    # Shielded so a cancelled request still tells the peer to stop sending.
    with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT):
        try:
            await stream.reset()
        except BaseLibp2pError as error:
            logger.debug("stream reset failed: %s", error)


async def _close_quietly(stream: INetStream) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT):
        try:
            await stream.close()
        except BaseLibp2pError as error:
            logger.debug("stream close failed: %s", error)


def _is_protocol_refusal(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, MultiselectClientError):
            return True
        seen = seen.__cause__
    return False


async def send_request(
    host: IHost,
    peer_id: str,
    protocol: str,
    payload: bytes,
    *,
    timeout: float,
    max_request_bytes: int,
    max_response_bytes: int,
    deadline: float | None = None,
) -> bytes:
    """Send one request and return the response body; every failure is a ``P2PError``.

    Everything (stream open, request, full response) must finish within ``timeout`` seconds, or
    by ``deadline`` (trio clock) when the caller already spent part of ``timeout`` dialling.
    """
    if len(payload) > max_request_bytes:
        raise RequestTooLarge(
            f"request of {len(payload)} bytes exceeds the cap of {max_request_bytes} bytes"
        )
    stream: INetStream | None = None
    succeeded = False
    try:
        with trio.fail_at(trio.current_time() + timeout if deadline is None else deadline):
            stream = await host.new_stream(ID.from_base58(peer_id), [TProtocol(protocol)])
            await write_frame(stream, payload)
            await stream.close_write()
            reader = FrameReader(stream)
            status = (await reader.read_exact(1))[0]
            if status != Status.OK:
                reason = await reader.read_frame(MAX_REASON_BYTES)
                raise RemoteError(status, reason.decode("utf-8", "replace"))
            body = await reader.read_frame(max_response_bytes)
        succeeded = True
        return body
    except trio.TooSlowError as error:
        raise RequestTimeout(
            f"request {protocol} to {peer_id} timed out after {timeout} s"
        ) from error
    except FrameTooLarge as error:
        raise ResponseTooLarge(
            f"response from {peer_id} on {protocol} is {error.length} bytes, "
            f"over the cap of {error.cap} bytes"
        ) from error
    except FrameError as error:
        raise TransportError(f"malformed response from {peer_id} on {protocol}: {error}") from error
    except (BaseLibp2pError, OSError) as error:
        if stream is None and _is_protocol_refusal(error):
            raise ProtocolNotSupported(f"peer {peer_id} does not serve {protocol}") from error
        raise TransportError(
            f"request {protocol} to {peer_id} failed: {type(error).__name__}: {error}"
        ) from error
    finally:
        if stream is not None:
            if succeeded:
                await _close_quietly(stream)
            else:
                await _reset_quietly(stream)


class RequestServer:
    """Serves inbound request streams of one protocol with one handler, within ``limits``."""

    def __init__(
        self,
        protocol: str,
        handler: RequestHandler,
        limits: ReqRespLimits,
        is_banned: Callable[[str], bool] = lambda peer_id: False,
    ) -> None:
        self.protocol = protocol
        self._is_banned = is_banned
        self._handler = handler
        self._limits = limits
        self._slots = trio.Semaphore(limits.max_concurrent_inbound)
        self._per_peer: dict[str, int] = {}
        self.served = 0
        self.refused = 0

    async def handle_stream(self, stream: INetStream) -> None:
        """libp2p stream handler: never raises (a raise here would tear down the connection)."""
        peer_id = stream.muxed_conn.peer_id.to_base58()
        if self._is_banned(peer_id):
            self.refused += 1
            await self._answer_error(stream, Status.REJECTED, "banned")
            return
        held = self._per_peer.get(peer_id, 0)
        if held >= self._limits.max_concurrent_per_peer:
            self.refused += 1
            await self._answer_error(stream, Status.BUSY, "too many concurrent requests from you")
            return
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            self.refused += 1
            await self._answer_error(stream, Status.BUSY, "too many concurrent requests")
            return
        self._per_peer[peer_id] = held + 1
        try:
            await self._serve(stream, peer_id)
        except BaseLibp2pError as error:
            logger.info("request %s from %s: stream failed: %s", self.protocol, peer_id, error)
            await _reset_quietly(stream)
        finally:
            self._slots.release()
            left = self._per_peer[peer_id] - 1
            if left:
                self._per_peer[peer_id] = left
            else:
                del self._per_peer[peer_id]

    async def _serve(self, stream: INetStream, peer_id: str) -> None:
        limits = self._limits
        reader = FrameReader(stream)
        try:
            with trio.fail_after(limits.read_timeout):
                request = await reader.read_frame(limits.max_request_bytes)
        except FrameTooLarge as error:
            self.refused += 1
            await self._answer_error(stream, Status.REQUEST_TOO_LARGE, str(error))
            return
        except (trio.TooSlowError, FrameError) as error:
            logger.info("request %s from %s: bad or slow request: %r", self.protocol, peer_id, error)
            await _reset_quietly(stream)
            return
        status, body = await self._call_handler(peer_id, request)
        if status == Status.OK and len(body) > limits.max_response_bytes:
            status, body = Status.RESPONSE_TOO_LARGE, (
                f"response of {len(body)} bytes exceeds the responder's cap of "
                f"{limits.max_response_bytes} bytes"
            ).encode()
        if status != Status.OK:
            await self._answer_error(stream, status, body.decode("utf-8", "replace"))
            return
        try:
            with trio.fail_after(limits.write_timeout):
                await write_frame(stream, body, head=bytes([Status.OK]))
        except trio.TooSlowError:
            logger.info("request %s from %s: response write timed out", self.protocol, peer_id)
            await _reset_quietly(stream)
            return
        self.served += 1
        await _close_quietly(stream)

    async def _call_handler(self, peer_id: str, request: bytes) -> tuple[Status, bytes]:
        try:
            with trio.fail_after(self._limits.handler_timeout):
                response = await self._handler(peer_id, request)
        except RequestRejected as error:
            return Status.REJECTED, str(error).encode()
        except trio.TooSlowError:
            return Status.TIMEOUT, b"handler timed out"
        except P2PError as error:
            return Status.REJECTED, str(error).encode()
        except Exception:
            # The requester only learns "internal error"; the details stay in our log.
            logger.exception("request %s from %s: handler failed", self.protocol, peer_id)
            return Status.INTERNAL_ERROR, b"internal error"
        if not isinstance(response, (bytes, bytearray, memoryview)):
            logger.error("request %s: handler returned %s, not bytes", self.protocol, type(response))
            return Status.INTERNAL_ERROR, b"internal error"
        return Status.OK, bytes(response)

    async def _answer_error(self, stream: INetStream, status: Status, reason: str) -> None:
        encoded = reason.encode("utf-8")[:MAX_REASON_BYTES]
        try:
            with trio.fail_after(self._limits.write_timeout):
                await write_frame(stream, encoded, head=bytes([status]))
        except (trio.TooSlowError, BaseLibp2pError) as error:
            logger.debug("could not send error status to requester: %r", error)
            await _reset_quietly(stream)
            return
        await _close_quietly(stream)
