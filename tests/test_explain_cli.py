"""``prosper explain``: table and JSON output over a tiny checkpoint."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from prosper.cli.app import main  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from prosper.modeling.encoder import SparseEncoder
    from prosper.demo.scratch import build_random_causal_lm, train_tokenizer
    from prosper.settings import ModelSettings

    root = tmp_path_factory.mktemp("explain")
    path = build_random_causal_lm(train_tokenizer(vocab_size=300), root / "m", hidden_size=32)
    torch.manual_seed(0)
    enc = SparseEncoder.from_settings(ModelSettings(backbone={"name": "qwen", "path": str(path)}, device="cpu",
                                                    lfw={"k_query": 12, "k_item": 20}))
    enc.save(root / "ckpt")
    return root / "ckpt", enc


def test_explain_json(checkpoint, capsys):
    path, enc = checkpoint
    assert main(["explain", "--checkpoint", str(path), "cordless drill", "--top", "5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["text"] == "cordless drill" and data["side"] == "query" and data["nnz"] == 12
    assert len(data["terms"]) == 5
    weights = [t["weight"] for t in data["terms"]]
    assert weights == sorted(weights, reverse=True)
    literal_ids = set(enc.tokenizer("cordless drill")["input_ids"])
    for term in data["terms"]:
        assert set(term) == {"term", "id", "weight", "literal"}
        assert term["literal"] == (term["id"] in literal_ids)
    # matches the vector the Python API gives
    row_terms, row_weights = enc.encode(["cordless drill"], side="query").row(0)
    top = dict(zip(row_terms.tolist(), row_weights.tolist()))
    assert all(abs(top[t["id"]] - t["weight"]) < 1e-5 for t in data["terms"])


def test_explain_table_item_side(checkpoint, capsys):
    path, _ = checkpoint
    assert main(["explain", "--checkpoint", str(path), "garden hose", "--side", "item", "--top", "30"]) == 0
    out = capsys.readouterr().out
    assert "20 non-zero terms" in out and "literal" in out and "rank" in out


def test_explain_errors(checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    assert main(["explain", "--checkpoint", str(tmp_path / "missing"), "x"]) == 5
    assert main(["explain", "--checkpoint", str(path), "x", "--side", "both"]) == 4
    assert "error" in capsys.readouterr().err
