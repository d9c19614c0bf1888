"""The BM25 channel (bm25s, English stemmer, stop words): a score by hand, stemming, save/open."""

from __future__ import annotations

import math

import pytest

from prosper.retrieval.bm25 import BM25Channel, tokenize

IDS = ["a", "b", "c"]
TEXTS = ["red cordless drill", "blue hammer drills", "the garden hose"]


def test_tokenize_stems_and_drops_stopwords():
    assert tokenize(["The Drilling of hoses"]) == [["drill", "hose"]]


def test_lucene_bm25_score_by_hand():
    channel = BM25Channel.build(IDS, TEXTS)
    (result,) = channel.search(["drilling"], k=10)
    # Lucene BM25, k1=1.5, b=0.75: idf = ln(1 + (N - df + .5)/(df + .5)), tf/(tf + k1(1 - b + b dl/avgdl))
    n, df, avgdl, dl = 3, 2, 8 / 3, 3
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    expected = idf * 1 / (1 + 1.5 * (1 - 0.75 + 0.75 * dl / avgdl))
    assert sorted(result.ids.tolist()) == ["a", "b"]
    assert result.scores.tolist() == pytest.approx([expected, expected], rel=1e-5)


def test_unknown_and_stopword_queries_return_nothing():
    channel = BM25Channel.build(IDS, TEXTS)
    results = channel.search(["zzz", "the", "hose drill"], k=2)
    assert len(results[0].ids) == 0 and len(results[1].ids) == 0
    assert results[2].ids.tolist()[0] == "c" and len(results[2].ids) == 2


def test_save_open_roundtrip(tmp_path):
    channel = BM25Channel.build(IDS, TEXTS)
    channel.save(tmp_path / "bm25")
    again = BM25Channel.open(tmp_path / "bm25")
    a, b = channel.search(["garden hose"], 3)[0], again.search(["garden hose"], 3)[0]
    assert a.ids.tolist() == b.ids.tolist() and a.scores.tolist() == b.scores.tolist()
