"""A tiny random Qwen2/Qwen3 (built in the test) through the whole encoder."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from prosper.errors import ConfigError, DeviceError  # noqa: E402
from prosper.modeling.encoder import SparseEncoder  # noqa: E402
from prosper.demo.scratch import build_random_causal_lm, train_tokenizer  # noqa: E402
from prosper.modeling.transforms import log_saturation  # noqa: E402
from prosper.settings import ModelSettings  # noqa: E402

TEXTS = ["cordless drill with lithium battery", "sink", "led light bulb 60 watt equivalent soft white", "garden hose"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(vocab_size=400)


@pytest.fixture(scope="module", params=["qwen2", "qwen3"])
def model_dir(request, tokenizer, tmp_path_factory):
    return build_random_causal_lm(tokenizer, tmp_path_factory.mktemp(request.param), arch=request.param)


_LOADED: dict = {}


def make(model_dir, seed=0, **kw) -> SparseEncoder:
    """An encoder over a cached loaded backbone (loading is the slow part; settings are cheap)."""
    kw.setdefault("device", "cpu")
    settings = ModelSettings(backbone={"name": "qwen", "path": str(model_dir)}, **kw)
    key = (str(model_dir), settings.precision, settings.device)
    if key not in _LOADED:
        from prosper.plugins import get_registry

        backbone = get_registry().build("backbone", settings.backbone)
        _LOADED[key] = backbone.load(settings.precision, settings.quantization, settings.device)
    torch.manual_seed(seed)
    return SparseEncoder(settings, _LOADED[key])


def dense(encoder, texts, side="item", **kw):
    return encoder.encode(texts, side=side, **kw).to_dense()


def test_shapes_and_defaults(model_dir):
    enc = make(model_dir)
    assert enc.kind == "causal" and enc.pooling == "last" and enc.vocab_size == 400
    feats = enc.tokenize(TEXTS, "query")
    out = enc(feats, "query")
    assert out.base.shape == out.vectors.shape == out.literal.shape == (4, 400)
    assert torch.all(out.vectors >= 0)
    # left padding: the shortest text starts with pad, every row ends with a real token
    assert feats["attention_mask"][1, 0] == 0 and torch.all(feats["attention_mask"][:, -1] == 1)
    sv = enc.encode(TEXTS, ids=["a", "b", "c", "d"])
    assert sv.ids == ["a", "b", "c", "d"] and sv.vocab_size == 400
    assert len(enc.vocabulary()) == 400 and len(set(enc.vocabulary())) == 400


@pytest.mark.parametrize(
    "options",
    [{}, {"pooling": "max", "head_chunk_size": 5}, {"pooling": "mean"}, {"echo": True}, {"bidirectional": True}],
    ids=["last", "max", "mean", "echo", "bidirectional"],
)
def test_padding_invariance(model_dir, options):
    enc = make(model_dir, **options)
    batched = dense(enc, TEXTS, batch_size=4)
    alone = np.concatenate([dense(enc, [t]) for t in TEXTS])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    # the same batch right-padded by hand (positions and pooled index follow the tokens)
    left = enc.tokenize(TEXTS, "item")
    right = {k: v.clone() for k, v in left.items()}
    lengths = left["attention_mask"].sum(1)
    width = left["input_ids"].shape[1]
    for b, n in enumerate(lengths.tolist()):
        for key in ("input_ids", "attention_mask", "literal_mask", "pool_mask", "position_ids"):
            row = left[key][b]
            right[key][b] = torch.cat([row[width - n :], row[: width - n]])
        right["last_index"][b] = left["last_index"][b] - (width - n)
        right["h_index"][b] = left["h_index"][b] - (width - n)
    with torch.inference_mode():
        a = enc(left, "item").vectors
        b = enc(right, "item").vectors
    assert torch.allclose(a, b, atol=1e-5)


def test_lrn_matches_hand_computation(model_dir):
    enc = make(model_dir, lfw={"enabled": False})
    feats = enc.tokenize(TEXTS[:2], "item")
    with torch.inference_mode():
        out = enc(feats, "item")
        hidden = enc.hidden_states(feats)
        h = hidden[torch.arange(2), feats["last_index"]]
        w_prime = enc.lrn.fc(log_saturation(h))
        expect = torch.relu(out.base + out.literal * (w_prime.amax(-1, keepdim=True) - w_prime))
    assert torch.allclose(out.vectors, expect, atol=1e-6)
    # literal terms are exactly the token ids of the text
    ids = set(enc.tokenizer(TEXTS[0])["input_ids"])
    assert set(torch.nonzero(out.literal[0]).flatten().tolist()) == ids


def test_lrn_sides_and_off(model_dir):
    enc = make(model_dir, lrn={"sides": "query"}, lfw={"enabled": False})
    feats = enc.tokenize(TEXTS[:1], "item")
    with torch.inference_mode():
        item = enc(feats, "item")
        query = enc(feats, "query")
    assert torch.equal(item.vectors, item.base)
    assert not torch.equal(query.vectors, query.base)
    off = make(model_dir, lrn={"enabled": False})
    assert off.lrn is None


def test_lfw_caps_nonzeros_per_side(model_dir):
    enc = make(model_dir, lfw={"k_query": 7, "k_item": 30})
    q = enc.encode(TEXTS, side="query")
    d = enc.encode(TEXTS, side="item")
    assert q.nnz.max() == 7 and d.nnz.max() == 30
    no_cap = make(model_dir, lfw={"enabled": False}).encode(TEXTS[:1], side="query")
    terms, weights = no_cap.row(0)
    top7 = set(terms[np.argsort(-weights)[:7]].tolist())
    assert set(q.row(0)[0].tolist()) == top7


def test_analysis_modes_and_inference_free_queries(model_dir):
    base = make(model_dir, lfw={"enabled": False})
    lit = make(model_dir, lfw={"enabled": False}, query_terms="literal", item_terms="expansion")
    free = make(model_dir, query_encoder="inference_free")
    feats = base.tokenize(TEXTS[:1], "query")
    with torch.inference_mode():
        full = base(feats, "query")
        only_lit = lit(feats, "query").vectors
        only_exp = lit(feats, "item").vectors
        full_item = base(feats, "item").vectors
        free_q = free(feats, "query")
    assert torch.allclose(only_lit, full.vectors * full.literal)
    assert torch.allclose(only_exp, full_item * (1 - full.literal))
    assert torch.equal(free_q.vectors, full.literal)


def test_special_tokens_are_never_literal_or_pooled(model_dir):
    enc = make(model_dir)
    eos = enc.tokenizer.eos_token
    feats = enc.tokenize([f"sink {eos}"], "query")
    with torch.inference_mode():
        out = enc(feats, "query")
    assert out.literal[0, enc.tokenizer.eos_token_id] == 0
    pooled_ids = feats["input_ids"][0][feats["pool_mask"][0]].tolist()
    assert enc.tokenizer.eos_token_id not in pooled_ids
    empty = enc.encode(["", "sink"])
    assert empty.nnz[0] == 0 and empty.nnz[1] > 0


def test_bidirectional_and_echo_change_the_vectors(model_dir):
    plain = dense(make(model_dir), TEXTS[:1])
    assert not np.allclose(plain, dense(make(model_dir, bidirectional=True), TEXTS[:1]))
    assert not np.allclose(plain, dense(make(model_dir, echo=True), TEXTS[:1]))
    enc = make(model_dir, echo=True)
    feats = enc.tokenize(["sink"], "item")
    n = len(enc.tokenizer("sink")["input_ids"])
    assert int(feats["attention_mask"].sum()) == 2 * n and int(feats["pool_mask"].sum()) == n


def test_training_forward_backward_reaches_head_body_and_lrn(model_dir):
    enc = make(model_dir, pooling="max", head_chunk_size=8)
    enc.train()
    out = enc(enc.tokenize(TEXTS, "item"), "item")
    (out.vectors.sum() + out.base.sum()).backward()
    assert enc.lrn.fc.weight.grad is not None and enc.lrn.fc.weight.grad.abs().sum() > 0
    grads = [p.grad for p in enc.model.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_precisions_on_cpu(model_dir):
    ref = dense(make(model_dir), TEXTS)
    bf16 = dense(make(model_dir, precision="bf16"), TEXTS)
    assert np.corrcoef(ref.ravel(), bf16.ravel())[0, 1] > 0.95
    with pytest.raises(DeviceError):
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
        SparseEncoder.from_settings(ModelSettings(backbone={"name": "qwen", "path": str(model_dir)}, device="cuda"))


def test_echo_is_refused_for_masked_lms(tmp_path):
    from prosper.demo.scratch import build_random_masked_lm

    tok = train_tokenizer(vocab_size=200, kind="wordpiece")
    path = build_random_masked_lm(tok, tmp_path / "bert", hidden_size=32)
    with pytest.raises(ConfigError, match="model.echo"):
        SparseEncoder.from_settings(ModelSettings(backbone={"name": "bert", "path": str(path)}, echo=True, device="cpu"))
