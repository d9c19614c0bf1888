"""Helpers shared by the built-in exporters, and :func:`build_exporter`.

The exporter contract itself (``suffix``, ``open`` -> writer ``write/close/abort``, ``merge``,
``read``, ``roundtrip``) is :class:`prosper.components.Exporter`; an exporter plugin registers
``(name, factory, params_model)`` through the ``register_exporters`` hook and its factory returns
an instance of it. ``close()`` returns a dict of counters (``rows`` at least; exporters add their
own, e.g. Lucene's ``quantised_empty``), which the inference driver sums over shards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


from pydantic import BaseModel

from prosper.components import Exporter
from prosper.sparse import SparseVectors


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


def build_exporter(exporter: str | Mapping | BaseModel | Exporter) -> tuple[Exporter, dict]:
    """``(exporter, spec)`` from a registered name, a ``{name: ..., **params}`` spec (dict or
    ComponentSpec; validated by the plugin's params model) or an :class:`Exporter` object."""
    if isinstance(exporter, Exporter):
        params = exporter.params.model_dump() if exporter.params is not None else {}
        spec = {"name": type(exporter).__name__, **params}
        return exporter, spec
    if not isinstance(exporter, (str, BaseModel, Mapping)):
        raise TypeError(f"export: expected a name, a {{name: ...}} spec or an Exporter, got {type(exporter).__name__}")
    from prosper.plugins import get_registry
    from prosper.registry import spec_dict

    spec = spec_dict(exporter)

    return get_registry().build("exporter", spec, where="export"), spec


def check_vocabulary(batch: SparseVectors, vocab_size: int) -> None:
    """Every writer's first check: the vectors span the vocabulary the file was opened with."""
    if batch.vocab_size != vocab_size:
        raise ValueError(f"vectors over a vocabulary of {batch.vocab_size} terms, but {vocab_size} term strings given")
