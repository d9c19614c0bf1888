"""Encode the Home Depot corpus and queries with splade-tiny, cached under /tmp (not the repo).

Uses prosper's own ``SparseEncoder.from_pretrained`` on the plain ``splade-tiny`` folder (the
same vectors as sentence-transformers' ``SparseEncoder``, the route the dataset README's anchors
used, kept here as ``_encode_st``). The cache records which encoder wrote it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from prosper.sparse import SparseVectors

SHARED = Path(os.environ.get("PROSPER_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
DATA = SHARED / "datasets" / "homedepot"
MODEL = SHARED / "models" / "splade-tiny"
CACHE = Path(os.environ.get("PROSPER_BENCH_CACHE", "/tmp/prosper-search-bench"))


def _save(path: Path, vectors: SparseVectors, info: dict) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}.npz")
    np.savez(tmp, offsets=vectors.offsets, term_ids=vectors.term_ids, weights=vectors.weights,
             ids=np.asarray(vectors.ids), vocab_size=vectors.vocab_size, info=json.dumps(info))
    os.replace(tmp, path)


def _load(path: Path) -> tuple[SparseVectors, dict]:
    z = np.load(path)
    v = SparseVectors(z["ids"].tolist(), z["offsets"], z["term_ids"], z["weights"], int(z["vocab_size"]))
    return v, json.loads(str(z["info"]))


def _texts(path: Path, field_names=("title", "text")) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            ids.append(r["_id"])
            texts.append(" ".join(r.get(f, "") for f in field_names if r.get(f)).strip())
    return ids, texts


def _encode_st(texts, ids, side):
    from sentence_transformers import SparseEncoder

    model = SparseEncoder(str(MODEL), device="cpu")
    fn = model.encode_document if side == "item" else model.encode_query
    parts = []
    for start in range(0, len(texts), 1024):
        emb = fn(texts[start : start + 1024], batch_size=64, convert_to_sparse_tensor=True).coalesce().cpu()
        dense_rows = emb.indices()[0].numpy()
        cols = emb.indices()[1].numpy().astype(np.int32)
        vals = emb.values().float().numpy()
        keep = vals > 0
        n = emb.shape[0]
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(dense_rows[keep], minlength=n), out=offsets[1:])
        parts.append(SparseVectors(ids[start : start + n], offsets, cols[keep], vals[keep], emb.shape[1]))
        print(f"  {side}: {start + n}/{len(texts)}", file=sys.stderr, flush=True)
    return SparseVectors.concat(parts), "sentence-transformers SparseEncoder"


def _encode_prosper(texts, ids, side):
    from prosper.modeling.encoder import SparseEncoder

    enc = SparseEncoder.from_pretrained(MODEL, device="cpu")  # plain SPLADE: max pooling, no LRN/LFW, dot
    return enc.encode(texts, side=side, batch_size=64, ids=ids), "prosper SparseEncoder.from_pretrained"


def encoded(side: str) -> tuple[SparseVectors, dict]:
    """Item (corpus) or query vectors, encoded once and cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{side}.npz"
    if path.exists():
        return _load(path)
    ids, texts = _texts(DATA / ("corpus.jsonl" if side == "item" else "queries.jsonl"))
    start = time.time()
    vectors, how = _encode_prosper(texts, ids, side)
    info = {"encoder": how, "model": str(MODEL), "seconds": time.time() - start}
    _save(path, vectors, info)
    return vectors, info


if __name__ == "__main__":
    for side in ("query", "item"):
        v, info = encoded(side)
        print(side, len(v), "avg nnz", float(v.nnz.mean()), info)
