"""`prosper index`, `prosper search` and `prosper eval` end to end on small files.

The query encoder is replaced by a word-count fake (one term per known word, weight 1), so the
commands' plumbing is tested without a model; the real encoder has its own tests.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import types

import numpy as np
import pytest

from prosper.cli.app import main
from prosper.sparse import SparseVectors

WORDS = ["drill", "cordless", "hammer", "hose", "garden", "red", "blue", "saw", "nail", "paint"]
ITEMS = {
    "p1": "red cordless drill",
    "p2": "blue hammer",
    "p3": "garden hose",
    "p4": "cordless saw",
    "p5": "red paint",
    "p6": "nail hammer drill",
}


class FakeEncoder:
    settings = types.SimpleNamespace(scoring="query_l2")
    vocab_size = len(WORDS)

    @classmethod
    def load(cls, checkpoint, device=None, **kw):
        return cls()

    from_pretrained = load  # what --model / --checkpoint call

    def vocabulary(self):
        return list(WORDS)

    def encode(self, texts, side="item", batch_size=64, ids=None, show_progress=False):
        rows = []
        for text in texts:
            terms = sorted({WORDS.index(w) for w in text.lower().split() if w in WORDS})
            rows.append((terms, [1.0] * len(terms)))
        return SparseVectors.from_rows(list(ids or range(len(texts))), rows, len(WORDS))


@pytest.fixture()
def fake_encoder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt").mkdir(exist_ok=True)  # the stand-in encoder reads nothing from it
    module = types.ModuleType("prosper.modeling.encoder")
    module.SparseEncoder = FakeEncoder
    monkeypatch.setitem(sys.modules, "prosper.modeling.encoder", module)
    return FakeEncoder


def write_vectors(path, texts: dict[str, str], side: str):
    from prosper.export.parquet import ParquetExporter

    vectors = FakeEncoder().encode(list(texts.values()), side, ids=list(texts))
    writer = ParquetExporter().open(path, WORDS, side)
    writer.write(vectors)
    writer.close()
    return vectors


@pytest.fixture()
def index_dir(tmp_path, clean_env):
    write_vectors(tmp_path / "items.parquet", ITEMS, "item")
    assert main(["index", "--input", str(tmp_path / "items.parquet"), "--output", str(tmp_path / "idx")]) == 0
    return tmp_path / "idx"


def test_index_then_search_query_vectors_to_run_file(tmp_path, index_dir, capsys):
    meta = json.loads((index_dir / "meta.json").read_text())
    assert meta["n_items"] == 6 and meta["searcher"] == "exact" and meta["has_vocabulary"]
    write_vectors(tmp_path / "queries.parquet", {"q1": "cordless drill", "q2": "hammer"}, "query")
    rc = main(["search", "--index", str(index_dir), "--queries", str(tmp_path / "queries.parquet"),
               "--output", str(tmp_path / "run.trec"), "--k", "2", "--scoring", "none"])
    assert rc == 0
    lines = (tmp_path / "run.trec").read_text().splitlines()
    assert lines == [
        "q1 Q0 p1 1 2 prosper",  # cordless + drill
        "q1 Q0 p4 2 1 prosper",  # tie at 1 with p6: earlier row first
        "q2 Q0 p2 1 1 prosper",
        "q2 Q0 p6 2 1 prosper",
    ]
    # without --output the run goes to stdout; an override on the command line is honoured
    capsys.readouterr()
    assert main(["search", "--index", str(index_dir), "--queries", str(tmp_path / "queries.parquet"), "search.k=1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in out] == ["p1", "p2"]


def test_index_refuses_query_vectors_and_existing_folder(tmp_path, index_dir, capsys):
    write_vectors(tmp_path / "q.parquet", {"q1": "drill"}, "query")
    assert main(["index", "--input", str(tmp_path / "q.parquet"), "--output", str(tmp_path / "x")]) != 0
    assert "side='query'" in capsys.readouterr().err
    items = str(tmp_path / "items.parquet")
    assert main(["index", "--input", items, "--output", str(index_dir)]) != 0
    assert "already exists" in capsys.readouterr().err
    assert main(["index", "--input", items, "--output", str(index_dir), "--force"]) == 0


def test_search_one_query_text_prints_table(index_dir, fake_encoder, capsys):
    rc = main(["search", "--index", str(index_dir), "--checkpoint", "ckpt", "red", "drill", "--k", "3"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "query terms (2)" in out and "drill:1.00" in out
    ranked = re.findall(r"│\s+(\d)\s+│\s+(p\d)\s+│\s+([\d.]+)", out)
    assert ranked[0] == ("1", "p1", f"{2 / np.sqrt(2):.4f}")  # query_l2: (1 + 1) / sqrt(2)
    assert [r[1] for r in ranked] == ["p1", "p5", "p6"]


def test_search_needs_query_or_queries(index_dir, capsys):
    assert main(["search", "--index", str(index_dir)]) == 2
    assert "either a query text" in capsys.readouterr().err
    assert main(["search", "--index", str(index_dir), "drill"]) == 2
    assert "needs --model" in capsys.readouterr().err


def test_eval_run_files_with_channels(tmp_path, clean_env, capsys):
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ta\t2\nq1\tb\t1\nq2\tc\t1\n")
    (tmp_path / "prosper.trec").write_text("q1 Q0 a 1 2.0 p\nq1 Q0 x 2 1.0 p\nq2 Q0 y 1 1.0 p\n")
    (tmp_path / "bm25.trec").write_text("q1 Q0 b 1 5.0 b\nq2 Q0 c 1 4.0 b\n")
    rc = main(["eval", "--run", str(tmp_path / "prosper.trec"), "--run", str(tmp_path / "bm25.trec"),
               "--qrels", str(tmp_path / "qrels.tsv"), "--channels", "--json", str(tmp_path / "m.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "nDCG@10" in out and "prosper only" in out
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["systems"]["prosper"]["MRR@10"] == pytest.approx(0.5)  # q1: a (grade 2) at 1; q2: none
    assert data["systems"]["bm25"]["Hit@1"] == 1.0
    assert data["channels"]["relevant_by_mask"] == {"prosper only": 1, "bm25 only": 2}


def test_eval_checkpoint_all_in_one(tmp_path, fake_encoder, clean_env, capsys):
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": ""}) + "\n" for i, t in ITEMS.items()))
    queries = {"q1": "cordless drill", "q2": "garden hose", "q3": "the red paint"}
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries.items()))
    (beir / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tp4\t2\nq2\tp3\t2\nq3\tp5\t1\n")
    out_dir = tmp_path / "out"
    rc = main(["eval", "--checkpoint", "ckpt", "--data", str(beir), "--split", "dev", "--channels", "-o", str(out_dir)])
    assert rc == 0, capsys.readouterr().err
    data = json.loads((out_dir / "metrics.json").read_text())
    assert set(data["systems"]) == {"prosper", "bm25"}
    prosper = data["systems"]["prosper"]
    # q1: p1 (2 terms) first, p4 second -> RR 1/2; q2: p3 first -> 1; q3 grade 1 only -> 0 at rel 2
    assert prosper["MRR@10"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert prosper["query_nnz"] == pytest.approx(2.0)
    assert prosper["postings_per_query"] == pytest.approx(((2 + 2) + (1 + 1) + (2 + 1)) / 3)
    assert prosper["flops"] == pytest.approx(prosper["postings_per_query"] / 6)
    assert (out_dir / "run.trec").exists() and (out_dir / "run.bm25.trec").exists()
    assert data["channels"]["channels"] == ["prosper", "bm25"]
    assert "Relevant items by channel" in capsys.readouterr().out


def test_index_with_seismic_searcher(tmp_path, clean_env):
    pytest.importorskip("seismic", reason="pyseismic-lsr (optional extra 'seismic') is not installed")
    write_vectors(tmp_path / "items.parquet", ITEMS, "item")
    write_vectors(tmp_path / "queries.parquet", {"q1": "cordless drill"}, "query")
    assert main(["index", "--input", str(tmp_path / "items.parquet"), "--output", str(tmp_path / "sx"),
                 "--searcher", "seismic"]) == 0
    assert json.loads((tmp_path / "sx" / "meta.json").read_text())["searcher"] == "seismic"
    assert main(["search", "--index", str(tmp_path / "sx"), "--queries", str(tmp_path / "queries.parquet"),
                 "-o", str(tmp_path / "run.trec"), "--k", "1"]) == 0
    assert (tmp_path / "run.trec").read_text().split()[:3] == ["q1", "Q0", "p1"]


# -- --fusion: prosper fused with a BM25 channel over the same items ---------------------------
def write_corpus(path):
    path.write_text("".join(json.dumps({"_id": i, "title": t, "text": ""}) + "\n" for i, t in ITEMS.items()))
    return path


QUERIES = {"q1": "cordless drill", "q2": "red hammer", "q3": "garden paint"}


def expected_fusion(index_dir, method, k, queries=QUERIES, **options):
    """fuse() of the two channels, computed here from the library pieces."""
    from prosper.retrieval.bm25 import BM25Channel
    from prosper.retrieval.fusion import fuse
    from prosper.retrieval.index import InvertedIndex
    from prosper.retrieval.runs import results_to_run

    qids, texts = list(queries), list(queries.values())
    vectors = FakeEncoder().encode(texts, "query", ids=qids)
    prosper_run = results_to_run(qids, InvertedIndex.open(index_dir).search(vectors, k=k, scoring="query_l2"))
    bm25_run = results_to_run(qids, BM25Channel.open(index_dir / "bm25").search(texts, k=k))
    return fuse({"prosper": prosper_run, "bm25": bm25_run}, method, k=k, **options)


def test_index_corpus_then_search_fusion_equals_fuse(tmp_path, fake_encoder, clean_env, capsys):
    write_vectors(tmp_path / "items.parquet", ITEMS, "item")
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    assert main(["index", "--input", str(tmp_path / "items.parquet"), "--output", str(tmp_path / "idx"),
                 "--corpus", str(corpus)]) == 0
    assert (tmp_path / "idx" / "bm25" / "meta.json").is_file()
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items()))
    base = ["search", "--index", str(tmp_path / "idx"), "--checkpoint", "ckpt", "--queries", str(tmp_path / "queries.jsonl")]
    from prosper.retrieval.runs import iter_lines, read_run

    for method, extra, options in (
        ("rrf", [], {"rrf_k": 60}),
        ("combsum", ["search.fusion_weights={bm25: 2}", "search.fusion_normalization=zscore"],
         {"weights": {"bm25": 2.0}, "normalization": "zscore"}),
    ):  # fmt: skip
        out = tmp_path / f"{method}.trec"
        assert main([*base, "--fusion", method, "--k", "4", "-o", str(out), *extra]) == 0, capsys.readouterr().err
        expected = expected_fusion(tmp_path / "idx", method, 4, **options)
        assert out.read_text().splitlines() == list(iter_lines(expected, tag=method))
        assert read_run(out)["q1"]  # not empty
    # --corpus at search time builds the same channel
    capsys.readouterr()
    shutil.rmtree(tmp_path / "idx" / "bm25")
    assert main([*base, "--fusion", "rrf", "--k", "4", "--corpus", str(corpus)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == (tmp_path / "rrf.trec").read_text().splitlines()


def test_search_fusion_one_query_prints_the_fused_ranking(tmp_path, index_dir, fake_encoder, capsys):
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    rc = main(["search", "--index", str(index_dir), "--checkpoint", "ckpt", "red", "drill", "--k", "3",
               "--fusion", "rrf", "--corpus", str(corpus)])
    assert rc == 0
    out = capsys.readouterr().out
    ranked = re.findall(r"│\s+(\d)\s+│\s+(p\d)\s+│\s+([\d.]+)", out)
    from prosper.retrieval.bm25 import BM25Channel

    BM25Channel.build(list(ITEMS), list(ITEMS.values())).save(index_dir / "bm25")
    expected = expected_fusion(index_dir, "rrf", 3, {"q": "red drill"}, rrf_k=60)["q"]
    assert ranked == [(str(r), d, f"{s:.4f}") for r, (d, s) in enumerate(expected.items(), start=1)]
    assert ranked[0] == ("1", "p1", f"{2 / 61:.4f}")  # first in both channels
    assert "fused with BM25 by rrf" in " ".join(out.split())


def test_search_fusion_without_corpus_fails_fast_in_one_line(tmp_path, index_dir, capsys):
    # no fake encoder: the checkpoint does not exist, so reaching the model would fail differently
    rc = main(["search", "--index", str(index_dir), "--checkpoint", str(tmp_path / "missing"), "drill", "--fusion", "rrf"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--fusion needs the items' texts" in err and "--corpus" in err
    assert main(["search", "--index", str(index_dir), "--queries", "q.parquet", "--fusion", "rrf",
                 "--corpus", "c.jsonl"]) == 2
    assert "needs query texts" in capsys.readouterr().err
    assert main(["search", "--index", str(index_dir), "--checkpoint", "x", "drill", "--fusion", "borda"]) == 2
    assert "borda" in capsys.readouterr().err


def test_index_corpus_must_hold_every_indexed_item(tmp_path, clean_env, capsys):
    write_vectors(tmp_path / "items.parquet", ITEMS, "item")
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "p1", "title": "red cordless drill"}) + "\n")
    rc = main(["index", "--input", str(tmp_path / "items.parquet"), "--output", str(tmp_path / "idx"),
               "--corpus", str(tmp_path / "corpus.jsonl")])
    assert rc == 4 and "5 indexed items have no text" in capsys.readouterr().err
    assert not (tmp_path / "idx").exists()  # nothing written


def test_eval_checkpoint_fusion_in_the_table(tmp_path, fake_encoder, clean_env, capsys):
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    write_corpus(beir / "corpus.jsonl")
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items()))
    (beir / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tp4\t2\nq2\tp2\t2\nq3\tp3\t1\n")
    rc = main(["eval", "--checkpoint", "ckpt", "--data", str(beir), "--fusion", "combsum", "-o", str(tmp_path / "out")])
    assert rc == 0, capsys.readouterr().err
    assert "prosper+bm25 (combsum)" in capsys.readouterr().out
    data = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert list(data["systems"]) == ["prosper", "bm25", "prosper+bm25 (combsum)"]
    assert (tmp_path / "out" / "run.combsum.trec").is_file()
