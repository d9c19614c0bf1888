"""8-bit and 4-bit (bitsandbytes) backbones on the CPU; the LRN layer stays float32."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from prosper.modeling.encoder import SparseEncoder  # noqa: E402
from prosper.demo.scratch import build_random_causal_lm, train_tokenizer  # noqa: E402
from prosper.settings import ModelSettings  # noqa: E402

TEXTS = ["cordless drill with lithium battery", "sink", "led light bulb 60 watt equivalent soft white"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    try:
        import bitsandbytes  # noqa: F401
    except Exception:
        pytest.skip("bitsandbytes is not importable here")
    tok = train_tokenizer(vocab_size=300)
    return build_random_causal_lm(tok, tmp_path_factory.mktemp("q"), hidden_size=64)


def _encoder(model_dir, quantization):
    torch.manual_seed(0)
    s = ModelSettings(backbone={"name": "qwen", "path": str(model_dir)}, device="cpu", quantization=quantization,
                      lfw={"enabled": False})
    return SparseEncoder.from_settings(s)


@pytest.mark.parametrize("quantization, module", [("8bit", "Linear8bitLt"), ("4bit", "Linear4bit")])
def test_quantized_backbone_runs_on_cpu_and_stays_close(model_dir, quantization, module):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = _encoder(model_dir, "none").encode(TEXTS).to_dense()
        enc = _encoder(model_dir, quantization)
        names = {type(m).__name__ for m in enc.model.modules()}
        assert module in names
        assert enc.lrn.fc.weight.dtype == torch.float32
        out = enc.encode(TEXTS).to_dense()
    finally:
        torch.set_num_threads(before)
    assert out.shape == ref.shape
    corr = np.corrcoef(out.ravel(), ref.ravel())[0, 1]
    assert corr > 0.9, corr
    # the strongest terms mostly agree
    for a, b in zip(out, ref):
        top_a, top_b = set(np.argsort(-a)[:20]), set(np.argsort(-b)[:20])
        assert len(top_a & top_b) >= 10
