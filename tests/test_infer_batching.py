"""Token-budget batching and row-chunked inference give the vectors of batch 1, in bounded memory.

The encoder sorts a buffer by token count, cuts it into batches of at most ``batch_tokens``
padded tokens (``infer.batch_tokens``) and ``batch_size`` texts, and computes the head, LRN,
LFW and the sparse conversion a few rows at a time. None of that may change a vector: every
test here compares against encoding each text alone (batch 1, no padding) and against the
training path (:meth:`SparseEncoder.forward` on one whole batch), on real tiny models.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from prosper.inference.driver import _chunks, encode_buffer, encode_collection  # noqa: E402
from prosper.modeling import encoder as encoder_module  # noqa: E402
from prosper.modeling.batching import plan_batches  # noqa: E402
from prosper.modeling.encoder import SparseEncoder  # noqa: E402
from prosper.export.parquet import read_parquet_vectors  # noqa: E402
from prosper.settings import InferSettings, ModelSettings  # noqa: E402
from prosper.sparse import SparseVectors  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORDS = ["cordless", "drill", "battery", "steel", "sink", "led", "bulb", "patio", "chair", "hose", "tile", "pipe",
         "paint", "18v", "3/4", "in.", "brushed", "nickel", "faucet", "white"]


def _texts(n, seed=0, longest=40):
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, int(rng.integers(1, longest)))) for _ in range(n)]
    return texts + ["", "sink", " ".join(WORDS * 3)]  # empty, one word, longer than max_length


@pytest.fixture(scope="module")
def tokenizers():
    from prosper.demo.scratch import train_tokenizer

    corpus = [" ".join(WORDS)] * 4 + _texts(50)
    return {
        "bpe": train_tokenizer(corpus, vocab_size=300),
        "wordpiece": train_tokenizer(corpus, vocab_size=300, kind="wordpiece"),
    }


@pytest.fixture(scope="module")
def backbones(tmp_path_factory, tokenizers):
    from prosper.demo.scratch import build_random_causal_lm, build_random_masked_lm

    root = tmp_path_factory.mktemp("batching")
    return {
        "bert": build_random_masked_lm(tokenizers["wordpiece"], root / "bert", hidden_size=32, layers=1, heads=2),
        "qwen": build_random_causal_lm(tokenizers["bpe"], root / "qwen", hidden_size=32, layers=1, heads=2),
    }


def _encoder(backbones, name, **model):
    torch.manual_seed(0)  # the LRN layer of a fresh encoder is random
    settings = ModelSettings(backbone={"name": name, "path": str(backbones[name])}, device="cpu", **model)
    return SparseEncoder.from_settings(settings)


def _alone(encoder, texts, side, prefix=""):
    """Each text encoded on its own: a batch of one, no padding, the reference."""
    return SparseVectors.concat([encoder.encode([t], side=side, ids=[f"{prefix}{i}"]) for i, t in enumerate(texts)])


def _assert_same(got: SparseVectors, want: SparseVectors, atol=1e-5):
    """Same ids, the same terms in every row (identical sparse structure), weights to float tolerance."""
    assert got.ids == want.ids
    np.testing.assert_array_equal(got.offsets, want.offsets)
    np.testing.assert_array_equal(got.term_ids, want.term_ids)
    np.testing.assert_allclose(got.weights, want.weights, atol=atol, rtol=1e-5)


# -- the plan ------------------------------------------------------------------------------
def test_plan_batches_bounds_rows_and_padded_tokens():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 600, 500)
    lengths[7] = 5000  # longer than the budget: a batch of its own
    batches = plan_batches(lengths, batch_size=32, batch_tokens=2048)
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == list(range(500))  # every text exactly once
    assert np.all(np.diff(lengths[order]) <= 0)  # longest first: little padding
    for batch in batches:
        rows, longest = len(batch), int(lengths[batch].max())
        assert rows <= 32
        assert rows * longest <= 2048 or rows == 1
    assert [b.tolist() for b in batches if 7 in b] == [[7]]
    # without a budget: batch_size texts whatever their length; stable for equal lengths
    plain = plan_batches([3, 5, 3, 5, 3], batch_size=2)
    assert [b.tolist() for b in plain] == [[1, 3], [0, 2], [4]]
    assert plan_batches([], batch_size=4, batch_tokens=10) == []
    with pytest.raises(ValueError):
        plan_batches([1], batch_size=0)


def test_short_and_long_texts_get_batches_of_the_same_size():
    """The token budget is what keeps memory flat: 20-token titles and 500-token descriptions."""
    titles = plan_batches([20] * 4000, batch_size=256, batch_tokens=8192)
    descriptions = plan_batches([500] * 400, batch_size=256, batch_tokens=8192)
    assert max(len(b) * 20 for b in titles) <= 8192 and len(titles[0]) == 256
    assert max(len(b) * 500 for b in descriptions) <= 8192 and len(descriptions[0]) == 16


# -- the vectors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, model, side",
    [
        ("bert", {"pooling": "max", "lfw": {"k_item": 12, "k_query": 6}}, "item"),  # SPLADE pooling + LRN + LFW
        ("bert", {"pooling": "max", "lrn": {"enabled": False}, "lfw": {"enabled": False}, "max_length": 512}, "item"),
        ("bert", {"pooling": "mean", "head_chunk_size": 7}, "query"),
        ("qwen", {"lfw": {"k_item": 10, "k_query": 5}}, "item"),  # last pooling, left padding, LRN 'last'
        ("qwen", {"pooling": "max", "lrn": {"hidden": "first"}, "head_chunk_size": 16}, "query"),
        ("qwen", {"pooling": "sum", "echo": True}, "item"),
    ],
)
def test_token_budget_batches_equal_batch_one(backbones, name, model, side):
    encoder = _encoder(backbones, name, **model)
    texts = _texts(40)
    want = _alone(encoder, texts, side)
    for batch_size, batch_tokens in [(64, 48), (5, None), (256, 8192), (3, 1)]:
        got = encoder.encode(texts, side=side, batch_size=batch_size, ids=[str(i) for i in range(len(texts))],
                             batch_tokens=batch_tokens)
        _assert_same(got, want)
    # the training path (one whole padded batch through forward) agrees too
    with torch.inference_mode():
        dense = encoder(encoder.tokenize(texts, side), side).vectors
    _assert_same(SparseVectors.from_dense(dense, want.ids), want)


def test_inference_free_queries_and_buffers(backbones):
    encoder = _encoder(backbones, "bert", query_encoder="inference_free")
    texts = _texts(30, seed=3)
    want = _alone(encoder, texts, "query")
    got = SparseVectors.concat(list(encoder.encode_batches(texts, "query", batch_size=4, ids=want.ids,
                                                           buffer_size=7, batch_tokens=32)))
    _assert_same(got, want)


def test_splade_tiny_titles_and_long_texts_equal_batch_one(shared_dir):
    """The real splade-tiny on Home Depot titles and on 200-512-token texts made of them."""
    model = shared_dir / "models" / "splade-tiny"
    corpus = shared_dir / "datasets" / "homedepot" / "corpus.jsonl"
    if not model.is_dir() or not corpus.is_file():
        pytest.skip("splade-tiny or homedepot missing from ../shared")
    with corpus.open(encoding="utf-8") as fh:
        titles = [json.loads(next(fh))["title"] for _ in range(200)]
    texts = titles[:40] + [". ".join(titles[i : i + 25]) for i in range(40, 200, 25)]
    settings = ModelSettings(backbone={"name": "bert", "path": str(model)}, pooling="max",
                             lrn={"enabled": False}, lfw={"enabled": False}, max_length=512, device="cpu")
    encoder = SparseEncoder.from_settings(settings)
    want = _alone(encoder, texts, "item")
    got = encoder.encode(texts, batch_size=256, ids=want.ids, batch_tokens=2048)
    _assert_same(got, want, atol=1e-4)


# -- the memory bound ----------------------------------------------------------------------
def test_no_batch_or_vocabulary_tensor_exceeds_its_budget(backbones, monkeypatch):
    """Record the real shapes: backbone inputs within ``batch_tokens``, the LM head on at most
    ``model.head_chunk_size`` positions at a time, vocabulary-wide vectors in groups of at most
    ``ROW_CHUNK_ELEMENTS`` entries (never ``[batch, |V|]``)."""
    # the fp32 head (the bf16 screen's blocks: tests/test_head_screen.py)
    encoder = _encoder(backbones, "bert", pooling="max", head_chunk_size=24, head_screen="off")
    monkeypatch.setattr(encoder_module, "ROW_CHUNK_ELEMENTS", 5 * encoder.vocab_size)
    backbone_inputs, head_inputs, vocab_rows = [], [], []
    real_hidden, real_final = encoder.hidden_states, encoder._final_vectors
    transform, weight, bias = encoder._parts.head_split

    def hidden_states(features):
        backbone_inputs.append(tuple(features["input_ids"].shape))
        return real_hidden(features)

    def head_transform(h):
        head_inputs.append(h.shape[0] * h.shape[1])
        return transform(h)

    def final_vectors(base, hidden, features, indicator, side):
        vocab_rows.append(base.shape[0])
        return real_final(base, hidden, features, indicator, side)

    monkeypatch.setattr(encoder, "hidden_states", hidden_states)
    monkeypatch.setattr(encoder, "_final_vectors", final_vectors)
    monkeypatch.setattr(encoder._parts, "head_split", (head_transform, weight, bias))
    texts = _texts(120, seed=5)
    got = encoder.encode(texts, batch_size=64, batch_tokens=96)
    assert backbone_inputs and all(rows <= 64 and (rows * length <= 96 or rows == 1) for rows, length in backbone_inputs)
    assert sum(rows for rows, _ in backbone_inputs) == len(texts)
    assert head_inputs and max(head_inputs) <= 24
    assert max(vocab_rows) <= 5 < max(rows for rows, _ in backbone_inputs)
    monkeypatch.undo()
    _assert_same(got, encoder.encode(texts, batch_size=64, batch_tokens=96))


def test_buffers_are_bounded_in_characters():
    from prosper.data.collections import Record

    records = [Record(str(i), "x" * 1000, "f", i) for i in range(50)]
    sizes = [len(c) for c in _chunks(iter(records), 20, max_chars=4500)]
    assert sizes == [5] * 10
    assert [len(c) for c in _chunks(iter(records), 20, max_chars=None)] == [20, 20, 10]


# -- the driver ----------------------------------------------------------------------------
def test_driver_passes_the_token_budget(tmp_path, backbones):
    encoder = _encoder(backbones, "qwen", lfw={"k_item": 10})
    texts = _texts(60, seed=2)
    source = tmp_path / "c.jsonl"
    source.write_text("".join(json.dumps({"_id": f"p{i}", "title": t or "empty"}) + "\n" for i, t in enumerate(texts)),
                      encoding="utf-8")
    seen = []
    real = encoder.encode

    def encode(*args, **kwargs):
        seen.append(kwargs.get("batch_tokens"))
        return real(*args, **kwargs)

    encoder.encode = encode
    settings = InferSettings(batch_size=16, batch_tokens=64, buffer_size=25, shard_size=40)
    summary = encode_collection(encoder, source, "item", tmp_path / "v.parquet", "parquet", settings)
    assert summary.rows == len(texts) and len(seen) == 3 and set(seen) == {64}  # one call a buffer
    vectors, _ = read_parquet_vectors(tmp_path / "v.parquet")
    want = _alone(encoder, [t or "empty" for t in texts], "item", prefix="p")
    _assert_same(vectors, want)


def test_encoders_without_a_token_budget_still_work():
    """A plugin encoder whose ``encode`` predates ``batch_tokens`` gets batch_size only."""
    from prosper.data.collections import Record

    class Plain:
        def encode(self, texts, side="item", batch_size=64, ids=None, show_progress=False):
            return SparseVectors.from_rows(list(ids), [([len(t)], [1.0]) for t in texts], 100)

    out = encode_buffer(Plain(), [Record("a", "xy", "f", 1), Record("b", "xyz", "f", 2)], "item", 8, 4096)
    assert out.ids == ["a", "b"] and out.term_ids.tolist() == [2, 3]


def test_batch_tokens_setting():
    assert InferSettings().batch_tokens == 8192 and InferSettings(batch_tokens=None).batch_tokens is None
    with pytest.raises(ValueError, match="batch_tokens"):
        InferSettings(batch_tokens=0)


def test_onednn_is_switched_off_only_while_encoding(backbones):
    """fp32 CPU encoding runs GELU on ATen (flat memory, see encoder._without_onednn) and gives
    the oneDNN setting back, also when encoding fails."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch has no oneDNN")
    encoder = _encoder(backbones, "bert", pooling="max")
    seen = []
    real = encoder.hidden_states
    encoder.hidden_states = lambda features: (seen.append(torch.backends.mkldnn.enabled), real(features))[1]
    assert torch.backends.mkldnn.enabled
    encoder.encode(_texts(5))
    assert seen and not any(seen) and torch.backends.mkldnn.enabled

    def boom(features):
        raise RuntimeError("boom")

    encoder.hidden_states = boom
    with pytest.raises(RuntimeError):
        encoder.encode(["sink"])
    assert torch.backends.mkldnn.enabled
