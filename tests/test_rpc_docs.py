"""docs/rpc.md is generated from the method table and must match it."""

from __future__ import annotations

from node.rpc.docs import DOC_PATH, render
from node.rpc.errors import ERROR_CODES
from node.rpc.methods import METHODS


def test_docs_match_the_method_table() -> None:
    text = render()
    assert DOC_PATH.read_text() == text, "docs/rpc.md is stale: run python -m node.rpc.docs"
    for name, m in METHODS.items():
        assert f"### `{name}`" in text
        for p in m.params:
            assert f"`{p.name}`" in text
    for code, _, _ in ERROR_CODES:
        assert f"| {code} |" in text


def test_every_method_of_the_design_is_in_the_table() -> None:
    design = ("health status net_info genesis validators block block_by_hash commit blockchain tx tx_search "
              "unconfirmed_txs broadcast_tx_sync broadcast_tx_async broadcast_tx_commit abci_query account "
              "datanet contribution model adapter agent inference attribution rewards subscribe unsubscribe").split()
    assert set(design) <= set(METHODS)
    for name in design:
        m = METHODS[name]
        assert (m.handler is None) == m.ws_only, name
