"""``prosper demo`` end to end at the tiny size: every artefact, the tables and the summary."""

from __future__ import annotations

import json

import pytest

from prosper.demo import DISCLAIMER, MEASURES, PRESETS, backbone_spec, demo_settings_tree, run_demo


def test_backbone_spec_picks_the_family(tmp_path):
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "qwen").mkdir()
    (tmp_path / "qwen" / "config.json").write_text('{"model_type": "qwen2"}')
    assert backbone_spec(tmp_path / "bert") == {"name": "bert", "path": str(tmp_path / "bert")}
    assert backbone_spec(tmp_path / "qwen")["name"] == "qwen"
    assert backbone_spec("Qwen/Qwen2.5-0.5B") == {"name": "qwen", "path": "Qwen/Qwen2.5-0.5B"}
    assert backbone_spec("google-bert/bert-base-uncased")["name"] == "bert"


def test_demo_settings_are_valid_and_stay_in_the_output_folder(tmp_path, clean_env):
    from prosper.settings import load_settings

    tree = demo_settings_tree(PRESETS["small"], tmp_path, {"name": "qwen", "path": "x"}, seed=3)
    settings = load_settings(None, tree, environ={})
    assert settings.train.output_dir == str(tmp_path / "model")
    assert settings.data.path == str(tmp_path / "data")
    assert settings.train.seed == 3 and settings.model.lfw.k_query == PRESETS["small"].k_query
    assert settings.train.regularizers[0].name == "flops"


def test_unknown_size_and_foreign_folder_are_refused(tmp_path):
    from prosper.errors import ConfigError, InputError

    with pytest.raises(ConfigError, match="huge"):
        run_demo(tmp_path / "x", size="huge")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        run_demo(tmp_path / "mine", size="tiny")
    with pytest.raises(InputError, match="not a prosper demo"):
        run_demo(tmp_path / "mine", size="tiny", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.slow
def test_tiny_demo_writes_every_artefact(tmp_path, capsys):
    from prosper.cli.app import main

    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out), "--size", "tiny", "--threads", "1", "train.max_steps=10"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert DISCLAIMER in " ".join(printed.split())
    for name in (
        "data/corpus.jsonl", "data/qrels/dev.tsv", "backbone-init/config.json", "model/final/prosper.yaml",
        "vectors.parquet", "queries.parquet", "lucene/docs.jsonl", "lucene/queries.tsv", "index/meta.json",
        "runs/prosper.dev.trec", "runs/bm25.dev.trec", "metrics.json", "summary.json", "summary.md",
    ):  # fmt: skip
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["size"] == "tiny" and summary["backbone"] == "scratch" and summary["disclaimer"] == DISCLAIMER
    assert summary["settings"]["train"]["max_steps"] == 10  # CLI overrides reach the recipe
    kinds = set(summary["metrics"]["prosper"])
    assert {"synonym", "misspelling", "model_number", "all"} <= kinds
    for system in ("prosper", "bm25"):
        for values in summary["metrics"][system].values():
            assert set(MEASURES) <= set(values) and all(0.0 <= values[m] <= 1.0 for m in MEASURES)
    assert set(summary["beats_bm25"]) == {"synonym", "misspelling"}
    # BM25 finds exact model numbers: the baseline is wired to the right texts
    assert summary["metrics"]["bm25"]["model_number"]["MRR@10"] > 0.9
    channels = summary["channels"]["relevant_by_kind"]
    assert sum(sum(c.values()) for c in channels.values()) > 0
    assert summary["explanations"] and all(e["terms"] for e in summary["explanations"])
    for e in summary["explanations"]:
        assert all(t["weight"] > 0 for t in e["terms"])
        # decoded for people: no byte-level BPE markers (Ġ = space, Ċ = newline), no control characters
        for t in e["terms"]:
            assert t["term"] and not set(t["term"]) & {"Ġ", "Ċ"} and all(ord(c) >= 0x20 for c in t["term"]), t
    # the run files hold every dev query the channels answered
    dev = {line.split("\t")[0] for line in (out / "data/qrels/dev.tsv").read_text().splitlines()[1:]}
    bm25_qids = {line.split()[0] for line in (out / "runs/bm25.dev.trec").read_text().splitlines()}
    assert bm25_qids <= dev and len(bm25_qids) >= len(dev) - 2
    md = (out / "summary.md").read_text()
    assert "| synonym |" in md and "nDCG@10 prosper" in md
    assert all(ord(c) >= 0x20 or c == "\n" for c in md) and "Ġ" not in md
    # the figures are the evaluation pipeline's: ir-measures over the written run, zeros included
    from prosper.data.qrels import read_qrels
    from prosper.evaluation.metrics import evaluate
    from prosper.retrieval.runs import read_run

    again = evaluate(read_run(out / "runs/prosper.dev.trec"), read_qrels(out / "data/qrels/dev.tsv"), MEASURES)
    assert {m: summary["metrics"]["prosper"]["all"][m] for m in MEASURES} == pytest.approx(again, abs=5e-5)
    # the fused runs sit beside both channels; the channel analysis stays of the two channels
    for method in ("rrf", "combsum"):
        assert (out / f"runs/{method}.dev.trec").is_file()
        assert set(summary["metrics"][f"prosper+bm25 ({method})"]) == set(summary["metrics"]["prosper"])
    assert summary["fusion"]["system"] == "prosper+bm25 (combsum)"
    assert set(summary["fusion"]["below_bm25"]) <= kinds
    assert summary["channels"]["channels"] == ["prosper", "bm25"]
    assert "## Fusion with BM25" in md and "prosper+bm25 (rrf)" in md
    # a demo folder may be replaced by the next run; other folders never are
    from prosper.demo.pipeline import check_demo_folder

    check_demo_folder(out)
