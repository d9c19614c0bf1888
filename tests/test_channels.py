"""recall_types bitmasks and the multi-channel analysis on a hand-made two-channel example."""

from __future__ import annotations

from prosper.retrieval.channels import analyse_channels, mask_name, recall_types

PROSPER = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"x": 2.0, "y": 1.0}}
BM25 = {"q1": {"b": 9.0, "d": 8.0, "e": 7.0}, "q2": {"y": 5.0, "z": 4.0}}
QRELS = {"q1": {"a": 2, "b": 1, "d": 1, "f": 2, "c": 0}, "q2": {"x": 1, "z": 2, "y": 0}}


def test_recall_types_bitmask():
    masks = recall_types({"prosper": PROSPER, "bm25": BM25})
    assert masks["q1"] == {"a": 1, "b": 3, "c": 1, "d": 2, "e": 2}
    assert masks["q2"] == {"x": 1, "y": 3, "z": 2}
    # depth cuts each channel's list before the union
    assert recall_types({"prosper": PROSPER, "bm25": BM25}, depth=1)["q1"] == {"a": 1, "b": 2}
    assert mask_name(1, ["prosper", "bm25"]) == "prosper only"
    assert mask_name(3, ["prosper", "bm25"]) == "prosper+bm25"
    assert mask_name(0, ["prosper", "bm25"]) == "none"


def test_channel_analysis_counts_and_examples():
    analysis = analyse_channels(
        {"prosper": PROSPER, "bm25": BM25}, QRELS, depth=None, min_grade=1, query_texts={"q1": "drill"}
    )
    # relevant (grade >= 1): q1 a(P), b(both), d(B), f(none); q2 x(P), z(B)
    assert analysis.relevant == {1: 2, 3: 1, 2: 2, 0: 1}
    assert analysis.count("prosper") == 2 and analysis.count("bm25") == 2
    assert analysis.count("prosper", "bm25") == 1
    assert analysis.count("prosper", only=False) == 3
    # retrieved pairs by mask, relevant or not: P-only a, c, x; both b, y; B-only d, e, z
    assert analysis.retrieved == {1: 3, 3: 2, 2: 3}
    solo = analysis.examples[1]
    assert [(e["query_id"], e["item_id"], e["grade"], e["rank"]) for e in solo] == [("q1", "a", 2, 1), ("q2", "x", 1, 1)]
    assert solo[0]["query"] == "drill" and solo[1]["query"] == ""
    assert [(e["item_id"], e["rank"]) for e in analysis.examples[2]] == [("d", 2), ("z", 2)]
    data = analysis.to_dict()
    assert data["relevant_by_mask"] == {"none": 1, "prosper only": 2, "bm25 only": 2, "prosper+bm25": 1}
    assert data["bits"] == {"prosper": 1, "bm25": 2}


def test_channel_analysis_grade_threshold_and_depth():
    analysis = analyse_channels({"prosper": PROSPER, "bm25": BM25}, QRELS, depth=1, min_grade=2)
    # grade 2: q1 a (prosper rank 1), f (none); q2 z (bm25 rank 2 > depth 1 -> none)
    assert analysis.relevant == {1: 1, 0: 2}
