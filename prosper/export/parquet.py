"""Parquet exporter and reader: the round-trip format of sparse vectors.

Schema: ``id: string, term_ids: list<int32>, weights: list<float32>``; within a row term ids
ascend and weights are > 0 (the :class:`~prosper.sparse.SparseVectors` invariants). Schema
metadata (UTF-8 strings): ``prosper.format`` (``sparse-vectors/1``), ``prosper.tokenizer``,
``prosper.vocab_size``, ``prosper.side``, ``prosper.vocabulary`` (JSON list: the term string of
every term id) and any further ``prosper.<key>`` passed by the caller (e.g. ``checkpoint``).

The list columns are built straight from the CSR arrays (offsets + values), so writing costs no
Python work per row; reading returns the same arrays. The index (``prosper.retrieval``) and
``prosper export`` read files written here with :func:`read_parquet_vectors` /
:func:`iter_parquet_vectors`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prosper.errors import InputError
from prosper.components import Exporter, Writer
from prosper.export.base import check_vocabulary
from prosper.fileio import temp_path
from prosper.export.params import ParquetParams
from prosper.sparse import SparseVectors

FORMAT = "sparse-vectors/1"
MAX_PENDING_TERMS = 4_000_000
PREFIX = "prosper."


def arrow_schema(metadata: dict[str, str] | None = None):
    import pyarrow as pa

    return pa.schema(
        [("id", pa.string()), ("term_ids", pa.list_(pa.int32())), ("weights", pa.list_(pa.float32()))],
        metadata=metadata,
    )


def to_arrow(vectors: SparseVectors, schema=None):
    """A ``pyarrow.Table`` of the vectors; no per-row Python work beyond the id strings."""
    import pyarrow as pa

    offsets = pa.array(np.asarray(vectors.offsets, np.int32))
    term_ids = pa.ListArray.from_arrays(offsets, pa.array(vectors.term_ids, pa.int32()))
    weights = pa.ListArray.from_arrays(offsets, pa.array(vectors.weights, pa.float32()))
    return pa.Table.from_arrays([pa.array(vectors.ids, pa.string()), term_ids, weights], schema=schema or arrow_schema())


def schema_metadata(vocabulary: Sequence[str], side: str, metadata: dict | None) -> dict[str, str]:
    extra = dict(metadata or {})
    out = {
        PREFIX + "format": FORMAT,
        PREFIX + "tokenizer": str(extra.pop("tokenizer", "") or ""),
        PREFIX + "vocab_size": str(len(vocabulary)),
        PREFIX + "side": side,
        PREFIX + "vocabulary": json.dumps(list(vocabulary), ensure_ascii=False),
    }
    for key, value in extra.items():
        out[PREFIX + key] = value if isinstance(value, str) else json.dumps(value)
    return out


class ParquetExporter(Exporter):
    """Parquet ``id, term_ids list<int32>, weights list<float32>`` (the round-trip format)."""

    def __init__(self, params: ParquetParams | None = None):
        self.params = params or ParquetParams()

    def suffix(self, side: str) -> str:
        return ".parquet"

    def open(self, path, vocabulary: Sequence[str], side: str, metadata: dict | None = None) -> ParquetWriter:
        return ParquetWriter(Path(path), schema_metadata(vocabulary, side, metadata), len(vocabulary), self.params)

    def read(self, path, vocabulary: Sequence[str], side: str) -> SparseVectors:
        return read_parquet_vectors(path)[0]

    def merge(self, parts: Sequence[Path], output: Path, side: str) -> None:
        """Copy the shards' row groups, in order, into one file (bounded by one row group)."""
        import pyarrow.parquet as pq

        if not parts:
            raise ValueError("nothing to merge")
        schema = pq.ParquetFile(parts[0]).schema_arrow
        tmp = temp_path(Path(output))
        writer = pq.ParquetWriter(tmp, schema, compression=_codec(self.params.compression))
        try:
            for part in parts:
                handle = pq.ParquetFile(part)
                for group in range(handle.num_row_groups):
                    writer.write_table(handle.read_row_group(group), row_group_size=self.params.row_group_rows)
            writer.close()
            Path(tmp).replace(output)
        except BaseException:
            writer.close()
            tmp.unlink(missing_ok=True)
            raise


class ParquetWriter(Writer):
    def __init__(self, path: Path, metadata: dict[str, str], vocab_size: int, params: ParquetParams):
        import pyarrow.parquet as pq

        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_path(path)
        self.schema = arrow_schema(metadata)
        self.vocab_size = vocab_size
        self.params = params
        self.writer = pq.ParquetWriter(self.tmp, self.schema, compression=_codec(params.compression))
        self.pending: list[SparseVectors] = []
        self.pending_rows = 0
        self.pending_terms = 0
        self.rows = 0

    def write(self, batch: SparseVectors) -> None:
        check_vocabulary(batch, self.vocab_size)
        if len(batch) == 0:
            return
        self.pending.append(batch)
        self.pending_rows += len(batch)
        self.pending_terms += len(batch.term_ids)
        # A row group is written at row_group_rows rows or ~32 MB of terms, whichever comes first.
        if self.pending_rows >= self.params.row_group_rows or self.pending_terms >= MAX_PENDING_TERMS:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        batch = self.pending[0] if len(self.pending) == 1 else SparseVectors.concat(self.pending)
        self.writer.write_table(to_arrow(batch, self.schema), row_group_size=max(len(batch), 1))
        self.rows += len(batch)
        self.pending, self.pending_rows, self.pending_terms = [], 0, 0

    def close(self) -> dict:
        self._flush()
        self.writer.close()
        self.tmp.replace(self.path)
        return {"rows": self.rows}

    def abort(self) -> None:
        try:
            self.writer.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def _codec(name: str):
    return None if name.lower() == "none" else name


# -- reading ------------------------------------------------------------------------------
def parse_metadata(raw: dict[bytes, bytes] | None) -> dict[str, Any]:
    """Schema metadata as a dict: ``tokenizer``, ``vocab_size`` (int), ``side``, ``vocabulary``
    (list of str, or None) and any other ``prosper.*`` key (prefix removed)."""
    out: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        key, value = key.decode("utf-8"), value.decode("utf-8")
        if key.startswith(PREFIX):
            out[key[len(PREFIX) :]] = value
    if "vocab_size" in out:
        out["vocab_size"] = int(out["vocab_size"])
    out["vocabulary"] = json.loads(out["vocabulary"]) if "vocabulary" in out else None
    return out


def _files(path: Path) -> list[Path]:
    """A Parquet file, or the ``part-*.parquet`` shards of an unmerged output folder."""
    if path.is_dir():
        parts = sorted(path.glob("part-*.parquet"))
        if not parts:
            raise InputError("no part-*.parquet files in this folder", path)
        return parts
    if not path.is_file():
        raise InputError("vectors file not found", path)
    return [path]


def read_parquet_metadata(path: str | Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    file = _files(Path(path))[0]
    try:
        schema = pq.ParquetFile(file).schema_arrow
    except Exception as exc:
        raise InputError(f"cannot read Parquet file ({exc})", file) from None
    meta = parse_metadata(schema.metadata)
    missing = {"id", "term_ids", "weights"} - set(schema.names)
    if missing:
        raise InputError(f"not a prosper vectors file: missing column(s) {', '.join(sorted(missing))}", file)
    if "vocab_size" not in meta:
        raise InputError("not a prosper vectors file: no prosper.vocab_size in the schema metadata", file)
    return meta


def iter_parquet_vectors(path: str | Path, batch_rows: int = 65536) -> Iterator[SparseVectors]:
    """Stream the vectors of a file (or shard folder) in batches of at most ``batch_rows`` rows."""
    import pyarrow.parquet as pq

    path = Path(path)
    vocab_size = read_parquet_metadata(path)["vocab_size"]
    row = 0
    for file in _files(path):
        for batch in pq.ParquetFile(file).iter_batches(batch_size=batch_rows, columns=["id", "term_ids", "weights"]):
            yield from_arrow(batch, vocab_size, file, row)
            row += batch.num_rows


def read_parquet_vectors(path: str | Path) -> tuple[SparseVectors, dict[str, Any]]:
    """All vectors of a file (or shard folder) and its metadata (see :func:`parse_metadata`)."""
    meta = read_parquet_metadata(path)
    parts = list(iter_parquet_vectors(path, batch_rows=1 << 20))
    vectors = SparseVectors.concat(parts) if parts else SparseVectors.empty(meta["vocab_size"])
    return vectors, meta


def from_arrow(batch, vocab_size: int, source: Path | str = "<arrow>", first_row: int = 0) -> SparseVectors:
    """CSR arrays from an arrow batch/table, checking the invariants (vectorised)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def column(name):
        col = batch.column(name)
        return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col

    ids_col, terms_col, weights_col = column("id"), column("term_ids"), column("weights")
    if ids_col.null_count:
        raise InputError("null id", source, first_row + _first_null(ids_col) + 1)
    lengths = pc.list_value_length(terms_col).fill_null(0).to_numpy(zero_copy_only=False)
    wlengths = pc.list_value_length(weights_col).fill_null(0).to_numpy(zero_copy_only=False)
    if not np.array_equal(lengths, wlengths):
        bad = int(np.flatnonzero(lengths != wlengths)[0])
        raise InputError("term_ids and weights have different lengths", source, first_row + bad + 1)
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    terms = pc.list_flatten(terms_col).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    weights = pc.list_flatten(weights_col).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    vectors = SparseVectors(ids_col.to_pylist(), offsets, terms, weights, vocab_size)
    check_invariants(vectors, source, first_row)
    return vectors


def check_invariants(vectors: SparseVectors, source: Path | str = "<vectors>", first_row: int = 0) -> None:
    """Term ids in range and ascending per row, weights positive and finite; else InputError."""
    terms, weights, offsets = vectors.term_ids, vectors.weights, vectors.offsets
    if not len(terms):
        return

    def row_of(position: int) -> int:  # 1-based row number in the file
        return int(np.searchsorted(offsets, position, side="right")) - 1 + first_row + 1

    bad = np.flatnonzero((terms < 0) | (terms >= vectors.vocab_size))
    if len(bad):
        raise InputError(f"term id {int(terms[bad[0]])} outside the vocabulary of {vectors.vocab_size}", source, row_of(bad[0]))
    bad = np.flatnonzero(~(weights > 0) | ~np.isfinite(weights))
    if len(bad):
        raise InputError(f"weight {float(weights[bad[0]])} is not positive and finite", source, row_of(bad[0]))
    descending = np.diff(terms.astype(np.int64)) <= 0
    descending[offsets[1:-1][(offsets[1:-1] > 0) & (offsets[1:-1] < len(terms))] - 1] = False  # row starts
    bad = np.flatnonzero(descending)
    if len(bad):
        raise InputError("term ids are not strictly ascending within the row", source, row_of(bad[0] + 1))


def _first_null(array) -> int:
    return int(np.flatnonzero(np.asarray(array.is_null().to_numpy(zero_copy_only=False)))[0])
