"""The web explorer every node serves on its RPC port (docs/explorer.md): static files only.

The pages are plain JavaScript modules under ``explorer/static`` (no build step) with uPlot
vendored in ``explorer/static/vendor``; everything they show comes from the node's JSON-RPC and
WebSocket. ``load_static`` reads the files once; the RPC server answers ``GET /`` with
``index.html`` and ``GET /explorer/<name>`` with the others.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def load_static() -> dict[str, tuple[bytes, str]]:
    """Every served file by URL path ("/" for index.html, "/explorer/<relative path>" for the rest)."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        kind = CONTENT_TYPES.get(path.suffix)
        if kind is None or not path.is_file():
            continue
        rel = path.relative_to(STATIC_DIR).as_posix()
        files["/" if rel == "index.html" else f"/explorer/{rel}"] = (path.read_bytes(), kind)
    return files
