"""Item texts kept beside an index, so a search can show what it found, not just ids.

``prosper index --corpus`` writes ``INDEX/titles.parquet`` (``id``, ``text``); a single-query
``prosper search`` looks up only the ids it prints (a filtered Parquet read), so the cost does
not grow with what is on screen, whatever the catalog size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

TITLES_FILE = "titles.parquet"


def save_titles(directory: str | Path, ids: Sequence[str], texts: Sequence[str]) -> Path:
    """Write ``(id, text)`` rows to ``directory/titles.parquet`` atomically."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    from prosper.fileio import temp_path

    path = Path(directory) / TITLES_FILE
    tmp = temp_path(path)
    table = pa.table({"id": pa.array(list(ids), pa.string()), "text": pa.array(list(texts), pa.string())})
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)
    return path


def load_titles(directory: str | Path | None, ids: Sequence[str]) -> dict[str, str] | None:
    """``{id: text}`` for ``ids`` from an index folder's titles, or None when it has none."""
    if directory is None or not (Path(directory) / TITLES_FILE).is_file():
        return None
    import pyarrow.parquet as pq

    wanted = [str(i) for i in ids]
    table = pq.read_table(Path(directory) / TITLES_FILE, filters=[("id", "in", wanted)] if wanted else None)
    return dict(zip(table.column("id").to_pylist(), table.column("text").to_pylist()))
