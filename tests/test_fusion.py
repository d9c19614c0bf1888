"""Fusion of the prosper and BM25 runs: RRF and CombSUM against hand-computed scores, and the
``evaluate_checkpoint(..., fusion=...)`` report on a tiny BEIR folder with a tiny random model."""

from __future__ import annotations

import json
import math

import pytest

from prosper.errors import ConfigError
from prosper.retrieval.fusion import fuse, fused_name

RUNS = {
    "prosper": {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"x": 1.0}, "q4": {"e": 0.5}, "q5": {}},
    "bm25": {"q1": {"b": 9.0, "d": 5.0, "a": 1.0}, "q2": {}, "q3": {"m": 2.0, "n": 2.0}, "q4": {"f": 7.0}},
}


def approx(hits: dict[str, float]) -> dict:
    return {docid: pytest.approx(score, abs=1e-12) for docid, score in hits.items()}


def test_rrf_sums_reciprocal_ranks():
    fused = fuse(RUNS, "rrf")
    assert list(fused) == ["q1", "q2", "q4", "q5", "q3"]  # first appearance, channels in order
    # q1: a is 1st / 3rd, b 2nd / 1st, c 3rd in prosper only, d 2nd in BM25 only
    assert fused["q1"] == approx({"b": 1 / 62 + 1 / 61, "a": 1 / 61 + 1 / 63, "d": 1 / 62, "c": 1 / 63})
    assert list(fused["q1"]) == ["b", "a", "d", "c"]
    assert fused["q2"] == approx({"x": 1 / 61})  # BM25 found nothing for q2
    # tied scores within a channel keep the channel's order: m ranks 1, n ranks 2
    assert fused["q3"] == approx({"m": 1 / 61, "n": 1 / 62})
    # e and f are each first in one channel: a tie, broken by doc id descending (trec_eval's order)
    assert fused["q4"] == approx({"f": 1 / 61, "e": 1 / 61}) and list(fused["q4"]) == ["f", "e"]
    assert fused["q5"] == {}  # no channel retrieved anything


def test_rrf_k_weights_and_truncation():
    # rrf_k = 0, BM25 weighted 2: a = 1/1 + 2/3, b = 1/2 + 2/1, c = 1/3, d = 2/2
    full = fuse(RUNS, "rrf", rrf_k=0, weights={"bm25": 2.0})["q1"]
    assert full == approx({"b": 2.5, "a": 1 + 2 / 3, "d": 1.0, "c": 1 / 3})
    assert list(full) == ["b", "a", "d", "c"]
    top = fuse(RUNS, "rrf", k=2, rrf_k=0, weights={"bm25": 2.0})
    assert top["q1"] == approx({"b": 2.5, "a": 1 + 2 / 3}) and list(top["q1"]) == ["b", "a"]
    assert all(len(hits) <= 2 for hits in top.values())


def test_weight_zero_leaves_a_channel_out():
    fused = fuse(RUNS, "rrf", weights={"bm25": 0})
    assert fused["q1"] == approx({"a": 1 / 61, "b": 1 / 62, "c": 1 / 63})
    assert fused["q3"] == {}  # only BM25 answered q3


def test_combsum_minmax():
    fused = fuse(RUNS, "combsum")
    # prosper q1: a 1, b 0.5, c 0; BM25 q1: b 1, d (5-1)/8 = 0.5, a 0
    assert fused["q1"] == approx({"b": 1.5, "a": 1.0, "d": 0.5, "c": 0.0})
    assert list(fused["q1"]) == ["b", "a", "d", "c"]
    assert fused["q2"] == {"x": 1.0}  # a single item is its channel's best
    assert fused["q3"] == {"n": 1.0, "m": 1.0} and list(fused["q3"]) == ["n", "m"]  # all tied: each 1
    weighted = fuse(RUNS, "combsum", weights={"prosper": 0.5, "bm25": 2.0}, k=3)
    assert weighted["q1"] == approx({"b": 0.25 + 2.0, "d": 1.0, "a": 0.5})


def test_combsum_zscore_and_raw():
    fused = fuse(RUNS, "combsum", normalization="zscore")["q1"]
    z = 1 / math.sqrt(2 / 3)  # prosper 3, 2, 1: mean 2, std sqrt(2/3); BM25 9, 5, 1: mean 5, std 4 sqrt(2/3)
    assert fused == approx({"b": 0 + z, "d": 0.0, "a": z - z, "c": -z})
    assert fuse(RUNS, "combsum", normalization="zscore")["q3"] == {"n": 0.0, "m": 0.0}  # no spread: 0
    raw = fuse(RUNS, "combsum", normalization="none")["q1"]
    assert raw == {"b": 11.0, "d": 5.0, "a": 4.0, "c": 1.0}


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="unknown"):
        fuse(RUNS, "borda")
    with pytest.raises(ConfigError, match="unknown channel 'splade'"):
        fuse(RUNS, weights={"splade": 1.0})
    with pytest.raises(ConfigError, match=">= 0"):
        fuse(RUNS, weights={"bm25": -1.0})
    with pytest.raises(ConfigError, match="normalization"):
        fuse(RUNS, "combsum", normalization="rank")
    assert fused_name("rrf") == "prosper+bm25 (rrf)"


def test_settings_validate_the_weights(clean_env):
    from prosper.settings import load_settings

    # a partial override keeps the other channel's weight (settings merge; unnamed channels weigh 1 anyway)
    assert load_settings(None, ["search.fusion_weights={bm25: 2}"], environ={}).search.fusion_weights == {"prosper": 1.0, "bm25": 2.0}
    with pytest.raises(ConfigError, match="fusion_weights"):
        load_settings(None, ["search.fusion_weights={bm25: -2}"], environ={})
    with pytest.raises(ConfigError, match="fusion_weights"):
        load_settings(None, ["search.fusion_weights={splade: 1}"], environ={})


# -- evaluate_checkpoint(..., fusion=...) with a tiny random model ---------------------------
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, one_torch_thread):
    pytest.importorskip("torch")
    from prosper.modeling.encoder import SparseEncoder
    from prosper.settings import ModelSettings
    from tests.training_helpers import build_backbone, build_shop

    root = tmp_path_factory.mktemp("fusion")
    build_shop(root)
    backbone = build_backbone(root)
    settings = ModelSettings(backbone={"name": "qwen", "path": str(backbone)}, device="cpu", max_length=24,
                             lfw={"k_query": 24, "k_item": 48})  # fmt: skip
    SparseEncoder.from_settings(settings).save(root / "ckpt")
    return root


@pytest.mark.parametrize("method", ["rrf", "combsum"])
def test_evaluate_checkpoint_reports_the_fused_run(tiny_checkpoint, tmp_path, clean_env, method):
    from prosper.data.qrels import read_qrels, split_path
    from prosper.evaluation.metrics import evaluate
    from prosper.evaluation.pipeline import evaluate_checkpoint
    from prosper.retrieval.runs import read_run
    from prosper.settings import load_settings

    shop = tiny_checkpoint / "shop"
    settings = load_settings(None, ["search.k=50", "search.fusion_weights={bm25: 1.5}"], environ={})
    payload = evaluate_checkpoint(tiny_checkpoint / "ckpt", shop, "dev", settings, tmp_path / "out", fusion=method)
    name = f"prosper+bm25 ({method})"
    data = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert list(data["systems"]) == ["prosper", "bm25", name]
    assert data["runs"][name] == str(tmp_path / "out" / f"run.{method}.trec")
    assert data["fusion"]["method"] == method and data["fusion"]["weights"] == {"prosper": 1.0, "bm25": 1.5}
    qrels = read_qrels(split_path(shop, "dev"))
    fused_file = read_run(tmp_path / "out" / f"run.{method}.trec")
    assert data["systems"][name] == pytest.approx(evaluate(fused_file, qrels), abs=1e-6)
    # the file is fuse() of the two channel files (scores as printed: 8 significant digits)
    channels = {"prosper": read_run(tmp_path / "out" / "run.trec"), "bm25": read_run(tmp_path / "out" / "run.bm25.trec")}
    options = {"rrf_k": 60} if method == "rrf" else {"normalization": "minmax"}
    again = fuse(channels, method, k=50, weights={"bm25": 1.5}, **options)
    assert {q: list(h) for q, h in fused_file.items() if h} == {q: list(h) for q, h in again.items() if h}
    assert max(len(h) for h in fused_file.values()) <= 50
    assert payload["systems"][name] == data["systems"][name]


def test_evaluate_checkpoint_refuses_an_unknown_method_before_loading(tmp_path, clean_env):
    from prosper.evaluation.pipeline import evaluate_checkpoint
    from prosper.settings import load_settings
    from tests.training_helpers import build_shop

    shop = build_shop(tmp_path)
    with pytest.raises(ConfigError, match="borda"):
        evaluate_checkpoint(tmp_path / "no-checkpoint", shop, "dev", load_settings(None, [], environ={}), fusion="borda")
