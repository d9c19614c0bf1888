"""Lucene impact exporter: quantisation, sanitised terms and every Anserini pitfall."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from prosper.errors import InputError
from prosper.export.lucene import LuceneExporter, lucene_terms, sanitise_term
from prosper.export.params import LuceneParams
from prosper.sparse import SparseVectors

WHITESPACE = [" ", "\t", "\n", "\r", "\u3000", "\u00a0", "\u0085", "\u2007", "\u202f", "\u2028", "\x0b", "\x1c"]


def _export(tmp_path, vectors, vocab, side="item", **params):
    path = tmp_path / ("q.tsv" if side == "query" else "d.jsonl")
    writer = LuceneExporter(LuceneParams(**params)).open(path, vocab, side, {})
    writer.write(vectors)
    counts = writer.close()
    return path.read_text(encoding="utf-8"), counts


def _docs(text):
    return [json.loads(line) for line in text.splitlines()]


def test_item_weights_are_round_w_times_scale(tmp_path):
    rng = np.random.default_rng(1)
    vocab = [f"t{i}" for i in range(50)]
    dense = rng.random((40, 50)).astype(np.float32) * 3
    dense[dense < 1.5] = 0
    vectors = SparseVectors.from_dense(dense, [f"d{i}" for i in range(40)])
    for scale in (100.0, 37.5):
        text, counts = _export(tmp_path, vectors, vocab, scale=scale)
        docs = _docs(text)
        assert [d["id"] for d in docs] == vectors.ids
        for i, doc in enumerate(docs):
            assert doc["contents"] == ""
            terms, weights = vectors.row(i)
            expected = {vocab[t]: round(float(w) * scale) for t, w in zip(terms, weights) if round(float(w) * scale) > 0}
            assert doc["vector"] == expected
            assert all(isinstance(v, int) and v > 0 for v in doc["vector"].values())
        assert counts["rows"] == 40


def test_hand_computed_quantisation_and_zero_drop(tmp_path):
    vocab = ["a", "b", "c"]
    vectors = SparseVectors(["x"], [0, 3], [0, 1, 2], [0.004, 0.026, 1.234], 3)
    text, _ = _export(tmp_path, vectors, vocab)
    # 0.004*100 = 0.4 -> 0 (dropped); 0.026*100 = 2.6 -> 3; 1.234*100 = 123.4 -> 123
    assert text == '{"id":"x","contents":"","vector":{"b":3,"c":123}}\n'
    text, _ = _export(tmp_path, vectors, vocab, side="query")
    assert text == "x\tb b b " + " ".join(["c"] * 123) + "\n"


@pytest.mark.parametrize("space", WHITESPACE)
def test_terms_never_split_on_whitespace(space):
    term = f"left{space}right"
    clean = sanitise_term(term)
    assert clean.split() == [clean]  # Python's notion of whitespace
    assert not any(ch in clean for ch in WHITESPACE)
    assert clean == f"left\\u{ord(space):04X}right"


def test_sanitising_is_injective_and_keeps_unicode():
    vocab = ["a b", "a\\u0020b", "a_b", "", "\\e", "钻头", "Ġdrill", "##ing", "É"]
    terms = lucene_terms(vocab)
    assert len(set(terms)) == len(vocab)
    assert terms[5:] == ["钻头", "Ġdrill", "##ing", "É"]  # no normalisation, no lowercasing


def test_long_terms_fit_255_utf16_units():
    for term in ["x" * 300, "🔧" * 200, "a" * 255, "a" * 254 + "🔧"]:
        clean = sanitise_term(term)
        assert len(clean.encode("utf-16-le")) // 2 <= 255
    assert sanitise_term("a" * 255) == "a" * 255
    assert sanitise_term("x" * 300) != sanitise_term("x" * 301)
    assert sanitise_term("x" * 300).startswith("x" * 200) and "\\h" in sanitise_term("x" * 300)


def test_sanitised_terms_in_both_files(tmp_path):
    vocab = ["two words", "ideo\u3000space", "nb\u00a0sp"]
    vectors = SparseVectors(["q1"], [0, 3], [0, 1, 2], [0.02, 0.01, 0.01], 3)
    text, _ = _export(tmp_path, vectors, vocab)
    assert _docs(text)[0]["vector"] == {"two\\u0020words": 2, "ideo\\u3000space": 1, "nb\\u00A0sp": 1}
    text, _ = _export(tmp_path, vectors, vocab, side="query")
    qid, body = text.rstrip("\n").split("\t")
    assert body.split() == ["two\\u0020words"] * 2 + ["ideo\\u3000space", "nb\\u00A0sp"]


def test_overflow_errors_or_clips(tmp_path):
    vectors = SparseVectors(["big"], [0, 2], [0, 1], [1.0, 300000.0], 2)
    with pytest.raises(InputError, match=r"'big'.*exceeds max_weight 16777215"):
        _export(tmp_path, vectors, ["a", "b"])
    text, counts = _export(tmp_path, vectors, ["a", "b"], overflow="clip", max_weight=1000)
    assert _docs(text)[0]["vector"] == {"a": 100, "b": 1000}
    assert counts["clipped"] == 1 and counts["max_impact"] == 1000
    with pytest.raises(ValidationError):
        LuceneParams(max_weight=2**31)  # would wrap in Java
    with pytest.raises(ValidationError):
        LuceneParams(scale=0)


def test_vectors_that_quantise_to_nothing(tmp_path):
    vocab = ["a", "b", "c"]
    vectors = SparseVectors(["tiny", "none", "ok"], [0, 2, 2, 3], [0, 2, 1], [0.002, 0.004, 0.5], 3)
    text, counts = _export(tmp_path, vectors, vocab)  # keep_top: highest term at weight 1
    assert [d["vector"] for d in _docs(text)] == [{"c": 1}, {}, {"b": 50}]
    assert counts["quantised_empty"] == 1 and counts["empty_before"] == 1
    text, counts = _export(tmp_path, vectors, vocab, empty="write")
    assert [d["vector"] for d in _docs(text)] == [{}, {}, {"b": 50}]
    with pytest.raises(InputError, match="'tiny': every weight rounds to 0"):
        _export(tmp_path, vectors, vocab, empty="error")
    text, counts = _export(tmp_path, vectors, vocab, side="query")
    assert text == "tiny\tc\nok\t" + " ".join(["b"] * 50) + "\n"
    assert counts["empty_queries_omitted"] == 1


def test_queries_keep_at_most_1024_distinct_terms(tmp_path):
    n = 1500
    vocab = [f"t{i}" for i in range(n)]
    weights = np.linspace(0.05, 2.0, n).astype(np.float32)
    vectors = SparseVectors(["long"], [0, n], np.arange(n), weights, n)
    text, counts = _export(tmp_path, vectors, vocab, side="query", scale=10)
    tokens = text.rstrip("\n").split("\t")[1].split()
    kept = set(tokens)
    assert len(kept) == 1024 and counts["query_terms_truncated"] == 1
    assert kept == {f"t{i}" for i in range(n - 1024, n)}  # the highest-weighted ones
    text, _ = _export(tmp_path, vectors, vocab, side="item", scale=10)
    assert len(_docs(text)[0]["vector"]) == n  # documents are not limited


def test_ids_with_separators(tmp_path):
    vocab = ["a"]
    ids = ["with space", 'quote"and,comma', "ü-中"]
    vectors = SparseVectors(ids, [0, 1, 2, 3], [0, 0, 0], [1.0, 1.0, 1.0], 1)
    text, _ = _export(tmp_path, vectors, vocab)
    assert [d["id"] for d in _docs(text)] == ids
    text, _ = _export(tmp_path, vectors, vocab, side="query")
    assert [line.split("\t")[0] for line in text.splitlines()] == ids
    bad = SparseVectors(["tab\there"], [0, 1], [0], [1.0], 1)
    with pytest.raises(InputError, match="tab or line break"):
        _export(tmp_path, bad, vocab, side="query")
    text, _ = _export(tmp_path, bad, vocab)  # JSON escapes it
    assert _docs(text)[0]["id"] == "tab\there"


def test_lucene_merge_concatenates_lines(tmp_path):
    exporter = LuceneExporter()
    vectors = SparseVectors(["a", "b"], [0, 1, 2], [0, 0], [1.0, 2.0], 1)
    for i in range(2):
        writer = exporter.open(tmp_path / f"p{i}.jsonl", ["t"], "item", {})
        writer.write(vectors.slice(i, i + 1))
        writer.close()
    exporter.merge([tmp_path / "p0.jsonl", tmp_path / "p1.jsonl"], tmp_path / "all.jsonl", "item")
    assert [d["vector"]["t"] for d in _docs((tmp_path / "all.jsonl").read_text())] == [100, 200]
