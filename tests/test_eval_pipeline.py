"""The one evaluation pipeline: ``prosper eval``, training validation and the demo agree.

The fixture is a tiny shop searched by a real (random, untrained) model whose vectors keep only
the text's own tokens (``query_terms``/``item_terms: literal``): queries written in a script the
catalog never uses share no token with any item, so they get no hits at all, deterministically.
They still count, as zeros, in every mean, and the three callers report the same numbers.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ITEMS = {
    "p01": "red cordless drill with battery",
    "p02": "blue claw hammer steel",
    "p03": "garden hose fifty feet",
    "p04": "cordless circular saw",
    "p05": "red interior paint gallon",
    "p06": "oak dining table",
    "p07": "steel nail pack",
    "p08": "green garden gloves",
    "p09": "oak bookcase five shelves",
    "p10": "white ceramic tile",
}
# (text, kind, {item: grade}); the Cyrillic and CJK queries share no token with the catalog
QUERIES = {
    "q01": ("cordless drill", "brand_category", {"p01": 2, "p04": 1}),
    "q02": ("garden hose", "brand_category", {"p03": 2, "p08": 1}),
    "q03": ("red paint", "attribute", {"p05": 2, "p01": 0}),
    "q04": ("oak table", "attribute", {"p06": 2, "p09": 1}),
    "q05": ("steel hammer", "brand_category", {"p02": 2, "p07": 1}),
    "q06": ("дрель", "synonym", {"p01": 2}),
    "q07": ("日本の椅子", "synonym", {"p06": 2}),
    "q08": ("ceramic tile", "attribute", {"p07": 0}),  # judged, nothing relevant
}


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    pytest.importorskip("torch")
    from prosper.demo.scratch import build_random_causal_lm, train_tokenizer
    from prosper.modeling.encoder import SparseEncoder
    from prosper.settings import ModelSettings

    root = tmp_path_factory.mktemp("evalpipe")
    beir = root / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": ""}) + "\n" for i, t in ITEMS.items()))
    rows = [{"_id": q, "text": t, "kind": k} for q, (t, k, _) in QUERIES.items()]
    (beir / "queries.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    lines = ["query-id\tcorpus-id\tscore\n"] + [f"{q}\t{d}\t{g}\n" for q, (_, _, j) in QUERIES.items() for d, g in j.items()]
    (beir / "qrels" / "dev.tsv").write_text("".join(lines))
    tokenizer = train_tokenizer(list(ITEMS.values()), vocab_size=300, kind="bpe")
    backbone = build_random_causal_lm(tokenizer, root / "qwen", hidden_size=32, layers=1, heads=2, seed=1)
    model = ModelSettings(backbone={"name": "qwen", "path": str(backbone)}, device="cpu", max_length=24,
                          query_terms="literal", item_terms="literal", lfw={"k_query": 24, "k_item": 48})  # fmt: skip
    SparseEncoder.from_settings(model).save(root / "ckpt")
    return root


@pytest.fixture(scope="module")
def settings():
    from prosper.settings import load_settings

    # one text a batch: no padding, so every caller's vectors are the same to the bit
    return load_settings(None, ["search.k=100", "search.mrr_rel=1", "search.rel=1", "infer.batch_size=1"], environ={})


@pytest.fixture(scope="module")
def three_ways(shop, settings, tmp_path_factory):
    """The same checkpoint and dev split through `prosper eval`, validation and the demo."""
    from rich.console import Console

    from prosper.demo.pipeline import evaluate_on_dev
    from prosper.demo.report import DemoSummary
    from prosper.evaluation.pipeline import evaluate_checkpoint
    from prosper.modeling.encoder import SparseEncoder
    from prosper.settings import DataSettings
    from prosper.training.validation import build_dev_set, evaluate_encoder

    out = tmp_path_factory.mktemp("three")
    payload = evaluate_checkpoint(shop / "ckpt", shop / "beir", "dev", settings, out / "eval", bm25=True)
    data = DataSettings(path=str(shop / "beir"), dev_split="dev", max_dev_queries=500, max_dev_items=None, min_grade=1)
    dev = build_dev_set(data, seed=0)
    validation = evaluate_encoder(SparseEncoder.load(shop / "ckpt"), dev, recall_k=100, batch_size=1)
    summary = DemoSummary(out / "demo", "fixture", "scratch", 0)
    evaluate_on_dev(shop / "ckpt", shop / "beir", out / "demo", settings, summary, Console(quiet=True))
    return payload, dev, validation, summary, out


def _first_relevant_rr(run_file, qrels, depth=10, rel=1):
    """An independent MRR@10: the reciprocal rank of the first relevant item, over all judged queries."""
    ranked: dict[str, list[str]] = {}
    for line in run_file.read_text().splitlines():
        qid, _, doc, rank, _, _ = line.split()
        ranked.setdefault(qid, []).append(doc)
    total = 0.0
    for qid, judged in qrels.items():
        for rank, doc in enumerate(ranked.get(qid, [])[:depth], start=1):
            if judged.get(doc, 0) >= rel:
                total += 1 / rank
                break
    return total / len(qrels)


def test_the_fixture_has_queries_without_hits(three_ways):
    payload, _, _, _, out = three_ways
    answered = {line.split()[0] for line in (out / "eval" / "run.trec").read_text().splitlines()}
    assert answered == {"q01", "q02", "q03", "q04", "q05", "q08"}  # q06, q07: not one hit
    bm25 = {line.split()[0] for line in (out / "eval" / "run.bm25.trec").read_text().splitlines()}
    assert {"q06", "q07"}.isdisjoint(bm25)
    assert payload["n_queries"] == len(QUERIES)


def test_eval_validation_and_demo_agree(three_ways):
    payload, dev, validation, summary, out = three_ways
    eval_prosper = payload["systems"]["prosper"]
    demo_all = summary.metrics["prosper"]["all"]
    assert len(dev) == len(QUERIES) and set(dev.qrels) == set(QUERIES)  # q08 (nothing relevant) is in too
    assert 0 < eval_prosper["MRR@10"] < 1
    assert validation["mrr@10"] == pytest.approx(eval_prosper["MRR@10"], abs=1e-12)
    assert validation["recall@100"] == pytest.approx(eval_prosper["Recall@100"], abs=1e-12)
    for name in ("nDCG@10", "MRR@10", "Recall@10", "Recall@100", "Hit@10"):  # the demo rounds to 4 decimals
        assert demo_all[name] == pytest.approx(eval_prosper[name], abs=5e-5), name
        assert summary.metrics["bm25"]["all"][name] == pytest.approx(payload["systems"]["bm25"][name], abs=5e-5), name
    assert demo_all["queries"] == len(QUERIES)
    # the demo's run file is the eval's, line for line
    assert (out / "demo" / "runs" / "prosper.dev.trec").read_text().split("\n")[0].split()[:3] == (
        (out / "eval" / "run.trec").read_text().split("\n")[0].split()[:3]
    )


def test_queries_without_hits_count_as_zero_over_all_judged_queries(three_ways):
    payload, _, _, summary, out = three_ways
    qrels = {q: j for q, (_, _, j) in QUERIES.items()}
    oracle = _first_relevant_rr(out / "eval" / "run.trec", qrels)
    assert payload["systems"]["prosper"]["MRR@10"] == pytest.approx(oracle, abs=1e-12)
    # per kind: the foreign-script queries score 0; "all" is the query-weighted mean of the kinds
    kinds = summary.metrics["prosper"]
    assert kinds["synonym"]["MRR@10"] == 0.0 and kinds["synonym"]["queries"] == 2
    weighted = sum(v["MRR@10"] * v["queries"] for k, v in kinds.items() if k != "all") / len(QUERIES)
    assert kinds["all"]["MRR@10"] == pytest.approx(weighted, abs=1e-4)


def test_pipeline_stages_given_by_the_caller_give_the_same_numbers(shop, settings):
    from prosper.evaluation.pipeline import load_eval_set, run_pipeline
    from prosper.modeling.encoder import SparseEncoder
    from prosper.retrieval.index import InvertedIndex

    encoder = SparseEncoder.load(shop / "ckpt")
    evalset = load_eval_set(shop / "beir", "dev")
    whole = run_pipeline(evalset, settings.search, encoder, batch_size=1, fusions=["rrf"])
    index = InvertedIndex.build(whole.items)
    parts = run_pipeline(evalset, settings.search, encoder, index=index, queries=whole.queries, stats=False)
    assert parts.systems["prosper"] == {k: v for k, v in whole.systems["prosper"].items() if k in parts.measures}
    assert list(whole.systems) == ["prosper", "bm25", "prosper+bm25 (rrf)"]
    assert whole.values["prosper"]["q06"] == dict.fromkeys(whole.measures, 0.0)
    assert whole.means("prosper", ["q06", "q07"]) == dict.fromkeys(whole.measures, 0.0)


def test_load_eval_set_names_a_judged_query_without_text(tmp_path):
    from prosper.errors import InputError
    from prosper.evaluation.pipeline import load_eval_set

    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "p1", "title": "drill"}) + "\n")
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "drill"}) + "\n")
    (tmp_path / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tp1\t1\nq9\tp1\t1\n")
    with pytest.raises(InputError, match="1 judged queries have no text.*'q9'"):
        load_eval_set(tmp_path, "dev")


def test_run_files_follow_the_same_rule(tmp_path):
    from prosper.evaluation.pipeline import evaluate_run_files
    from prosper.settings import SearchSettings

    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ta\t2\nq2\tb\t2\nq3\tc\t2\nq4\td\t0\n")
    (tmp_path / "run.trec").write_text("q1 Q0 a 1 2.0 x\nq2 Q0 z 1 1.0 x\nq2 Q0 b 2 0.5 x\nq9 Q0 a 1 1.0 x\n")
    payload = evaluate_run_files([tmp_path / "run.trec"], tmp_path / "qrels.tsv", SearchSettings(), ["MRR@10", "Hit@1"])
    # q1: 1, q2: 1/2, q3 (no hits) and q4 (nothing relevant): 0; q9 is not judged
    assert payload["systems"]["run"] == {"MRR@10": pytest.approx(1.5 / 4), "Hit@1": pytest.approx(1 / 4)}
    assert payload["n_queries"] == 4
