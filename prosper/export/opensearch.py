"""OpenSearch exporter: bulk NDJSON for a ``rank_features`` field, ``neural_sparse`` query bodies.

OpenSearch's neural sparse search (2.11+) scores a ``rank_features`` field with a
``neural_sparse`` query whose ``query_tokens`` map feature names to weights; each token becomes
a Lucene ``FeatureField.newLinearQuery`` clause, so a document scores ``Σ w_q · stored(W_d)``
(Eq. 11 with the query normalised here). The rules the files follow are in
:mod:`prosper.export.search_engines`; the commands to create, load and query an index are in
docs/exporting.md.
"""

from __future__ import annotations

import json

from prosper.export.params import OpenSearchParams
from prosper.export.search_engines import MAX_LINEAR_WEIGHT, SearchEngineExporter


class OpenSearchExporter(SearchEngineExporter):
    """``rank_features`` documents and ``{"neural_sparse": {field: {"query_tokens": {...}}}}`` queries."""

    engine = "opensearch"
    field_type = "rank_features"
    max_query_weight = MAX_LINEAR_WEIGHT  # FeatureField.newLinearQuery: weights in (0, 64]

    def __init__(self, params: OpenSearchParams | None = None):
        super().__init__(params or OpenSearchParams())

    def query_prefix(self) -> str:
        return '{"neural_sparse":{%s:{"query_tokens":' % json.dumps(self.params.field)

    def query_suffix(self) -> str:
        return "}}}"

    def query_features(self, query: dict) -> dict:
        return query["neural_sparse"][self.params.field]["query_tokens"]
