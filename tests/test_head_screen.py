"""The bf16 head screen (prosper.modeling.screen): the same vectors as the fp32 head, fewer terms computed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prosper.contracts.fixtures import model_settings, tiny_backbone
from prosper.modeling.encoder import SparseEncoder
from prosper.modeling.pooling import position_blocks
from prosper.modeling.screen import HeadScreen, screen_applies

TEXTS = [
    "cordless drill 20v max lithium ion", "stainless steel kitchen sink 33 in", "led bulb 60w equivalent soft white",
    "patio chair", "garden hose 50 ft", "ceramic floor tile 12 x 12", "pvc pipe 2 in x 10 ft", "", "paint",
    "dewalt dcd771c2 20v drill driver kit with two batteries and a charger and a bag " * 3,
]


def _exact_max(pre, mask, weight):
    logits = torch.einsum("blh,vh->blv", pre.double(), weight.double())
    return logits.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)


def test_screen_keeps_every_positive_term_and_its_exact_value():
    """SPLADE-like logits (most far below the threshold, some just above or below it)."""
    g = torch.Generator().manual_seed(0)
    vocab, hidden, batch, length = 3000, 64, 6, 40
    weight = torch.randn(vocab, hidden, generator=g) * 0.1
    bias = torch.full((vocab,), -6.5)
    pre = torch.randn(batch, length, hidden, generator=g) * 2.5
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1, 10:] = False  # a short text: its tail holds copies of its first position
    pre[1, 10:] = pre[1, :1]
    exact = _exact_max(pre, mask, weight)
    # put some terms right at the threshold (within bf16 rounding of it)
    bias[:50] = -(exact[0, :50].float() - 1e-4)
    bias[50:100] = -(exact[0, 50:100].float() + 1e-4)

    out = HeadScreen().max_logits(pre, mask, weight, bias, chunk_size=64)

    positive = (exact + bias.double()) > 0
    assert positive.sum() > 100  # the case is not trivial ...
    kept = torch.isfinite(out)
    assert kept.sum() < 0.2 * out.numel()  # ... and the screen rules most terms out
    assert bool(kept[positive].all()), "a term with a positive weight was screened out"
    np.testing.assert_allclose(out[kept].double().numpy(), exact[kept].numpy(), rtol=1e-5, atol=1e-5)


def test_screen_rebuilds_its_bf16_copy_when_the_weight_changes():
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(500, 16, generator=g)
    pre = torch.randn(2, 5, 16, generator=g)
    mask = torch.ones(2, 5, dtype=torch.bool)
    screen = HeadScreen()
    screen.max_logits(pre, mask, weight, None, 64)
    with torch.no_grad():
        weight.mul_(-1)  # an optimizer step between two validations: in place
    out = screen.max_logits(pre, mask, weight, None, 64)
    exact = _exact_max(pre, mask, weight)
    kept = torch.isfinite(out)
    assert bool(kept[exact > 0].all())
    np.testing.assert_allclose(out[kept].double().numpy(), exact[kept].numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch,length,chunk", [(7, 5, 24), (3, 40, 24), (1, 1, 1), (5, 24, 24), (9, 13, 256)])
def test_head_blocks_cover_every_position_once_within_the_chunk(batch, length, chunk):
    seen = np.zeros((batch, length), dtype=int)
    for rows, spans in position_blocks(batch, length, chunk):
        for cols in spans:
            assert (rows.stop - rows.start) * (cols.stop - cols.start) <= max(chunk, 1)
            seen[rows, cols] += 1
    assert (seen == 1).all()


def test_auto_screens_only_fp32_heads_on_cpus_with_bf16_units(monkeypatch):
    weight = torch.zeros(4, 4)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert screen_applies("on", cuda, weight.half()) and not screen_applies("off", cpu, weight)
    monkeypatch.setattr("prosper.modeling.screen.bf16_units", lambda: True)
    assert screen_applies("auto", cpu, weight)
    assert not screen_applies("auto", cpu, weight.bfloat16()) and not screen_applies("auto", cuda, weight)
    monkeypatch.setattr("prosper.modeling.screen.bf16_units", lambda: False)
    assert not screen_applies("auto", cpu, weight)


def _both(settings, texts, root, sides=("item",)):
    """(fp32 head, screened head) vectors of one checkpoint (its LRN is random: built once)."""
    SparseEncoder.from_settings(settings, device="cpu").save(root / "ckpt")
    vectors = {}
    for mode in ("off", "on"):
        encoder = SparseEncoder.load(root / "ckpt", device="cpu", head_screen=mode)
        assert (encoder._head_screen() is not None) == (mode == "on")
        vectors[mode] = [encoder.encode(texts, side=side, batch_size=4).to_scipy().toarray() for side in sides]
    return zip(vectors["off"], vectors["on"])


def _assert_same_vectors(off, on, tolerance=1e-5):
    assert off.shape == on.shape and (off > 0).sum() > 0
    np.testing.assert_allclose(on, off, atol=tolerance)
    differ = (off > 0) != (on > 0)
    assert np.all(np.maximum(off, on)[differ] <= tolerance)  # support differs only at rounding level


@pytest.mark.parametrize("kind,name,pooling", [("mlm", "bert", "max"), ("causal", "qwen", "max")])
def test_screened_encoder_gives_the_fp32_vectors(tmp_path, kind, name, pooling):
    settings = model_settings(tiny_backbone(tmp_path, kind), name).model_copy(update={"pooling": pooling})
    for off, on in _both(settings, TEXTS, tmp_path, sides=("item", "query")):
        _assert_same_vectors(off, on)


def test_screened_splade_tiny_gives_the_fp32_vectors(shared_dir, tmp_path):
    from prosper.settings import ModelSettings

    path = shared_dir / "models" / "splade-tiny"
    if not path.is_dir():
        pytest.skip("needs ../shared/models/splade-tiny")
    settings = ModelSettings(backbone={"name": "bert", "path": str(path)}, pooling="max", lrn={"enabled": False},
                             lfw={"enabled": False}, max_length=512, precision="fp32", device="cpu")
    [(off, on)] = _both(settings, TEXTS, tmp_path)
    _assert_same_vectors(off, on)
    assert (on > 0).sum(axis=1).min() > 0  # even the empty text keeps [CLS]/[SEP] terms


def test_head_screen_override_reads_yaml_on_and_off():
    from prosper.settings import load_settings

    for text, mode in (("off", "off"), ("on", "on"), ("auto", "auto"), ("false", "off")):
        assert load_settings(overrides=[f"model.head_screen={text}"], environ={}).model.head_screen == mode
