"""Worker processes for CPU work off the event loop (block-sync and transaction signature checks).

One constructor for every pool: ``spawn`` (forking a process that runs trio and libp2p threads is
not safe), and workers that exit when the node does. A pool's workers hold both ends of its call
queue, so a node killed with SIGKILL left them blocked on it for good; each worker now watches its
parent and exits within a second of it going away.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from state.codec import CodecError
from state.tx import Tx, decode_tx

PARENT_CHECK_S = 1.0
WORKER_NICE = 5  # workers yield the CPU to the node's own process (consensus, RPC) on a busy machine


def _worker_init(parent: int) -> None:
    """Lower priority (what waits in a worker can wait; consensus on the node's loop cannot), and
    exit with the parent."""
    try:
        os.nice(WORKER_NICE)
    except OSError:  # not allowed here: run at the node's priority
        pass

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_S)
            if os.getppid() != parent:
                os._exit(0)  # the node is gone: nobody will ever read this worker's results

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool of ``workers`` spawned workers that end when this process ends, however."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(os.getpid(),))


def verified_hashes_of(chain_id: str, raws: list[bytes]) -> list[bytes]:
    """(In a worker process.) Hashes of the transactions whose signature verifies for ``chain_id``;
    undecodable ones are left out (the applying side rejects them with the reason)."""
    return [tx.hash for tx in verified_txs_of(chain_id, raws)]


def verified_txs_of(chain_id: str, raws: list[bytes]) -> list[Tx]:
    """(In a thread of the node.) The transactions whose signature verifies for ``chain_id``,
    decoded and with their sender's address computed: the pool admits them without decoding again
    (``Mempool.mark_verified_txs``)."""
    out = []
    for raw in raws:
        try:
            tx = decode_tx(raw)
        except CodecError:
            continue
        if tx.has_valid_signature(chain_id):
            tx.sender  # noqa: B018 - computed once, here, off the event loop's turn
            out.append(tx)
    return out
