"""``prosper infer`` and ``prosper export`` on the command line (stand-in encoder for infer)."""

from __future__ import annotations

import json

import pytest

from prosper import hookimpl
from prosper.cli.app import main
from prosper.export.parquet import read_parquet_vectors
from tests.test_infer_driver import FakeEncoder, _collection


class _BackboneStandIn:
    """Registers a 'qwen' backbone when the real one is not installed, so settings validate."""

    @staticmethod
    @hookimpl
    def register_backbones(register):
        from pydantic import BaseModel, ConfigDict

        class Params(BaseModel):
            model_config = ConfigDict(extra="allow")

        register("qwen", lambda params: None, Params)


@pytest.fixture()
def fake_checkpoint(monkeypatch, tmp_path, plugin_registry):
    import prosper.inference.api as api
    from prosper.plugins import get_registry

    if "qwen" not in get_registry().names("backbone"):
        plugin_registry.add(_BackboneStandIn, "test-backbone-stand-in")

    loaded = {}

    def load(checkpoint, device=None, **overrides):
        loaded.update(checkpoint=str(checkpoint), device=device, overrides=overrides)
        return FakeEncoder()

    monkeypatch.setattr(api, "load_encoder", load)
    (tmp_path / "ckpt").mkdir()
    return loaded


def test_infer_then_export_to_every_format(tmp_path, fake_checkpoint, capsys, clean_env):
    source = _collection(tmp_path / "c.jsonl", 25)
    rc = main(
        ["infer", "--checkpoint", str(tmp_path / "ckpt"), "--input", str(source), "--output", str(tmp_path / "v.parquet"),
         "--no-progress", "infer.batch_size=4", "infer.shard_size=10", "model.lfw.k_item=8"]
    )
    assert rc == 0, capsys.readouterr()
    assert "wrote 25 item vectors" in capsys.readouterr().out
    assert fake_checkpoint["overrides"] == {"lfw": {"k_item": 8}}
    vectors, meta = read_parquet_vectors(tmp_path / "v.parquet")
    assert len(vectors) == 25 and meta["checkpoint"] == str(tmp_path / "ckpt")

    assert main(["export", "--input", str(tmp_path / "v.parquet"), "--format", "jsonl", "--output", str(tmp_path / "v.jsonl")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "v.jsonl").read_text(encoding="utf-8").splitlines()]
    vocab = meta["vocabulary"]
    for i, row in enumerate(rows):
        terms, weights = vectors.row(i)
        assert row["id"] == vectors.ids[i]
        assert row["vector"] == {vocab[t]: float(w) for t, w in zip(terms, weights)}

    out = tmp_path / "lucene.jsonl"
    assert main(["export", "-i", str(tmp_path / "v.parquet"), "-f", "lucene", "-o", str(out), "export.scale=10"]) == 0
    docs = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    terms, weights = vectors.row(0)
    assert docs[0]["vector"] == {vocab[t].replace(" ", "\\u0020"): round(float(w) * 10) for t, w in zip(terms, weights)}


def test_export_query_side_and_bad_params(tmp_path, fake_checkpoint, capsys, clean_env):
    source = tmp_path / "q.tsv"
    source.write_text("q1\tcopper pipe\nq2\tled\n", encoding="utf-8")
    assert main(["infer", "--checkpoint", str(tmp_path / "ckpt"), "-i", str(source), "--side", "query",
                 "-o", str(tmp_path / "q.parquet"), "--no-progress"]) == 0
    assert main(["export", "-i", str(tmp_path / "q.parquet"), "-f", "lucene", "-o", str(tmp_path / "q.tsv.out")]) == 0
    lines = (tmp_path / "q.tsv.out").read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[0] for line in lines] == ["q1", "q2"]
    capsys.readouterr()
    rc = main(["export", "-i", str(tmp_path / "q.parquet"), "-f", "lucene", "-o", str(tmp_path / "x"), "export.scale=-1"])
    assert rc == 2 and "export.scale" in capsys.readouterr().err
    rc = main(["export", "-i", str(tmp_path / "q.parquet"), "-f", "nope", "-o", str(tmp_path / "x")])
    assert rc == 2 and "registered: elasticsearch, jsonl, lucene, milvus, opensearch, parquet" in capsys.readouterr().err.replace("\n", "")


def test_infer_errors_are_one_line(tmp_path, fake_checkpoint, capsys, clean_env):
    source = tmp_path / "c.jsonl"
    source.write_text('{"_id": "a", "title": "x"}\n{"_id": "a", "title": "y"}\n', encoding="utf-8")
    args = ["infer", "--checkpoint", str(tmp_path / "ckpt"), "-i", str(source), "-o", str(tmp_path / "v.jsonl"), "-f", "jsonl", "--no-progress"]
    assert main(args) == 4
    err = capsys.readouterr().err
    assert "c.jsonl:2: duplicate id 'a'" in err and "Traceback" not in err
    assert main(args + ["infer.on_error=skip"]) == 4  # the failed run left its parts folder
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["infer.on_error=skip", "--overwrite"]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 record(s): duplicate_id" in captured.err and "wrote 1 item vectors" in captured.out
