"""The streaming encoding driver, with a deterministic stand-in encoder (fast, no model).

The stand-in follows the encoder contract (``encode``, ``vocabulary``, ``tokenizer``) so the
driver's own behaviour is tested: buffering, order, shards, manifest, resume, ranks, policies,
bounded memory (length bucketing inside a buffer is the encoder's job, tested with the model). tests/test_infer_model.py runs the same driver on a real tiny model.
"""

from __future__ import annotations

import json
import threading
import tracemalloc
import zlib

import numpy as np
import pytest

from prosper.errors import ConfigError, InputError
from prosper.export.parquet import read_parquet_vectors
from prosper.inference.driver import encode_collection
from prosper.settings import InferSettings
from prosper.sparse import SparseVectors

VOCAB_SIZE = 97


class FakeTokenizer:
    name_or_path = "fake-tokenizer"

    def __call__(self, texts, add_special_tokens=True, truncation=False, max_length=None):
        ids = [[zlib.crc32(w.encode()) % VOCAB_SIZE for w in t.split()] for t in texts]
        if truncation and max_length:
            ids = [x[:max_length] for x in ids]
        return {"input_ids": ids}


class FakeEncoder:
    """Term = crc32(word) % 97, weight = len(word) / 4 (max over repeats): a pure function of the text."""

    def __init__(self):
        from prosper.settings import ModelSettings

        self.tokenizer = FakeTokenizer()
        self.settings = ModelSettings()  # what the inference API records (scoring)
        self.calls: list[list[int]] = []  # word counts of the texts of each encode() call

    def vocabulary(self):
        return [f"w{i}" if i % 10 else f"wörd {i}" for i in range(VOCAB_SIZE)]

    def encode(self, texts, side="item", batch_size=64, ids=None, show_progress=False):
        self.calls.append([len(t.split()) for t in texts])
        rows = []
        for text in texts:
            weights: dict[int, float] = {}
            for word in text.split():
                term = zlib.crc32(word.encode()) % VOCAB_SIZE
                weights[term] = max(weights.get(term, 0.0), len(word) / 4 + (0.5 if side == "query" else 0.0))
            rows.append((list(weights), list(weights.values())))
        return SparseVectors.from_rows(list(ids), rows, VOCAB_SIZE)


def _collection(path, n, start=0):
    rng = np.random.default_rng(start)
    words = ["drill", "saw", "hammer", "pipe", "copper", "lamp", "led", "white", "sink", "tile", "ß", "钻"]
    with path.open("w", encoding="utf-8") as handle:
        for i in range(start, start + n):
            length = int(rng.integers(1, 12))
            title = " ".join(rng.choice(words, length))
            handle.write(json.dumps({"_id": f"p{i}", "title": title, "text": ""}, ensure_ascii=False) + "\n")
    return path


def _expected(path):
    from prosper.data.collections import iter_collection

    records = list(iter_collection(path))
    encoder = FakeEncoder()
    return SparseVectors.concat(
        [encoder.encode([r.text], ids=[r.id]) for r in records]
    )


def test_encodes_buffer_by_buffer_in_input_order(tmp_path):
    source = _collection(tmp_path / "c.jsonl", 50)
    encoder = FakeEncoder()
    settings = InferSettings(batch_size=8, buffer_size=20, shard_size=1000)
    summary = encode_collection(encoder, source, "item", tmp_path / "v.parquet", "parquet", settings)
    vectors, meta = read_parquet_vectors(tmp_path / "v.parquet")
    assert vectors.equals(_expected(source))
    assert meta["tokenizer"] == "fake-tokenizer" and meta["vocabulary"] == encoder.vocabulary()
    assert summary.rows == 50 and summary.shards == 1 and summary.files == [str(tmp_path / "v.parquet")]
    assert not (tmp_path / "v.parquet.parts").exists()
    # one encode() call per buffer of 20 records: memory is bounded by the buffer
    assert [len(c) for c in encoder.calls] == [20, 20, 10]


@pytest.mark.parametrize("fmt", ["jsonl", "lucene", "parquet"])
def test_shards_merge_to_the_same_file(tmp_path, fmt):
    source = _collection(tmp_path / "c.jsonl", 30)
    one = encode_collection(FakeEncoder(), source, "item", tmp_path / "one.out", fmt, InferSettings(shard_size=1000))
    many = encode_collection(
        FakeEncoder(), source, "item", tmp_path / "many.out", fmt, InferSettings(shard_size=7, buffer_size=3)
    )
    assert many.shards == 5 and one.shards == 1
    if fmt == "parquet":
        assert read_parquet_vectors(tmp_path / "many.out")[0].equals(read_parquet_vectors(tmp_path / "one.out")[0])
    else:
        assert (tmp_path / "many.out").read_bytes() == (tmp_path / "one.out").read_bytes()


def test_no_merge_keeps_shards_and_manifest(tmp_path):
    source = _collection(tmp_path / "c.jsonl", 30)
    out = tmp_path / "vectors"
    summary = encode_collection(FakeEncoder(), source, "item", out, "parquet", InferSettings(shard_size=12), merge=False)
    names = sorted(p.name for p in out.iterdir())
    assert [n for n in names if n.startswith("part-") and n.endswith(".parquet")] == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    manifest = json.loads((out / "manifest.prosper").read_text())
    assert [s["rows"] for s in manifest["shards"]] == [12, 12, 6] and manifest["rows"] == 30
    assert not any(n.endswith((".json", ".jsonl")) for n in names)  # Anserini reads those
    assert read_parquet_vectors(out)[0].equals(_expected(source))
    assert len(summary.files) == 3


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, fmt):
    source = _collection(tmp_path / "c.jsonl", 40)
    settings = InferSettings(shard_size=10, buffer_size=4, batch_size=2)
    encode_collection(FakeEncoder(), source, "item", tmp_path / "full.out", fmt, settings)

    def stop_after_two(shard):
        if shard == 1:
            raise Interrupt

    out = tmp_path / "resumed.out"
    with pytest.raises(Interrupt):
        encode_collection(FakeEncoder(), source, "item", out, fmt, settings, on_shard_done=stop_after_two)
    assert not out.exists()
    parts = tmp_path / "resumed.out.parts"
    assert len(list(parts.glob(f"part-*.{'parquet' if fmt == 'parquet' else 'jsonl'}"))) == 2
    with pytest.raises(InputError, match="pass --resume"):
        encode_collection(FakeEncoder(), source, "item", out, fmt, settings)
    encoder = FakeEncoder()
    summary = encode_collection(encoder, source, "item", out, fmt, settings, resume=True)
    assert summary.shards_resumed == 2 and summary.shards_encoded == 2 and summary.rows == 40
    assert sum(len(c) for c in encoder.calls) == 20  # only the two missing shards were encoded
    if fmt == "parquet":
        assert read_parquet_vectors(out)[0].equals(read_parquet_vectors(tmp_path / "full.out")[0])
    else:
        assert out.read_bytes() == (tmp_path / "full.out").read_bytes()


def test_half_written_shard_is_redone(tmp_path):
    source = _collection(tmp_path / "c.jsonl", 20)
    settings = InferSettings(shard_size=10)
    out = tmp_path / "v.jsonl"

    def stop(shard):
        raise Interrupt

    with pytest.raises(Interrupt):
        encode_collection(FakeEncoder(), source, "item", out, "jsonl", settings, on_shard_done=stop)
    # a torn shard file (its state file missing) must be encoded again
    parts = tmp_path / "v.jsonl.parts"
    (parts / "part-00000.jsonl.prosper").unlink()
    (parts / "part-00000.jsonl").write_text("garbage\n")
    summary = encode_collection(FakeEncoder(), source, "item", out, "jsonl", settings, resume=True)
    assert summary.shards_encoded == 2
    assert "garbage" not in out.read_text()


def test_resume_refuses_a_different_run(tmp_path):
    source = _collection(tmp_path / "c.jsonl", 20)
    out = tmp_path / "v.jsonl"
    with pytest.raises(Interrupt):
        encode_collection(
            FakeEncoder(), source, "item", out, "jsonl", InferSettings(shard_size=10), on_shard_done=lambda s: (_ for _ in ()).throw(Interrupt())
        )
    with pytest.raises(ConfigError, match="differs in shard_size"):
        encode_collection(FakeEncoder(), source, "item", out, "jsonl", InferSettings(shard_size=5), resume=True)
    summary = encode_collection(FakeEncoder(), source, "item", out, "jsonl", InferSettings(shard_size=5), overwrite=True)
    assert summary.rows == 20 and summary.shards_resumed == 0


def test_ranks_split_shards_and_rank0_merges(tmp_path):
    source = _collection(tmp_path / "c.jsonl", 50)
    settings = InferSettings(shard_size=8, buffer_size=4)
    encode_collection(FakeEncoder(), source, "item", tmp_path / "single.parquet", "parquet", settings)
    encoders = [FakeEncoder(), FakeEncoder()]
    summaries, errors = {}, []

    def run(rank):
        try:
            summaries[rank] = encode_collection(
                encoders[rank], source, "item", tmp_path / "multi.parquet", "parquet", settings,
                rank=rank, world_size=2, wait_timeout_s=60,
            )
        except Exception as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in (1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    # 7 shards: rank 0 encodes 0, 2, 4, 6 (8+8+8+2 = 26 rows), rank 1 encodes 1, 3, 5 (24 rows)
    assert sum(len(c) for c in encoders[0].calls) == 26 and sum(len(c) for c in encoders[1].calls) == 24
    assert summaries[0].rows == 50 and summaries[1].rows == 24
    merged = read_parquet_vectors(tmp_path / "multi.parquet")[0]
    assert merged.equals(read_parquet_vectors(tmp_path / "single.parquet")[0])


def test_rank_from_torchrun_environment(monkeypatch):
    from prosper.inference.driver import dist_info

    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert dist_info() == (3, 4)
    with pytest.raises(ConfigError):
        dist_info(4, 4)


def test_input_problems_fail_or_skip_with_counts(tmp_path):
    source = tmp_path / "c.jsonl"
    source.write_bytes(
        b'{"_id": "a", "title": "drill"}\n{"_id": "b", "title": ""}\n{"_id": "a", "title": "saw"}\n'
        b'{"_id": "c", "title": "caf\xe9"}\n{"_id": "d", "title": "lamp"}\n'
    )
    with pytest.raises(InputError, match=r"c\.jsonl:2: empty text"):
        encode_collection(FakeEncoder(), source, "item", tmp_path / "v.jsonl", "jsonl")
    assert not (tmp_path / "v.jsonl").exists()
    summary = encode_collection(
        FakeEncoder(), source, "item", tmp_path / "v.jsonl", "jsonl", InferSettings(on_error="skip"), overwrite=True
    )
    assert summary.rows == 2
    assert summary.collection["skipped"] == {"empty_text": 1, "duplicate_id": 1, "undecodable": 1}
    assert [json.loads(x)["id"] for x in (tmp_path / "v.jsonl").read_text().splitlines()] == ["a", "d"]


def test_empty_collection_gives_empty_file(tmp_path):
    source = tmp_path / "c.jsonl"
    source.write_text("")
    summary = encode_collection(FakeEncoder(), source, "item", tmp_path / "v.parquet", "parquet")
    assert summary.rows == 0 and len(read_parquet_vectors(tmp_path / "v.parquet")[0]) == 0


def test_query_side_and_beir_folder(tmp_path):
    (tmp_path / "beir").mkdir()
    (tmp_path / "beir" / "queries.jsonl").write_text('{"_id": "q1", "text": "copper pipe"}\n')
    (tmp_path / "beir" / "corpus.jsonl").write_text('{"_id": "d1", "title": "lamp"}\n')
    encode_collection(FakeEncoder(), tmp_path / "beir", "query", tmp_path / "q.tsv", {"name": "lucene", "scale": 4})
    qid, body = (tmp_path / "q.tsv").read_text().rstrip("\n").split("\t")
    # copper: 6/4 + 0.5 = 2.0 -> 8 repeats; pipe: 4/4 + 0.5 = 1.5 -> 6 repeats
    assert qid == "q1" and len(body.split()) == 14


def _peak_bytes(tmp_path, n, name):
    source = _collection(tmp_path / f"{name}.jsonl", n)
    # long texts, so that holding the collection would dominate everything else
    lines = source.read_text(encoding="utf-8").splitlines()
    padded = [json.dumps({**json.loads(x), "text": "x" * 8000}) for x in lines]
    source.write_text("\n".join(padded) + "\n", encoding="utf-8")
    settings = InferSettings(batch_size=16, buffer_size=64, shard_size=100_000)
    tracemalloc.start()
    tracemalloc.reset_peak()
    exporter = {"name": "parquet", "row_group_rows": 256}
    encode_collection(FakeEncoder(), source, "item", tmp_path / f"{name}.parquet", exporter, settings)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_peak_memory_does_not_grow_with_the_collection(tmp_path):
    small = _peak_bytes(tmp_path, 500, "small")
    large = _peak_bytes(tmp_path, 2000, "large")
    text_bytes = 2000 * 8000  # what holding the large collection's texts alone would take
    assert large - small < 0.05 * text_bytes, (small, large)
    assert large < 1.5 * small, (small, large)
