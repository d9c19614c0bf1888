"""OpenSearch and Elasticsearch exporters: bulk NDJSON, mappings and query bodies.

No engine runs here, so the files are checked against the engines' documented rules (Lucene's
FeatureField: finite weights >= Float.MIN_NORMAL, 9 significant bits kept; rank_features names
without dots; _id <= 512 bytes; 1,024 boolean clauses; linear query weights <= 64), and an
engine-side scorer rebuilt from those rules (parse the bulk file, keep what FeatureField keeps,
sum w_q * stored(W_d) over the query's tokens) must rank like prosper's exact index.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from prosper.errors import InputError
from prosper.export.elasticsearch import ElasticsearchExporter
from prosper.export.opensearch import OpenSearchExporter
from prosper.export.params import ElasticsearchParams, OpenSearchParams
from prosper.export.search_engines import (
    MIN_NORMAL,
    escape_feature,
    feature_names,
    mapping_path,
    stored_feature_value,
    unescape_feature,
)
from prosper.retrieval.index import InvertedIndex
from prosper.sparse import SparseVectors

# dots, an empty term, the escape character itself and a term that looks escaped already
TRICKY = ["a.b", "", "%", "a%2Eb", "...", "Ġdrill", "##ing", "x y", "钻头", "ß."]


def vocabulary(size=80):
    return TRICKY + [f"t{i}" for i in range(size - len(TRICKY))]


def random_vectors(n, vocab_size, seed, prefix, max_terms=12, empty_row=None):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        width = 0 if i == empty_row else int(rng.integers(1, max_terms + 1))
        terms = rng.choice(vocab_size, size=width, replace=False)
        rows.append((terms, rng.uniform(0.05, 3.0, size=width).astype(np.float32)))
    return SparseVectors.from_rows([f"{prefix}{i}" for i in range(n)], rows, vocab_size)


def export(exporter, path, vectors, vocab, side):
    writer = exporter.open(path, vocab, side, {"tokenizer": "tok", "checkpoint": "ckpt"})
    writer.write(vectors)
    return writer.close()


def bulk_pairs(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) % 2 == 0
    return [(json.loads(a), json.loads(b)) for a, b in zip(lines[::2], lines[1::2])]


ENGINES = [
    (OpenSearchExporter, OpenSearchParams, "rank_features"),
    (ElasticsearchExporter, ElasticsearchParams, "sparse_vector"),
]


def test_feature_escape_is_injective_and_dot_free():
    vocab = vocabulary()
    names = feature_names(vocab, "terms")
    assert len(set(names)) == len(vocab)
    assert all(name and "." not in name for name in names)
    assert [unescape_feature(n) for n in names] == vocab
    assert escape_feature("a.b") == "a%2Eb" and escape_feature("a%2Eb") == "a%252Eb" and escape_feature("") == "%"
    assert feature_names(vocab, "ids")[:3] == ["0", "1", "2"]


def test_stored_feature_value_keeps_nine_significant_bits():
    assert stored_feature_value([1.0, 1 + 2**-8, 1 + 2**-9, 3.0])[:4].tolist() == [1.0, 1 + 2**-8, 1.0, 3.0]
    w = np.random.default_rng(0).uniform(1e-3, 50, 10000).astype(np.float32)
    kept = stored_feature_value(w)
    assert np.all(kept <= w) and np.all((w - kept) / w < 2**-8)


@pytest.mark.parametrize("exporter_cls, params_cls, field_type", ENGINES)
def test_item_bulk_file_follows_the_engine_rules(tmp_path, exporter_cls, params_cls, field_type):
    vocab = vocabulary()
    items = random_vectors(60, len(vocab), 1, "p", empty_row=4)
    # a sub-normal weight Lucene would refuse: dropped and counted
    items.weights[7] = np.float32(1e-39)
    exporter = exporter_cls(params_cls())
    path = tmp_path / f"items{exporter.suffix('item')}"
    summary = export(exporter, path, items, vocab, "item")
    assert summary == {"rows": 60, "subnormal_dropped": 1, "empty_items": 1}
    pairs = bulk_pairs(path)
    assert [a["index"]["_id"] for a, _ in pairs] == items.ids
    assert all(a["index"]["_index"] == "prosper" for a, _ in pairs)
    names = feature_names(vocab, "terms")
    for row, (_, doc) in enumerate(pairs):
        features = doc["vector"]
        assert all(name and "." not in name and len(name.encode()) <= 32766 for name in features)
        assert all(np.isfinite(w) and w >= MIN_NORMAL for w in features.values())
        terms, weights = items.row(row)
        expected = {names[t]: float(w) for t, w in zip(terms, weights) if w >= MIN_NORMAL}
        # the shortest text of each float32 reads back to the same float32
        assert {n: float(np.float32(w)) for n, w in features.items()} == expected
    assert pairs[4][1] == {"vector": {}}
    mapping = json.loads(mapping_path(path).read_text())
    assert mapping["mappings"]["properties"] == {"vector": {"type": field_type}}
    meta = mapping["mappings"]["_meta"]["prosper"]
    assert meta["features"] == "terms" and meta["vocab_size"] == len(vocab) and meta["tokenizer"] == "tok"
    assert meta["scoring"] == "query_l2" and meta["item_l2"] is False


def engine_scores(bulk_path, queries_path, exporter):
    """Score every query against every document the way FeatureField linear queries do."""
    docs = [(a["index"]["_id"], b["vector"]) for a, b in bulk_pairs(bulk_path)]
    out = {}
    for line in queries_path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        tokens = exporter.query_features(record["body"]["query"])
        scores = {}
        for doc_id, features in docs:
            shared = [n for n in tokens if n in features]
            if shared:
                stored = stored_feature_value([features[n] for n in shared]).astype(np.float64)
                scores[doc_id] = float(np.dot([tokens[n] for n in shared], stored))
        out[record["id"]] = (record["body"]["size"], scores)
    return out


@pytest.mark.parametrize("exporter_cls, params_cls, field_type", ENGINES)
@pytest.mark.parametrize("scoring", ["query_l2", "both_l2"])
def test_engine_scoring_of_the_files_ranks_like_the_exact_index(tmp_path, exporter_cls, params_cls, field_type, scoring):
    vocab = vocabulary(120)
    items = random_vectors(400, len(vocab), 2, "p", max_terms=20)
    queries = random_vectors(30, len(vocab), 3, "q", max_terms=8, empty_row=5)
    k = 20
    exporter = exporter_cls(params_cls(scoring=scoring, k=k))
    export(exporter, tmp_path / "items.ndjson", items, vocab, "item")
    summary = export(exporter, tmp_path / "queries.jsonl", queries, vocab, "query")
    assert summary["empty_queries_omitted"] == 1
    engine = engine_scores(tmp_path / "items.ndjson", tmp_path / "queries.jsonl", exporter)
    assert "q5" not in engine and len(engine) == 29
    exact = InvertedIndex.build(items).search(queries, k=k, scoring=scoring)
    tolerance = 2**-8  # FeatureField's relative precision
    for i, result in enumerate(exact):
        qid = queries.ids[i]
        if qid == "q5":
            continue
        size, scores = engine[qid]
        assert size == k
        ranked = sorted(scores.items(), key=lambda kv: -kv[1])[:k]
        # every engine score is the exact one up to FeatureField's truncation
        exact_all = dict(zip(*InvertedIndex.build(items).search(queries.slice(i, i + 1), k=len(items), scoring=scoring)[0]))
        for doc_id, score in ranked:
            assert exact_all[doc_id] * (1 - tolerance) - 1e-6 <= score <= exact_all[doc_id] + 1e-6
        # the top k agree except where exact scores are too close for 9 bits to separate
        kth = float(result.scores[-1])
        got, want = {d for d, _ in ranked}, set(result.ids)
        for doc_id in got ^ want:
            assert abs(exact_all[doc_id] - kth) <= tolerance * kth + 1e-6


def test_query_bodies_follow_each_engine(tmp_path):
    vocab = vocabulary()
    queries = SparseVectors.from_rows(["q.1"], [([0, 5, 9], [0.5, 2.0, 1.0])], len(vocab))
    export(OpenSearchExporter(), tmp_path / "os.jsonl", queries, vocab, "query")
    export(ElasticsearchExporter(), tmp_path / "es.jsonl", queries, vocab, "query")
    norm = np.sqrt(0.25 + 4 + 1)
    expected = {"a%2Eb": 0.5 / norm, "Ġdrill": 2.0 / norm, "ß%2E": 1.0 / norm}
    (os_line,) = (tmp_path / "os.jsonl").read_text().splitlines()
    body = json.loads(os_line)
    assert body["id"] == "q.1" and body["body"]["size"] == 1000 and body["body"]["_source"] is False
    tokens = body["body"]["query"]["neural_sparse"]["vector"]["query_tokens"]
    assert tokens == pytest.approx(expected)
    (es_line,) = (tmp_path / "es.jsonl").read_text().splitlines()
    query = json.loads(es_line)["body"]["query"]["sparse_vector"]
    assert query["field"] == "vector" and query["prune"] is False
    assert query["query_vector"] == pytest.approx(expected)


def test_long_queries_keep_their_top_terms_and_top_terms_setting(tmp_path):
    vocab = vocabulary(3000)
    weights = np.linspace(0.01, 3.0, 2000, dtype=np.float32)
    queries = SparseVectors.from_rows(["long", "short"], [(np.arange(2000), weights), ([1, 2], [1.0, 2.0])], len(vocab))
    summary = export(OpenSearchExporter(), tmp_path / "q.jsonl", queries, vocab, "query")
    assert summary["query_terms_truncated"] == 1
    long, short = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    tokens = long["body"]["query"]["neural_sparse"]["vector"]["query_tokens"]
    assert len(tokens) == 1024 and min(tokens.values()) >= weights[-1024] / np.linalg.norm(weights) * 0.999
    summary = export(OpenSearchExporter(OpenSearchParams(query_top_terms=16)), tmp_path / "q16.jsonl", queries, vocab, "query")
    assert "query_terms_truncated" not in summary
    first = json.loads((tmp_path / "q16.jsonl").read_text().splitlines()[0])
    assert len(first["body"]["query"]["neural_sparse"]["vector"]["query_tokens"]) == 16


def test_query_weights_above_64_are_refused_by_opensearch_only(tmp_path):
    vocab = vocabulary()
    queries = SparseVectors.from_rows(["q1"], [([2], [80.0])], len(vocab))
    with pytest.raises(InputError, match=r"q1.*exceeds 64.*query_l2"):
        export(OpenSearchExporter(OpenSearchParams(scoring="none")), tmp_path / "q.jsonl", queries, vocab, "query")
    export(ElasticsearchExporter(ElasticsearchParams(scoring="none")), tmp_path / "es.jsonl", queries, vocab, "query")
    line = json.loads((tmp_path / "es.jsonl").read_text())
    assert line["body"]["query"]["sparse_vector"]["query_vector"] == {"%25": 80.0}


def test_bad_ids_and_weights_stop_with_one_line(tmp_path):
    vocab = vocabulary()
    long_id = SparseVectors.from_rows(["é" * 300], [([1], [1.0])], len(vocab))
    with pytest.raises(InputError, match="512 UTF-8 bytes"):
        export(OpenSearchExporter(), tmp_path / "a.ndjson", long_id, vocab, "item")
    assert not (tmp_path / "a.ndjson").exists()
    bad = SparseVectors(["p1"], [0, 1], [2], [np.inf], len(vocab))
    with pytest.raises(InputError, match="'p1'.*not finite"):
        export(ElasticsearchExporter(), tmp_path / "b.ndjson", bad, vocab, "item")


def test_options_ids_index_field_and_read_back(tmp_path):
    vocab = vocabulary()
    items = random_vectors(10, len(vocab), 4, "p")
    exporter = ElasticsearchExporter(ElasticsearchParams(features="ids", index=None, field="lsr", prune=True))
    export(exporter, tmp_path / "items.ndjson", items, vocab, "item")
    action, doc = bulk_pairs(tmp_path / "items.ndjson")[0]
    assert action == {"index": {"_id": "p0"}}
    terms, _ = items.row(0)
    assert sorted(doc["lsr"], key=int) == [str(t) for t in terms]
    assert exporter.read(tmp_path / "items.ndjson", vocab, "item").equals(items)
    queries = random_vectors(5, len(vocab), 5, "q")
    export(exporter, tmp_path / "q.jsonl", queries, vocab, "query")
    assert json.loads((tmp_path / "q.jsonl").read_text().splitlines()[0])["body"]["query"]["sparse_vector"]["prune"] is True
    assert exporter.read(tmp_path / "q.jsonl", vocab, "query").equals(exporter.roundtrip(queries, "query"), atol=1e-7)


def test_shards_merge_with_the_mapping_beside_the_output(tmp_path):
    vocab = vocabulary()
    items = random_vectors(30, len(vocab), 6, "p")
    exporter = OpenSearchExporter()
    parts = []
    for k, (lo, hi) in enumerate(((0, 12), (12, 30))):
        parts.append(tmp_path / f"part-{k}.ndjson")
        export(exporter, parts[-1], items.slice(lo, hi), vocab, "item")
    exporter.merge(parts, tmp_path / "all.ndjson", "item")
    assert exporter.read(tmp_path / "all.ndjson", vocab, "item").equals(items)
    assert json.loads(mapping_path(tmp_path / "all.ndjson").read_text()) == json.loads(mapping_path(parts[0]).read_text())


def test_cli_export_writes_bulk_and_query_files(tmp_path, clean_env, capsys):
    from prosper.cli.app import main
    from prosper.export.parquet import ParquetExporter

    vocab = vocabulary()
    for side, n in (("item", 8), ("query", 3)):
        writer = ParquetExporter().open(tmp_path / f"{side}.parquet", vocab, side, {"tokenizer": "tok"})
        writer.write(random_vectors(n, len(vocab), 7, side[0]))
        writer.close()
    out = tmp_path / "os"
    assert main(["export", "--input", str(tmp_path / "item.parquet"), "--format", "opensearch",
                 "--output", str(out / "items.ndjson"), "export.index=shop"]) == 0
    assert main(["export", "--input", str(tmp_path / "query.parquet"), "--format", "opensearch",
                 "--output", str(out / "queries.jsonl"), "export.k=100"]) == 0
    assert "wrote 8 item vectors" in capsys.readouterr().out
    assert bulk_pairs(out / "items.ndjson")[0][0]["index"]["_index"] == "shop"
    assert json.loads(mapping_path(out / "items.ndjson").read_text())["mappings"]["_meta"]["prosper"]["tokenizer"] == "tok"
    assert [json.loads(x)["body"]["size"] for x in (out / "queries.jsonl").read_text().splitlines()] == [100] * 3
    assert main(["export", "--input", str(tmp_path / "item.parquet"), "--format", "opensearch",
                 "--output", str(out / "x.ndjson"), "export.index=Bad Name"]) != 0
    assert "export" in capsys.readouterr().err
