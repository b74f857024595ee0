"""attrchain Python SDK (import as ``sdk``): docs/sdk.md.

``Client`` has a typed call for every JSON-RPC method and builds, signs, submits and proves;
``make_body`` builds any transaction kind from the tx kind table.
"""

from sdk.client import (
    CREATES,
    DEFAULT_RPC,
    Client,
    ProofError,
    RPCError,
    SDKError,
    TxFailed,
    Unreachable,
    Verified,
    load_key,
)
from sdk.txbuild import DEFAULTS, TxBuildError, fields, kinds, make_body

__all__ = ["CREATES", "DEFAULTS", "DEFAULT_RPC", "Client", "ProofError", "RPCError", "SDKError", "TxBuildError",
           "TxFailed", "Unreachable", "Verified", "fields", "kinds", "load_key", "make_body"]
