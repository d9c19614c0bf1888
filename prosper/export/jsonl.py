"""JSONL exporter: one ``{"id": ..., "vector": {term: weight}}`` object per line.

Terms are the tokenizer's vocabulary entries (unique per term id, written as they are: no
normalisation); weights are the float32 values written in their shortest form that reads back
to the same float32 (``0.1``, not ``0.10000000149011612``). Rows keep the encoder's order and
an empty vector is written as ``{}``. Lines are built with arrow compute kernels, not a Python
loop over terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prosper.components import Exporter, Writer
from prosper.export.base import check_vocabulary, joined_rows, json_strings, string_array_bytes
from prosper.export.params import JsonlParams
from prosper.fileio import AtomicFile
from prosper.sparse import SparseVectors


class JsonlExporter(Exporter):
    """JSONL ``{"id", "vector": {term: weight}}`` with float weights (docs/exporting.md)."""

    def __init__(self, params: JsonlParams | None = None):
        self.params = params or JsonlParams()
        self._vocab_cache: tuple[int, object] | None = None

    def suffix(self, side: str) -> str:
        return ".jsonl"

    def quoted_vocabulary(self, vocabulary: Sequence[str]):
        # The JSON-quoted vocabulary is built once per vocabulary, not once per shard.
        if self._vocab_cache is None or self._vocab_cache[0] != id(vocabulary):
            self._vocab_cache = (id(vocabulary), json_strings(vocabulary))
        return self._vocab_cache[1]

    def open(self, path, vocabulary: Sequence[str], side: str, metadata: dict | None = None) -> JsonlWriter:
        return JsonlWriter(Path(path), self.quoted_vocabulary(vocabulary), len(vocabulary))

    def read(self, path, vocabulary: Sequence[str], side: str) -> SparseVectors:
        from prosper.export.readers import read_json_vectors

        return read_json_vectors(path, vocabulary)


class JsonlWriter(Writer):
    def __init__(self, path: Path, quoted_vocabulary, vocab_size: int):
        self.file = AtomicFile(path)
        self.vocab = quoted_vocabulary
        self.vocab_size = vocab_size
        self.rows = 0

    def write(self, batch: SparseVectors) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        check_vocabulary(batch, self.vocab_size)
        if len(batch) == 0:
            return
        keys = self.vocab.take(pa.array(batch.term_ids))
        values = pc.cast(pa.array(batch.weights), pa.string())
        pairs = pc.binary_join_element_wise(keys, values, ":")
        bodies = joined_rows(pairs, batch.offsets, ",")
        lines = pc.binary_join_element_wise('{"id":', json_strings(batch.ids), ',"vector":{', bodies, "}}\n", "")
        self.file.write(string_array_bytes(lines))
        self.rows += len(batch)

    def close(self) -> dict:
        self.file.commit()
        return {"rows": self.rows}

    def abort(self) -> None:
        self.file.abort()
