"""py-libp2p's TCP reads through the buffer of p2p/tcp_read_buffer.py: every byte once, in order,
whatever sizes the readers ask for and however many wait at once; end of stream only after the
buffered bytes; and one socket read serves many small reads (the point of it). The real
connections (Noise, Yamux, js-libp2p interop) run through it in every p2p and network test."""

from __future__ import annotations

import trio
import trio.testing
from libp2p.io.trio import TrioTCPStream

from p2p import tcp_read_buffer


class CountingStream(trio.abc.HalfCloseableStream):
    """A memory stream that counts the reads that reached it."""

    def __init__(self, inner: trio.abc.HalfCloseableStream) -> None:
        self.inner = inner
        self.reads = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        self.reads += 1
        return await self.inner.receive_some(max_bytes)

    async def send_all(self, data: bytes) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_small_reads_are_served_from_one_socket_read_in_order() -> None:
    tcp_read_buffer.install()
    left, right = trio.testing.memory_stream_pair()
    counting = CountingStream(right)
    stream = TrioTCPStream(counting)  # type: ignore[arg-type]
    data = bytes(range(256)) * 40  # 10,240 bytes, written at once
    await left.send_all(data)
    got = bytearray()
    sizes = [2, 150, 1, 12, 4000, 7]
    for size in sizes:
        got += await stream.read(size)
    assert bytes(got) == data[:len(got)] and len(got) == sum(sizes)
    assert counting.reads == 1  # the rest came from the buffer
    got += await stream.read(None)  # whatever is buffered
    assert bytes(got) == data
    await left.send_eof()
    assert await stream.read(100) == b""  # end of stream after the buffered bytes


async def test_readers_waiting_at_once_never_reorder_bytes() -> None:
    tcp_read_buffer.install()
    left, right = trio.testing.memory_stream_pair()
    stream = TrioTCPStream(right)  # type: ignore[arg-type]
    data = bytes(i % 251 for i in range(30_000))
    pieces: list[tuple[int, bytes]] = []
    order = 0

    async def reader(size: int) -> None:
        nonlocal order
        while True:
            chunk = await stream.read(size)
            if not chunk:
                return
            pieces.append((order, chunk))
            order += 1

    async with trio.open_nursery() as nursery:
        for size in (3, 64, 1000):
            nursery.start_soon(reader, size)
        for start in range(0, len(data), 777):  # arrives in pieces, while the readers wait
            await left.send_all(data[start:start + 777])
            await trio.testing.wait_all_tasks_blocked()
        await left.send_eof()
    assert b"".join(chunk for _, chunk in sorted(pieces)) == data
