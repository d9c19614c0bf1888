"""Built-in exporters, registered through the ``prosper`` entry-point group.

Only the light params models are imported here; pyarrow is imported by the writers when they run.
"""

from prosper import hookimpl


def _jsonl(params):
    """JSONL {"id", "vector": {term: weight}} with float weights."""
    from prosper.export.jsonl import JsonlExporter

    return JsonlExporter(params)


def _parquet(params):
    """Parquet id, term_ids list<int32>, weights list<float32> (the round-trip format)."""
    from prosper.export.parquet import ParquetExporter

    return ParquetExporter(params)


def _lucene(params):
    """Anserini impact files: JsonVectorCollection JSONL for items, repeated-term TSV for queries."""
    from prosper.export.lucene import LuceneExporter

    return LuceneExporter(params)


def _milvus(params):
    """Item vectors upserted into a Milvus collection (server URI or Milvus Lite .db); needs prosper-retrieval[milvus]."""
    from prosper.export.milvus import MilvusExporter

    return MilvusExporter(params)


def _opensearch(params):
    """OpenSearch bulk NDJSON (rank_features field), index mapping, neural_sparse query bodies."""
    from prosper.export.opensearch import OpenSearchExporter

    return OpenSearchExporter(params)


def _elasticsearch(params):
    """Elasticsearch bulk NDJSON (sparse_vector field), index mapping, sparse_vector query bodies."""
    from prosper.export.elasticsearch import ElasticsearchExporter

    return ElasticsearchExporter(params)


@hookimpl
def register_exporters(register):
    from prosper.export.params import (
        ElasticsearchParams,
        JsonlParams,
        LuceneParams,
        MilvusParams,
        OpenSearchParams,
        ParquetParams,
    )

    register("jsonl", _jsonl, JsonlParams)
    register("parquet", _parquet, ParquetParams)
    register("lucene", _lucene, LuceneParams)
    register("milvus", _milvus, MilvusParams)
    register("opensearch", _opensearch, OpenSearchParams)
    register("elasticsearch", _elasticsearch, ElasticsearchParams)
