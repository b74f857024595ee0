"""JSON-RPC 2.0 + WebSocket API of the node (DESIGN section 6). Entry point:
``node.rpc.server.serve_rpc``. Nothing is imported here: the RPC front process (node/rpc/front.py)
imports only the HTTP side (node/rpc/http.py), not the dispatcher and its method table."""
