"""Streaming collection readers: formats, BEIR folders and the on_error policy."""

from __future__ import annotations

import gzip
import json

import pytest

from prosper.data.collections import CollectionStats, Record, count_lines, iter_collection, load_texts
from prosper.errors import InputError


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_joins_title_and_text(tmp_path):
    path = _write_jsonl(
        tmp_path / "c.jsonl",
        [{"_id": "a", "title": "Drill", "text": "18V"}, {"id": 7, "text": "hammer"}, {"_id": "c", "title": "Säge", "text": ""}],
    )
    records = list(iter_collection(path))
    assert records == [
        Record("a", "Drill 18V", str(path), 1),
        Record("7", "hammer", str(path), 2),
        Record("c", "Säge", str(path), 3),
    ]


def test_custom_fields_and_blank_lines(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "a", "name": "x", "desc": "y"}\n\n{"_id": "b", "name": "z"}\n', encoding="utf-8")
    assert load_texts(path, title_field="name", text_field="desc") == {"a": "x y", "b": "z"}
    assert [r.line for r in iter_collection(path, title_field="name")] == [1, 3]


def test_tsv_with_header_and_gzip(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text("id\ttext\nq1\tcordless drill\nq2\tpipe\textra\n", encoding="utf-8")
    assert load_texts(path) == {"q1": "cordless drill", "q2": "pipe extra"}
    gz = tmp_path / "q.tsv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert load_texts(gz) == {"q1": "cordless drill", "q2": "pipe extra"}


def test_parquet_collection(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "title": ["t1", None], "text": ["x", "y"]}), path)
    assert [(r.id, r.text, r.line) for r in iter_collection(path)] == [("a", "t1 x", 1), ("b", "y", 2)]
    assert count_lines(path) == 2


def test_beir_folder_picks_side(tmp_path):
    _write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "d1", "title": "lamp", "text": ""}])
    _write_jsonl(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "desk lamp"}])
    assert load_texts(tmp_path, "item") == {"d1": "lamp"}
    assert load_texts(tmp_path, side="query") == {"q1": "desk lamp"}
    with pytest.raises(InputError, match="side must be"):
        load_texts(tmp_path, side="doc")


@pytest.mark.parametrize(
    "content, reason, line",
    [
        (b'{"_id": "a", "text": "x"}\n{"_id": "b", "text": \n', "malformed", 2),
        (b'{"_id": "a", "text": "x"}\n[1, 2]\n', "malformed", 2),
        (b'{"_id": "a", "text": "x"}\n{"title": "no id"}\n', "missing_id", 2),
        (b'{"_id": "a", "text": "x"}\n{"_id": "b", "text": "caf\xe9"}\n', "undecodable", 2),
        (b'{"_id": "a", "text": "x"}\n{"_id": "b", "text": "  "}\n', "empty_text", 2),
        (b'{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n', "duplicate_id", 2),
    ],
)
def test_problems_fail_with_file_line_or_skip_with_count(tmp_path, content, reason, line):
    path = tmp_path / "c.jsonl"
    path.write_bytes(content + b'{"_id": "z", "text": "ok"}\n')
    with pytest.raises(InputError) as info:
        list(iter_collection(path))
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert f"[{reason}]" in str(info.value)
    assert info.value.line == line
    stats = CollectionStats()
    records = list(iter_collection(path, on_error="skip", stats=stats))
    assert [r.id for r in records] == ["a", "z"]
    assert stats.skipped == {reason: 1}
    assert stats.yielded == 2 and stats.read == 3
    assert stats.first[reason].startswith(f"{path}:{line}:")
    assert reason in stats.summary() and "skipped 1" in stats.summary()


def test_tsv_without_tab_is_malformed(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("a\tok\njust text\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"c\.tsv:2: expected id<TAB>text"):
        list(iter_collection(path))


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(InputError, match="collection not found"):
        list(iter_collection(tmp_path / "nope.jsonl"))
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="unknown collection format"):
        list(iter_collection(tmp_path / "x.csv"))
    with pytest.raises(InputError, match="not a BEIR folder"):
        list(iter_collection(tmp_path))


def test_iteration_is_lazy(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"_id": "a", "text": "x"}\n{broken\n')
    iterator = iter_collection(path)
    assert next(iterator).id == "a"  # the bad second line is not read yet
    with pytest.raises(InputError):
        next(iterator)


def test_homedepot_titles(shared_dir):
    stats = CollectionStats()
    it = iter_collection(shared_dir / "datasets" / "homedepot", "item", stats=stats)
    first = next(it)
    assert first.id == "100001" and first.text == "Simpson Strong-Tie 12-Gauge Angle"
