"""Training examples from qrels and triples files; errors name file:line; batches are replayable."""

import json

import numpy as np
import pytest

from prosper.data.training import BatchPlan, build_training_data, examples_from_qrels, load_training_data, make_batch
from prosper.data.triples import iter_triples
from prosper.errors import ConfigError, InputError
from prosper.settings import DataSettings


@pytest.fixture()
def beir(tmp_path):
    root = tmp_path / "shop"
    (root / "qrels").mkdir(parents=True)
    corpus = [{"_id": f"d{i}", "title": f"product {i}", "text": ""} for i in range(8)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    queries = [{"_id": f"q{i}", "text": f"query {i}"} for i in range(5)]
    (root / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (root / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq0\td0\t2\nq0\td1\t1\nq1\td1\t2\nq2\td2\t0\nq3\td3\t1\nq3\td99\t2\nq4\td4\t1\nq9\td5\t1\n"
    )
    return root


def test_qrels_positives_at_or_above_grade(beir):
    examples = {e.query_id: e.positives for e in examples_from_qrels(beir / "qrels" / "train.tsv", min_grade=1)}
    assert examples["q0"] == ["d0", "d1"]
    assert "q2" not in examples  # grade 0 only
    high = {e.query_id: e.positives for e in examples_from_qrels(beir / "qrels" / "train.tsv", min_grade=2)}
    assert high == {"q0": ["d0"], "q1": ["d1"], "q3": ["d99"]}


def test_unknown_ids_are_reported_and_dropped(beir):
    data = load_training_data(DataSettings(path=str(beir)))
    assert data.query_ids == ["q0", "q1", "q3", "q4"]
    assert data.report.unknown_items.count == 1 and "'d99'" in data.report.unknown_items.examples[0]
    assert data.report.unknown_queries.count == 1 and data.report.unknown_queries.examples[0].startswith("'q9'")
    assert data.report.dropped_examples == 1
    warnings = data.report.warnings()
    assert any("1 item id(s) not in the corpus" in w for w in warnings)
    # texts resolved, positives as indices into item_texts
    q0 = data.query_ids.index("q0")
    assert [data.item_texts[i] for i in data.positives[q0]] == ["product 0", "product 1"]
    # q3 keeps d3 only
    assert [data.item_ids[i] for i in data.positives[data.query_ids.index("q3")]] == ["d3"]


def test_triples_jsonl_with_negatives_and_teacher(beir, tmp_path):
    path = tmp_path / "triples.jsonl"
    rows = [
        {"query": "q0", "positives": ["d0"], "negatives": ["d5", "d6"], "teacher_scores": [9.0, 1.0, 2.0]},
        {"query_id": "q1", "positive": "d1", "negatives": ["d7"], "teacher_scores": {"d1": 5, "d7": 4}},
        {"query": "qx", "query_text": "inline text", "positives": ["d2"], "negatives": []},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    examples = list(iter_triples(path))
    assert examples[0].teacher == {"d0": 9.0, "d5": 1.0, "d6": 2.0}
    assert examples[1].positives == ["d1"] and examples[1].teacher == {"d1": 5.0, "d7": 4.0}
    assert examples[2].query_text == "inline text"
    data = load_training_data(DataSettings(path=str(beir), triples=str(path)))
    assert data.query_texts == ["query 0", "query 1", "inline text"]
    assert data.has_teacher


def test_triples_tsv_and_parquet(beir, tmp_path):
    tsv = tmp_path / "t.tsv"
    tsv.write_text("qid\tpos\tneg\nq0\td0\td5\nq1\td1\n")
    examples = list(iter_triples(tsv))
    assert [(e.query_id, e.positives, e.negatives) for e in examples] == [("q0", ["d0"], ["d5"]), ("q1", ["d1"], [])]
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"query": ["q0", "q1"], "positives": [["d0"], ["d1"]], "negatives": [["d5"], []]})
    pq.write_table(table, tmp_path / "t.parquet")
    examples = list(iter_triples(tmp_path / "t.parquet"))
    assert [(e.query_id, e.positives, e.negatives) for e in examples] == [("q0", ["d0"], ["d5"]), ("q1", ["d1"], [])]


@pytest.mark.parametrize(
    "content, line, message",
    [
        ('{"query": "q0", "positives": ["d0"]}\n{"query": "q1", "positives": [\n', 2, "invalid JSON"),
        ('{"query": "q0", "positives": ["d0"]}\n\n{"query": "q1"}\n', 3, "no positive"),
        ('{"positives": ["d0"]}\n', 1, "missing query id"),
        ('{"query": "q0", "positives": ["d0"], "negatives": ["d1"], "teacher_scores": [1.0]}\n', 1, "teacher_scores has 1"),
        ('{"query": "q0", "positives": ["d0"], "teacher_scores": {"d9": 1}}\n', 1, "no teacher score for 'd0'"),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        list(iter_triples(path))
    assert f"bad.jsonl:{line}:" in str(info.value) and message in str(info.value)


def test_malformed_tsv_names_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("q0\td0\nq1\n")
    with pytest.raises(InputError, match=r"bad.tsv:2: expected query_id"):
        list(iter_triples(path))


def test_nothing_usable_is_an_error(beir):
    from prosper.data.triples import TrainExample

    with pytest.raises(InputError, match="no usable training example"):
        build_training_data([TrainExample("nope", ["d0"])], beir, beir)
    with pytest.raises(ConfigError, match="data.path"):
        load_training_data(DataSettings())


def test_batch_plan_is_a_seeded_permutation_per_epoch():
    plan = BatchPlan(10, batch_size=3, seed=7)
    assert plan.batches_per_epoch == 3
    epoch0 = np.concatenate([plan.indices(p) for p in range(3)])
    assert len(set(epoch0.tolist())) == 9
    again = BatchPlan(10, batch_size=3, seed=7)
    assert np.array_equal(again.indices(4), plan.indices(4))  # replayable from any position
    assert not np.array_equal(plan.epoch_order(0), plan.epoch_order(1))
    two = BatchPlan(10, batch_size=2, seed=7, world_size=2)
    assert np.array_equal(np.concatenate([two.indices(1, 0), two.indices(1, 1)]), two.epoch_order(0)[4:8])
    with pytest.raises(ConfigError, match="cannot fill one batch"):
        BatchPlan(3, batch_size=4, seed=0)


def test_make_batch_layout_and_determinism(beir, tmp_path):
    path = tmp_path / "triples.jsonl"
    rows = [{"query": f"q{i}", "positives": [f"d{i}"], "negatives": ["d5", "d6", "d7"]} for i in range(3)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = load_training_data(DataSettings(path=str(beir), triples=str(path)))
    batch = make_batch(data, np.array([2, 0]), position=5, seed=1, hard_negatives=2)
    assert batch.query_ids == ["q2", "q0"]
    assert batch.item_ids[:2] == ["d2", "d0"]
    assert len(batch.item_ids) == 2 + 2 * 2 and set(batch.item_ids[2:]) <= {"d5", "d6", "d7"}
    assert batch.positive_index.tolist()[0][0] == data.item_ids.index("d2")
    again = make_batch(data, np.array([2, 0]), position=5, seed=1, hard_negatives=2)
    assert again.item_ids == batch.item_ids
