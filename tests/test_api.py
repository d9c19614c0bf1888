"""The Python API in three lines: docs/api.md runs as written (on a tiny model the test builds),
``prosper.Index`` remembers the encoder's scoring and vocabulary, the CLI index does too."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import prosper  # noqa: E402
from prosper.cli.app import main  # noqa: E402
from prosper.demo.scratch import DEFAULT_TEXTS, build_random_masked_lm, train_tokenizer  # noqa: E402
from prosper.errors import InputError  # noqa: E402
from prosper.retrieval.handle import item_texts  # noqa: E402
from prosper.retrieval.index import InvertedIndex  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"
CATALOG = {
    "p1": "solid oak nightstand with two drawers",
    "p2": "cordless drill 20v with lithium battery",
    "p3": "white ceramic floor tile 12 in x 12 in",
    "p4": "oak bedside table",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny random masked LM: a plain SPLADE folder as far as from_pretrained can tell."""
    tokenizer = train_tokenizer(DEFAULT_TEXTS + list(CATALOG.values()), vocab_size=300, kind="wordpiece")
    return build_random_masked_lm(tokenizer, tmp_path_factory.mktemp("api") / "splade", hidden_size=32, layers=1, heads=2)


@pytest.fixture(scope="module")
def encoder(model_dir):
    return prosper.SparseEncoder.from_pretrained(model_dir, device="cpu")


def _brute_force(queries, items, scoring):
    """Eq. 11 and its variants on dense matrices: the oracle for the index."""
    q, d = queries.to_dense().astype(np.float64), items.to_dense().astype(np.float64)
    if scoring in ("query_l2", "both_l2"):
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    if scoring in ("item_l2", "both_l2"):
        d = d / np.linalg.norm(d, axis=1, keepdims=True)
    return q @ d.T


def test_the_docs_snippets_run_as_written(model_dir, tmp_path, monkeypatch):
    """Every ```python block of docs/api.md, in order, in one namespace; MODEL is the tiny model."""
    text = DOCS.read_text(encoding="utf-8")
    # each block padded with blank lines so a failure's traceback names its line in docs/api.md
    blocks = ["\n" * text[: m.start(1)].count("\n") + m.group(1) for m in re.finditer(r"```python\n(.*?)```", text, flags=re.S)]
    assert len(blocks) >= 4 and 'MODEL = "' in blocks[0]
    blocks[0] = re.sub(r'^MODEL = ".*?"', f"MODEL = {str(model_dir)!r}", blocks[0], count=1, flags=re.M)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(DOCS), "exec"), namespace)
    encoder, index, queries, results = (namespace[k] for k in ("encoder", "index", "queries", "results"))
    assert encoder.source == str(model_dir) and index.scoring == "none" and len(index) == 3
    # the index's answers are the dot products (a plain SPLADE model's scoring), best first
    items = encoder.encode_items([CATALOG["p1"], CATALOG["p2"], CATALOG["p3"]], ids=["p1", "p2", "p3"])  # the snippet's
    scores = _brute_force(queries, items, "none")
    for row, result in enumerate(results):
        best = np.argsort(-scores[row], kind="stable")[:2]
        assert list(result.ids) == [items.ids[j] for j in best]
        np.testing.assert_allclose(result.scores, scores[row, best], rtol=1e-5)
    printed = out.getvalue().splitlines()
    assert printed[0] == str(list(zip(results[0].ids, results[0].scores)))
    decoded = queries[0].decode(top_k=5, vocabulary=encoder)
    assert printed[2] == str(decoded) and len(decoded[0]) == 5
    assert "texts must be a list of strings" in out.getvalue()
    assert (tmp_path / "my-index" / "meta.json").is_file()
    assert namespace["reopened"].scoring == "none"


def test_items_as_texts_pairs_or_mapping():
    assert item_texts(["a b", "c"]) == (["0", "1"], ["a b", "c"])
    assert item_texts([("x", "a b"), (7, "c")]) == (["x", "7"], ["a b", "c"])
    assert item_texts({"x": "a b", "y": "c"}) == (["x", "y"], ["a b", "c"])
    assert item_texts(t for t in ["a", "b"]) == (["0", "1"], ["a", "b"])
    with pytest.raises(InputError, match="not one string"):
        item_texts("oak nightstand")
    with pytest.raises(InputError, match=r"item 1: expected an \(id, text\) pair"):
        item_texts([("x", "a"), "b"])
    with pytest.raises(InputError, match=r"item 0 \('x'\): the text must be a string"):
        item_texts({"x": 3})


def test_index_remembers_scoring_and_vocabulary(model_dir, tmp_path):
    encoder = prosper.SparseEncoder.from_pretrained(model_dir, device="cpu", scoring="both_l2")
    index = prosper.Index.build(encoder, CATALOG)
    assert index.scoring == "both_l2" and index.vocabulary == encoder.vocabulary() and list(index.ids) == list(CATALOG)
    queries = encoder.encode_queries(["oak table", "battery drill", "tile"])
    items = encoder.encode_items(list(CATALOG.values()), ids=list(CATALOG))
    expected = _brute_force(queries, items, "both_l2")
    for row, result in enumerate(index.search(queries, k=4)):
        order = np.argsort(-expected[row], kind="stable")
        assert list(result.ids) == [items.ids[j] for j in order]
        np.testing.assert_allclose(result.scores, expected[row, order], rtol=1e-5)
    # query texts work while the index holds its encoder; a bare string does not
    by_text = index.search(["oak table", "battery drill", "tile"], k=4)
    assert [list(r.ids) for r in by_text] == [list(r.ids) for r in index.search(queries, k=4)]
    with pytest.raises(InputError, match="not one string"):
        index.search("oak table")
    # an explicit scoring still wins
    dot = index.search(queries, k=1, scoring="none")[0]
    assert dot.scores[0] == pytest.approx(_brute_force(queries, items, "none")[0].max(), rel=1e-5)

    index.save(tmp_path / "idx")
    reopened = prosper.Index.open(tmp_path / "idx")
    assert reopened.scoring == "both_l2" and reopened.vocabulary == index.vocabulary
    plain = InvertedIndex.open(tmp_path / "idx")  # the low-level index defaults to the stored scoring too
    assert plain.scoring == "both_l2"
    for a, b, c in zip(reopened.search(queries, k=4), plain.search(queries, k=4), index.search(queries, k=4)):
        assert list(a.ids) == list(b.ids) == list(c.ids)
        np.testing.assert_allclose(a.scores, c.scores, rtol=1e-6)
        np.testing.assert_allclose(b.scores, c.scores, rtol=1e-6)
    assert reopened.decode(queries[:1], top_k=2) == queries[:1].decode(2, encoder.vocabulary())
    with pytest.raises(InputError, match="no encoder to encode texts"):
        reopened.search(["oak table"])
    meta = json.loads((tmp_path / "idx" / "meta.json").read_text())
    assert meta["metadata"]["scoring"] == "both_l2" and meta["metadata"]["model"] == str(model_dir)


def test_index_without_stored_scoring_keeps_eq11_default(encoder):
    items = encoder.encode_items(list(CATALOG.values()), ids=list(CATALOG))
    queries = encoder.encode_queries(["oak table"])
    index = InvertedIndex.build(items)
    assert index.scoring == "query_l2"
    got = index.search(queries, k=1)[0]
    assert got.scores[0] == pytest.approx(_brute_force(queries, items, "query_l2")[0].max(), rel=1e-5)


def test_encode_refuses_a_bare_string(encoder):
    for call in (encoder.encode_queries, encoder.encode_items, encoder.encode):
        with pytest.raises(InputError, match=r"not one string; wrap it in a list: \['oak nightstand'\]"):
            call("oak nightstand")
    with pytest.raises(InputError, match="not one string"):
        list(encoder.encode_batches("oak"))
    vectors = encoder.encode_queries(["oak nightstand"], ids=["q1"])
    assert vectors.ids == ["q1"] and len(vectors) == 1


def test_import_prosper_stays_light_and_exports_lazily():
    code = (
        "import sys, prosper\n"
        "assert 'numpy' not in sys.modules and 'torch' not in sys.modules\n"
        "prosper.Index, prosper.SparseVectors\n"
        "assert 'torch' not in sys.modules, 'prosper.Index imported torch'\n"
        "assert prosper.Index.__module__ == 'prosper.retrieval.handle'\n"
        "assert set(prosper.__all__) >= {'SparseEncoder', 'SparseVectors', 'Index'}\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_index_searches_with_the_models_scoring(model_dir, tmp_path, capsys, clean_env):
    """infer --model records the scoring; index keeps it; search without --scoring uses it."""
    from prosper.export.parquet import read_parquet_vectors

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": k, "title": v}) + "\n" for k, v in CATALOG.items()), encoding="utf-8")
    queries = tmp_path / "queries.tsv"
    queries.write_text("q1\toak table\nq2\tbattery drill\n", encoding="utf-8")
    for side, source, out in (("item", corpus, "items.parquet"), ("query", queries, "queries.parquet")):
        rc = main(["infer", "--model", str(model_dir), "--side", side, "-i", str(source), "-o", str(tmp_path / out), "--no-progress"])
        assert rc == 0, capsys.readouterr().err
    assert main(["index", "-i", str(tmp_path / "items.parquet"), "-o", str(tmp_path / "idx")]) == 0
    assert InvertedIndex.open(tmp_path / "idx").scoring == "none"
    run = tmp_path / "run.trec"
    assert main(["search", "--index", str(tmp_path / "idx"), "--queries", str(tmp_path / "queries.parquet"), "-o", str(run)]) == 0
    assert "(none)" in capsys.readouterr().out
    items, _ = read_parquet_vectors(tmp_path / "items.parquet")
    qv, _ = read_parquet_vectors(tmp_path / "queries.parquet")
    expected = _brute_force(qv, items, "none")
    lines = [line.split() for line in run.read_text().splitlines()]
    top = {qid: (doc, float(score)) for qid, _, doc, rank, score, _ in lines if rank == "1"}
    for row, qid in enumerate(qv.ids):
        best = int(np.argmax(expected[row]))
        assert top[qid][0] == items.ids[best] and top[qid][1] == pytest.approx(expected[row, best], rel=1e-4)
    # one query text through --model (and its alias --checkpoint)
    for option in ("--model", "--checkpoint"):
        assert main(["search", "--index", str(tmp_path / "idx"), option, str(model_dir), "oak", "table"]) == 0
        assert "(none)" in capsys.readouterr().out
