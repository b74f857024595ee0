"""Benchmark: CPU per small frame on one libp2p stream (Noise + Yamux over TCP), each side.

    .venv/bin/python bench/p2p_frames.py [--frames 4000] [--size 160] [--runs 2]

Two real processes on 127.0.0.1: a listener and a dialer with one stream between them; the dialer
writes ``--frames`` frames of ``--size`` bytes one at a time (a scheduler turn between two, as
separate consensus messages go), the listener reads them with the project's ``FrameReader``. Each
process reports its own CPU time per frame. Run with py-libp2p's TCP reads as shipped and with
``p2p/tcp_read_buffer.py`` installed (the node's default), and, for reference, the same frames as
length-prefixed ChaCha20-Poly1305 records on a bare trio TCP stream (no Yamux, no multistream, no
handshake: what a dedicated validator link would cost per frame), ``--runs`` times each, alternating.
First line: this machine's one-core Ed25519 verify rate in the same run (the ceiling the figures
are read against). The LAST line is JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.measure import ed25519_verify_rate  # noqa: E402

PROTOCOL = "/attrchain-bench/frames/1"
BARE_KEY = b"\x07" * 32  # the reference mode's fixed key (no handshake: only the per-frame cost)
TIMEOUT_S = 120.0


def _setup(buffered: bool) -> None:
    import logging

    logging.disable(logging.CRITICAL)
    from p2p import tcp_read_buffer, yamux_credit

    yamux_credit.install()  # as in a node
    if buffered:
        tcp_read_buffer.install()


def _listener(port: int, frames: int, buffered: bool, out: Any) -> None:
    _setup(buffered)
    import multiaddr
    import trio
    from libp2p import new_host
    from libp2p.custom_types import TProtocol

    from p2p.framing import FrameReader
    from p2p.identity import key_pair_from_seed

    async def main() -> None:
        addr = multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")
        host = new_host(key_pair=key_pair_from_seed(b"\x01" * 32), listen_addrs=[addr])
        done = trio.Event()

        async def handle(stream: Any) -> None:
            reader = FrameReader(stream)
            await reader.read_frame(1 << 20)  # the first frame: warm-up
            cpu0 = time.process_time()
            for _ in range(frames):
                await reader.read_frame(1 << 20)
            out.put(("recv_us", (time.process_time() - cpu0) / frames * 1e6))
            done.set()

        host.set_stream_handler(TProtocol(PROTOCOL), handle)
        async with host.run(listen_addrs=[addr]):
            out.put(("id", host.get_id().to_string()))
            with trio.move_on_after(TIMEOUT_S):
                await done.wait()

    trio.run(main)


def _dialer(port: int, peer: str, frames: int, size: int, buffered: bool, out: Any) -> None:
    _setup(buffered)
    import multiaddr
    import trio
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr

    from p2p.framing import write_frame
    from p2p.identity import key_pair_from_seed

    async def main() -> None:
        host = new_host(key_pair=key_pair_from_seed(b"\x02" * 32))
        async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            info = info_from_p2p_addr(multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer}"))
            with trio.fail_after(TIMEOUT_S):
                await host.connect(info)
                stream = await host.new_stream(info.peer_id, [TProtocol(PROTOCOL)])
                payload = os.urandom(size)
                await write_frame(stream, payload)
                cpu0 = time.process_time()
                for _ in range(frames):
                    await write_frame(stream, payload)
                    await trio.sleep(0)
                out.put(("send_us", (time.process_time() - cpu0) / frames * 1e6))
                await trio.sleep(1.0)  # let the listener read the last frames before the stream goes

    trio.run(main)


def _bare_listener(port: int, frames: int, out: Any) -> None:
    """Reference: length-prefixed ChaCha20-Poly1305 frames on a bare trio TCP stream."""
    import struct

    import trio
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    aead = ChaCha20Poly1305(BARE_KEY)

    async def main() -> None:
        done = trio.Event()

        async def handle(stream: trio.SocketStream) -> None:
            buf = bytearray()
            nonce = got = 0
            cpu0 = 0.0
            while got <= frames:
                data = await stream.receive_some(65536)
                if not data:
                    break
                buf += data
                while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                    n = struct.unpack(">H", buf[:2])[0]
                    aead.decrypt(nonce.to_bytes(12, "little"), bytes(buf[2:2 + n]), None)
                    del buf[:2 + n]
                    nonce += 1
                    got += 1
                    if got == 1:  # the first frame: warm-up
                        cpu0 = time.process_time()
            out.put(("recv_us", (time.process_time() - cpu0) / frames * 1e6))
            done.set()

        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
            nursery.start_soon(trio.serve_listeners, handle, listeners)
            out.put(("id", ""))
            with trio.move_on_after(TIMEOUT_S):
                await done.wait()
            nursery.cancel_scope.cancel()

    trio.run(main)


def _bare_dialer(port: int, frames: int, size: int, out: Any) -> None:
    import struct

    import trio
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    aead = ChaCha20Poly1305(BARE_KEY)

    async def main() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        payload = os.urandom(size)
        lock = trio.Lock()
        nonce = 0

        async def send() -> None:
            nonlocal nonce
            async with lock:  # one writer at a time, as a real link needs
                sealed = aead.encrypt(nonce.to_bytes(12, "little"), payload, None)
                nonce += 1
                await stream.send_all(struct.pack(">H", len(sealed)) + sealed)

        await send()
        cpu0 = time.process_time()
        for _ in range(frames):
            await send()
            await trio.sleep(0)
        out.put(("send_us", (time.process_time() - cpu0) / frames * 1e6))
        await trio.sleep(1.0)

    trio.run(main)


def run_once(frames: int, size: int, buffered: bool, bare: bool = False) -> dict[str, float]:
    from p2p._testharness import free_ports

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = free_ports(1)[0]
    if bare:
        listener = ctx.Process(target=_bare_listener, args=(port, frames, out), daemon=True)
    else:
        listener = ctx.Process(target=_listener, args=(port, frames, buffered, out), daemon=True)
    listener.start()
    kind, peer = out.get(timeout=TIMEOUT_S)
    assert kind == "id"
    if bare:
        dialer = ctx.Process(target=_bare_dialer, args=(port, frames, size, out), daemon=True)
    else:
        dialer = ctx.Process(target=_dialer, args=(port, peer, frames, size, buffered, out), daemon=True)
    dialer.start()
    got = dict(out.get(timeout=TIMEOUT_S) for _ in range(2))
    for proc in (dialer, listener):
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    return {"send_us": round(got["send_us"], 1), "recv_us": round(got["recv_us"], 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4000)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    verify = ed25519_verify_rate(1)
    print(f"ed25519 verify/s, one process: {verify:,.0f}", flush=True)
    results: dict[str, list[dict[str, float]]] = {"as_shipped": [], "buffered": [], "bare_tcp_aead": []}
    for run in range(args.runs):
        for mode in results:
            r = run_once(args.frames, args.size, mode == "buffered", bare=mode == "bare_tcp_aead")
            results[mode].append(r)
            print(f"run {run + 1}/{args.runs}, {mode:10s}: {args.frames} frames of {args.size} bytes: "
                  f"sender {r['send_us']} us/frame, receiver {r['recv_us']} us/frame (CPU)", flush=True)
    print(json.dumps({"ed25519_verify_per_s": round(verify), "frames": args.frames, "size": args.size, **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
