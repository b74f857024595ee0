"""Test helper process: commits blocks of transfers to a LevelDB store as fast as it can.

Run as `python tests/atomic_writer.py DB_DIR`. Prints "ready" once, then "committed H" after each
block is durably written. tests/test_atomic_commit.py SIGKILLs it at random moments.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import VALIDATOR_KEY, make_genesis  # noqa: E402
from state.accounts import get_account  # noqa: E402
from state.chain import Chain  # noqa: E402
from state.crypto import PrivateKey  # noqa: E402
from state.store import StateDB  # noqa: E402
from state.tx import Transfer, sign_tx  # noqa: E402

CHAIN_ID = "attrchain-kill"
SENDERS = [PrivateKey.from_int(100 + i) for i in range(8)]


def main() -> None:
    db = StateDB(sys.argv[1])
    chain = Chain(db)
    chain.init_genesis(make_genesis(CHAIN_ID, {k.address: 10**12 for k in SENDERS}))
    print("ready", flush=True)
    while True:
        h = chain.height + 1
        view = db.view()
        txs = []
        for s_i, s in enumerate(SENDERS):
            nonce = get_account(view, s.address).nonce
            for j in range(25):
                to = PrivateKey.from_int(10_000 + (h * 7 + s_i * 31 + j) % 500).address
                txs.append(sign_tx(s, CHAIN_ID, nonce + j, Transfer(to, 1 + j), 1).raw)
        ex = chain.build_block(tuple(txs), 10_000 + h, VALIDATOR_KEY.address)
        chain.commit(ex.block, ex)
        print(f"committed {h}", flush=True)


if __name__ == "__main__":
    main()
