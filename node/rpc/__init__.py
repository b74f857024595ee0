"""JSON-RPC 2.0 + WebSocket API of the node (DESIGN section 6). Entry point: ``serve_rpc``."""

from node.rpc.server import serve_rpc

__all__ = ["serve_rpc"]
