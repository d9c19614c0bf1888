"""The inference driver and CLI on a real (tiny, random) encoder checkpoint."""

from __future__ import annotations

import json
import resource

import numpy as np
import pytest

encoder_module = pytest.importorskip("prosper.modeling.encoder", reason="the encoder is not available")

from prosper.cli.app import main  # noqa: E402
from prosper.export.parquet import read_parquet_vectors  # noqa: E402
from prosper.inference.driver import encode_collection  # noqa: E402
from prosper.settings import InferSettings, ModelSettings  # noqa: E402

WORDS = ["cordless", "drill", "battery", "steel", "sink", "led", "bulb", "patio", "chair", "hose", "tile", "pipe", "paint"]


def _titles(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, int(rng.integers(1, 10)))) for _ in range(n)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from prosper.demo.scratch import build_random_causal_lm, train_tokenizer

    root = tmp_path_factory.mktemp("tiny")
    tokenizer = train_tokenizer(_titles(200), vocab_size=300)
    backbone = build_random_causal_lm(tokenizer, root / "backbone-src", hidden_size=32, layers=1, heads=2)
    settings = ModelSettings(
        backbone={"name": "qwen", "path": str(backbone)}, max_length=16, lfw={"k_item": 24, "k_query": 8}
    )
    encoder = encoder_module.SparseEncoder.from_settings(settings, device="cpu")
    encoder.save(root / "ckpt")
    return root / "ckpt"


def _write_collection(path, n, seed=0):
    with path.open("w", encoding="utf-8") as handle:
        for i, title in enumerate(_titles(n, seed)):
            handle.write(json.dumps({"_id": f"p{i}", "title": title}) + "\n")
    return path


def test_driver_matches_direct_encoding(tmp_path, checkpoint):
    encoder = encoder_module.SparseEncoder.load(checkpoint, device="cpu")
    source = _write_collection(tmp_path / "c.jsonl", 60)
    settings = InferSettings(batch_size=8, buffer_size=25, shard_size=40)
    summary = encode_collection(encoder, source, "item", tmp_path / "v.parquet", "parquet", settings)
    vectors, meta = read_parquet_vectors(tmp_path / "v.parquet")
    texts = [json.loads(x)["title"] for x in source.read_text().splitlines()]
    direct = encoder.encode(texts, side="item", batch_size=64, ids=[f"p{i}" for i in range(60)])
    assert summary.rows == 60 and vectors.ids == direct.ids
    assert np.allclose(vectors.to_dense(), direct.to_dense(), atol=1e-4)
    assert vectors.nnz.max() <= 24  # the focusing window (Eq. 10) is applied
    assert meta["vocabulary"] == list(encoder.vocabulary()) and meta["vocab_size"] == encoder.vocab_size


def test_cli_infer_resume_and_export(tmp_path, checkpoint, capsys, clean_env):
    source = _write_collection(tmp_path / "q.jsonl", 30, seed=1)
    out = tmp_path / "q.parquet"
    args = ["infer", "--checkpoint", str(checkpoint), "-i", str(source), "--side", "query", "-o", str(out),
            "--no-progress", "infer.shard_size=10", "infer.batch_size=4"]
    assert main(args) == 0, capsys.readouterr().err
    first, _ = read_parquet_vectors(out)
    assert first.nnz.max() <= 8
    # shards kept with a manifest, then converted straight from the shard folder
    assert main(args + ["--no-merge", "-o", str(tmp_path / "parts")]) == 0
    assert read_parquet_vectors(tmp_path / "parts")[0].equals(first)
    assert main(["export", "-i", str(tmp_path / "parts"), "-f", "lucene", "-o", str(tmp_path / "q.tsv")]) == 0
    lines = (tmp_path / "q.tsv").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 30 and all("\t" in line for line in lines)


@pytest.mark.slow
def test_peak_rss_does_not_grow_with_collection(tmp_path, checkpoint):
    """Encode N then 4N items in fresh processes; the peak RSS must not grow with N."""
    import subprocess
    import sys

    def peak(n):
        source = _write_collection(tmp_path / f"c{n}.jsonl", n, seed=n)
        code = (
            "import resource, sys\n"
            "from prosper.modeling.encoder import SparseEncoder\n"
            "from prosper.inference.driver import encode_collection\n"
            "from prosper.settings import InferSettings\n"
            f"e = SparseEncoder.load({str(checkpoint)!r}, device='cpu')\n"
            f"encode_collection(e, {str(source)!r}, 'item', {str(tmp_path / f'v{n}.parquet')!r}, "
            "{'name': 'parquet', 'row_group_rows': 256}, InferSettings(batch_size=16, buffer_size=64))\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return int(result.stdout.strip().splitlines()[-1])

    small, large = peak(500), peak(2000)
    assert large < small * 1.15 + 20 * 1024, (small, large)  # KiB; 4x the items, same memory
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
