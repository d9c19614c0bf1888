"""Bulk NDJSON for OpenSearch and Elasticsearch: documents, the index mapping, query bodies.

Over 300 lines on purpose: both engines' rules (feature names, weight ranges, size limits) live
here once, beside the writer that enforces them, so the two exporters stay thin.

Shared by the ``opensearch`` (:mod:`prosper.export.opensearch`, a ``rank_features`` field
queried with ``neural_sparse`` ``query_tokens``) and ``elasticsearch``
(:mod:`prosper.export.elasticsearch`, a ``sparse_vector`` field queried with the
``sparse_vector`` query) exporters. Both engines index each feature with Lucene's
``FeatureField`` and score a query as ``Σ w_q[t] · stored(W_d[t])`` (a linear feature query per
query term, OR-ed), which is Eq. 11 once the query side is normalised here.

Files:

* items (``--side item``): the ``_bulk`` body, an action line then the document, per item::

      {"index":{"_index":"prosper","_id":"p1"}}
      {"vector":{"drill":1.25,"bit":0.5}}

  and beside it ``<stem>.mapping.json``, the body of the create-index request (field type,
  and ``_meta.prosper`` recording the feature naming and scoring);
* queries (``--side query``): one JSON object per line, ``{"id": qid, "body": {...}}``, where
  ``body`` is the ``_search`` request: ``size`` = ``k``, ``_source: false``, the engine's query.

The engines' documented rules, and what the exporter does about each (docs/exporting.md):

* feature values must be finite and at least ``Float.MIN_NORMAL`` (1.1754944e-38; Lucene's
  ``FeatureField.setFeatureValue`` rejects anything smaller): a non-finite weight stops the
  export naming the id and term; a weight below ``MIN_NORMAL`` (also after normalising) is
  dropped and counted as ``subnormal_dropped``;
* Lucene keeps 9 significant bits of a feature value (``floatToIntBits(v) >>> 15`` as the term
  frequency), a relative error below 2^-8 ≈ 0.4 %, so scores differ from prosper's exact ones in
  the third digit: :func:`stored_feature_value` computes what the engine keeps;
* ``rank_features`` names may not contain dots (``[rank_features] fields do not support dots in
  feature names``; Elasticsearch's ``sparse_vector`` only allows them from 8.16) and should not
  be empty: with ``features: terms`` a term is escaped by :func:`escape_feature` (``%`` →
  ``%25``, ``.`` → ``%2E``, the empty term → ``%``), injective, and the same names are used in
  query bodies; ``features: ids`` names features by decimal term id;
* a feature name is a Lucene term: at most 32,766 UTF-8 bytes; ``_id`` is at most 512 bytes;
* ``FeatureField.newLinearQuery`` (OpenSearch's ``neural_sparse``) takes query weights in
  (0, 64]: a larger query weight (possible with ``scoring: none``) stops the export;
* a boolean query holds at most 1,024 clauses by default (``indices.query.bool.max_clause_count``):
  queries keep their ``max_query_terms`` highest weights (``query_terms_truncated``); a query
  with no term left is omitted (``empty_queries_omitted``); an item without terms is written
  with an empty object, as the engines accept it (``empty_items``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prosper.components import Exporter, Writer
from prosper.errors import ConfigError, InputError
from prosper.export.base import check_vocabulary, joined_rows, json_strings, string_array_bytes
from prosper.export.params import SearchEngineParams
from prosper.fileio import AtomicFile, atomic_write_text
from prosper.sparse import SparseVectors

FORMAT = "prosper-sparse-features/1"
#: Float.MIN_NORMAL: Lucene's FeatureField rejects smaller feature values.
MIN_NORMAL = float(np.finfo(np.float32).tiny)
#: IndexWriter.MAX_TERM_LENGTH, in UTF-8 bytes: a feature name is a term.
MAX_TERM_BYTES = 32766
#: OpenSearch's and Elasticsearch's limit on ``_id``, in UTF-8 bytes.
MAX_ID_BYTES = 512
#: FeatureField.newLinearQuery accepts weights in (0, 64].
MAX_LINEAR_WEIGHT = 64.0
#: FeatureField stores ``floatToIntBits(value) >>> 15``: 9 significant bits.
_FEATURE_SHIFT = 15


def escape_feature(term: str) -> str:
    """A dot-free, non-empty feature name for ``term``; injective (``unescape_feature`` inverts it)."""
    if term == "":
        return "%"
    return term.replace("%", "%25").replace(".", "%2E")


def unescape_feature(name: str) -> str:
    """The vocabulary term of a feature name written by :func:`escape_feature`."""
    if name == "%":
        return ""
    return name.replace("%2E", ".").replace("%25", "%")


def feature_names(vocabulary: Sequence[str], mode: str) -> list[str]:
    """The feature name of every term id (``mode``: ``terms`` or ``ids``), checked against the rules."""
    if mode == "ids":
        return [str(i) for i in range(len(vocabulary))]
    names = [escape_feature(t) for t in vocabulary]
    for i, name in enumerate(names):
        if len(name.encode("utf-8", "surrogatepass")) > MAX_TERM_BYTES:
            raise ConfigError(
                f"vocabulary entry {i} is over {MAX_TERM_BYTES} UTF-8 bytes, Lucene's term limit; use export.features=ids"
            )
    if len(set(names)) != len(names):
        seen: dict[str, int] = {}
        for i, name in enumerate(names):
            if name in seen:
                raise ConfigError(
                    f"vocabulary entries {seen[name]} and {i} are the same term {vocabulary[i]!r}; "
                    "the vocabulary must be unique (or use export.features=ids)"
                )
            seen[name] = i
    return names


def stored_feature_value(weights) -> np.ndarray:
    """What Lucene's FeatureField keeps of each weight: the float32 truncated to 9 significant bits."""
    bits = np.asarray(weights, dtype=np.float32).view(np.int32)
    return ((bits >> _FEATURE_SHIFT) << _FEATURE_SHIFT).view(np.float32)


def mapping_path(path: str | Path) -> Path:
    """``items.ndjson`` -> ``items.mapping.json`` (the create-index body beside the bulk file)."""
    path = Path(path)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(stem + ".mapping.json")


def l2_rows(vectors: SparseVectors) -> np.ndarray:
    """The weights of every row divided by the row's L2 norm (float64 sums, float32 out)."""
    if not len(vectors.weights):
        return vectors.weights
    sq = np.add.reduceat(vectors.weights.astype(np.float64) ** 2, vectors.offsets[:-1])
    norms = np.sqrt(np.where(vectors.nnz > 0, sq, 1.0))
    return (vectors.weights / np.repeat(norms, vectors.nnz)).astype(np.float32)


def _keep(vectors: SparseVectors, weights: np.ndarray, keep: np.ndarray) -> SparseVectors:
    rows = np.repeat(np.arange(len(vectors)), vectors.nnz)
    offsets = np.zeros(len(vectors) + 1, np.int64)
    np.cumsum(np.bincount(rows[keep], minlength=len(vectors)), out=offsets[1:])
    return SparseVectors(vectors.ids, offsets, vectors.term_ids[keep], weights[keep], vectors.vocab_size)


def _count(counts: dict | None, key: str, n: int) -> None:
    if counts is not None and n:
        counts[key] = counts.get(key, 0) + int(n)


def prepare_items(batch: SparseVectors, params: SearchEngineParams, counts: dict | None = None) -> SparseVectors:
    """The item vectors as written: L2-normalised for ``both_l2``/``item_l2``, weights below
    ``MIN_NORMAL`` dropped; a non-finite weight is an error."""
    bad = np.flatnonzero(~np.isfinite(batch.weights))
    if len(bad):
        row = int(np.searchsorted(batch.offsets, bad[0], side="right")) - 1
        raise InputError(
            f"id {batch.ids[row]!r}: weight {float(batch.weights[bad[0]])} of term id {int(batch.term_ids[bad[0]])} "
            "is not finite; OpenSearch and Elasticsearch take finite positive weights only"
        )
    weights = l2_rows(batch) if params.scoring in ("both_l2", "item_l2") else batch.weights
    keep = weights >= MIN_NORMAL
    _count(counts, "subnormal_dropped", int((~keep).sum()))
    return _keep(batch, weights, keep)


def prepare_queries(
    batch: SparseVectors, params: SearchEngineParams, counts: dict | None = None, max_weight: float = math.inf, engine: str = ""
) -> SparseVectors:
    """The query vectors as written: Eq. 11's query side (``scoring``, ``query_top_terms``), weights
    below ``MIN_NORMAL`` dropped, at most ``max_query_terms`` terms, queries left empty omitted."""
    from prosper.retrieval.index import prepare_query

    kept_terms, kept_weights, kept_ids = [], [], []
    for i in range(len(batch)):
        terms, weights = batch.row(i)
        if not np.all(np.isfinite(weights)):
            raise InputError(f"query {batch.ids[i]!r}: a weight is not finite")
        terms, weights = prepare_query(terms, weights, params.scoring, params.query_top_terms)
        keep = weights >= MIN_NORMAL
        _count(counts, "subnormal_dropped", int((~keep).sum()))
        terms, weights = terms[keep], weights[keep]
        if len(terms) > params.max_query_terms:
            top = np.lexsort((terms, -weights))[: params.max_query_terms]  # highest weight, then lowest id
            top.sort()
            terms, weights = terms[top], weights[top]
            _count(counts, "query_terms_truncated", 1)
        if len(terms) == 0:
            _count(counts, "empty_queries_omitted", 1)
            continue
        if float(weights.max()) > max_weight:
            raise InputError(
                f"query {batch.ids[i]!r}: weight {float(weights.max())} exceeds {max_weight:g}, the largest "
                f"{engine} query weight (FeatureField.newLinearQuery); normalise queries with export.scoring=query_l2"
            )
        kept_terms.append(terms)
        kept_weights.append(weights)
        kept_ids.append(batch.ids[i])
    if not kept_ids:
        return SparseVectors.empty(batch.vocab_size)
    offsets = np.zeros(len(kept_ids) + 1, np.int64)
    np.cumsum([len(t) for t in kept_terms], out=offsets[1:])
    return SparseVectors(kept_ids, offsets, np.concatenate(kept_terms), np.concatenate(kept_weights), batch.vocab_size)


class SearchEngineExporter(Exporter):
    """Shared behaviour of the OpenSearch and Elasticsearch exporters; subclasses name the engine,
    the field type, how a query is written and read back, and the engine's largest query weight."""

    engine = ""
    field_type = ""
    max_query_weight = math.inf

    def __init__(self, params: SearchEngineParams | None = None):
        self.params = params or SearchEngineParams()
        self._cache: tuple[int, list[str], object] | None = None

    def suffix(self, side: str) -> str:
        return ".jsonl" if side == "query" else ".ndjson"

    def query_prefix(self) -> str:  # pragma: no cover - overridden
        """JSON text of the query up to the feature object."""
        raise NotImplementedError

    def query_suffix(self) -> str:  # pragma: no cover - overridden
        """JSON text of the query after the feature object."""
        raise NotImplementedError

    def query_features(self, query: dict) -> dict:  # pragma: no cover - overridden
        """The ``{feature: weight}`` object inside a query written by this exporter."""
        raise NotImplementedError

    def field_mapping(self) -> dict:
        return {"type": self.field_type}

    def mapping(self, vocab_size: int, metadata: dict | None) -> dict:
        """The create-index body: the sparse field, and ``_meta.prosper`` telling how names and weights were written."""
        p = self.params
        meta = {
            "format": FORMAT,
            "engine": self.engine,
            "features": p.features,
            "feature_escape": "% -> %25, . -> %2E, empty term -> %" if p.features == "terms" else None,
            "scoring": p.scoring,
            "item_l2": p.scoring in ("both_l2", "item_l2"),
            "vocab_size": int(vocab_size),
            "tokenizer": str((metadata or {}).get("tokenizer", "") or ""),
            "checkpoint": str((metadata or {}).get("checkpoint", "") or ""),
        }
        return {"mappings": {"_meta": {"prosper": meta}, "properties": {p.field: self.field_mapping()}}}

    def _names(self, vocabulary: Sequence[str]) -> tuple[list[str], object]:
        if self._cache is None or self._cache[0] != id(vocabulary):
            names = feature_names(vocabulary, self.params.features)
            self._cache = (id(vocabulary), names, json_strings(names))
        return self._cache[1], self._cache[2]

    def open(self, path, vocabulary: Sequence[str], side: str, metadata: dict | None = None) -> SearchEngineWriter:
        if side not in ("item", "query"):
            raise ConfigError(f"side must be 'item' or 'query', not {side!r}")
        mapping = self.mapping(len(vocabulary), metadata) if side == "item" else None
        return SearchEngineWriter(Path(path), self, self._names(vocabulary)[1], len(vocabulary), side, mapping)

    def merge(self, parts: Sequence[Path], output: Path, side: str) -> None:
        """Concatenate the shards; the mapping (the same for every shard) goes beside ``output``."""
        super().merge(parts, output, side)
        if side == "item" and parts:
            atomic_write_text(mapping_path(output), mapping_path(parts[0]).read_text(encoding="utf-8"))

    def read(self, path, vocabulary: Sequence[str], side: str) -> SparseVectors:
        """Parse a bulk file (items) or a query-bodies file back into vectors, names mapped to term ids."""
        path = Path(path)
        index = {name: i for i, name in enumerate(self._names(vocabulary)[0])}
        ids, rows = [], []
        with path.open(encoding="utf-8") as handle:
            lines = enumerate(handle, 1)
            for number, line in lines:
                try:
                    record = json.loads(line)
                    if side == "item":
                        item_id = record["index"]["_id"]
                        number, line = next(lines)
                        features = json.loads(line)[self.params.field]
                    else:
                        item_id, features = record["id"], self.query_features(record["body"]["query"])
                    term_ids = [index[name] for name in features]
                except (ValueError, KeyError, TypeError, StopIteration) as exc:
                    raise InputError(f"not a line this exporter writes ({type(exc).__name__}: {exc})", path, number) from None
                ids.append(str(item_id))
                rows.append((term_ids, [float(w) for w in features.values()]))
        return SparseVectors.from_rows(ids, rows, len(vocabulary)) if ids else SparseVectors.empty(len(vocabulary))

    def roundtrip(self, vectors: SparseVectors, side: str) -> SparseVectors:
        """Items: normalised for ``both_l2``/``item_l2``, sub-normal weights dropped; queries:
        Eq. 11's query side, cut to ``max_query_terms``, empty ones omitted."""
        if side == "item":
            return prepare_items(vectors, self.params)
        return prepare_queries(vectors, self.params, None, self.max_query_weight, self.engine)


class SearchEngineWriter(Writer):
    def __init__(self, path: Path, exporter: SearchEngineExporter, names, vocab_size: int, side: str, mapping):
        self.file = AtomicFile(path)
        self.path, self.exporter, self.params = path, exporter, exporter.params
        self.names, self.vocab_size, self.side, self.mapping = names, vocab_size, side, mapping
        self.counts: dict[str, int] = {"rows": 0}
        if side == "item":
            index = self.params.index
            self._action = '{"index":{' + (f'"_index":{json.dumps(index)},' if index else "") + '"_id":'
            self._document = "}}\n{" + json.dumps(self.params.field) + ":"
        else:
            self._query_head = ',"body":{"size":%d,"_source":false,"query":%s' % (self.params.k, exporter.query_prefix())
            self._query_tail = exporter.query_suffix() + "}}\n"

    def write(self, batch: SparseVectors) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        check_vocabulary(batch, self.vocab_size)
        if len(batch) == 0:
            return
        if self.side == "item":
            lengths = np.asarray(pc.binary_length(pa.array(batch.ids, pa.string())))
            bad = np.flatnonzero((lengths == 0) | (lengths > MAX_ID_BYTES))
            if len(bad):
                raise InputError(f"item id {batch.ids[bad[0]]!r} is empty or over {MAX_ID_BYTES} UTF-8 bytes, which _id cannot hold")
            vectors = prepare_items(batch, self.params, self.counts)
            _count(self.counts, "empty_items", int((vectors.nnz == 0).sum()))
            lines = pc.binary_join_element_wise(
                self._action, json_strings(vectors.ids), self._document, self._objects(vectors), "}\n", ""
            )
        else:
            vectors = prepare_queries(batch, self.params, self.counts, self.exporter.max_query_weight, self.exporter.engine)
            if len(vectors) == 0:
                self.counts["rows"] += len(batch)
                return
            lines = pc.binary_join_element_wise(
                '{"id":', json_strings(vectors.ids), self._query_head, self._objects(vectors), self._query_tail, ""
            )
        self.file.write(string_array_bytes(lines))
        self.counts["rows"] += len(batch)

    def _objects(self, vectors: SparseVectors):
        """``{"name":w,...}`` of every row, as an arrow string array (arrow kernels, no Python loop)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        keys = self.names.take(pa.array(vectors.term_ids))
        pairs = pc.binary_join_element_wise(keys, pc.cast(pa.array(vectors.weights), pa.string()), ":")
        return pc.binary_join_element_wise("{", joined_rows(pairs, vectors.offsets, ","), "}", "")

    def close(self) -> dict:
        self.file.commit()
        if self.mapping is not None:
            atomic_write_text(mapping_path(self.path), json.dumps(self.mapping, indent=2, ensure_ascii=False) + "\n")
        return dict(self.counts)

    def abort(self) -> None:
        self.file.abort()
