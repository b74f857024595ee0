"""A real dev `Node` object in the test's own trio run: real LevelDB, real libp2p host on 127.0.0.1,
real RPC server, the real consensus driver. Tests feed it peer messages through the same driver
entry points the gossip readers call, as a hostile peer's messages would arrive."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio

from node.app import Node
from node.config import Home, init_dev_home
from netkit import free_base_port


def dev_home(tmp: Path, **p2p: Any) -> Home:
    """A fresh single-validator dev chain on free loopback ports; ``p2p``: [p2p] options set."""
    home = Home(tmp / "home")
    base = free_base_port()
    init_dev_home(home, base + 7, base + 6)
    if p2p:
        config = home.load_config()
        for name, value in p2p.items():
            setattr(config.p2p, name, value)
        home.write_config(config)
    return home


@contextlib.asynccontextmanager
async def running_node(home: Home, **consensus: Any) -> AsyncIterator[Node]:
    """Start ``Node(home)`` with ``consensus`` config overrides; cancel and close it on exit."""
    config = home.load_config()
    for name, value in consensus.items():
        setattr(config.consensus, name, value)
    node = Node(home, config)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        yield node
        nursery.cancel_scope.cancel()


async def wait_for(cond: Any, timeout: float, what: str, poll: float = 0.05) -> None:
    """Wait until ``cond()`` holds, at most ``timeout`` seconds of trio time."""
    with trio.move_on_after(timeout):
        while not cond():
            await trio.sleep(poll)
        return
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
