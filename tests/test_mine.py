"""``prosper mine``: hard negatives from BM25 or a checkpoint, checked against the ranking itself.

A 30-item catalog (6 categories x 5 adjectives) and 7 queries whose words overlap, built in a
tmp folder; expected negatives are recomputed from BM25Channel / InvertedIndex rankings.
"""

from __future__ import annotations

import json
from itertools import product

import pytest

from prosper.cli.app import main
from prosper.errors import CheckpointError, ConfigError, InputError
from prosper.mining import MiningOptions, mine_hard_negatives, select_negatives

CATS = ["drill", "saw", "hammer", "hose", "paint", "lamp"]
ADJS = ["red", "blue", "cordless", "steel", "garden"]
EXTRAS = ["pro kit", "set", "max combo pack", "mini", "heavy duty kit with case"]
QUERIES = {
    "q1": "cordless drill",
    "q2": "red drill kit",
    "q3": "steel hammer",
    "q4": "garden hose",
    "q5": "blue paint set",
    "q6": "red saw",
    "q7": "lamp",  # judged, but only grade 0: no training example
}


def pid(cat: str, adj: str) -> str:
    return f"p{CATS.index(cat) * len(ADJS) + ADJS.index(adj):02d}"


QRELS = [
    ("q1", pid("drill", "cordless"), 2), ("q1", pid("drill", "red"), 1), ("q1", pid("drill", "blue"), 0),
    ("q2", pid("drill", "red"), 2), ("q2", pid("saw", "red"), 0),
    ("q3", pid("hammer", "steel"), 2), ("q3", pid("saw", "steel"), 0), ("q3", pid("hose", "garden"), 0),
    ("q4", pid("hose", "garden"), 2), ("q4", pid("lamp", "blue"), 0),  # q4's judged negative shares no word
    ("q5", pid("paint", "blue"), 2), ("q5", pid("paint", "red"), 1),
    ("q6", pid("saw", "red"), 2), ("q6", pid("drill", "red"), 0),
    ("q7", pid("lamp", "red"), 0),
]


def texts() -> dict[str, str]:
    out = {}
    for i, (cat, adj) in enumerate(product(CATS, ADJS)):
        out[pid(cat, adj)] = f"{adj} {cat} {EXTRAS[i % len(EXTRAS)]}"
    return out


def write_beir(root):
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    with (root / "corpus.jsonl").open("w") as f:
        for item, text in texts().items():
            f.write(json.dumps({"_id": item, "title": text, "text": ""}) + "\n")
    with (root / "queries.jsonl").open("w") as f:
        for qid, text in QUERIES.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q, d, g in QRELS]
    (root / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n")
    (root / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tp02\t2\n")
    return root


@pytest.fixture()
def beir(tmp_path):
    return write_beir(tmp_path / "shop")


def judgments() -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for q, d, g in QRELS:
        out.setdefault(q, {})[d] = g
    return out


def read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def bm25_rankings(depth=100):
    from prosper.retrieval.bm25 import BM25Channel

    corpus = texts()
    channel = BM25Channel.build(list(corpus), list(corpus.values()))
    qids = [q for q in QUERIES if q != "q7"]
    results = channel.search([QUERIES[q] for q in qids], k=depth)
    return {q: (r.ids.tolist(), r.scores.tolist()) for q, r in zip(qids, results)}


# -- the rules, on a hand-made ranking --------------------------------------------------------
RANKING = (["a", "b", "c", "d", "e", "f"], [10.0, 9.0, 8.0, 7.0, 6.0, 5.0])


def _ids(selection):
    return [n.id for n in selection.negatives]


def test_margin_band_and_range_min_by_hand():
    judged = {"c": 1}  # the best (only) positive scores 8
    plain = select_negatives(*RANKING, judged, MiningOptions(num_negatives=10))
    assert _ids(plain) == ["a", "b", "d", "e", "f"] and plain.best_positive_rank == 3
    relative = select_negatives(*RANKING, judged, MiningOptions(num_negatives=10, relative_margin=0.1))
    assert _ids(relative) == ["d", "e", "f"] and relative.skipped_margin == 2  # > 0.9 * 8 = 7.2
    absolute = select_negatives(*RANKING, judged, MiningOptions(num_negatives=10, absolute_margin=1.5))
    assert _ids(absolute) == ["e", "f"] and absolute.skipped_margin == 3  # > 8 - 1.5 = 6.5
    both = select_negatives(*RANKING, judged, MiningOptions(num_negatives=10, relative_margin=0.1, absolute_margin=1.5))
    assert _ids(both) == ["e", "f"]
    ranged = select_negatives(*RANKING, judged, MiningOptions(num_negatives=10, range_min=2))
    assert _ids(ranged) == ["d", "e", "f"] and ranged.skipped_range == 2 and ranged.skipped_positives == 1
    # no positive retrieved: no reference score, no band
    unseen = select_negatives(*RANKING, {"z": 2}, MiningOptions(num_negatives=3, relative_margin=0.1))
    assert _ids(unseen) == ["a", "b", "c"] and unseen.best_positive_score is None and unseen.skipped_margin == 0


def test_judged_negatives_first_then_rank_order():
    judged = {"c": 2, "e": 0, "zz": 0}  # e retrieved at rank 5, zz never retrieved
    out = select_negatives(*RANKING, judged, MiningOptions(num_negatives=4, relative_margin=0.3))
    assert [(n.id, n.rank, n.score, n.origin) for n in out.negatives] == [
        ("e", 5, 6.0, "judged"), ("zz", None, None, "judged"), ("f", 6, 5.0, "mined"),
    ]  # the band (> 5.6) does not apply to judged negatives; a, b, d are inside it
    off = select_negatives(*RANKING, judged, MiningOptions(num_negatives=4, include_judged_negatives=False))
    assert _ids(off) == ["a", "b", "d", "e"]
    unknown = select_negatives(*RANKING, judged, MiningOptions(num_negatives=4), known_items={"a", "e"})
    assert _ids(unknown) == ["e", "a", "b", "d"]  # zz is not in the corpus


def test_random_sampling_is_seeded_and_keeps_rank_order():
    import numpy as np

    options = MiningOptions(num_negatives=3, sampling="random", include_judged_negatives=False)
    first = select_negatives(*RANKING, {"c": 1}, options, np.random.default_rng([0, 1]))
    again = select_negatives(*RANKING, {"c": 1}, options, np.random.default_rng([0, 1]))
    assert _ids(first) == _ids(again) and len(first.negatives) == 3
    assert set(_ids(first)) <= {"a", "b", "d", "e", "f"}
    assert [n.rank for n in first.negatives] == sorted(n.rank for n in first.negatives)


@pytest.mark.parametrize(
    "kw, flag",
    [({"depth": 0}, "--depth"), ({"num_negatives": 0}, "--num-negatives"), ({"range_min": 100}, "--range-min"),
     ({"relative_margin": 1.0}, "--relative-margin"), ({"absolute_margin": -1}, "--absolute-margin"),
     ({"sampling": "best"}, "--sampling")],
)
def test_bad_options_name_the_flag(kw, flag):
    with pytest.raises(ConfigError, match=flag):
        MiningOptions(**kw).check()


# -- BM25 end to end ----------------------------------------------------------------------------
def test_bm25_negatives_follow_the_ranking_and_skip_positives(beir, tmp_path):
    out = tmp_path / "t.jsonl"
    options = MiningOptions(num_negatives=3, include_judged_negatives=False)
    summary = mine_hard_negatives(beir, out, bm25=True, options=options)
    records = read(out)
    rankings, judged = bm25_rankings(), judgments()
    assert [r["query"] for r in records] == ["q1", "q2", "q3", "q4", "q5", "q6"]  # q7 has no positive
    for record in records:
        q = record["query"]
        positives = {d for d, g in judged[q].items() if g >= 1}
        assert record["positives"] == [d for d, g in judged[q].items() if g >= 1]
        assert not positives & set(record["negatives"])
        ids, scores = rankings[q]
        expected = [(rank, i, s) for rank, (i, s) in enumerate(zip(ids, scores), start=1) if i not in positives][:3]
        assert record["negatives"] == [i for _, i, _ in expected]
        assert record["negative_ranks"] == [rank for rank, _, _ in expected]
        assert record["negative_scores"] == pytest.approx([s for _, _, s in expected], abs=1e-6)
        assert record["negative_origins"] == ["mined"] * len(expected) and record["source"] == "bm25"
        best = next(rank for rank, i in enumerate(ids, start=1) if i in positives)
        assert record["best_positive_rank"] == best
        assert len(record["negatives"]) == 3
    meta = json.loads((tmp_path / "t.jsonl.meta.json").read_text())
    assert meta == summary.meta | {"format": "prosper-mined-triples"}
    counts = meta["counts"]
    assert counts["queries"] == 6 and counts["queries_without_positive"] == 1 and counts["judged_queries"] == 7
    assert counts["negatives"] == 18 and meta["negatives_per_query"]["histogram"] == {"3": 6}
    assert meta["options"]["num_negatives"] == 3 and meta["split"] == "train" and meta["source"]["kind"] == "bm25"
    assert not list(tmp_path.glob("t.jsonl.partial*")) and not (tmp_path / "t.jsonl.progress.json").exists()


def test_bm25_margin_band_removes_exactly_the_close_candidates(beir, tmp_path):
    margin = 0.4
    out = tmp_path / "m.jsonl"
    options = MiningOptions(num_negatives=30, relative_margin=margin, include_judged_negatives=False)
    summary = mine_hard_negatives(beir, out, bm25=True, options=options)
    rankings, judged = bm25_rankings(), judgments()
    removed_total = 0
    for record in read(out):
        q = record["query"]
        positives = {d for d, g in judged[q].items() if g >= 1}
        ids, scores = rankings[q]
        best = next(s for i, s in zip(ids, scores) if i in positives)
        candidates = [(i, s) for i, s in zip(ids, scores) if i not in positives]
        removed = [i for i, s in candidates if s > (1 - margin) * best]
        assert record["negatives"] == [i for i, s in candidates if s <= (1 - margin) * best]
        removed_total += len(removed)
    assert removed_total > 0 and summary.meta["counts"]["skipped_margin"] == removed_total


def test_judged_negatives_come_first(beir, tmp_path):
    out = tmp_path / "j.jsonl"
    mine_hard_negatives(beir, out, bm25=True, options=MiningOptions(num_negatives=4))
    by_query = {r["query"]: r for r in read(out)}
    q3 = by_query["q3"]
    assert q3["negatives"][:2] == [pid("saw", "steel"), pid("hose", "garden")]
    assert q3["negative_origins"] == ["judged", "judged", "mined", "mined"]
    q4 = by_query["q4"]  # its judged negative shares no word with the query: not retrieved
    assert q4["negatives"][0] == pid("lamp", "blue") and q4["negative_ranks"][0] is None
    assert q4["negative_scores"][0] is None and len(q4["negatives"]) == 4


def test_resume_after_an_interruption_gives_the_same_file(beir, tmp_path):
    options = MiningOptions(num_negatives=4, relative_margin=0.05, sampling="random", seed=7)
    whole = tmp_path / "whole.jsonl"
    mine_hard_negatives(beir, whole, bm25=True, options=options, chunk_size=2)

    out = tmp_path / "cut.jsonl"

    def stop_after_first(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mine_hard_negatives(beir, out, bm25=True, options=options, chunk_size=2, on_chunk=stop_after_first)
    partial = tmp_path / "cut.jsonl.partial"
    assert not out.exists() and len(partial.read_text().splitlines()) == 2
    with partial.open("a") as handle:  # a chunk cut short after the marker was written
        handle.write('{"query": "q3", "positi')
    with pytest.raises(InputError, match="--resume"):
        mine_hard_negatives(beir, out, bm25=True, options=options, chunk_size=2)
    with pytest.raises(ConfigError, match="num_negatives=4"):
        mine_hard_negatives(beir, out, bm25=True, options=MiningOptions(num_negatives=5), resume=True)
    summary = mine_hard_negatives(beir, out, bm25=True, options=options, chunk_size=3, resume=True)
    assert summary.resumed_queries == 2
    assert out.read_bytes() == whole.read_bytes()
    assert not partial.exists() and not (tmp_path / "cut.jsonl.progress.json").exists()
    meta, whole_meta = (json.loads((tmp_path / f"{n}.jsonl.meta.json").read_text()) for n in ("cut", "whole"))
    assert meta["counts"] == whole_meta["counts"]


def test_unknown_ids_are_counted_and_left_out(beir, tmp_path):
    with (beir / "qrels" / "train.tsv").open("a") as handle:
        handle.write("q9\tp00\t2\n" "q1\tgone\t2\n" "q2\tlost\t0\n")  # no text for q9; gone, lost: no item
    out = tmp_path / "u.jsonl"
    summary = mine_hard_negatives(beir, out, bm25=True, options=MiningOptions(num_negatives=30))
    counts = summary.meta["counts"]
    assert counts["queries_without_text"] == 1 and counts["positives_not_in_corpus"] == 1
    by_query = {r["query"]: r for r in read(out)}
    assert "q9" not in by_query and "gone" not in by_query["q1"]["positives"]
    assert "lost" not in by_query["q2"]["negatives"] and by_query["q2"]["negatives"][0] == pid("saw", "red")


def test_resume_states(beir, tmp_path):
    out = tmp_path / "r.jsonl"
    summary = mine_hard_negatives(beir, out, bm25=True, resume=True)  # nothing to resume: a fresh run
    assert summary.resumed_queries == 0 and out.is_file()
    partial = tmp_path / "r.jsonl.partial"
    partial.write_text("")
    with pytest.raises(InputError, match="without its progress marker"):
        mine_hard_negatives(beir, out, bm25=True, resume=True)
    with pytest.raises(ConfigError, match="give one of them"):
        mine_hard_negatives(beir, out, bm25=True, resume=True, force=True)
    mine_hard_negatives(beir, out, bm25=True, force=True)
    assert not partial.exists()


def test_output_exists_needs_force(beir, tmp_path):
    out = tmp_path / "t.jsonl"
    mine_hard_negatives(beir, out, bm25=True, options=MiningOptions(num_negatives=2))
    with pytest.raises(InputError, match="already exists"):
        mine_hard_negatives(beir, out, bm25=True)
    mine_hard_negatives(beir, out, bm25=True, options=MiningOptions(num_negatives=5), force=True)
    assert {len(r["negatives"]) for r in read(out)} == {5}


def test_errors_come_before_any_model_loads(beir, tmp_path, monkeypatch):
    import prosper.mining.sources as sources

    def boom(*a, **kw):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(sources, "CheckpointSource", boom)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(ConfigError, match=r"--split test: .*test\.tsv not found \(splits there: dev, train\)"):
        mine_hard_negatives(beir, tmp_path / "o.jsonl", checkpoint=ckpt, split="test")
    with pytest.raises(InputError, match="data folder not found"):
        mine_hard_negatives(tmp_path / "nope", tmp_path / "o.jsonl", checkpoint=ckpt)
    with pytest.raises(CheckpointError, match="checkpoint directory not found"):
        mine_hard_negatives(beir, tmp_path / "o.jsonl", checkpoint=ckpt)
    with pytest.raises(ConfigError, match="exactly one source"):
        mine_hard_negatives(beir, tmp_path / "o.jsonl", bm25=True, checkpoint=ckpt)
    with pytest.raises(ConfigError, match=r"\*\.jsonl"):
        mine_hard_negatives(beir, tmp_path / "o.tsv", bm25=True)


# -- command line -------------------------------------------------------------------------------
def test_cli_mines_and_reports(beir, tmp_path, capsys, clean_env):
    out = tmp_path / "cli.jsonl"
    rc = main(["mine", "--bm25", "--data", str(beir), "--output", str(out), "--num-negatives", "2",
               "--relative-margin", "0.05", "--chunk-size", "4"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "6 queries" in captured.out and "mined 6/6 queries" in captured.err
    assert len(read(out)) == 6 and (tmp_path / "cli.jsonl.meta.json").is_file()
    assert main(["mine", "--bm25", "--data", str(beir), "--output", str(out)]) == 4
    assert "already exists (use --force" in capsys.readouterr().err


def test_cli_missing_split_is_one_line_exit_2(beir, tmp_path, capsys, clean_env):
    rc = main(["mine", "--model", str(tmp_path / "ckpt"), "--data", str(beir), "--split", "test",
               "--output", str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(beir / "qrels" / "test.tsv") in err
    rc = main(["mine", "--bm25", "--data", str(beir), "--output", str(tmp_path / "o.jsonl"), "--sampling", "best"])
    assert rc == 2 and "--sampling" in capsys.readouterr().err


# -- with a tiny model --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random 1-layer BERT backbone (tokenizer trained on the catalog) and a checkpoint of it."""
    from tests.training_helpers import one_thread

    from prosper.modeling.encoder import SparseEncoder
    from prosper.demo.scratch import build_random_masked_lm, train_tokenizer
    from prosper.settings import ModelSettings

    root = tmp_path_factory.mktemp("mine-model")
    with one_thread():
        tokenizer = train_tokenizer(list(texts().values()) + list(QUERIES.values()), vocab_size=200, kind="wordpiece")
        backbone = build_random_masked_lm(tokenizer, root / "bert", hidden_size=32, layers=1, heads=2)
        settings = ModelSettings(
            backbone={"name": "bert", "path": str(backbone)}, device="cpu", precision="fp32", max_length=24,
            lfw={"k_query": 24, "k_item": 48},
        )
        SparseEncoder.from_settings(settings).save(root / "ckpt")
    return root, backbone


def test_checkpoint_mining_follows_the_models_ranking(beir, tmp_path, tiny_model):
    from tests.training_helpers import one_thread

    from prosper.modeling.encoder import SparseEncoder
    from prosper.retrieval.index import InvertedIndex

    root, _ = tiny_model
    ckpt = root / "ckpt"
    out = tmp_path / "model.jsonl"
    with one_thread():
        summary = mine_hard_negatives(
            beir, out, checkpoint=ckpt, options=MiningOptions(num_negatives=3, depth=20, include_judged_negatives=False),
            batch_size=8,
        )
        encoder = SparseEncoder.load(ckpt)
        corpus = texts()
        index = InvertedIndex.build(encoder.encode(list(corpus.values()), side="item", ids=list(corpus)))
        qids = [q for q in QUERIES if q != "q7"]
        queries = encoder.encode([QUERIES[q] for q in qids], side="query", ids=qids)
        results = index.search(queries, k=20, scoring=encoder.settings.scoring)
    judged = judgments()
    records = read(out)
    assert [r["query"] for r in records] == qids
    for record, result in zip(records, results):
        positives = {d for d, g in judged[record["query"]].items() if g >= 1}
        expected = [i for i in result.ids.tolist() if i not in positives][:3]
        assert record["negatives"] == expected and not positives & set(record["negatives"])
        assert record["source"] == str(ckpt.resolve())
    assert sum(len(r["negatives"]) for r in records) > 0
    assert summary.meta["source"] == {"kind": "checkpoint", "checkpoint": str(ckpt.resolve()),
                                      "scoring": encoder.settings.scoring, "searcher": "exact"}


def test_mined_triples_train_as_is(beir, tmp_path, tiny_model, clean_env):
    from tests.training_helpers import one_thread, overrides

    from prosper.data.training import load_training_data
    from prosper.settings import load_settings
    from prosper.training.trainer import train

    _, backbone = tiny_model
    triples = tmp_path / "triples.jsonl"
    mine_hard_negatives(beir, triples, bm25=True, options=MiningOptions(num_negatives=3))
    settings = load_settings(
        overrides=overrides(
            tmp_path, backbone, out="run", name="bert", data__path=str(beir), data__triples=str(triples),
            data__dev_split="", train__hard_negatives=2, train__batch_size=4, train__max_steps=2,
            train__save_every=2, train__eval_every=2,
        ),
        environ={},
    )
    data = load_training_data(settings.data)
    assert data.report.warnings() == [] and len(data) == 6
    records = read(triples)
    for i, record in enumerate(records):
        assert [data.item_ids[j] for j in data.negatives[i]] == record["negatives"]
    from prosper.data.training import make_batch

    batch = make_batch(data, [0, 1, 2, 3], position=0, seed=3, hard_negatives=2)
    drawn = batch.item_ids[4:]  # 2 hard negatives per query, drawn from its mined ones
    for row in range(4):
        assert set(drawn[2 * row : 2 * row + 2]) <= set(records[row]["negatives"])
    with one_thread():
        result = train(settings)
    assert result.steps == 2 and (result.final_dir / "prosper.yaml").is_file()
    logs = [r for r in read(tmp_path / "run" / "metrics.jsonl") if r["event"] == "train"]
    assert [r["step"] for r in logs] == [1, 2]
