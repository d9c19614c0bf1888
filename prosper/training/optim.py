"""Optimizer and learning-rate schedule (METHOD.md training recipe).

AdamW (lr 3e-5, weight decay 0.1 in the paper) or bitsandbytes' 8-bit AdamW, and a linear
warm-up to the peak rate followed by a linear decay to zero at the last step. Weight decay is
applied to matrices only: biases and normalisation weights are not decayed (the usual practice
for transformers, as in BERT's original recipe).
"""

from __future__ import annotations

from prosper.errors import ConfigError


def parameter_groups(model, weight_decay: float, lrn_lr: float | None = None) -> list[dict]:
    """Decayed matrices and undecayed vectors; with ``lrn_lr``, the LRN layer (new, randomly
    initialised, unlike the pretrained backbone) in groups of its own at that learning rate."""
    buckets: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        own_rate = lrn_lr is not None and (name.startswith("lrn.") or ".lrn." in name)
        buckets.setdefault((own_rate, param.ndim >= 2), []).append(param)
    groups = []
    for (own_rate, decayed), params in sorted(buckets.items(), key=lambda kv: (kv[0][0], not kv[0][1])):
        group = {"params": params, "weight_decay": weight_decay if decayed else 0.0}
        if own_rate:
            group["lr"] = lrn_lr
        groups.append(group)
    return groups


# Learning rates when the settings leave them unset, by backbone kind. Causal LMs: the paper's
# 3e-5 for everything. Masked LMs (splade-tiny on Home Depot, docs/training.md): 1e-4 for the
# pretrained backbone and 1e-3 for the new, randomly initialised LRN layer trained best.
KIND_LEARNING_RATES = {"causal": (3e-5, None), "mlm": (1e-4, 1e-3)}


def learning_rates(settings, kind: str) -> tuple[float, float | None]:
    """``(lr, lrn_lr)``: the settings' values, or the defaults for the backbone ``kind``."""
    lr, lrn_lr = KIND_LEARNING_RATES.get(kind, KIND_LEARNING_RATES["causal"])
    lr = settings.lr if settings.lr is not None else lr
    return lr, settings.lrn_lr if settings.lrn_lr is not None else lrn_lr


def build_optimizer(model, settings, kind: str = "causal"):
    """``settings``: :class:`prosper.settings.OptimizerSettings`; ``kind``: the backbone's kind
    (``causal`` or ``mlm``), which picks the learning rates left unset."""
    lr, lrn_lr = learning_rates(settings, kind)
    groups = parameter_groups(model, settings.weight_decay, lrn_lr)
    kwargs = dict(lr=lr, betas=tuple(settings.betas), eps=settings.eps)
    if settings.name == "adamw":
        import torch

        # The fused kernel (one pass over each tensor, CPU and CUDA) is several times faster than
        # the per-tensor loop on CPU, where an |V|-wide head and LRN layer dominate the update.
        try:
            return torch.optim.AdamW(groups, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):  # device or dtype without a fused kernel
            return torch.optim.AdamW(groups, **kwargs)
    if settings.name == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError as exc:  # pragma: no cover - bitsandbytes is a dependency
            raise ConfigError(f"train.optimizer.name: adamw8bit needs bitsandbytes ({exc})") from None
        return bnb.optim.AdamW8bit(groups, **kwargs)
    raise ConfigError(f"train.optimizer.name: unknown optimizer {settings.name!r} (adamw | adamw8bit)")


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the peak rate before update ``step + 1`` (``step`` updates done so far).

    Linear warm-up over ``warmup_steps`` (from 1/warmup to 1), then linear decay to 0 at
    ``total_steps``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    remaining = total_steps - step
    span = max(1, total_steps - warmup_steps)
    return max(0.0, remaining / span)


def build_scheduler(optimizer, warmup_steps: int, total_steps: int):
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup_steps, total_steps))
