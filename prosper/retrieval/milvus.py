"""Milvus as a searcher (``milvus``): a collection of sparse item vectors is the index.

Over 300 lines on purpose: the collection layout, the client wrapper (one-line errors across
Milvus versions) and the searcher that reads it are one contract with the ``milvus`` exporter.

Milvus is a distributed vector database with native sparse vectors; Milvus Lite runs the same
client API embedded, on a local ``.db`` path, so one code path serves both (the URI decides).
A prosper collection holds::

    id      VARCHAR primary key (max_length = max_id_bytes)
    vector  SPARSE_FLOAT_VECTOR: term id -> float32 weight, zeros dropped; indexed with
            SPARSE_INVERTED_INDEX (or SPARSE_WAND), metric IP (inner product)

An item without terms is stored with weight 1 on the placeholder term id ``vocab_size``
(outside the vocabulary, so no query ever contains it): Milvus refuses empty sparse vectors,
and this way the collection still holds exactly one row per exported item. The layout
(format, vocabulary size, the Eq. 11 variant it serves, whether items are stored
L2-normalised, tokenizer) is recorded as JSON in the collection's ``prosper.layout`` property
and in its schema description (Milvus Lite 3 keeps only properties, Milvus Lite 2.5 only the
description; a server keeps both). The exporter (:mod:`prosper.export.milvus`) and
:meth:`MilvusSearcher.build` write through :class:`MilvusCollection`.

Search applies the query side of Eq. 11 (:func:`prosper.retrieval.index.prepare_query`: the
query L2-normalised by default) and asks Milvus for the top k by inner product with
``drop_ratio_search`` (0: every query term is used), so the ranking equals the exact index's up
to float32 rounding and the order of tied scores. ``both_l2`` / ``item_l2`` need a collection
whose items were stored L2-normalised (``scoring: both_l2`` or ``item_l2`` when it was written).

Only pydantic is imported at module level; pymilvus and numpy load when a collection is used.
Install with ``pip install 'prosper-retrieval[milvus]'`` (pymilvus and milvus-lite).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field

from prosper.components import SearchIndex, Searcher
from prosper.errors import ConfigError, InputError
from prosper.export.params import MilvusParams

LAYOUT_FORMAT = "prosper-milvus/1"
LAYOUT_PROPERTY = "prosper.layout"
INDEX_FORMAT = "prosper-milvus-index"
ID_FIELD, VECTOR_FIELD = "id", "vector"
#: Milvus answers at most this many hits per query (its topk limit).
MAX_TOPK = 16384
_SERVER_SCHEMES = ("http", "https", "tcp", "grpc", "unix")


class MilvusSearchParams(MilvusParams):
    """The ``milvus`` searcher: where the collection is, and how to search it."""

    uri: str  # Milvus Lite file (*.db) or server (http://host:19530)
    drop_ratio_search: float = Field(0.0, ge=0, lt=1)  # share of each query's smallest weights Milvus ignores; 0 keeps all (exact)
    consistency: Literal["Strong", "Bounded", "Session", "Eventually"] = "Strong"  # Milvus consistency level of searches
    search_batch: int = Field(64, ge=1, le=16384)  # queries per search request
    replace: bool = False  # build (prosper eval / index): drop a collection that already holds items


def import_pymilvus():
    try:
        import pymilvus
    except ImportError:
        raise ConfigError(
            "the milvus exporter and searcher need pymilvus (and milvus-lite for a local .db); "
            "install them with: pip install 'prosper-retrieval[milvus]'"
        ) from None
    return pymilvus


def is_server(uri: str) -> bool:
    return urlparse(uri).scheme.lower() in _SERVER_SCHEMES


def resolve_uri(uri: str | Path) -> str:
    """A server URI as given; a local Milvus Lite path made absolute (it must end in ``.db``)."""
    uri = str(uri)
    if is_server(uri):
        return uri
    if not uri.endswith(".db"):
        raise ConfigError(
            f"Milvus URI {uri!r}: give a Milvus Lite file ending in .db or a server URI such as http://host:19530"
        )
    path = Path(uri).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def release_lite(uri: str | Path) -> None:
    """Stop the embedded Milvus Lite server of a local ``.db`` (it otherwise lives until the process exits)."""
    uri = str(uri)
    if is_server(uri):
        return
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return
    server_manager_instance.release_server(str(Path(uri).expanduser().resolve()))


def make_layout(vocab_size: int, scoring: str, metadata: dict | None = None) -> dict:
    meta = metadata or {}
    return {
        "format": LAYOUT_FORMAT,
        "vocab_size": int(vocab_size),
        "scoring": scoring,
        "item_l2": scoring in ("both_l2", "item_l2"),
        "tokenizer": str(meta.get("tokenizer", "") or ""),
    }


class MilvusCollection:
    """One prosper collection on a Milvus server or in a Milvus Lite file (a thin pymilvus wrapper)."""

    def __init__(self, uri: str | Path, name: str, token: str | None = None, db_name: str | None = None):
        pymilvus = import_pymilvus()
        self.uri, self.name = resolve_uri(uri), name
        self._exception = pymilvus.exceptions.MilvusException
        token = token if token is not None else os.environ.get("MILVUS_TOKEN", "")
        with self.errors("connecting"):
            self.client = pymilvus.MilvusClient(uri=self.uri, token=token or "", db_name=db_name or "")
        self._pymilvus = pymilvus

    @contextlib.contextmanager
    def errors(self, what: str, error=ConfigError):
        """Milvus exceptions as one-line prosper errors naming the URI and the collection (pymilvus'
        own error logs, tracebacks included, are silenced meanwhile)."""
        try:
            with _quiet_pymilvus():
                yield
        except self._exception as exc:
            message = getattr(exc, "message", None) or str(exc)
            raise error(f"Milvus {self.uri} collection {self.name!r}: {what} failed: {message}") from None

    # -- the collection ------------------------------------------------------------------
    def exists(self) -> bool:
        with self.errors("has_collection"):
            return bool(self.client.has_collection(self.name))

    def layout(self) -> dict | None:
        """The prosper layout recorded on the collection, or None when it records none."""
        with self.errors("describe_collection"):
            info = self.client.describe_collection(self.name)
        for text in ((info.get("properties") or {}).get(LAYOUT_PROPERTY), info.get("description")):
            if text:
                try:
                    layout = json.loads(text)
                except ValueError:
                    continue
                if isinstance(layout, dict) and layout.get("format") == LAYOUT_FORMAT:
                    return layout
        return None

    def create(self, layout: dict, params: MilvusParams) -> None:
        pymilvus = self._pymilvus
        schema = pymilvus.MilvusClient.create_schema(
            auto_id=False, enable_dynamic_field=False, description=json.dumps(layout, separators=(",", ":"))
        )
        schema.add_field(ID_FIELD, pymilvus.DataType.VARCHAR, is_primary=True, max_length=params.max_id_bytes)
        schema.add_field(VECTOR_FIELD, pymilvus.DataType.SPARSE_FLOAT_VECTOR)
        index_params = self.client.prepare_index_params()
        build = {"drop_ratio_build": params.drop_ratio_build}
        if params.inverted_index_algo is not None:
            build["inverted_index_algo"] = params.inverted_index_algo
        index_params.add_index(
            field_name=VECTOR_FIELD, index_name=VECTOR_FIELD, index_type=params.index_type, metric_type="IP", params=build
        )
        with self.errors(f"creating it with index_type {params.index_type} (export.index_type)"):
            self.client.create_collection(
                self.name,
                schema=schema,
                index_params=index_params,
                properties={LAYOUT_PROPERTY: json.dumps(layout, separators=(",", ":"))},
            )

    def ensure(self, layout: dict, params: MilvusParams) -> dict:
        """Create the collection, or check that the existing one holds vectors of the same kind."""
        if not self.exists():
            self.create(layout, params)
            return layout
        found = self.layout()
        if found is None:
            raise ConfigError(
                f"Milvus {self.uri}: collection {self.name!r} exists but was not written by prosper "
                "(no prosper.layout); name another collection"
            )
        for key, what in (("vocab_size", "vocabulary size"), ("item_l2", "item L2 normalisation (scoring)")):
            if found.get(key) != layout.get(key):
                raise ConfigError(
                    f"Milvus {self.uri}: collection {self.name!r} holds vectors with {what} {found.get(key)!r}, "
                    f"these have {layout.get(key)!r}; use another collection or drop this one"
                )
        return found

    def drop(self) -> None:
        with self.errors("drop_collection"):
            self.client.drop_collection(self.name)

    def count(self) -> int:
        with self.errors("get_collection_stats"):
            return int(self.client.get_collection_stats(self.name).get("row_count", 0))

    def load(self) -> None:
        with self.errors("load_collection"):
            self.client.load_collection(self.name)

    def flush(self) -> None:
        with self.errors("flush"):
            self.client.flush(self.name)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    # -- data ----------------------------------------------------------------------------
    def upsert(self, vectors, batch_rows: int) -> int:
        """Upsert every row (id -> sparse vector) in requests of ``batch_rows``; an empty row gets
        the placeholder term ``vocab_size`` (module docstring). Returns the number of empty rows."""
        terms, weights = vectors.term_ids.tolist(), vectors.weights.tolist()
        offsets = vectors.offsets.tolist()
        placeholder = {int(vectors.vocab_size): 1.0}
        empty = 0
        for start in range(0, len(vectors), batch_rows):
            rows = []
            for i in range(start, min(start + batch_rows, len(vectors))):
                lo, hi = offsets[i], offsets[i + 1]
                empty += lo == hi
                vector = dict(zip(terms[lo:hi], weights[lo:hi])) if hi > lo else placeholder
                rows.append({ID_FIELD: vectors.ids[i], VECTOR_FIELD: vector})
            with self.errors("upsert", InputError):
                self.client.upsert(self.name, rows)
        return empty

    def read_all(self, vocab_size: int, batch_rows: int = 1000):
        """Every row, sorted by id (a collection has no row order), placeholder terms dropped."""
        from prosper.sparse import SparseVectors

        rows: dict[str, object] = {}
        with self.errors("query_iterator", InputError):
            iterator = self.client.query_iterator(
                self.name, batch_size=batch_rows, filter="", output_fields=[ID_FIELD, VECTOR_FIELD]
            )
            try:
                while True:
                    page = iterator.next()
                    if not page:
                        break
                    for row in page:
                        rows[str(row[ID_FIELD])] = row[VECTOR_FIELD]
            finally:
                iterator.close()
        ids = sorted(rows)
        pairs = []
        for item_id in ids:
            vector = {int(t): float(w) for t, w in _sparse_items(rows[item_id]) if int(t) < vocab_size}
            pairs.append((list(vector), list(vector.values())))
        return SparseVectors.from_rows(ids, pairs, vocab_size) if ids else SparseVectors.empty(vocab_size)

    def search(self, queries, k: int, drop_ratio: float, consistency: str, batch: int):
        """Top-k ``(ids, scores)`` of prepared queries ``[(terms, weights), ...]`` by inner product."""
        import numpy as np

        from prosper.components import SearchResult

        if not 1 <= k <= MAX_TOPK:
            raise ConfigError(f"k={k}: Milvus returns at most {MAX_TOPK} hits per query")
        results = [SearchResult(np.zeros(0, dtype=object), np.zeros(0, np.float32))] * len(queries)
        asked = [i for i, (terms, _) in enumerate(queries) if len(terms)]  # Milvus refuses empty sparse queries
        search_params = {"metric_type": "IP", "params": {"drop_ratio_search": drop_ratio}}
        for start in range(0, len(asked), batch):
            rows = asked[start : start + batch]
            data = [dict(zip(queries[i][0].tolist(), queries[i][1].tolist())) for i in rows]
            with self.errors("search", InputError):
                answer = self.client.search(
                    self.name, data=data, anns_field=VECTOR_FIELD, limit=k, output_fields=[ID_FIELD],
                    search_params=search_params, consistency_level=consistency,
                )
            for i, hits in zip(rows, answer):
                ids = [h["id"] for h in hits]
                scores = np.asarray([h["distance"] for h in hits], dtype=np.float32)
                keep = scores > 0  # like the exact index: only items that share a term
                results[i] = SearchResult(np.asarray(ids, dtype=object)[keep], scores[keep])
        return results


@contextlib.contextmanager
def _quiet_pymilvus():
    """Silence pymilvus' logs (tracebacks of errors prosper reports in one line, the iterator's
    timestamp warning) and the embedded Milvus Lite server's log of unimplemented calls."""
    import logging

    loggers = [logging.getLogger(name) for name in ("pymilvus", "grpc._server")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _sparse_items(vector):
    """(term, weight) pairs of a sparse vector as pymilvus returns it (a dict, or a 1-row scipy matrix)."""
    if isinstance(vector, dict):
        return vector.items()
    row = vector.tocsr()
    return zip(row.indices.tolist(), row.data.tolist())


class MilvusSearchIndex(SearchIndex):
    """A prosper collection answering ``search`` like :class:`~prosper.retrieval.index.InvertedIndex`."""

    searcher = "milvus"

    def __init__(self, collection: MilvusCollection, layout: dict, params: MilvusSearchParams):
        self.collection, self.layout, self.params = collection, layout, params
        self.scoring = str(layout.get("scoring") or "query_l2")
        self.meta = {"searcher": "milvus", "vocab_size": int(layout["vocab_size"]), "layout": layout}
        self.vocabulary = None  # Milvus keeps term ids only; the checkpoint has the vocabulary

    def __len__(self) -> int:
        return self.collection.count()

    @property
    def vocab_size(self) -> int:
        return int(self.layout["vocab_size"])

    def search(self, queries, k: int = 10, scoring: str | None = None, query_top_terms: int | None = None):
        from prosper.retrieval.index import check_scoring, prepare_query

        scoring = check_scoring(scoring or self.scoring)
        wants_item_l2 = scoring in ("both_l2", "item_l2")
        if wants_item_l2 != bool(self.layout.get("item_l2")):
            raise ConfigError(
                f"scoring {scoring!r} needs a collection whose items are stored with item_l2={wants_item_l2}; "
                f"collection {self.collection.name!r} has item_l2={bool(self.layout.get('item_l2'))} "
                f"(written for scoring {self.layout.get('scoring')!r})"
            )
        if queries.vocab_size != self.vocab_size:
            raise InputError(
                f"query vectors have vocabulary size {queries.vocab_size} but collection "
                f"{self.collection.name!r} {self.vocab_size}; encode queries with the model that encoded the items"
            )
        prepared = [prepare_query(*queries.row(i), scoring, query_top_terms) for i in range(len(queries))]
        p = self.params
        return self.collection.search(prepared, k, p.drop_ratio_search, p.consistency, p.search_batch)

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """A folder whose ``meta.json`` points at the collection, so ``prosper search --index`` finds it."""
        from prosper.fileio import replace_dir, staging_dir

        directory = Path(directory)
        tmp = staging_dir(directory, overwrite, "index folder")
        params = self.params.model_dump(exclude={"token", "replace"})
        params["uri"] = self.collection.uri
        meta = {
            "format": INDEX_FORMAT,
            "version": 1,
            "searcher": "milvus",
            "params": params,
            "n_items": len(self),
            "vocab_size": self.vocab_size,
            "layout": self.layout,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        replace_dir(tmp, directory)
        return directory

    def close(self) -> None:
        self.collection.close()


class MilvusSearcher(Searcher):
    """Top-k by a Milvus collection (server or Milvus Lite); install ``prosper-retrieval[milvus]``."""

    name = "milvus"
    needs_directory = False  # the collection named by the params is the index

    def __init__(self, params: MilvusSearchParams) -> None:
        self.params = params
        # exact unless the index or the search drops small weights
        self.exact = params.drop_ratio_build == 0 and params.drop_ratio_search == 0

    def _collection(self) -> MilvusCollection:
        p = self.params
        return MilvusCollection(p.uri, p.collection, p.token, p.db_name)

    def connect(self) -> MilvusSearchIndex:
        """The collection named by the params (what ``prosper search`` uses without ``--index``)."""
        collection = self._collection()
        if not collection.exists():
            collection.close()
            raise ConfigError(
                f"Milvus {collection.uri}: no collection {self.params.collection!r}; write it with "
                "`prosper export --format milvus` (or check search.searcher.collection)"
            )
        layout = collection.layout()
        if layout is None:
            collection.close()
            raise ConfigError(f"Milvus {collection.uri}: collection {self.params.collection!r} was not written by prosper")
        collection.load()
        return MilvusSearchIndex(collection, layout, self.params)

    def open(self, directory: str | Path | None = None) -> MilvusSearchIndex:
        """Reopen from an index folder written by :meth:`MilvusSearchIndex.save` (its params name the collection)."""
        if directory is not None:
            from prosper.retrieval.index import read_meta

            meta = read_meta(Path(directory))
            if meta.get("format") != INDEX_FORMAT:
                raise InputError(f"not a prosper milvus index (format {meta.get('format')!r})", Path(directory) / "meta.json")
        return self.connect()

    def build(self, items, vocabulary=None, metadata=None) -> MilvusSearchIndex:
        """Write ``items`` into a new collection (``replace: true`` drops one that already holds items).

        The collection serves ``params.scoring`` (``metadata["scoring"]`` when given)."""
        if len(set(items.ids)) != len(items):
            raise InputError("duplicate item ids; item ids must be unique")
        collection = self._collection()
        try:
            if collection.exists():
                if collection.count() > 0 and not self.params.replace:
                    raise ConfigError(
                        f"Milvus {collection.uri}: collection {self.params.collection!r} already holds "
                        f"{collection.count():,} items; set search.searcher.replace=true to drop it, or name another collection"
                    )
                collection.drop()
            scoring = str((metadata or {}).get("scoring") or self.params.scoring)
            params = self.params.model_copy(update={"scoring": scoring})
            layout = make_layout(items.vocab_size, scoring, metadata)
            collection.ensure(layout, params)
            from prosper.export.milvus import prepare_items

            collection.upsert(prepare_items(items, params), params.batch_rows)
            collection.flush()
            collection.load()
        except BaseException:
            collection.close()
            raise
        return MilvusSearchIndex(collection, layout, params)
