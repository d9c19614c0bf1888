"""Masked-LM backbone: a tiny random BERT, and equality with sentence-transformers SPLADE."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from prosper.modeling.encoder import SparseEncoder  # noqa: E402
from prosper.demo.scratch import build_random_masked_lm, train_tokenizer  # noqa: E402
from prosper.settings import ModelSettings  # noqa: E402

TEXTS = ["Cordless drill with lithium battery", "sink", "LED light bulb 60 watt equivalent soft white"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    tok = train_tokenizer(vocab_size=300, kind="wordpiece")
    return build_random_masked_lm(tok, tmp_path_factory.mktemp("bert"), hidden_size=32)


def test_mlm_defaults_right_padding_max_pooling(bert_dir):
    torch.manual_seed(0)
    enc = SparseEncoder.from_settings(ModelSettings(backbone={"name": "bert", "path": str(bert_dir)}, device="cpu"))
    assert enc.kind == "mlm" and enc.pooling == "max" and enc.pool_special_tokens
    feats = enc.tokenize(TEXTS, "item")
    assert feats["attention_mask"][1, 0] == 1 and feats["attention_mask"][1, -1] == 0  # right padded
    cls_id, sep_id = enc.tokenizer.cls_token_id, enc.tokenizer.sep_token_id
    with torch.inference_mode():
        out = enc(feats, "item")
    # [CLS]/[SEP] are pooled (SPLADE) but never literal terms
    assert bool(feats["pool_mask"][0, 0]) and out.literal[0, cls_id] == 0 and out.literal[0, sep_id] == 0
    assert int(feats["h_index"][0]) == 0  # LRN reads the [CLS] hidden state for MLMs
    batched = enc.encode(TEXTS, batch_size=3).to_dense()
    alone = np.concatenate([enc.encode([t]).to_dense() for t in TEXTS])
    np.testing.assert_allclose(batched, alone, atol=1e-5)


@pytest.mark.slow
def test_splade_tiny_equals_sentence_transformers(shared_dir):
    """Max pooling, LRN and LFW off: item vectors == SparseEncoder.encode_document to 1e-4."""
    st = pytest.importorskip("sentence_transformers")
    model = shared_dir / "models" / "splade-tiny"
    corpus = shared_dir / "datasets" / "homedepot" / "corpus.jsonl"
    if not model.is_dir() or not corpus.is_file():
        pytest.skip("splade-tiny or homedepot missing from ../shared")
    with corpus.open(encoding="utf-8") as fh:
        titles = [json.loads(next(fh))["title"] for _ in range(96)]
    titles += ["", "a", "ALL CAPS TITLE 3/4 in. x 10 ft."]
    settings = ModelSettings(
        backbone={"name": "bert", "path": str(model)},
        pooling="max", lrn={"enabled": False}, lfw={"enabled": False}, max_length=512, device="cpu",
    )
    ours = SparseEncoder.from_settings(settings).encode(titles, batch_size=32).to_dense()
    reference = st.SparseEncoder(str(model), device="cpu").encode_document(titles, convert_to_tensor=True)
    reference = (reference.to_dense() if reference.is_sparse else reference).numpy()
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)
    assert (ours > 0).sum() > 0
