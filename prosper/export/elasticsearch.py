"""Elasticsearch exporter: bulk NDJSON for a ``sparse_vector`` field, ``sparse_vector`` query bodies.

Elasticsearch (8.15+) scores a ``sparse_vector`` field with the ``sparse_vector`` query and a
precomputed ``query_vector``: the tokens are OR-ed, each a boosted ``FeatureField`` linear
query, so a document scores ``Σ w_q · stored(W_d)`` (Eq. 11 with the query normalised here).
New indices prune tokens by default; the query bodies say ``"prune": false`` (unless
``export.prune``) so the dot product stays exact. The rules the files follow are in
:mod:`prosper.export.search_engines`; the commands are in docs/exporting.md.
"""

from __future__ import annotations

import json

from prosper.export.params import ElasticsearchParams
from prosper.export.search_engines import SearchEngineExporter


class ElasticsearchExporter(SearchEngineExporter):
    """``sparse_vector`` documents and ``{"sparse_vector": {"field", "query_vector", "prune"}}`` queries."""

    engine = "elasticsearch"
    field_type = "sparse_vector"

    def __init__(self, params: ElasticsearchParams | None = None):
        super().__init__(params or ElasticsearchParams())

    def query_prefix(self) -> str:
        return '{"sparse_vector":{"field":%s,"query_vector":' % json.dumps(self.params.field)

    def query_suffix(self) -> str:
        return ',"prune":%s}}' % ("true" if self.params.prune else "false")

    def query_features(self, query: dict) -> dict:
        return query["sparse_vector"]["query_vector"]
