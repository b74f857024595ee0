"""Fault injection on a running devnet: crashes, freezes, restarts and network partitions.

Every process fault acts on the pid the devnet itself recorded for a node (node<i>/node.pid), and
only after launcher.read_pid has checked that the pid is alive and its command line names that
node's home, so a stale pid file can never make us signal an unrelated process.

Partitions use each node's deny list (RPC `unsafe_set_peer_deny_list`, enabled by the devnet's
`[faults] admin = true`): a node drops every gossip message from a denied peer and refuses its
block-sync requests. Connections stay open, so healing is instant and needs no redial; and since
both sides of a cut deny each other, the cut is symmetric. Loopback has no firewall we could use
without root, which is why the cut is made inside the node (docs/devnet.md).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Sequence

from devnet import launcher
from devnet.launcher import DevnetError, Layout, NodeSpec

log = logging.getLogger(__name__)

DENY_METHOD = "unsafe_set_peer_deny_list"


class FaultError(DevnetError):
    """A fault that cannot be injected: the node is not running, or refuses the admin call."""


def pid_of(layout: Layout, spec: NodeSpec) -> int:
    """The pid of a running node that this devnet started (checked against its command line)."""
    pid = launcher.read_pid(layout, spec)
    if pid is None:
        raise FaultError(f"{spec.name} is not running")
    return pid


def kill9(layout: Layout, spec: NodeSpec) -> None:
    """Crash a node: SIGKILL, no chance to flush or close anything."""
    pid = pid_of(layout, spec)
    log.warning("FAULT: kill -9 %s (pid %d)", spec.name, pid)
    launcher.stop_node(layout, spec, timeout=5.0, sig=signal.SIGKILL)


def stop(layout: Layout, spec: NodeSpec) -> None:
    """Freeze a node (SIGSTOP): its sockets stay open but it answers nothing, like a hung host."""
    pid = pid_of(layout, spec)
    log.warning("FAULT: SIGSTOP %s (pid %d)", spec.name, pid)
    os.kill(pid, signal.SIGSTOP)


def cont(layout: Layout, spec: NodeSpec) -> None:
    """Resume a node frozen by ``stop``."""
    pid = pid_of(layout, spec)
    log.warning("FAULT: SIGCONT %s (pid %d)", spec.name, pid)
    os.kill(pid, signal.SIGCONT)


def terminate(layout: Layout, specs: Sequence[NodeSpec], timeout: float = 15.0) -> None:
    """SIGTERM every node in ``specs`` at once, then wait for each (SIGKILL after ``timeout``)."""
    pids = {spec.name: pid_of(layout, spec) for spec in specs}
    for spec in specs:
        os.kill(pids[spec.name], signal.SIGCONT)  # a frozen node must run to handle SIGTERM
        os.kill(pids[spec.name], signal.SIGTERM)
    for spec in specs:
        launcher.stop_node(layout, spec, timeout=timeout)


def restart(layout: Layout, spec: NodeSpec, timeout: float = 15.0) -> int:
    """Stop a node cleanly if it runs (SIGTERM), then start it again; returns the new pid."""
    pid = launcher.read_pid(layout, spec)
    if pid is not None:
        os.kill(pid, signal.SIGCONT)
        launcher.stop_node(layout, spec, timeout=timeout)
    return launcher.start_node(layout, spec)


def start(layout: Layout, spec: NodeSpec) -> int:
    """Start a node that is not running (after ``kill9``); returns its pid."""
    return launcher.start_node(layout, spec)


def set_deny_list(spec: NodeSpec, peers: Sequence[str], timeout: float = 5.0) -> list[str]:
    """Make ``spec`` drop every message from ``peers`` (peer ids); an empty list heals it."""
    result = launcher.rpc_call(spec.rpc, DENY_METHOD, {"peers": sorted(peers)}, timeout)
    if sorted(result) != sorted(peers):
        raise FaultError(f"{spec.name} answered deny list {result}, asked for {sorted(peers)}")
    return list(result)


def partition(layout: Layout, groups: Sequence[Sequence[int]]) -> None:
    """Split the devnet into ``groups`` of node indexes; a node hears only its own group.

    Nodes in no group are cut off from everyone. Raises FaultError if any node refuses.
    """
    where: dict[int, int] = {}
    for g, members in enumerate(groups):
        for index in members:
            if index in where:
                raise FaultError(f"node{index} is in two groups")
            where[index] = g
    def hears(a: int, b: int) -> bool:
        return a == b or (a in where and where.get(b) == where[a])

    for spec in layout.nodes:
        set_deny_list(spec, [o.peer_id for o in layout.nodes if not hears(spec.index, o.index)])
    log.warning("FAULT: partitioned into %s", [sorted(g) for g in groups])


def heal(layout: Layout) -> None:
    """Undo ``partition`` on every running node."""
    for spec in layout.nodes:
        set_deny_list(spec, [])
    log.warning("FAULT: partition healed")
