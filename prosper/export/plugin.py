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


@hookimpl
def register_exporters(register):
    from prosper.export.params import JsonlParams, LuceneParams, ParquetParams

    register("jsonl", _jsonl, JsonlParams)
    register("parquet", _parquet, ParquetParams)
    register("lucene", _lucene, LuceneParams)
