"""Metrics through ir-measures on a hand-made run, FLOPS statistics, run files and the report."""

from __future__ import annotations

import json
import math

import ir_measures
import numpy as np
import pytest
from ir_measures import RR, R, Success, nDCG

from prosper.errors import InputError
from prosper.evaluation.metrics import DEFAULT_MEASURES, evaluate, per_query, sparsity_stats
from prosper.evaluation.report import metrics_table, write_json
from prosper.retrieval.index import InvertedIndex
from prosper.retrieval.runs import read_run, results_to_run, truncate, write_run
from prosper.sparse import SparseVectors

QRELS = {"q1": {"a": 2, "b": 1, "c": 0}, "q2": {"x": 1, "y": 2}, "q3": {"z": 1}}
RUN = {
    "q1": {"b": 3.0, "c": 2.5, "a": 2.0, "n": 1.0},  # a (grade 2) at rank 3
    "q2": {"y": 5.0, "n": 4.0, "x": 1.0},  # y (grade 2) at rank 1, x at rank 3
    # q3 missing from the run: counts as 0
}


def test_metrics_equal_ir_measures():
    got = evaluate(RUN, QRELS)
    want = ir_measures.calc_aggregate(
        [nDCG @ 10, RR(rel=2) @ 10, R @ 10, R @ 100, R @ 1000, Success @ 1, Success @ 10, Success @ 100, Success @ 1000],
        QRELS,
        RUN,
    )
    assert list(got) == list(DEFAULT_MEASURES)
    assert got["nDCG@10"] == pytest.approx(want[nDCG @ 10])
    assert got["MRR@10"] == pytest.approx(want[RR(rel=2) @ 10])
    assert got["Recall@100"] == pytest.approx(want[R @ 100])
    assert got["Hit@1"] == pytest.approx(want[Success @ 1])


def test_metrics_by_hand():
    got = evaluate(RUN, QRELS)
    # MRR@10 at grade 2: q1 -> 1/3, q2 -> 1, q3 -> 0
    assert got["MRR@10"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    # Hit@1 at grade 1: q1 b (grade 1) at rank 1 -> 1, q2 y -> 1, q3 -> 0
    assert got["Hit@1"] == pytest.approx(2 / 3)
    assert got["Recall@10"] == pytest.approx((1 + 1 + 0) / 3)
    # nDCG@10 (trec_eval gains = grades): q1 DCG = 1/log2(2) + 2/log2(4); IDCG = 2 + 1/log2(3)
    q1 = (1 + 2 / 2) / (2 + 1 / math.log2(3))
    q2 = (2 + 1 / 2) / (2 + 1 / math.log2(3))
    assert got["nDCG@10"] == pytest.approx((q1 + q2 + 0) / 3)
    # the MRR relevance level is a setting: at grade 1, q1's first relevant is b at rank 1
    assert evaluate(RUN, QRELS, ["MRR@10"], mrr_rel=1)["MRR@10"] == pytest.approx((1 + 1 + 0) / 3)
    assert evaluate(RUN, QRELS, ["P@2"]) == {"P@2": pytest.approx((0.5 + 0.5 + 0) / 3)}


def test_per_query_and_bad_input():
    values = per_query(RUN, QRELS, ["MRR@10"])
    assert values["q1"]["MRR@10"] == pytest.approx(1 / 3) and values["q2"]["MRR@10"] == 1.0
    with pytest.raises(InputError):
        evaluate(RUN, {})


def test_sparsity_stats_flops_by_hand():
    # df: term 0 -> 3 items, term 1 -> 1, term 2 -> 2; 4 items
    items = SparseVectors.from_rows(
        ["a", "b", "c", "d"], [([0, 1], [1, 1]), ([0, 2], [1, 1]), ([0, 2], [1, 1]), ([3], [1])], 4
    )
    queries = SparseVectors.from_rows(["q1", "q2"], [([0, 2], [2, 1]), ([1], [1])], 4)
    stats = sparsity_stats(queries, InvertedIndex.build(items))
    assert stats["query_nnz"] == 1.5
    assert stats["item_nnz"] == 7 / 4
    assert stats["postings_per_query"] == ((3 + 2) + 1) / 2
    # paper's FLOPS: sum_j p_q(j) p_d(j) = 0.5*0.75 + 0.5*0.25 + 0.5*0.5 + 0*0.25
    assert stats["flops"] == pytest.approx(0.5 * 0.75 + 0.5 * 0.25 + 0.5 * 0.5)
    assert sparsity_stats(queries, InvertedIndex.build(items), query_top_terms=1)["postings_per_query"] == (3 + 1) / 2


def test_run_file_roundtrip(tmp_path):
    path = write_run(tmp_path / "run.trec", RUN, tag="mine")
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 b 1 3 mine" and lines[2] == "q1 Q0 a 3 2 mine"
    assert read_run(path) == RUN
    assert truncate(RUN, 1) == {"q1": {"b": 3.0}, "q2": {"y": 5.0}}
    (tmp_path / "bad.trec").write_text("q1 Q0 a 1 x tag\n")
    with pytest.raises(InputError, match="bad.trec:1"):
        read_run(tmp_path / "bad.trec")


def test_results_to_run_keeps_order():
    from prosper.retrieval.index import SearchResult

    res = [SearchResult(np.array(["b", "a"], dtype=object), np.array([2.0, 1.0], np.float32))]
    assert list(results_to_run(["q"], res)["q"]) == ["b", "a"]


def test_report_table_and_json(tmp_path):
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(metrics_table({"prosper": {"nDCG@10": 0.25, "flops": 1.5}, "bm25": {"nDCG@10": 0.5}}))
    text = console.export_text()
    assert "0.2500" in text and "0.5000" in text and "1.500" in text
    write_json(tmp_path / "m.json", {"a": 1})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}
