"""``infer``: load a model and encode a collection into exporter files (the CLI's API).

The model is a prosper checkpoint, a plain SPLADE folder or a hub id (see
:mod:`prosper.modeling.pretrained`). Three lines from Python::

    from prosper.inference.api import infer
    summary = infer("runs/prosper/best", "data/shop", side="item", output="items.parquet")
    print(summary.items_per_s)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prosper.inference.driver import EncodeSummary, encode_collection


def default_device(device: str | None) -> str | None:
    """Under torchrun each rank takes the GPU of its ``LOCAL_RANK`` unless a device is named."""
    if device not in (None, "auto"):
        return device
    from prosper.training.distributed import env_info  # the one reader of torchrun's variables

    launched = env_info()
    if launched.enabled:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{launched.local_rank}"
    return device


def load_encoder(checkpoint: str | Path, device: str | None = None, **model_overrides: Any):
    """``SparseEncoder.from_pretrained``: a prosper checkpoint, a plain SPLADE model or a causal
    LM, by folder or hub id (safetensors only; see prosper.modeling.pretrained)."""
    from prosper.modeling.encoder import SparseEncoder

    return SparseEncoder.from_pretrained(str(checkpoint), device=default_device(device), **model_overrides)


def infer(
    checkpoint: str | Path,
    input: str | Path,
    side: str = "item",
    output: str | Path = "vectors.parquet",
    exporter: Any = "parquet",
    settings=None,
    resume: bool = False,
    *,
    device: str | None = None,
    model_overrides: dict[str, Any] | None = None,
    **kwargs: Any,
) -> EncodeSummary:
    """Encode ``input`` with the model (checkpoint, SPLADE folder or hub id) and write it with
    ``exporter``; see :func:`prosper.inference.driver.encode_collection` for ``settings`` and the
    keyword options. The model's scoring goes into the file's metadata, so an index built from
    it searches with that scoring by default. ``settings.engine == "ray"`` runs
    :func:`prosper.inference.ray_engine.infer_ray` instead (same arguments, same output)."""
    if settings is not None and settings.engine == "ray":
        from prosper.inference.ray_engine import infer_ray

        return infer_ray(checkpoint, input, side, output, exporter, settings, resume, device=device,
                         model_overrides=model_overrides, **kwargs)
    overrides = dict(model_overrides or {})
    device = device or overrides.pop("device", None)  # --device wins over a model.device=... override
    encoder = load_encoder(checkpoint, device, **overrides)
    metadata = {"checkpoint": str(checkpoint), "scoring": encoder.settings.scoring, **kwargs.pop("metadata", {})}
    return encode_collection(encoder, input, side, output, exporter, settings, resume, metadata=metadata, **kwargs)
