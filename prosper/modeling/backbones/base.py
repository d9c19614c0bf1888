"""What every backbone plugin gives the encoder: a body, a head and a tokenizer.

A backbone factory (registered with ``register_backbones``) takes a validated
:class:`BackboneParams` and returns an object whose ``load(precision, quantization, device)``
gives a :class:`LoadedBackbone`. The encoder never calls the Hugging Face model's own
``forward`` on the whole sequence: it runs the *body* (hidden states ``[B, L, H]``) and applies
the *head* (hidden -> vocabulary logits) only where pooling needs it, so the ``[B, L, |V|]``
logits tensor is never built when it is not needed (see :mod:`prosper.modeling.pooling`).

This module imports no torch at import time: plugin registration must stay light.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from prosper.components import Backbone
from prosper.errors import CheckpointError, ConfigError, DeviceError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


class BackboneParams(BaseModel):
    """Parameters of the built-in ``qwen`` and ``bert`` backbones."""

    model_config = ConfigDict(extra="forbid")

    path: str  # a Hugging Face hub id or a local directory
    revision: str | None = None  # hub revision (branch, tag or commit)
    trust_remote_code: bool = False  # off unless the user turns it on
    tokenizer: str | None = None  # a different tokenizer location (defaults to path)
    attn_implementation: str | None = None  # e.g. "sdpa" or "eager"; None lets transformers choose


@dataclass
class LoadedBackbone:
    """A loaded language model split into the pieces the encoder uses.

    ``body(input_ids=..., attention_mask=..., [position_ids=...]).last_hidden_state`` gives
    ``[B, L, H]``; ``head(hidden)`` maps ``[..., H]`` to ``[..., V]`` logits (``None`` when the
    head could not be separated, then ``model(...).logits`` is used). ``logit_postprocess``
    applies model-specific scaling some causal LMs do after the head (softcapping, scale).
    """

    model: Any
    body: Any
    head: Any
    tokenizer: Any
    kind: Literal["causal", "mlm"]
    hidden_size: int
    vocab_size: int
    logit_postprocess: Any = None
    accepts_position_ids: bool = True
    #: ``(pre, weight, bias)`` with ``head(h) == pre(h) @ weight.T + bias`` where the head allows
    #: it: max pooling then adds the bias after the maximum instead of to every position's logits.
    head_split: Any = None


def resolve_device(device: str | None):
    """``auto`` -> cuda when available, else cpu. Raises :class:`DeviceError` for missing devices."""
    import torch

    name = (device or "auto").lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"model.device={device}: CUDA is not available on this machine (use cpu or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("model.device=mps: MPS is not available on this machine")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"model.device={device}: {exc}") from None


def torch_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def check_precision(precision: str, device) -> None:
    """Fail early, with the setting's name, when ``precision`` cannot run on ``device``."""
    import torch

    if precision == "fp32":
        return
    dtype = torch_dtype(precision)
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise DeviceError(f"model.precision=bf16: {torch.cuda.get_device_name(device)} has no bf16 support; use fp16 or fp32")
        return
    try:  # probe the operations a transformer needs in this dtype on this device
        x = torch.ones(4, 8, dtype=dtype, device=device)
        w = torch.ones(8, 8, dtype=dtype, device=device)
        y = torch.nn.functional.layer_norm(x @ w, (8,))
        torch.softmax(y, -1).sum().item()
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"model.precision={precision}: not supported on {device.type} ({exc}); use fp32") from None


def quantization_config(quantization: str, precision: str, device):
    """A ``BitsAndBytesConfig`` for 8bit/4bit, or ``None``; :class:`DeviceError` when unavailable."""
    if quantization == "none":
        return None
    if device.type not in ("cpu", "cuda", "xpu"):
        raise DeviceError(f"model.quantization={quantization}: bitsandbytes does not run on {device.type}")
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # ImportError, or a broken native library
        raise DeviceError(f"model.quantization={quantization}: bitsandbytes is not usable here ({exc}); pip install bitsandbytes") from None
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise DeviceError(f"model.quantization={quantization}: needs accelerate; pip install accelerate") from None
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch_dtype(precision)
    )


def refuse_unsafe_pickles(directory: str | Path) -> None:
    """Pickled weight files load only if ``torch.load(weights_only=True)`` accepts them."""
    import pickle

    import torch

    directory = Path(directory)
    if not directory.is_dir():
        return
    for path in sorted(directory.iterdir()):
        if path.suffix not in PICKLE_SUFFIXES or not path.is_file():
            continue
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, EOFError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(
                f"{path}: refusing pickled weights that need more than weights_only loading ({first[:160]})"
            ) from None


class HFBackbone(Backbone):
    """A Hugging Face model loaded through an ``AutoModelFor...`` class (see subclasses)."""

    kind: Literal["causal", "mlm"] = "causal"

    def __init__(self, params: BackboneParams):
        self.params = params

    # -- hooks for subclasses ---------------------------------------------------------------
    def auto_class(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare_tokenizer(self, tokenizer) -> None:
        """Give the tokenizer a pad token where it lacks one."""
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is not None:
                tokenizer.pad_token = tokenizer.eos_token
            elif tokenizer.unk_token is not None:
                tokenizer.pad_token = tokenizer.unk_token
            else:
                raise ConfigError(f"model.backbone.path={self.params.path}: the tokenizer has no pad, eos or unk token")

    # -- loading ----------------------------------------------------------------------------
    def load(self, precision: str = "fp32", quantization: str = "none", device: str | None = "auto") -> LoadedBackbone:
        from transformers import AutoTokenizer

        dev = resolve_device(device)
        check_precision(precision, dev)
        qconfig = quantization_config(quantization, precision, dev)
        path = self.params.path
        local = Path(path).expanduser()
        if local.exists():
            if not local.is_dir():
                raise ConfigError(f"model.backbone.path={path}: not a directory")
            refuse_unsafe_pickles(local)
            path = str(local)
        common: dict[str, Any] = {"trust_remote_code": self.params.trust_remote_code}
        if self.params.revision:
            common["revision"] = self.params.revision
        kwargs: dict[str, Any] = dict(common, dtype=torch_dtype(precision))
        if self.params.attn_implementation:
            kwargs["attn_implementation"] = self.params.attn_implementation
        if qconfig is not None:
            kwargs["quantization_config"] = qconfig
            kwargs["device_map"] = {"": str(dev) if dev.type != "cuda" else (dev.index or 0)}
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
                tokenizer = AutoTokenizer.from_pretrained(self.params.tokenizer or path, **common)
                model = self.auto_class().from_pretrained(path, **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"model.backbone.path={self.params.path}: cannot load ({message[:300]})") from None
        self.prepare_tokenizer(tokenizer)
        model.eval()
        if qconfig is None:
            model.to(dev)
        body = model.base_model
        if body is model:
            raise ConfigError(f"model.backbone.path={self.params.path}: {type(model).__name__} has no separate base model")
        head = find_head(model, body)
        out = model.get_output_embeddings()
        vocab = getattr(out, "out_features", None) or model.config.get_text_config().vocab_size
        hidden = model.config.get_text_config().hidden_size
        import inspect

        accepts_pos = "position_ids" in inspect.signature(body.forward).parameters
        return LoadedBackbone(
            model=model,
            body=body,
            head=head,
            tokenizer=tokenizer,
            kind=self.kind,
            hidden_size=int(hidden),
            vocab_size=int(vocab),
            logit_postprocess=logit_postprocess(model.config.get_text_config()),
            accepts_position_ids=accepts_pos,
            head_split=split_head(head),
        )


def find_head(model, body):
    """The one child module (other than the body) that maps hidden states to logits, or None."""
    candidates = [
        child
        for _, child in model.named_children()
        if child is not body and any(True for _ in child.parameters())
    ]
    if len(candidates) == 1:
        return candidates[0]
    return None


def split_head(head):
    """``(transform, weight, bias)`` for a plain linear LM head or a BERT-style MLM head
    (``predictions.transform`` then a linear ``predictions.decoder``), else None. Quantised
    heads are left alone."""
    import torch

    if type(head) is torch.nn.Linear:  # a plain LM head (Qwen, Llama, ...)
        return torch.nn.Identity(), head.weight, head.bias
    predictions = getattr(head, "predictions", None)
    transform = getattr(predictions, "transform", None)
    decoder = getattr(predictions, "decoder", None)
    if transform is None or type(decoder) is not torch.nn.Linear:
        return None
    bias = decoder.bias if decoder.bias is not None else getattr(predictions, "bias", None)
    return transform, decoder.weight, bias


def logit_postprocess(config):
    """Model-specific logit transforms done after the LM head (Gemma 2 softcap, Cohere/Granite scale)."""
    softcap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(config, "logit_scale", None)
    divide = getattr(config, "logits_scaling", None)
    if not (softcap or scale or divide):
        return None
    import torch

    def post(logits):
        if scale:
            logits = logits * scale
        if divide:
            logits = logits / divide
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        return logits

    return post


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
