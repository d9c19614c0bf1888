"""LoRA on the backbone (``model.lora``): adapters train, the backbone stays frozen, the LRN
layer trains fully, checkpoints are merged (no peft to load) and training resumes exactly."""

from __future__ import annotations

import copy
import sys

import pytest
import torch

from prosper.errors import ConfigError
from prosper.settings import LoraSettings, ModelSettings, load_settings
from tests.training_helpers import (
    StopTraining,
    build_backbone,
    build_shop,
    overrides,
    read_jsonl,
    same_weights,
    state_dict_of,
    stop_at_checkpoint,
)

pytest.importorskip("peft")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = ["cordless drill with lithium battery", "white ceramic floor tile", "garden hose 50 ft"]
LORA = {"r": 4, "alpha": 8.0, "dropout": 0.1, "target_modules": "all-linear"}  # dropout: RNG state resumes too


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    build_shop(root)
    return root, build_backbone(root, "qwen")


def _encoder(backbone, **lora):
    from prosper.modeling.encoder import SparseEncoder
    from prosper.modeling.lora import add_adapters

    settings = ModelSettings(backbone={"name": "qwen", "path": str(backbone)}, device="cpu", max_length=24,
                             lora=dict(LORA, **lora))
    torch.manual_seed(0)
    encoder = SparseEncoder.from_settings(settings, device="cpu")
    add_adapters(encoder, settings.lora)
    with torch.no_grad():  # B starts at zero; give the adapters something to merge
        for name in encoder.lora_layers:
            encoder.get_submodule(name).lora_B["default"].weight.normal_(0.0, 0.5)
    return encoder


def test_only_adapters_and_lrn_train(tiny):
    _, backbone = tiny
    encoder = _encoder(backbone)
    trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
    assert "lrn.fc.weight" in trainable and "lrn.fc.bias" in trainable
    backbone_trainable = [n for n in trainable if n.startswith("model.")]
    assert backbone_trainable and all(".lora_A." in n or ".lora_B." in n for n in backbone_trainable)
    # all-linear: every projection of every layer, never the LM head
    assert {n.rsplit(".", 1)[1] for n in encoder.lora_layers} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert not any("lm_head" in n for n in encoder.lora_layers)


def test_merge_equals_peft_merge(tiny):
    """Our state-dict merge against peft's own in-place ``merge()`` on a copy (the oracle)."""
    from prosper.modeling.lora import merged_state

    _, backbone = tiny
    encoder = _encoder(backbone, alpha=12.0)
    ours = merged_state(encoder, encoder.state_dict())
    theirs = copy.deepcopy(encoder)
    for name in encoder.lora_layers:
        theirs.get_submodule(name).merge()
    for name in encoder.lora_layers:
        merged = theirs.get_submodule(name).get_base_layer().weight
        assert torch.allclose(ours[f"{name}.weight"], merged, atol=1e-6), name
        assert not torch.equal(ours[f"{name}.weight"], encoder.get_submodule(name).get_base_layer().weight)
    assert not any(".lora_" in k or ".base_layer." in k for k in ours)
    assert set(ours) == set(_plain_names(backbone))


def _plain_names(backbone):
    from prosper.modeling.encoder import SparseEncoder

    settings = ModelSettings(backbone={"name": "qwen", "path": str(backbone)}, device="cpu")
    return SparseEncoder.from_settings(settings, device="cpu").state_dict().keys()


def test_saved_model_loads_without_peft(tiny, tmp_path, monkeypatch):
    from prosper.modeling.encoder import SparseEncoder

    _, backbone = tiny
    encoder = _encoder(backbone)
    live = encoder.encode(TEXTS, side="item").to_dense()
    encoder.save(tmp_path / "merged")
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` now fails
    loaded = SparseEncoder.load(tmp_path / "merged", device="cpu")
    assert not any("lora" in n for n, _ in loaded.named_parameters())
    again = loaded.encode(TEXTS, side="item").to_dense()
    assert live.shape == again.shape and (live > 0).sum() > 0
    assert torch.allclose(torch.as_tensor(live), torch.as_tensor(again), atol=1e-5)


def test_missing_peft_is_one_line(tiny, monkeypatch):
    from prosper.modeling.encoder import SparseEncoder
    from prosper.modeling.lora import add_adapters

    _, backbone = tiny
    encoder = SparseEncoder.from_settings(ModelSettings(backbone={"name": "qwen", "path": str(backbone)}, device="cpu"))
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ConfigError, match=r"model\.lora: .*pip install prosper-retrieval\[lora\]") as info:
        add_adapters(encoder, LoraSettings())
    assert "\n" not in str(info.value)


def test_bad_targets_name_the_field(tiny):
    _, backbone = tiny
    with pytest.raises(ConfigError, match="model.lora.target_modules"):
        _encoder(backbone, target_modules=["no_such_proj"])
    with pytest.raises(ConfigError, match="model.lora.target_modules: .*LM head"):
        _encoder(backbone, target_modules=["q_proj", "lm_head"])


def test_lora_settings(clean_env):
    assert load_settings(environ={}).model.lora is None
    s = load_settings(overrides=["model.lora={}"], environ={})
    assert s.model.lora == LoraSettings() and s.model.lora.target_modules == "all-linear"
    s = load_settings(overrides=["model.lora.r=8", "model.lora.target_modules=[q_proj,v_proj]"], environ={})
    assert s.model.lora.r == 8 and s.model.lora.target_modules == ["q_proj", "v_proj"]
    with pytest.raises(ConfigError, match="model.lora.r"):
        load_settings(overrides=["model.lora.r=0"], environ={})


def _train(root, backbone, out, resume=False, callbacks=(), **extra):
    from prosper.training.trainer import train

    settings = load_settings(overrides=overrides(root, backbone, out=out, model__lora=LORA, **extra), environ={})
    return train(settings, resume=resume, callbacks=callbacks)


@pytest.mark.slow
def test_lora_training_resumes_exactly_and_saves_merged(tiny):
    root, backbone = tiny
    full = _train(root, backbone, "full", train__eval_every=3)
    with pytest.raises(StopTraining):
        _train(root, backbone, "cut", train__eval_every=3, callbacks=[stop_at_checkpoint(2)])
    resumed = _train(root, backbone, "cut", resume=True, train__eval_every=3)
    assert same_weights(full.final_dir, resumed.final_dir)
    assert same_weights(full.best_dir, resumed.best_dir)
    steps = [r["step"] for r in read_jsonl(root / "cut" / "metrics.jsonl") if r["event"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]

    final, base = state_dict_of(full.final_dir), state_dict_of(backbone)
    assert {k.split("::")[1] for k in final if k.startswith("backbone/")} == {k.split("::")[1] for k in base}
    embed = "model.safetensors::model.embed_tokens.weight"
    head = "model.safetensors::lm_head.weight"
    q = "model.safetensors::model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(final[f"backbone/{embed}"], base[embed]) and torch.equal(final[f"backbone/{head}"], base[head])
    assert not torch.equal(final[f"backbone/{q}"], base[q])  # the merged adapter moved it
    # every checkpoint's model is merged too (inference-ready) and carries the adapters for resume
    ckpt = root / "full" / "checkpoints" / "step-000006"
    model_part = {k: v for k, v in state_dict_of(ckpt).items() if not k.startswith("trainer_state/")}
    assert model_part.keys() == final.keys() and all(torch.equal(model_part[k], final[k]) for k in final)
    trainable = state_dict_of(ckpt / "trainer_state")
    assert any(".lora_B." in k for k in trainable) and "trainable.safetensors::lrn.fc.weight" in trainable
    assert torch.equal(trainable["trainable.safetensors::lrn.fc.weight"], final["lrn.safetensors::fc.weight"])
