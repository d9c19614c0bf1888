"""Milvus exporter: item vectors upserted into a Milvus collection (``--format milvus``).

The collection (layout in :mod:`prosper.retrieval.milvus`: VARCHAR primary key = item id,
``SPARSE_FLOAT_VECTOR`` with an IP index) is the index the ``milvus`` searcher searches. Where
the vectors go:

* ``export.uri`` set (``http://host:19530``, or a Milvus Lite ``.db``): there, and ``--output``
  is a small JSON receipt (URI, collection, counts) unless it is that same ``.db``. This is the
  form for ``prosper infer``, whose shards are receipts ``part-<k>.milvus``;
* else ``--output FILE.db``: that Milvus Lite database
  (``prosper export --format milvus --input items.parquet --output items.db``).

Writes are upserts in batches of ``batch_rows``, so exporting again, resuming, or shards
written by several ranks against a server all end with one row per item id (the last vector
written). ``merge`` has nothing to concatenate: the shards already went into the same
collection, so it only writes the receipt of the run. Weights are the float32 values exported
(zeros never occur); an item without terms is stored with a placeholder term outside the
vocabulary (counted as ``empty_items``); with ``scoring: both_l2`` / ``item_l2`` items are
stored L2-normalised and the collection records it. ``read`` returns the collection's rows
sorted by id: a database keeps no row order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prosper.components import Exporter, Writer
from prosper.errors import ConfigError, InputError
from prosper.export.params import MilvusParams
from prosper.export.base import check_vocabulary
from prosper.fileio import atomic_write_json
from prosper.sparse import SparseVectors

RECEIPT_FORMAT = "prosper-milvus-receipt/1"


def prepare_items(items: SparseVectors, params: MilvusParams) -> SparseVectors:
    """Check ids and weights against Milvus' rules; L2-normalise items for ``both_l2`` / ``item_l2``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from prosper.export.search_engines import l2_rows

    lengths = np.asarray(pc.binary_length(pa.array(items.ids, pa.string())))
    bad = np.flatnonzero((lengths == 0) | (lengths > params.max_id_bytes))
    if len(bad):
        raise InputError(
            f"item id {items.ids[bad[0]]!r} is empty or over export.max_id_bytes={params.max_id_bytes} UTF-8 bytes "
            "(the collection's VARCHAR primary key)"
        )
    bad = np.flatnonzero(~np.isfinite(items.weights))
    if len(bad):
        row = int(np.searchsorted(items.offsets, bad[0], side="right")) - 1
        raise InputError(f"id {items.ids[row]!r}: weight {float(items.weights[bad[0]])} is not finite")
    if params.scoring in ("both_l2", "item_l2"):
        return SparseVectors(items.ids, items.offsets, items.term_ids, l2_rows(items), items.vocab_size)
    return items


class MilvusExporter(Exporter):
    """Item vectors upserted into a Milvus collection (server or Milvus Lite ``.db``)."""

    sides = ("item",)  # queries are searched, not stored
    store = True  # every shard upserts into the one collection

    def __init__(self, params: MilvusParams | None = None):
        self.params = params or MilvusParams()

    def suffix(self, side: str) -> str:
        return ".milvus"  # shard receipts of `prosper infer`

    def target(self, path: str | Path) -> tuple[str, Path | None]:
        """``(uri, receipt)`` for an output path (module docstring); ``receipt`` is None when the path is the database."""
        from prosper.retrieval.milvus import is_server, resolve_uri

        path = Path(path)
        if self.params.uri is not None:
            uri = resolve_uri(self.params.uri)
            same = not is_server(uri) and path.resolve() == Path(uri)
            return uri, None if same else path
        if path.name.endswith(".db"):
            return resolve_uri(path), None
        raise ConfigError(
            f"export.uri: name the Milvus database ({path} is not a .db): give --output FILE.db (Milvus Lite), or set "
            "export.uri=FILE.db or export.uri=http://host:19530 and --output becomes a receipt (prosper infer needs export.uri)"
        )

    def open(self, path, vocabulary: Sequence[str], side: str, metadata: dict | None = None) -> MilvusWriter:
        from prosper.retrieval.milvus import MilvusCollection, make_layout

        self._check_side(side)
        uri, receipt = self.target(path)
        p = self.params
        collection = MilvusCollection(uri, p.collection, p.token, p.db_name)
        try:
            layout = collection.ensure(make_layout(len(vocabulary), p.scoring, metadata), p)
        except BaseException:
            collection.close()
            raise
        return MilvusWriter(collection, layout, p, receipt, len(vocabulary))

    @staticmethod
    def _check_side(side: str) -> None:
        if side != "item":
            raise ConfigError(
                "the milvus exporter writes item vectors (--side item); search queries with the milvus searcher "
                "(prosper search search.searcher.name=milvus)"
            )

    def merge(self, parts: Sequence[Path], output: Path, side: str) -> None:
        """The shards upserted into one collection already; write the receipt of the whole run."""
        uri, receipt = self.target(output)
        if receipt is None:
            return
        total: dict = {}
        for part in parts:
            for key, value in json.loads(Path(part).read_text(encoding="utf-8")).get("counts", {}).items():
                total[key] = total.get(key, 0) + value
        atomic_write_json(receipt, _receipt(uri, self.params.collection, total))

    def read(self, path, vocabulary: Sequence[str], side: str) -> SparseVectors:
        """Every row of the collection ``path`` names (the ``.db`` or a receipt), sorted by id."""
        from prosper.retrieval.milvus import MilvusCollection

        self._check_side(side)
        uri, _ = self.target(path)
        p = self.params
        collection = MilvusCollection(uri, p.collection, p.token, p.db_name)
        try:
            if not collection.exists():
                raise InputError(f"no collection {p.collection!r} in Milvus {uri}", path)
            return collection.read_all(len(vocabulary), p.batch_rows)
        finally:
            collection.close()

    def roundtrip(self, vectors: SparseVectors, side: str) -> SparseVectors:
        """What :meth:`read` returns: one row per id (the last written), sorted by id, normalised
        for ``both_l2`` / ``item_l2``."""
        vectors = prepare_items(vectors, self.params)
        last = {item_id: row for row, item_id in enumerate(vectors.ids)}
        return vectors.take([last[i] for i in sorted(last)]) if last else vectors


def _receipt(uri: str, collection: str, counts: dict) -> dict:
    return {"format": RECEIPT_FORMAT, "uri": uri, "collection": collection, "counts": counts}


class MilvusWriter(Writer):
    def __init__(self, collection, layout: dict, params: MilvusParams, receipt: Path | None, vocab_size: int):
        self.collection, self.layout, self.params = collection, layout, params
        self.receipt, self.vocab_size = receipt, vocab_size
        self.counts: dict[str, int] = {"rows": 0}

    def write(self, batch: SparseVectors) -> None:
        check_vocabulary(batch, self.vocab_size)
        if len(batch) == 0:
            return
        empty = self.collection.upsert(prepare_items(batch, self.params), self.params.batch_rows)
        self.counts["rows"] += len(batch)
        if empty:
            self.counts["empty_items"] = self.counts.get("empty_items", 0) + empty

    def close(self) -> dict:
        try:
            self.collection.flush()  # sealed and persisted before the run counts as done
        finally:
            self.collection.close()
        if self.receipt is not None:
            atomic_write_json(self.receipt, _receipt(self.collection.uri, self.collection.name, dict(self.counts)))
        return dict(self.counts)

    def abort(self) -> None:
        # Upserts already sent stay in the collection; they are idempotent, so a rerun or
        # --resume ends in the same state. No receipt is written.
        self.collection.close()
