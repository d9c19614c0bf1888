"""The milvus exporter and searcher against a real engine: Milvus Lite, on tmp_path .db files.

The same client code targets a Milvus server by URI. Results are compared with prosper's
exact index: the same items in the same order (tied scores may come in any order, so ties are
compared as sets) and the same float32 scores up to rounding.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="pymilvus (optional extra 'milvus') is not installed")
pytest.importorskip("milvus_lite", reason="milvus-lite (optional extra 'milvus') is not installed")

from prosper.cli.app import main  # noqa: E402
from prosper.errors import ConfigError, InputError  # noqa: E402
from prosper.export.milvus import MilvusExporter  # noqa: E402
from prosper.export.params import MilvusParams  # noqa: E402
from prosper.export.parquet import ParquetExporter  # noqa: E402
from prosper.retrieval.index import InvertedIndex  # noqa: E402
from prosper.retrieval.milvus import MilvusSearcher, MilvusSearchParams, release_lite  # noqa: E402
from prosper.retrieval.runs import read_run  # noqa: E402
from prosper.sparse import SparseVectors  # noqa: E402

VOCAB = [f"w{i}" for i in range(150)]


@pytest.fixture()
def db(tmp_path):
    """A Milvus Lite database under tmp_path; its embedded server is stopped afterwards."""
    path = tmp_path / "items.db"
    yield path
    release_lite(path)


def random_items(n=300, seed=0, prefix="p", max_terms=15):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        width = 0 if i == 7 else int(rng.integers(1, max_terms + 1))
        terms = rng.choice(len(VOCAB), size=width, replace=False)
        rows.append((terms, rng.uniform(0.05, 3.0, size=width).astype(np.float32)))
    items = SparseVectors.from_rows([f"{prefix}{i}" for i in range(n)], rows, len(VOCAB))
    # two items with the same vector: a tie every query that touches them must keep
    return SparseVectors.concat([items, SparseVectors(["twin"], [0, items.nnz[0]], *items.row(0), len(VOCAB))])


def random_queries(n=25, seed=1):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        width = 0 if i == 3 else int(rng.integers(1, 7))
        rows.append((rng.choice(len(VOCAB), size=width, replace=False), rng.uniform(0.1, 2.0, size=width)))
    return SparseVectors.from_rows([f"q{i}" for i in range(n)], rows, len(VOCAB))


def write_parquet(path, vectors, side):
    writer = ParquetExporter().open(path, VOCAB, side, {"tokenizer": "tok"})
    writer.write(vectors)
    writer.close()
    return path


def export(db, items, **params):
    writer = MilvusExporter(MilvusParams(**params)).open(db, VOCAB, "item", {"tokenizer": "tok"})
    writer.write(items)
    return writer.close()


def assert_same_ranking(got, want, rtol=1e-5):
    """Same scores position by position; ids equal, tied scores compared as sets."""
    assert len(got.ids) == len(want.ids)
    np.testing.assert_allclose(got.scores, want.scores, rtol=rtol, atol=1e-6)
    groups_got, groups_want = {}, {}
    for ids, scores, groups in ((got.ids, want.scores, groups_got), (want.ids, want.scores, groups_want)):
        for item_id, score in zip(ids, scores):
            groups.setdefault(round(float(score), 4), set()).add(str(item_id))
    # the last group may be cut at k differently among ties; every other group must match
    last = round(float(want.scores[-1]), 4) if len(want.scores) else None
    assert {s: g for s, g in groups_got.items() if s != last} == {s: g for s, g in groups_want.items() if s != last}


def test_collection_top_k_equals_the_exact_index(db):
    items, queries = random_items(), random_queries()
    assert export(db, items) == {"rows": 301, "empty_items": 1}
    index = MilvusSearcher(MilvusSearchParams(uri=str(db))).open(None)
    assert len(index) == 301 and index.vocab_size == len(VOCAB) and index.scoring == "query_l2"
    exact = InvertedIndex.build(items)
    for k in (10, 100):
        got, want = index.search(queries, k=k), exact.search(queries, k=k)
        assert len(got[3].ids) == 0  # the empty query
        for g, w in zip(got, want):
            assert_same_ranking(g, w)
    # the tie: p0 and twin score the same for every query that reaches them
    hits = [r for r in index.search(queries, k=301) if "twin" in set(r.ids)]
    assert hits and all("p0" in set(r.ids) for r in hits)
    # the empty item is stored (one row per item) but matches nothing
    assert all("p7" not in set(r.ids) for r in index.search(queries, k=301))
    index.close()


def test_export_is_an_idempotent_upsert_and_read_back(db):
    items = random_items(50)
    export(db, items)
    export(db, items)  # again: still one row per id
    changed = SparseVectors.from_rows(["p1", "new"], [([5, 9], [5.0, 1.0]), ([9], [0.5])], len(VOCAB))
    export(db, changed)
    exporter = MilvusExporter()
    back = exporter.read(db, VOCAB, "item")
    assert len(back) == 52 and "new" in back.ids
    expected = exporter.roundtrip(SparseVectors.concat([items, changed]), "item")
    assert back.equals(expected)
    index = MilvusSearcher(MilvusSearchParams(uri=str(db))).open(None)
    (result,) = index.search(SparseVectors.from_rows(["q"], [([5], [1.0])], len(VOCAB)), k=3)
    assert result.ids[0] == "p1" and result.scores[0] == pytest.approx(5.0)
    index.close()


def test_item_l2_collection_serves_both_l2_only(db):
    items, queries = random_items(120), random_queries()
    export(db, items, scoring="both_l2")
    index = MilvusSearcher(MilvusSearchParams(uri=str(db))).open(None)
    want = InvertedIndex.build(items).search(queries, k=20, scoring="both_l2")
    for g, w in zip(index.search(queries, k=20, scoring="both_l2"), want):
        assert_same_ranking(g, w)
    assert index.scoring == "both_l2"
    with pytest.raises(ConfigError, match="item_l2=False"):
        index.search(queries, k=5, scoring="query_l2")
    index.close()


def test_exporter_errors_are_one_line(db, tmp_path):
    with pytest.raises(ConfigError, match="item vectors"):
        MilvusExporter().open(db, VOCAB, "query")
    with pytest.raises(ConfigError, match="export.uri"):
        MilvusExporter().open(tmp_path / "items.jsonl", VOCAB, "item")
    export(db, random_items(5))
    with pytest.raises(ConfigError, match="vocabulary size 150"):
        MilvusExporter().open(db, VOCAB[:100], "item")
    with pytest.raises(InputError, match="max_id_bytes=8"):
        export(db, SparseVectors.from_rows(["x" * 9], [([1], [1.0])], len(VOCAB)), collection="short", max_id_bytes=8)
    with pytest.raises(ConfigError, match="no collection 'missing'"):
        MilvusSearcher(MilvusSearchParams(uri=str(db), collection="missing")).open(None)
    with pytest.raises(ConfigError, match="http://host:19530"):
        MilvusSearcher(MilvusSearchParams(uri=str(tmp_path / "x.sqlite"))).open(None)


def test_sparse_wand_index_is_exact_or_refused_in_one_line(db):
    items, queries = random_items(80), random_queries()
    try:
        export(db, items, index_type="SPARSE_WAND")
    except ConfigError as exc:  # Milvus Lite 3 builds SPARSE_INVERTED_INDEX only
        assert "SPARSE_WAND" in str(exc) and "\n" not in str(exc)
        return
    index = MilvusSearcher(MilvusSearchParams(uri=str(db))).open(None)
    for g, w in zip(index.search(queries, k=10), InvertedIndex.build(items).search(queries, k=10)):
        assert_same_ranking(g, w)
    index.close()


def test_searcher_build_and_saved_index_folder(db, tmp_path):
    items, queries = random_items(60), random_queries()
    searcher = MilvusSearcher(MilvusSearchParams(uri=str(db)))
    index = searcher.build(items, vocabulary=VOCAB, metadata={"scoring": "query_l2"})
    index.save(tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / "meta.json").read_text())
    assert meta["searcher"] == "milvus" and meta["params"]["uri"] == str(db) and "token" not in meta["params"]
    with pytest.raises(ConfigError, match="replace=true"):
        searcher.build(items)
    rebuilt = MilvusSearcher(MilvusSearchParams(uri=str(db), replace=True)).build(items.slice(0, 30))
    assert len(rebuilt) == 30
    from prosper.retrieval.searchers import open_index

    reopened = open_index(tmp_path / "idx")
    for g, w in zip(reopened.search(queries, k=10), InvertedIndex.build(items.slice(0, 30)).search(queries, k=10)):
        assert_same_ranking(g, w)
    for opened in (index, rebuilt, reopened):
        opened.close()


def test_cli_export_then_search_without_index_equals_exact_run(db, tmp_path, clean_env, capsys):
    items, queries = random_items(), random_queries()
    write_parquet(tmp_path / "items.parquet", items, "item")
    write_parquet(tmp_path / "queries.parquet", queries, "query")
    assert main(["export", "--input", str(tmp_path / "items.parquet"), "--format", "milvus", "--output", str(db)]) == 0
    assert "wrote 301 item vectors" in capsys.readouterr().out
    assert main(["search", "--queries", str(tmp_path / "queries.parquet"), "-o", str(tmp_path / "milvus.trec"), "--k", "50",
                 "search.searcher.name=milvus", f"search.searcher.uri={db}"]) == 0
    assert main(["index", "--input", str(tmp_path / "items.parquet"), "--output", str(tmp_path / "idx")]) == 0
    assert main(["search", "--index", str(tmp_path / "idx"), "--queries", str(tmp_path / "queries.parquet"),
                 "-o", str(tmp_path / "exact.trec"), "--k", "50"]) == 0
    got, want = read_run(tmp_path / "milvus.trec"), read_run(tmp_path / "exact.trec")
    assert set(got) == set(want)
    for qid in want:
        assert set(got[qid]) == set(want[qid]) or len(want[qid]) == 50  # a tie may sit at the cut
        for doc, score in got[qid].items():
            if doc in want[qid]:
                assert score == pytest.approx(want[qid][doc], rel=1e-5)
    capsys.readouterr()
    assert main(["search", "--queries", str(tmp_path / "queries.parquet")]) != 0
    assert "--index is required" in capsys.readouterr().err
    # prosper index with the milvus searcher writes a collection and a folder pointing at it
    built = tmp_path / "built.db"
    try:
        assert main(["index", "--input", str(tmp_path / "items.parquet"), "--output", str(tmp_path / "midx"),
                     "search.searcher.name=milvus", f"search.searcher.uri={built}"]) == 0
        assert main(["search", "--index", str(tmp_path / "midx"), "--queries", str(tmp_path / "queries.parquet"),
                     "-o", str(tmp_path / "midx.trec"), "--k", "50"]) == 0
        assert read_run(tmp_path / "midx.trec") == got
    finally:
        release_lite(built)


class StandInEncoder:
    """Term = position of each known word, weight = its length / 4: a pure function of the text."""

    settings = types.SimpleNamespace(scoring="query_l2")
    tokenizer = types.SimpleNamespace(name_or_path="stand-in")

    @classmethod
    def load(cls, *args, **kwargs):
        return cls()

    from_pretrained = load

    def vocabulary(self):
        return list(VOCAB)

    def encode(self, texts, side="item", batch_size=64, ids=None, show_progress=False):
        rows = []
        for text in texts:
            terms = sorted({int(w[1:]) for w in text.split() if w in VOCAB})
            rows.append((terms, [len(VOCAB[t]) / 4 for t in terms]))
        return SparseVectors.from_rows(list(ids), rows, len(VOCAB))


def test_sharded_infer_upserts_into_one_collection_and_resumes(db, tmp_path):
    from prosper.inference.driver import encode_collection
    from prosper.settings import InferSettings

    rng = np.random.default_rng(3)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(
        json.dumps({"_id": f"p{i}", "title": " ".join(rng.choice(VOCAB[:40], 4)), "text": ""}) + "\n" for i in range(23)
    ))
    spec = {"name": "milvus", "uri": str(db)}
    settings = InferSettings(shard_size=7, buffer_size=4, batch_size=4)
    receipt = tmp_path / "items.milvus"
    summary = encode_collection(StandInEncoder(), corpus, "item", receipt, spec, settings)
    assert summary.rows == 23 and summary.shards == 4 and summary.exporter["rows"] == 23
    assert json.loads(receipt.read_text())["counts"]["rows"] == 23
    assert json.loads(receipt.read_text())["uri"] == str(db)
    index = MilvusSearcher(MilvusSearchParams(uri=str(db))).open(None)
    assert len(index) == 23
    index.close()
    # an interrupted run resumes: finished shards are skipped, the collection ends the same
    def stop(shard):
        if shard == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode_collection(StandInEncoder(), corpus, "item", tmp_path / "again.milvus", spec, settings, on_shard_done=stop)
    resumed = encode_collection(StandInEncoder(), corpus, "item", tmp_path / "again.milvus", spec, settings, resume=True)
    assert resumed.shards_resumed == 2 and resumed.rows == 23
    exporter = MilvusExporter(MilvusParams(uri=str(db)))
    assert exporter.read(receipt, VOCAB, "item").equals(exporter.roundtrip(_expected(corpus), "item"))


def _expected(corpus):
    from prosper.data.collections import iter_collection

    records = list(iter_collection(corpus))
    return StandInEncoder().encode([r.text for r in records], ids=[r.id for r in records])


def test_eval_checkpoint_with_the_milvus_searcher(db, tmp_path, clean_env, monkeypatch, capsys):
    module = types.ModuleType("prosper.modeling.encoder")
    module.SparseEncoder = StandInEncoder
    monkeypatch.setitem(sys.modules, "prosper.modeling.encoder", module)
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    titles = {"p1": "w1 w2 w30", "p2": "w2 w3", "p3": "w40 w41", "p4": "w1 w100"}
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": ""}) + "\n" for i, t in titles.items()))
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in {"q1": "w100 w1", "q2": "w41"}.items()))
    (beir / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tp4\t2\nq2\tp3\t2\n")
    results = {}
    (tmp_path / "ckpt").mkdir()  # the stand-in encoder loads nothing from it
    for name in ("exact", "milvus"):
        out = tmp_path / f"eval-{name}"
        args = ["eval", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(beir), "--split", "dev", "-o", str(out), f"search.searcher.name={name}"]
        if name == "milvus":
            args.append(f"search.searcher.uri={db}")
        assert main(args) == 0, capsys.readouterr().err
        results[name] = json.loads((out / "metrics.json").read_text())["systems"]["prosper"]
    assert results["milvus"]["MRR@10"] == pytest.approx(1.0)
    for measure in ("nDCG@10", "MRR@10", "R@100"):
        if measure in results["exact"]:
            assert results["milvus"][measure] == pytest.approx(results["exact"][measure])


def test_milvus_searcher_passes_the_component_contract(tmp_path):
    from prosper.contracts import check_component

    uri = tmp_path / "contract.db"
    try:
        report = check_component("milvus", "searcher", {"uri": str(uri)}, workdir=tmp_path / "work")
    finally:
        release_lite(uri)
    assert any("brute-force" in line for line in report.passed)
