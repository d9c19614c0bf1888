"""The Python API behind ``prosper index`` and ``prosper search`` (the CLI only parses options)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from prosper.errors import ConfigError
from prosper.sparse import SparseVectors


def build_index_from_file(
    input_path: str | Path,
    output: str | Path,
    searcher_spec=None,
    overwrite: bool = False,
    registry=None,
) -> dict:
    """Read exported item vectors (Parquet file or shard folder), index them and save the index.

    ``searcher_spec`` is a ``{name, ...params}`` spec (default ``{name: exact}``). Returns a
    summary: items, vocabulary size, non-zeros, seconds, folder.
    """
    from prosper.export.parquet import read_parquet_vectors

    if registry is None:
        from prosper.plugins import get_registry

        registry = get_registry()
    searcher = registry.build("searcher", searcher_spec or {"name": "exact"}, where="search.searcher")
    start = time.perf_counter()
    items, meta = read_parquet_vectors(input_path)
    side = meta.get("side")
    if side not in (None, "item"):
        raise ConfigError(f"{input_path}: these vectors were encoded as side={side!r}; index item vectors")
    extra = {k: v for k, v in meta.items() if k not in ("vocabulary",)}
    extra["source"] = str(input_path)
    index = searcher.build(items, vocabulary=meta.get("vocabulary"), metadata=extra)
    index.save(output, overwrite=overwrite)
    return {
        "searcher": getattr(searcher, "name", type(searcher).__name__),
        "items": len(items),
        "vocab_size": items.vocab_size,
        "nnz": int(len(items.term_ids)),
        "avg_item_nnz": float(items.nnz.mean()) if len(items) else 0.0,
        "seconds": time.perf_counter() - start,
        "output": str(output),
    }


def load_query_vectors(path: str | Path) -> SparseVectors:
    """Query vectors exported by ``prosper infer`` (Parquet file or shard folder)."""
    from prosper.export.parquet import read_parquet_vectors

    vectors, meta = read_parquet_vectors(path)
    if meta.get("side") not in (None, "query"):
        raise ConfigError(f"{path}: these vectors were encoded as side={meta.get('side')!r}; give query vectors")
    return vectors


def encode_texts(encoder, texts: Sequence[str], ids: Sequence[str], side: str, batch_size: int = 64, progress=False):
    """Encode with a :class:`prosper.modeling.encoder.SparseEncoder` into :class:`SparseVectors`."""
    return encoder.encode(list(texts), side=side, batch_size=batch_size, ids=list(ids), show_progress=progress)


def resolve_scoring(explicit: str | None, settings_scoring: str | None, encoder=None) -> str:
    """--scoring > search.scoring > the checkpoint's model.scoring > query_l2 (Eq. 11 default)."""
    if explicit:
        return explicit
    if settings_scoring:
        return settings_scoring
    model_settings = getattr(encoder, "settings", None)
    return getattr(model_settings, "scoring", None) or "query_l2"
