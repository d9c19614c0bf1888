"""LoRA adapters on the backbone: fine-tune an LLM retriever with a few trained matrices.

LoRA (Hu et al., 2021, "LoRA: Low-Rank Adaptation of Large Language Models", arXiv:2106.09685,
Eq. 3) freezes each targeted linear weight ``W`` and trains ``h = W x + (α/r) · B A x`` with
``A`` (``r × in``) and ``B`` (``out × r``, zero at the start). CSPLADE (Xu et al., 2025) and
Mistral-SPLADE (Doshi et al., 2024) fine-tune LLM backbones for learned sparse retrieval this
way. Here only the backbone gets adapters; the LRN layer (Eq. 8), new and randomly initialised,
trains fully. Settings: ``model.lora: {r, alpha, dropout, target_modules}``.

Why the pieces are where they are:

* peft injects the adapter layers (``inject_adapter_in_model``, in place, the Hugging Face model
  keeps its type), so the encoder's body/head references stay valid.
* Saving merges on a *state dict* (``W + (α/r)·B A`` under ``W``'s own name, adapters dropped):
  every checkpoint's ``backbone/`` is a plain model that loads with no peft installed. The live
  modules are never merged and unmerged (``W + BA − BA`` is not ``W`` in floating point), so a
  run that saves ``best/`` keeps training bit for bit as if it had not. The same function merges
  the full state dict FSDP gathers (``prosper.training.fsdp``).
* Resume cannot split a merged ``W + BA`` back exactly either, so a training checkpoint also
  holds ``trainer_state/trainable.safetensors`` (every trained tensor: A, B, the LRN layer) and a
  resumed run rebuilds the frozen ``W`` from ``model.backbone.path`` itself (resume insists on
  unchanged settings; pin ``model.backbone.revision`` for hub ids).

peft is an optional dependency (``pip install prosper-retrieval[lora]``); this module imports it
only inside :func:`add_adapters`, and merging needs none of it.
"""

from __future__ import annotations

import os
from pathlib import Path

from prosper.errors import CheckpointError, ConfigError

ADAPTER = "default"  # peft's adapter name; one adapter per model
TRAINABLE_FILE = "trainable.safetensors"
INSTALL_HINT = "pip install prosper-retrieval[lora]"


def _peft():
    try:
        import peft
    except ImportError:
        raise ConfigError(f"model.lora: LoRA needs the peft package, which is not installed; {INSTALL_HINT}") from None
    return peft


def add_adapters(encoder, settings) -> int:
    """Inject LoRA layers into ``encoder.model`` per :class:`prosper.settings.LoraSettings`.

    Freezes every backbone weight but the adapters (the LRN layer, outside the backbone, stays
    trainable) and records what :func:`merged_state` needs on ``encoder.lora_layers``. Returns the
    number of trainable parameters.
    """
    peft = _peft()
    target = settings.target_modules
    config = peft.LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=target if isinstance(target, str) else list(target),
        bias="none",
    )
    try:
        peft.inject_adapter_in_model(config, encoder.model, adapter_name=ADAPTER)
    except ValueError as exc:  # no module matched, or an unsupported layer type
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"model.lora.target_modules: {first[:300]}") from None
    lora_layer = peft.tuners.lora.LoraLayer
    guarded = _head_tensors(encoder)
    layers: dict[str, tuple[float, bool]] = {}
    for name, module in encoder.named_modules():
        if not isinstance(module, lora_layer):
            continue
        if type(module) is not peft.tuners.lora.Linear:
            raise ConfigError(
                f"model.lora.target_modules: {name} is a {type(module).__name__}; adapters go on linear layers only"
            )
        base = module.get_base_layer()
        if any(base.weight is t for t in guarded):
            raise ConfigError(
                f"model.lora.target_modules: {name} is the LM head the encoder applies directly "
                "(and often tied to the embeddings); leave it out"
            )
        layers[name] = (float(module.scaling[ADAPTER]), bool(module.fan_in_fan_out))
    if not layers:
        raise ConfigError(f"model.lora.target_modules: {target!r} matched no linear layer of the backbone")
    encoder.lora_layers = layers
    return sum(p.numel() for p in encoder.parameters() if p.requires_grad)


def _head_tensors(encoder) -> list:
    """Weights the encoder reads directly rather than through a module call (the split head)."""
    split = getattr(encoder._parts, "head_split", None)
    head = getattr(encoder._parts, "head", None)
    found = []
    if split is not None:
        found.append(split[1])
    if head is not None and hasattr(head, "weight"):
        found.append(head.weight)
    return found


def has_adapters(encoder) -> bool:
    return bool(encoder.lora_layers)


def merged_state(encoder, state: dict) -> dict:
    """``state`` (the encoder's state-dict names) with each adapter merged into its weight.

    ``W' = W + (α/r) · B A`` (transposed for ``fan_in_fan_out`` layers), computed in float32 on
    the CPU (the copies would otherwise double the GPU memory of the targeted weights while a
    checkpoint is written) and stored in ``W``'s dtype under ``W``'s own name, as peft's
    ``merge_and_unload`` would; the adapter tensors are dropped. ``state`` is not modified.
    """
    import torch

    out = dict(state)
    for name, (scaling, fan_in_fan_out) in encoder.lora_layers.items():
        weight = out.pop(f"{name}.base_layer.weight").detach().to("cpu")
        a = out.pop(f"{name}.lora_A.{ADAPTER}.weight").detach().to("cpu")
        b = out.pop(f"{name}.lora_B.{ADAPTER}.weight").detach().to("cpu")
        delta = b.float() @ a.float()
        if fan_in_fan_out:
            delta = delta.T
        with torch.no_grad():
            out[f"{name}.weight"] = (weight.float() + delta * scaling).to(weight.dtype)
        bias = out.pop(f"{name}.base_layer.bias", None)
        if bias is not None:
            out[f"{name}.bias"] = bias
    leftover = [k for k in out if ".lora_" in k or ".base_layer." in k]
    if leftover:
        raise CheckpointError(f"cannot merge adapter tensor {leftover[0]}: only LoRA on linear layers is supported")
    return out


def trainable_names(encoder) -> list[str]:
    return [name for name, param in encoder.named_parameters() if param.requires_grad]


def save_trainable(encoder, state: dict, directory: Path) -> None:
    """Write the trained tensors (adapters, LRN) of ``state`` to ``directory/trainable.safetensors``."""
    from safetensors.torch import save_file

    from prosper.fileio import temp_path

    tensors = {name: state[name].detach().to("cpu").contiguous() for name in trainable_names(encoder)}
    path = Path(directory) / TRAINABLE_FILE
    tmp = temp_path(path)
    save_file(tensors, str(tmp), metadata={"format": "pt", "prosper": "lora-trainable"})
    os.replace(tmp, path)


def load_trainable(encoder, directory: Path) -> None:
    """Copy the tensors :func:`save_trainable` wrote back into an encoder with fresh adapters."""
    from safetensors.torch import load_file

    path = Path(directory) / TRAINABLE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; a LoRA run resumes from its adapters and LRN layer")
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # corrupt or truncated file
        raise CheckpointError(f"{path}: unreadable safetensors ({exc})") from None
    expected = set(trainable_names(encoder))
    if set(tensors) != expected:
        odd = sorted(set(tensors) ^ expected)[0]
        raise CheckpointError(f"{path}: does not fit this model's adapters ({odd}); resume with the same model.lora")
    params = dict(encoder.named_parameters())
    import torch

    with torch.no_grad():
        for name, value in tensors.items():
            if params[name].shape != value.shape:
                raise CheckpointError(
                    f"{path}: {name} has shape {tuple(value.shape)}, the model {tuple(params[name].shape)}"
                )
            params[name].copy_(value)
