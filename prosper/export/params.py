"""Parameter models of the built-in exporters (light: pydantic only, read at plugin load).

Written in the configuration as ``export: {name: lucene, scale: 100}`` or on the command line
as ``prosper export ... export.scale=50``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Lucene scores are float32: integers are exact only below 2^24.
EXACT_LIMIT = 2**24 - 1
#: Java int: larger impacts wrap around and the term vanishes.
INT_LIMIT = 2**31 - 1
#: Lucene's default ``IndexSearcher.maxClauseCount``.
MAX_CLAUSES = 1024


class JsonlParams(BaseModel):
    """JSONL has no parameters."""

    model_config = ConfigDict(extra="forbid")


class ParquetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    compression: str = "zstd"  # zstd | snappy | gzip | lz4 | none
    row_group_rows: int = Field(65536, ge=1)  # rows buffered before a row group is written


class LuceneParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scale: float = Field(100.0, gt=0)  # integer weight = round(w * scale)
    max_weight: int = Field(EXACT_LIMIT, ge=1, le=INT_LIMIT)  # impacts above: error or clip
    overflow: Literal["error", "clip"] = "error"  # impacts above max_weight: fail, or clip to it
    empty: Literal["keep_top", "write", "error"] = "keep_top"  # vectors whose weights all round to 0
    max_query_terms: int = Field(MAX_CLAUSES, ge=1)  # Lucene fails on more boolean clauses
    max_query_tokens: int = Field(1_000_000, ge=1)  # repeated tokens allowed in one query line


# -- databases and search engines ----------------------------------------------------------
#: The Eq. 11 variants (prosper.retrieval.index.SCORINGS), repeated here so this module stays light.
Scoring = Literal["query_l2", "none", "query_l1", "both_l2", "item_l2"]


class MilvusParams(BaseModel):
    """Milvus collection (``prosper.export.milvus``); shared by the ``milvus`` searcher's build."""

    model_config = ConfigDict(extra="forbid")
    uri: str | None = None  # Milvus Lite file (*.db) or server (http://host:19530); null: the --output path
    token: str | None = None  # "user:password" or an API key; null: the MILVUS_TOKEN environment variable
    db_name: str | None = None  # Milvus database; null: the server's default
    collection: str = Field("prosper_items", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")  # collection name (letters, digits, _)
    index_type: Literal["SPARSE_INVERTED_INDEX", "SPARSE_WAND"] = "SPARSE_INVERTED_INDEX"  # Milvus sparse index (Milvus Lite 3 has only SPARSE_INVERTED_INDEX)
    inverted_index_algo: Literal["DAAT_MAXSCORE", "DAAT_WAND", "TAAT_NAIVE"] | None = None  # Milvus >= 2.5 query algorithm; null: the server's default
    drop_ratio_build: float = Field(0.0, ge=0, lt=1)  # share of each vector's smallest weights the index drops; 0 keeps all (exact)
    scoring: Scoring = "query_l2"  # Eq. 11 variant the collection serves: both_l2 / item_l2 store L2-normalised items
    batch_rows: int = Field(1000, ge=1)  # vectors per upsert request
    max_id_bytes: int = Field(512, ge=1, le=65535)  # VARCHAR max_length of the primary key (UTF-8 bytes)


_INDEX_NAME = r"^[a-z0-9][a-z0-9._-]{0,254}$"


class SearchEngineParams(BaseModel):
    """Bulk NDJSON for OpenSearch / Elasticsearch (``prosper.export.search_engines``)."""

    model_config = ConfigDict(extra="forbid")
    index: str | None = Field("prosper", pattern=_INDEX_NAME)  # _index of each bulk action; null: the bulk URL names it
    field: str = Field("vector", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")  # name of the sparse field (no dots)
    features: Literal["terms", "ids"] = "terms"  # feature names: escaped vocabulary terms, or decimal term ids
    scoring: Scoring = "query_l2"  # Eq. 11 variant: query bodies are normalised by it; both_l2 / item_l2 also normalise items
    query_top_terms: int | None = Field(None, ge=1)  # keep the N highest-weighted query terms (the paper serves with 16)
    max_query_terms: int = Field(1024, ge=1)  # Lucene's default boolean clause limit; longer queries keep their top terms
    k: int = Field(1000, ge=1, le=10000)  # "size" of each query body (index.max_result_window is 10,000 by default)


class OpenSearchParams(SearchEngineParams):
    """OpenSearch ``rank_features`` documents, ``neural_sparse`` query bodies."""


class ElasticsearchParams(SearchEngineParams):
    """Elasticsearch ``sparse_vector`` documents, ``sparse_vector`` query bodies."""

    prune: bool = False  # let the sparse_vector query prune tokens (faster, approximate); false keeps the exact dot product
