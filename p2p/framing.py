"""Length-prefixed frames over a libp2p stream (request/response wire format).

A frame is ``uvarint(length) || bytes`` (unsigned LEB128, the multiformats varint that libp2p's
own length-prefixed protocols and js ``it-length-prefixed`` use). The length is checked against the
reader's cap *before* any body byte is read, so an oversize frame costs the reader nothing.
"""

from __future__ import annotations

from typing import Protocol

MAX_VARINT_BYTES = 9  # enough for 2**63 - 1; longer prefixes are malformed
WRITE_CHUNK_BYTES = 256 * 1024


class FrameError(ValueError):
    """A malformed frame: bad varint, or the stream ended inside a frame."""


class FrameTooLarge(ValueError):
    """A frame whose announced length is over the reader's cap."""

    def __init__(self, length: int, cap: int) -> None:
        super().__init__(f"frame of {length} bytes exceeds the cap of {cap} bytes")
        self.length = length
        self.cap = cap


class ByteStream(Protocol):
    async def read(self, n: int | None = None) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


def encode_uvarint(value: int) -> bytes:
    """Unsigned LEB128 encoding of a non-negative integer."""
    if value < 0:
        raise ValueError("uvarint must be non-negative")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class FrameReader:
    """Reads exact byte counts, varints and frames from a stream, keeping any read-ahead."""

    def __init__(self, stream: ByteStream, read_size: int = 64 * 1024) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._read_size = read_size

    async def _fill(self) -> None:
        # libp2p streams signal end of stream by raising or by returning b"".
        data = await self._stream.read(self._read_size)
        if not data:
            raise FrameError("stream ended inside a frame")
        self._buffer += data

    async def read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            await self._fill()
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    async def read_uvarint(self) -> int:
        value = 0
        for index in range(MAX_VARINT_BYTES):
            byte = (await self.read_exact(1))[0]
            value |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                if index > 0 and byte == 0:
                    raise FrameError("non-minimal varint length prefix")
                return value
        raise FrameError("varint length prefix longer than 9 bytes")

    async def read_frame(self, cap: int) -> bytes:
        """One frame; raises ``FrameTooLarge`` before reading the body if its length > cap."""
        length = await self.read_uvarint()
        if length > cap:
            raise FrameTooLarge(length, cap)
        return await self.read_exact(length)


async def write_frame(stream: ByteStream, payload: bytes, head: bytes = b"") -> None:
    """Write ``head || uvarint(len(payload)) || payload`` in bounded chunks.

    Chunking keeps one write from holding a multi-megabyte buffer and lets Yamux flow control
    pace the transfer against the reader.
    """
    view = memoryview(payload)
    first = head + encode_uvarint(len(payload)) + bytes(view[:WRITE_CHUNK_BYTES])
    await stream.write(first)
    for start in range(WRITE_CHUNK_BYTES, len(payload), WRITE_CHUNK_BYTES):
        await stream.write(bytes(view[start : start + WRITE_CHUNK_BYTES]))
