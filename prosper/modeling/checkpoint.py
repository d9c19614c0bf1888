"""Checkpoint directories: save atomically, load safely, reproduce identical vectors.

Layout::

    <dir>/backbone/          save_pretrained (safetensors) + the tokenizer
    <dir>/lrn.safetensors    the LRN layer (Eq. 8), float32, when LRN is enabled
    <dir>/prosper.yaml       the full resolved settings (model section used on load)
    <dir>/trainer_state/     optional, written by the trainer (resume)

Saving writes into ``<dir>.tmp-<pid>`` and renames it into place. Loading reads safetensors;
a pickled weight file (``.bin``/``.pt``) is accepted only if ``torch.load(weights_only=True)``
accepts it, otherwise :class:`CheckpointError`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from prosper.errors import CheckpointError, ConfigError

SETTINGS_FILE = "prosper.yaml"
LRN_FILE = "lrn.safetensors"
BACKBONE_DIR = "backbone"


def _settings_document(encoder) -> dict[str, Any]:
    from prosper.settings import ProsperSettings

    full = encoder.full_settings
    if full is None:
        full = ProsperSettings(model=encoder.settings)
    else:
        full = full.model_copy(update={"model": encoder.settings})
    return full.model_dump(mode="json")


def _split_state(encoder, state):
    """(backbone state dict or None for the model's own, LRN state dict): LoRA adapters merged."""
    from prosper.modeling.lora import has_adapters, merged_state

    if state is None and not has_adapters(encoder):
        lrn = encoder.lrn.state_dict() if encoder.lrn is not None else {}
        return None, lrn
    state = encoder.state_dict() if state is None else state
    if has_adapters(encoder):
        state = merged_state(encoder, state)
    backbone = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    lrn = {k[len("lrn.") :]: v for k, v in state.items() if k.startswith("lrn.")}
    return backbone, lrn


def save_checkpoint(encoder, directory, state=None) -> None:
    """Write ``encoder`` to ``directory`` atomically (tmp dir, then rename).

    ``state``: the encoder's full state dict when the modules do not hold it (FSDP gathers one on
    rank 0, see :mod:`prosper.training.fsdp`); LoRA adapters are merged into their weights
    (:mod:`prosper.modeling.lora`), so the directory never needs peft to load.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    backbone_state, lrn_state = _split_state(encoder, state)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        backbone = tmp / BACKBONE_DIR
        encoder.model.save_pretrained(backbone, safe_serialization=True, state_dict=backbone_state)
        encoder.tokenizer.save_pretrained(backbone)
        if encoder.lrn is not None:
            lrn = {k: v.detach().to("cpu").contiguous() for k, v in lrn_state.items()}
            save_file(lrn, str(tmp / LRN_FILE), metadata={"format": "pt", "prosper": "lrn"})
        text = yaml.safe_dump(_settings_document(encoder), sort_keys=False)
        (tmp / SETTINGS_FILE).write_text(text, encoding="utf-8")
        old = None
        if directory.exists():  # keep whatever else lives there (trainer_state/) out of the way first
            old = directory.with_name(f"{directory.name}.old-{os.getpid()}")
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            extra = old / "trainer_state"
            if extra.is_dir() and not (directory / "trainer_state").exists():
                os.replace(extra, directory / "trainer_state")
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_settings(directory) -> dict[str, Any]:
    path = Path(directory) / SETTINGS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (not a prosper checkpoint directory)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a mapping of settings sections")
    return data




def _load_lrn_state(directory: Path) -> dict[str, Any] | None:
    import torch
    from safetensors.torch import load_file

    path = directory / LRN_FILE
    if path.is_file():
        try:
            return load_file(str(path))
        except Exception as exc:  # corrupt or truncated file
            raise CheckpointError(f"{path}: unreadable safetensors ({exc})") from None
    for suffix in (".bin", ".pt", ".pth"):
        legacy = directory / f"lrn{suffix}"
        if legacy.is_file():
            try:
                return torch.load(legacy, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise CheckpointError(f"{legacy}: refusing pickled weights that need more than weights_only loading ({exc})") from None
    return None


def load_checkpoint(directory, device=None, **model_overrides):
    """Rebuild the encoder saved in ``directory``; ``model_overrides`` change ModelSettings fields."""
    from pydantic import ValidationError

    from prosper.modeling.backbones.base import refuse_unsafe_pickles
    from prosper.modeling.encoder import SparseEncoder
    from prosper.modeling.lrn import LiteralResidual
    from prosper.plugins import get_registry
    from prosper.registry import format_validation_error
    from prosper.settings import ModelSettings, merge_settings

    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: checkpoint directory not found")
    backbone_dir = directory / BACKBONE_DIR
    if not backbone_dir.is_dir():
        raise CheckpointError(f"{backbone_dir}: missing (not a prosper checkpoint directory)")
    refuse_unsafe_pickles(backbone_dir)
    document = read_settings(directory)
    model_data = merge_settings(document.get("model") or {}, model_overrides, at=("model",))
    backbone = dict(model_data.get("backbone") or {})
    backbone["path"] = str(backbone_dir)
    backbone.pop("revision", None)
    backbone.pop("tokenizer", None)
    model_data["backbone"] = backbone
    try:
        settings = ModelSettings.model_validate(model_data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix="model")) from None
    if device is not None:
        settings = settings.model_copy(update={"device": str(device)})
    registry = get_registry()
    loaded = registry.build("backbone", settings.backbone, where="model.backbone").load(
        precision=settings.precision, quantization=settings.quantization, device=settings.device
    )
    lrn = None
    if settings.lrn.enabled:
        state = _load_lrn_state(directory)
        if state is None:
            raise CheckpointError(f"{directory / LRN_FILE}: missing, but model.lrn.enabled is true")
        lrn = LiteralResidual(loaded.hidden_size, loaded.vocab_size)
        try:
            lrn.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{directory / LRN_FILE}: does not fit the backbone ({str(exc).splitlines()[0]})") from None
    encoder = SparseEncoder(settings, loaded, lrn=lrn)
    from prosper.settings import ProsperSettings

    try:
        encoder.full_settings = ProsperSettings.model_validate({k: v for k, v in document.items() if k != "model"})
    except ValidationError:
        encoder.full_settings = None
    return encoder
