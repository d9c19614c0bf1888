"""The Python API behind ``prosper index`` and ``prosper search`` (the CLI only parses options)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from prosper.errors import ConfigError, InputError
from prosper.registry import spec_dict
from prosper.sparse import SparseVectors

#: Where ``prosper index --corpus`` saves the BM25 channel, inside the index folder.
BM25_DIR = "bm25"


def build_index_from_file(
    input_path: str | Path,
    output: str | Path,
    searcher_spec=None,
    overwrite: bool = False,
    registry=None,
    corpus: str | Path | None = None,
    corpus_options: dict | None = None,
) -> dict:
    """Read exported item vectors (Parquet file or shard folder), index them and save the index.

    ``searcher_spec`` is a ``{name, ...params}`` spec (default ``{name: exact}``). With
    ``corpus`` (the items' texts; ``corpus_options`` as for :func:`bm25_from_corpus`) a BM25
    channel over the indexed items is saved in ``output/bm25`` for fused search. Returns a
    summary: items, vocabulary size, non-zeros, seconds, folder.
    """
    from prosper.export.parquet import read_parquet_vectors

    if registry is None:
        from prosper.plugins import get_registry

        registry = get_registry()
    spec = spec_dict(searcher_spec or "exact")
    searcher = registry.build("searcher", spec, where="search.searcher")
    start = time.perf_counter()
    items, meta = read_parquet_vectors(input_path)
    side = meta.get("side")
    if side not in (None, "item"):
        raise ConfigError(f"{input_path}: these vectors were encoded as side={side!r}; index item vectors")
    extra = {k: v for k, v in meta.items() if k not in ("vocabulary",)}
    extra["source"] = str(input_path)
    index = searcher.build(items, vocabulary=meta.get("vocabulary"), metadata=extra)
    # The corpus first: one that lacks an indexed item fails before anything is written
    bm25 = texts = None
    if corpus is not None:
        from prosper.retrieval.bm25 import BM25Channel

        texts = corpus_texts(corpus, items.ids, **(corpus_options or {}))
        bm25 = BM25Channel.build(list(items.ids), texts)
    index.save(output, overwrite=overwrite)
    if bm25 is not None:
        from prosper.retrieval.titles import save_titles

        bm25.save(Path(output) / BM25_DIR, overwrite=True)
        save_titles(output, items.ids, texts)
    return {
        "searcher": spec["name"],
        "items": len(items),
        "vocab_size": items.vocab_size,
        "nnz": int(len(items.term_ids)),
        "avg_item_nnz": float(items.nnz.mean()) if len(items) else 0.0,
        "seconds": time.perf_counter() - start,
        "output": str(output),
        "bm25": str(Path(output) / BM25_DIR) if bm25 is not None else None,
    }


def open_search_index(index: str | Path | None, searcher_spec=None, registry=None):
    """The index ``prosper search`` searches: the folder ``index`` (reopened with the searcher its
    ``meta.json`` names) or, without one, the searcher of ``searcher_spec`` if its index lives in
    a service its params name (``needs_directory`` False, e.g. ``milvus``: the collection is the index)."""
    if registry is None:
        from prosper.plugins import get_registry

        registry = get_registry()
    if index is not None:
        from prosper.retrieval.searchers import open_index

        return open_index(index, registry)
    spec = spec_dict(searcher_spec or "exact")
    searcher = registry.build("searcher", spec, where="search.searcher")
    if searcher.needs_directory:
        raise ConfigError(
            f"--index is required: searcher {spec['name']!r} keeps its index in a folder built by `prosper index`; "
            "only a searcher backed by a database (search.searcher.name=milvus) searches without one"
        )
    return searcher.open(None)


def corpus_texts(
    corpus: str | Path,
    item_ids: Sequence[str],
    title_field: str = "title",
    text_field: str = "text",
    on_error: str = "fail",
) -> list[str]:
    """The text of each of ``item_ids`` in a corpus (BEIR folder or JSONL/TSV/Parquet), in order;
    an item without a text in the corpus is an error."""
    from prosper.data.collections import iter_collection

    records = iter_collection(corpus, side="item", title_field=title_field, text_field=text_field, on_error=on_error)
    texts = {r.id: r.text for r in records}
    item_ids = [str(i) for i in item_ids]
    missing = [i for i in item_ids if i not in texts]
    if missing:
        raise InputError(f"{len(missing):,} indexed items have no text in this corpus (first: {missing[0]!r})", corpus)
    return [texts[i] for i in item_ids]


def bm25_from_corpus(
    corpus: str | Path,
    item_ids: Sequence[str] | None = None,
    title_field: str = "title",
    text_field: str = "text",
    on_error: str = "fail",
):
    """A :class:`~prosper.retrieval.bm25.BM25Channel` over a corpus (BEIR folder or JSONL/TSV/Parquet).

    With ``item_ids`` (an index's items) it covers exactly those items, so both channels of a
    fusion search the same catalog; an item without a text in the corpus is an error.
    """
    from prosper.data.collections import iter_collection
    from prosper.retrieval.bm25 import BM25Channel

    options = {"title_field": title_field, "text_field": text_field, "on_error": on_error}
    if item_ids is None:
        texts = {r.id: r.text for r in iter_collection(corpus, side="item", **options)}
        return BM25Channel.build(list(texts), list(texts.values()))
    return BM25Channel.build([str(i) for i in item_ids], corpus_texts(corpus, item_ids, **options))


def fuse_with_bm25(prosper_run, bm25, qids: Sequence[str], texts: Sequence[str], method: str, k: int, search):
    """Search ``texts`` with the BM25 channel and fuse its run with ``prosper_run`` (top ``k`` each).

    ``search`` is the :class:`~prosper.settings.SearchSettings` whose ``fusion_*`` fields apply.
    """
    from prosper.retrieval.fusion import fuse, fusion_options
    from prosper.retrieval.runs import results_to_run

    bm25_run = results_to_run(list(qids), bm25.search(list(texts), k=k))
    return fuse({"prosper": prosper_run, "bm25": bm25_run}, method, k=k, **fusion_options(method, search))


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


def resolve_scoring(explicit: str | None, settings_scoring: str | None, encoder=None, index=None) -> str:
    """--scoring > search.scoring > the model's model.scoring > the index's stored scoring (the
    model that encoded its items) > query_l2 (Eq. 11 default)."""
    if explicit:
        return explicit
    if settings_scoring:
        return settings_scoring
    if encoder is not None:
        return encoder.settings.scoring
    if index is not None:
        return index.scoring  # every SearchIndex declares one (query_l2 unless it stored another)
    return "query_l2"
