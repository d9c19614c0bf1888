"""The CLI fails fast and reads well: bad inputs are one line before any model loads, a single
query prints a short table with titles, third-party progress bars stay quiet."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from prosper.cli.app import main


@pytest.fixture()
def no_model_loads(monkeypatch):
    """Any attempt to load a model fails the test: errors must come first."""
    from prosper.modeling.encoder import SparseEncoder

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(SparseEncoder, "from_pretrained", classmethod(refuse))
    monkeypatch.setattr(SparseEncoder, "load", classmethod(refuse))


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["search", "--index", "IDX", "--model", "M", "   "], 2, "the query text is empty"),
        (["search", "--index", "IDX", "--model", "M", ""], 2, "the query text is empty"),
        (["explain", "--model", "M", " \t "], 2, "the query text is empty"),
        (["eval", "--model", "/nope/model", "--data", "DATA"], 5, "--model /nope/model: no such folder"),
        (["search", "--index", "/nope/index", "--model", "M", "drill"], 4, "/nope/index: --index: no such file or folder"),
        (["infer", "--model", "M", "--input", "/nope/items.jsonl", "--output", "out.parquet"], 4, "/nope/items.jsonl: --input: no such file"),
        (["infer", "--model", "./missing-model", "--input", "DATA", "--output", "out.parquet"], 5, "missing-model: no such folder"),
    ],
)
def test_bad_input_is_one_line_before_any_model_loads(argv, code, message, tmp_path, monkeypatch, capsys, no_model_loads):
    (tmp_path / "M").mkdir()
    (tmp_path / "IDX").mkdir()
    (tmp_path / "DATA").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err
    assert "encoding" not in err


@pytest.fixture(scope="module")
def shop_index(tmp_path_factory):
    """A tiny model, its items indexed with --corpus (titles saved), in a scratch folder."""
    from prosper.contracts.fixtures import tiny_backbone, tiny_shop

    root = tmp_path_factory.mktemp("cli")
    model = tiny_backbone(root, "mlm")
    shop = tiny_shop(root)
    assert main(["infer", "--model", str(model), "--input", str(shop), "--side", "item", "--output", str(root / "items.parquet")]) == 0
    assert main(["index", "--input", str(root / "items.parquet"), "--output", str(root / "idx"), "--corpus", str(shop)]) == 0
    return root, model, shop


def test_single_query_prints_top_10_with_titles(shop_index, capsys):
    root, model, shop = shop_index
    capsys.readouterr()
    assert main(["search", "--index", str(root / "idx"), "--model", str(model), "oak nightstand"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.strip().startswith("│") and line.split("│")[1].strip().isdigit()]
    assert len(rows) == 10
    titles = {json.loads(line)["_id"]: json.loads(line)["title"] for line in (shop / "corpus.jsonl").read_text().splitlines()}
    first_id = rows[0].split("│")[2].strip()
    assert titles[first_id][:20] in rows[0]  # the item's title is printed beside its id
    assert "Ġ" not in out
    assert main(["search", "--index", str(root / "idx"), "--model", str(model), "--k", "3", "oak nightstand"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("│") and line.split("│")[1].strip().isdigit()]
    assert len(rows) == 3


def test_third_party_progress_bars_are_quiet_unless_verbose(shop_index):
    root, model, shop = shop_index
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY")}
    command = ["search", "--index", str(root / "idx"), "--model", str(model), "drill"]
    quiet = subprocess.run([sys.executable, "-m", "prosper", *command], capture_output=True, text=True, env=env, timeout=300)
    loud = subprocess.run([sys.executable, "-m", "prosper", "--verbose", *command], capture_output=True, text=True, env=env, timeout=300)
    assert quiet.returncode == 0 and loud.returncode == 0
    assert "Loading weights" not in quiet.stderr + quiet.stdout
    assert "Loading weights" in loud.stderr + loud.stdout
