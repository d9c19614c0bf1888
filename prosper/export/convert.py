"""Convert exported Parquet vectors to any exporter's format, without re-encoding.

``convert(input, exporter, output)`` streams the Parquet file (or an unmerged shard folder) in
batches of ``batch_rows`` rows through the chosen exporter, so memory stays bounded. The term
strings come from the file's ``prosper.vocabulary`` metadata.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prosper.errors import InputError


def convert(input: str | Path, exporter, output: str | Path, side: str | None = None, batch_rows: int = 65536) -> dict[str, Any]:
    """Write the vectors of ``input`` with ``exporter`` (object or ``{name: ..., **params}``) to ``output``.

    ``side`` defaults to the side recorded in the file. Returns the writer's counters plus
    ``rows``, ``seconds`` and ``vectors_per_s``.
    """
    from prosper.export.base import build_exporter
    from prosper.export.parquet import iter_parquet_vectors, read_parquet_metadata

    exporter, _ = build_exporter(exporter)
    meta = read_parquet_metadata(input)
    vocabulary = meta.get("vocabulary")
    if not vocabulary:
        raise InputError("no prosper.vocabulary in the schema metadata: cannot name the terms", input)
    side = side or meta.get("side") or "item"
    extra = {k: v for k, v in meta.items() if k not in ("vocabulary", "vocab_size", "side", "format")}
    started = time.perf_counter()
    writer = exporter.open(Path(output), vocabulary, side, extra)
    try:
        for batch in iter_parquet_vectors(input, batch_rows=batch_rows):
            writer.write(batch)
        counts = writer.close()
    except BaseException:
        writer.abort()
        raise
    seconds = time.perf_counter() - started
    rows = counts.get("rows", 0)
    return {**counts, "side": side, "seconds": seconds, "vectors_per_s": rows / seconds if seconds > 0 else 0.0}
