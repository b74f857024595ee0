"""`attrchain model build`: collect the accepted contributions of a datanet mix and build the
infini-gram model; write the suffix array, the corpus and a manifest of its provenance.

Contributions are found by scanning committed `contribute` transactions (`tx_search`) and kept
when `contribution` says accepted. Their text is the transaction's own `content` when the chain
carries it; on a chain whose contributions carry only a content hash, `--texts DIR` supplies the
files, each matched by its sha256.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

import sdk
from refmodel.infinigram import Doc, Model

log = logging.getLogger(__name__)
FORMAT = "attrchain-infinigram/1"
MANIFEST = "manifest.json"


class BuildError(Exception):
    pass


def parse_mix(items: list[str]) -> list[tuple[str, int]]:
    """['0xID[:weight_bps]', ...] -> [(id, bps)]; weights left out share what is left equally."""
    mix: list[tuple[str, int | None]] = []
    for item in items:
        ident, _, w = item.partition(":")
        try:
            raw = bytes.fromhex(ident[2:]) if ident.startswith("0x") else b""
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise BuildError(f"--datanet {item}: expected 0x + 64 hex digits[:weight_bps]")
        mix.append(("0x" + raw.hex(), int(w) if w else None))
    given = sum(w for _, w in mix if w is not None)
    free = [i for i, (_, w) in enumerate(mix) if w is None]
    rest = 10_000 - given
    if rest < 0 or (not free and rest != 0):
        raise BuildError(f"datanet weights must sum to 10000 basis points (they sum to {given})")
    out = []
    for i, (d, w) in enumerate(mix):
        if w is None:
            share = rest // len(free) + (1 if free.index(i) < rest % len(free) else 0)
            w = share
        out.append((d, w))
    return out  # type: ignore[return-value]


def _texts_by_hash(directory: Path | None) -> dict[str, bytes]:
    if directory is None:
        return {}
    out = {}
    for p in sorted(directory.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            out["0x" + hashlib.sha256(data).hexdigest()] = data
    return out


def accepted_contributions(client: sdk.Client, datanets: set[str], texts: dict[str, bytes]) -> list[dict[str, Any]]:
    """Every accepted contribution of ``datanets`` with its text, in commit order."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] | None = {"min_height": 1, "order": "asc", "per_page": 100}
    scans = 0
    while params is not None:
        scans += 1
        if scans > 100_000:  # pragma: no cover - a bound on a runaway scan
            raise BuildError("tx_search did not end")
        page = client.call("tx_search", params)
        for t in page["txs"]:
            d = t.get("decoded") or {}
            body = d.get("body") or {}
            if d.get("kind") != "contribute" or body.get("datanet") not in datanets or t["result"]["code"] != 0:
                continue
            c = client.contribution(t["hash"])
            if c["status"] != "accepted":
                continue
            if "content" in body:
                text = bytes.fromhex(body["content"][2:])
            else:
                text = texts.get(c["content_hash"])  # type: ignore[assignment]
                if text is None:
                    log.warning("contribution %s: no text for content hash %s (give --texts DIR); skipped",
                                t["hash"], c["content_hash"])
                    continue
            found.append({"id": t["hash"], "datanet": body["datanet"], "content_hash":
                          "0x" + hashlib.sha256(text).hexdigest(), "text": text, "height": t["height"]})
        params = page.get("next")
        log.info("scanned to height %s: %d accepted contribution(s)", (page["txs"][-1]["height"] if page["txs"]
                                                                       else "-"), len(found))
    return found


def build(client: sdk.Client, mix: list[tuple[str, int]], out: Path, name: str = "refmodel",
          texts_dir: Path | None = None) -> dict[str, Any]:
    weights = dict(mix)
    contribs = accepted_contributions(client, set(weights), _texts_by_hash(texts_dir))
    if not contribs:
        raise BuildError("no accepted contribution with a known text in these datanets")
    model = Model.build([(c["id"], c["datanet"], c["text"]) for c in contribs], weights)
    out.mkdir(parents=True, exist_ok=True)
    (out / "corpus.bin").write_bytes(model.corpus)
    np.save(out / "sa.npy", model.sa)
    docs = [{"id": d.id, "datanet": d.datanet, "start": d.start, "end": d.end} for d in model.docs]
    (out / "docs.json").write_text(json.dumps(docs))
    status = client.status()
    manifest = {
        "format": FORMAT,
        "name": name,
        "chain_id": status["chain_id"],
        "height": status["sync_info"]["latest_block_height"],
        "datanets": [{"id": d, "weight_bps": w} for d, w in mix],
        "contributions": [{"id": c["id"], "datanet": c["datanet"], "content_hash": c["content_hash"]}
                          for c in contribs],
        "corpus_sha256": "0x" + hashlib.sha256(model.corpus).hexdigest(),
        "suffix_array_sha256": "0x" + hashlib.sha256(model.sa.tobytes()).hexdigest(),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def manifest_digest(path: Path) -> str:
    return "0x" + hashlib.sha256(path.read_bytes()).hexdigest()


def load(directory: Path) -> tuple[Model, dict[str, Any]]:
    manifest = json.loads((directory / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise BuildError(f"{directory}: not a {FORMAT} model")
    corpus = (directory / "corpus.bin").read_bytes()
    if "0x" + hashlib.sha256(corpus).hexdigest() != manifest["corpus_sha256"]:
        raise BuildError(f"{directory}/corpus.bin does not match the manifest")
    sa = np.load(directory / "sa.npy")
    docs = [Doc(**d) for d in json.loads((directory / "docs.json").read_text())]
    weights = {d["id"]: int(d["weight_bps"]) for d in manifest["datanets"]}
    return Model(corpus, sa, docs, weights), manifest
