"""Exporters: exact file contents, Parquet round trips, edge cases every exporter must handle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prosper.errors import InputError
from prosper.export.jsonl import JsonlExporter
from prosper.export.parquet import ParquetExporter, iter_parquet_vectors, read_parquet_vectors
from prosper.plugins import get_registry
from prosper.sparse import SparseVectors

VOCAB = ["drill", "ä", "##ing", "钻头", "a b", "x:y", '"q"', "🔧"]
IDS = ["p1", "id with space", "comma,tab\tnewline\nquote\"", "ß-中"]


def _vectors():
    # row 2 is empty; non-ASCII terms, ids with separators
    return SparseVectors.from_rows(
        IDS,
        [([0, 3, 7], [0.5, 1.25, 0.1]), ([1, 4], [2.0, 1e-5]), ([], []), ([2, 5, 6], [3.3, 0.7, 0.015])],
        len(VOCAB),
    )


def _export(exporter, path, vectors, side="item", metadata=None, batches=1):
    writer = exporter.open(path, VOCAB, side, metadata or {"tokenizer": "tiny-tok"})
    step = max(1, len(vectors) // batches)
    for start in range(0, len(vectors), step):
        writer.write(vectors.slice(start, min(len(vectors), start + step)))
    return writer.close()


def test_registry_builds_the_three_exporters():
    registry = get_registry()
    assert {"jsonl", "parquet", "lucene"} <= set(registry.names("exporter"))
    assert registry.build("exporter", {"name": "lucene", "scale": 10}).params.scale == 10
    assert isinstance(registry.build("exporter", {"name": "parquet"}), ParquetExporter)


def test_jsonl_exact_lines(tmp_path):
    path = tmp_path / "v.jsonl"
    assert _export(JsonlExporter(), path, _vectors()) == {"rows": 4}
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    assert lines[0] == '{"id":"p1","vector":{"drill":0.5,"钻头":1.25,"🔧":0.1}}'
    assert json.loads(lines[1]) == {"id": "id with space", "vector": {"ä": 2.0, "a b": 1e-05}}
    assert json.loads(lines[2]) == {"id": IDS[2], "vector": {}}
    assert json.loads(lines[3])["vector"] == {"##ing": pytest.approx(3.3), "x:y": pytest.approx(0.7), '"q"': pytest.approx(0.015)}


def test_parquet_roundtrip_schema_and_metadata(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = _vectors()
    path = tmp_path / "v.parquet"
    _export(ParquetExporter(), path, vectors, metadata={"tokenizer": "tiny-tok", "checkpoint": "/ckpt"}, batches=3)
    schema = pq.read_schema(path)
    assert schema.field("id").type == pa.string()
    assert schema.field("term_ids").type == pa.list_(pa.int32())
    assert schema.field("weights").type == pa.list_(pa.float32())
    raw = schema.metadata
    assert raw[b"prosper.tokenizer"] == b"tiny-tok" and raw[b"prosper.vocab_size"] == b"8"
    back, meta = read_parquet_vectors(path)
    assert back.equals(vectors)
    assert meta["vocabulary"] == VOCAB and meta["side"] == "item" and meta["vocab_size"] == 8
    assert meta["checkpoint"] == "/ckpt" and meta["tokenizer"] == "tiny-tok"
    streamed = SparseVectors.concat(list(iter_parquet_vectors(path, batch_rows=1)))
    assert streamed.equals(vectors)


def test_parquet_to_jsonl_values_equal(tmp_path):
    rng = np.random.default_rng(0)
    dense = rng.random((300, len(VOCAB))).astype(np.float32) * 5
    dense[dense < 2.5] = 0
    vectors = SparseVectors.from_dense(dense, [f"d{i}" for i in range(300)])
    _export(ParquetExporter(), tmp_path / "v.parquet", vectors)
    back, meta = read_parquet_vectors(tmp_path / "v.parquet")
    _export(JsonlExporter(), tmp_path / "v.jsonl", back)
    rows = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text(encoding="utf-8").splitlines()]
    term_id = {t: i for i, t in enumerate(meta["vocabulary"])}
    rebuilt = SparseVectors.from_rows(
        [r["id"] for r in rows],
        [([term_id[t] for t in r["vector"]], [np.float32(w) for w in r["vector"].values()]) for r in rows],
        len(VOCAB),
    )
    assert rebuilt.equals(vectors)  # bit-exact float32 values


def test_parquet_merge_concatenates_shards(tmp_path):
    vectors = _vectors()
    exporter = ParquetExporter()
    _export(exporter, tmp_path / "a.parquet", vectors.slice(0, 2))
    _export(exporter, tmp_path / "b.parquet", vectors.slice(2, 4))
    exporter.merge([tmp_path / "a.parquet", tmp_path / "b.parquet"], tmp_path / "all.parquet", "item")
    back, meta = read_parquet_vectors(tmp_path / "all.parquet")
    assert back.equals(vectors) and meta["vocabulary"] == VOCAB


def test_writers_are_atomic_and_abort_cleans_up(tmp_path):
    for exporter, name in ((ParquetExporter(), "v.parquet"), (JsonlExporter(), "v.jsonl")):
        writer = exporter.open(tmp_path / name, VOCAB, "item", {})
        writer.write(_vectors())
        assert not (tmp_path / name).exists()  # only the temporary file so far
        writer.abort()
        assert list(tmp_path.iterdir()) == []


def test_empty_output_files(tmp_path):
    empty = SparseVectors.empty(len(VOCAB))
    _export(ParquetExporter(), tmp_path / "e.parquet", empty)
    back, meta = read_parquet_vectors(tmp_path / "e.parquet")
    assert len(back) == 0 and meta["vocab_size"] == len(VOCAB)
    _export(JsonlExporter(), tmp_path / "e.jsonl", empty)
    assert (tmp_path / "e.jsonl").read_bytes() == b""


def test_reader_rejects_broken_files(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from prosper.export.parquet import arrow_schema

    meta = {"prosper.vocab_size": "8"}
    table = pa.table(
        {"id": ["a", "b"], "term_ids": [[1, 2], [5, 3]], "weights": [[0.5, 0.5], [1.0, 1.0]]},
        schema=arrow_schema(meta),
    )
    pq.write_table(table, tmp_path / "unsorted.parquet")
    with pytest.raises(InputError, match=r"unsorted\.parquet:2: term ids are not strictly ascending"):
        read_parquet_vectors(tmp_path / "unsorted.parquet")
    table = pa.table({"id": ["a"], "term_ids": [[9]], "weights": [[1.0]]}, schema=arrow_schema(meta))
    pq.write_table(table, tmp_path / "range.parquet")
    with pytest.raises(InputError, match="outside the vocabulary"):
        read_parquet_vectors(tmp_path / "range.parquet")
    pq.write_table(pa.table({"id": ["a"]}), tmp_path / "other.parquet")
    with pytest.raises(InputError, match="missing column"):
        read_parquet_vectors(tmp_path / "other.parquet")
    with pytest.raises(InputError, match="not found"):
        read_parquet_vectors(tmp_path / "none.parquet")
