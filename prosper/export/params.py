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
