"""The exporter protocol: how sparse vectors become files that search engines load.

An exporter plugin registers ``(name, factory, params_model)`` through the
``register_exporters`` hook (see :mod:`prosper.hookspecs`). ``factory(params)`` returns an
:class:`Exporter`::

    exporter = factory(params)
    writer = exporter.open(path, vocabulary, side, metadata)   # vocabulary: term string per id
    for batch in batches:                                       # prosper.sparse.SparseVectors
        writer.write(batch)
    summary = writer.close()    # atomic: the file appears under `path` only now
    # on failure: writer.abort() removes the temporary file

``side`` is ``"item"`` or ``"query"``; ``metadata`` carries ``tokenizer`` (name or path),
``checkpoint`` and anything else worth recording. ``close()`` returns a dict of counters
(``rows`` at least; exporters add their own, e.g. Lucene's ``quantised_empty``), which the
inference driver sums over shards. ``exporter.merge(parts, output, side)`` concatenates
finished shard files into one; the default concatenates bytes, which suits line formats.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from prosper.sparse import SparseVectors


@runtime_checkable
class Writer(Protocol):
    def write(self, batch: SparseVectors) -> None: ...

    def close(self) -> dict[str, Any]: ...

    def abort(self) -> None: ...


class Exporter(Protocol):
    def suffix(self, side: str) -> str: ...

    def open(self, path: str | Path, vocabulary: Sequence[str], side: str, metadata: dict | None = None) -> Writer: ...

    def merge(self, parts: Sequence[Path], output: Path, side: str) -> None: ...


from prosper.fileio import temp_path  # noqa: E402  (re-exported for exporter plugins)


class AtomicFile:
    """A binary file written under a temporary name and renamed into place by :meth:`commit`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_path(self.path)
        self.handle = self.tmp.open("wb")

    def write(self, data) -> None:
        self.handle.write(data)

    def commit(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        self.tmp.unlink(missing_ok=True)


class LineExporter:
    """Shared behaviour of text exporters: one line per vector, shards merge by concatenation."""

    def suffix(self, side: str) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def merge(self, parts: Sequence[Path], output: Path, side: str) -> None:
        target = AtomicFile(output)
        try:
            for part in parts:
                with Path(part).open("rb") as handle:
                    shutil.copyfileobj(handle, target.handle, 1 << 22)
            target.commit()
        except BaseException:
            target.abort()
            raise


def string_array_bytes(array) -> memoryview:
    """The UTF-8 bytes of all values of an arrow string array, back to back, without copying."""
    import numpy as np
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if len(array) == 0:
        return memoryview(b"")
    offset_type = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(array.buffers()[1], dtype=offset_type)[array.offset : array.offset + len(array) + 1]
    return memoryview(array.buffers()[2])[int(offsets[0]) : int(offsets[-1])]


def json_strings(values: Sequence[str]):
    """Each value as a JSON string literal (quotes included), as an arrow string array."""
    import json

    import pyarrow as pa

    dumps = json.JSONEncoder(ensure_ascii=False).encode
    return pa.array([dumps(v) for v in values], pa.string())


def joined_rows(items, offsets, separator: str):
    """Join ``items[offsets[i]:offsets[i+1]]`` with ``separator`` for every row (vectorised)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    lists = pa.LargeListArray.from_arrays(pa.array(np.asarray(offsets, np.int64)), items)
    return pc.binary_join(lists, separator)


def build_exporter(exporter) -> tuple[Any, dict]:
    """``(exporter, spec)`` from a registered name, a ``{name: ..., **params}`` spec (dict or
    ComponentSpec; validated by the plugin's params model) or an exporter object."""
    if isinstance(exporter, str):
        exporter = {"name": exporter}
    if isinstance(exporter, dict) or hasattr(exporter, "model_dump"):
        from prosper.plugins import get_registry

        spec = exporter.model_dump() if hasattr(exporter, "model_dump") else dict(exporter)
        return get_registry().build("exporter", spec, where="export"), spec
    params = getattr(exporter, "params", None)
    spec = {"name": type(exporter).__name__, **(params.model_dump() if hasattr(params, "model_dump") else {})}
    return exporter, spec
