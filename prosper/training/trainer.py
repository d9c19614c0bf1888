"""The PROSPER training loop (METHOD.md, Eq. 12-13 and the training recipe).

``L = L_rank + λ_q(t)·R(w_q) + λ_d(t)·R(w_d)``: a ranking loss plugin (``train.loss``, InfoNCE
with in-batch negatives by default) on the final vectors ``W`` (after LRN and LFW) plus each
regularizer plugin (``train.regularizers``, FLOPS by default) on the base vectors ``w``, with its
own scheduled λ per side. AdamW (or 8-bit AdamW), linear warm-up then linear decay, weight decay,
gradient clipping and accumulation, AMP (bf16 / fp16 with loss scaling / fp32).

Long runs: checkpoints are written atomically every ``train.save_every`` steps and
``resume=True`` continues from the last one with model, optimizer, LR schedule, loss scaler,
every RNG and the data position restored, so the interrupted run ends with the same weights as an
uninterrupted one. Under ``torchrun`` the encoder is wrapped in DistributedDataParallel (gloo on
CPU, nccl on CUDA) or, with ``train.strategy: fsdp``, sharded (:mod:`prosper.training.fsdp`);
``model.lora`` trains LoRA adapters on the backbone (:mod:`prosper.modeling.lora`). Rank 0 logs
(rich progress bar and ``metrics.jsonl``), validates every ``train.eval_every`` steps (keeping
the best model in ``best/``) and writes checkpoints.

Python API::

    from prosper.settings import load_settings
    from prosper.training.trainer import train

    settings = load_settings(overrides=["data.path=data/shop", "model.backbone.path=..."])
    result = train(settings)          # result.final_dir is a SparseEncoder checkpoint
    result = train(settings, resume=True)
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prosper.errors import CheckpointError, ConfigError, DeviceError
from prosper.fileio import atomic_write_text, replace_dir
from prosper.training import checkpointing as ckpt
from prosper.training.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    broadcast_object,
    init_distributed,
    resolve_device,
    shutdown,
    wrap_model,
)
from prosper.training.metrics_log import MetricsLog

# Settings that may change between a run and its resumption without changing the trajectory.
RESUME_FREE = {
    "train.save_every",
    "train.eval_every",
    "train.log_every",
    "train.keep_last",
    "train.progress",
    "train.output_dir",
    "train.eval_batch_size",
    "train.eval_recall_k",
    "train.best_metric",
    "train.collapse_dense_fraction",
    "data.max_dev_queries",
    "data.max_dev_items",
    "data.dev_split",
    "model.device",
    "infer",
    "export",
    "search",
}


@dataclass
class TrainResult:
    output_dir: Path
    final_dir: Path | None
    best_dir: Path | None
    steps: int
    best_metric: float | None = None
    last_logs: dict[str, Any] = field(default_factory=dict)
    last_eval: dict[str, float] | None = None


class Callback:
    """Hooks for notebooks and tests; every method is optional."""

    def on_log(self, trainer: Trainer, step: int, logs: dict) -> None: ...

    def on_checkpoint(self, trainer: Trainer, step: int, path: Path) -> None: ...


def train(settings, *, resume: bool = False, callbacks=(), console=None) -> TrainResult:
    """Train a PROSPER retriever as ``settings`` describe; see the module docstring."""
    return Trainer(settings, resume=resume, callbacks=callbacks, console=console).fit()


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def settings_differences(old: dict, new: dict) -> list[str]:
    """Dotted paths whose values differ and matter for the trajectory."""
    a, b = _flatten(old), _flatten(new)
    changed = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key) and not any(key == f or key.startswith(f + ".") for f in RESUME_FREE):
            changed.append(key)
    return changed


class _DualEncoder:
    """Built lazily (torch import): encodes a query batch and an item batch in one forward."""

    @staticmethod
    def wrap(encoder):
        import torch

        class DualEncoder(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.encoder = inner

            def forward(self, query_features, item_features):
                q = self.encoder(query_features, "query")
                d = self.encoder(item_features, "item")
                return q.base, q.vectors, d.base, d.vectors

        return DualEncoder(encoder)


class Trainer:
    def __init__(self, settings, *, resume: bool = False, callbacks=(), console=None):
        self.settings = settings
        self.resume = resume
        self.callbacks = list(callbacks)
        if console is None:
            from prosper.cli.common import console as default_console

            console = default_console
        self.console = console
        self.output_dir = Path(settings.train.output_dir)

    # -- setup ----------------------------------------------------------------------------
    def _amp(self, device):
        import torch

        amp = self.settings.train.amp
        if amp == "auto":  # bf16 where the hardware has it; CPUs without bf16 units run it 20x slower
            bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
            amp = "bf16" if bf16 else "none"
        if amp == "none":
            return nullcontext, None
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        try:
            with torch.autocast(device.type, dtype=dtype):
                probe = torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)
            scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
        except Exception as exc:  # unsupported device/dtype pairs raise several types
            raise DeviceError(f"train.amp: {amp} is not supported on {device} ({exc})") from None
        if probe.dtype != dtype:
            raise DeviceError(f"train.amp: {amp} autocast is not supported on {device}; use train.amp=none")
        return (lambda: torch.autocast(device.type, dtype=dtype)), scaler

    def _build_components(self):
        from prosper.plugins import get_registry

        registry = get_registry()
        loss = registry.build("loss", self.settings.train.loss, "train.loss")
        # Logged as <name>_<side>; the configured names, numbered when one is used twice.
        specs = self.settings.train.regularizers
        names = [spec.name for spec in specs]
        regularizers = {
            (name if names.count(name) == 1 else f"{name}{i}"): registry.build("regularizer", spec, f"train.regularizers[{i}]")
            for i, (name, spec) in enumerate(zip(names, specs))
        }
        return loss, regularizers

    def _model_settings(self):
        model = self.settings.model
        if model.quantization != "none":
            raise ConfigError("model.quantization: training a quantized backbone is not supported; use none")
        # Master weights stay fp32; train.amp decides the compute precision.
        return model.model_copy(update={"precision": "fp32"})

    def _apply_budget_window(self) -> None:
        """With term budgets, the LFW window is capped for training and for the saved model."""
        budget = self.settings.train.target_terms
        if budget is None:
            return
        from prosper.training.budget import capped_window

        lfw = capped_window(self.settings.model.lfw, budget)
        if lfw != self.settings.model.lfw:
            model = self.settings.model.model_copy(update={"lfw": lfw})
            self.settings = self.settings.model_copy(update={"model": model})

    def _check_resume(self, checkpoint: Path, info: DistInfo) -> dict:
        state = ckpt.read_state(checkpoint)
        if state.get("world_size") != info.world_size:
            raise CheckpointError(
                f"{checkpoint}: written by {state.get('world_size')} process(es), resumed with {info.world_size}; "
                "the data order depends on it"
            )
        saved = state.get("settings", {})
        current = self.settings.model_dump(mode="json")
        changed = settings_differences(saved, current)
        if changed:
            raise ConfigError(
                f"--resume: {changed[0]} differs from the checkpoint's settings ({checkpoint}); "
                "resume with the same settings or start a new train.output_dir"
            )
        return state

    # -- the loop -------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        import torch

        from prosper.training.distributed import env_info

        device = resolve_device(self.settings.model.device, env_info())
        info = init_distributed(device)
        if device.type == "cpu" and info.enabled:
            torch.set_num_threads(max(1, torch.get_num_threads() // info.world_size))
        self.info, self.device = info, device
        try:
            return self._fit(info, device)
        finally:
            shutdown(info)

    def _fit(self, info: DistInfo, device) -> TrainResult:
        import random

        import numpy as np
        import torch

        from prosper.data.training import BatchPlan, load_training_data, make_batch
        from prosper.modeling.encoder import SparseEncoder
        from prosper.training.collapse import CollapseGuard
        from prosper.training.optim import build_optimizer, build_scheduler
        from prosper.training.validation import build_dev_set, evaluate_encoder

        self._apply_budget_window()
        s = self.settings
        t = s.train
        out = self.output_dir
        main = info.is_main
        loss_fn, regularizers = self._build_components()
        sharded = t.strategy == "fsdp" and info.enabled  # prosper.training.fsdp
        if sharded:
            from prosper.training.fsdp import check_settings

            check_settings(t)
        autocast, scaler = self._amp(device)

        # -- resume or start --------------------------------------------------------------
        checkpoint = None
        if main:
            out.mkdir(parents=True, exist_ok=True)
            ckpt.remove_partial(out)
        barrier(info)
        existing = ckpt.latest_checkpoint(out)
        if self.resume:
            checkpoint = existing
            if checkpoint is None and main:
                self.console.print(f"[yellow]--resume: no checkpoint in {out}; starting from scratch[/]")
        elif existing is not None:
            raise ConfigError(
                f"train.output_dir: {out} already holds checkpoints; pass --resume to continue, or choose a new folder"
            )
        state = self._check_resume(checkpoint, info) if checkpoint is not None else None

        random.seed(t.seed)
        np.random.seed(t.seed)
        torch.manual_seed(t.seed)
        load_device = torch.device("cpu") if sharded else device  # fully_shard moves each rank's shard
        lora = s.model.lora
        if checkpoint is not None and lora is None:
            encoder = SparseEncoder.load(checkpoint, device=load_device, precision="fp32")
        else:  # LoRA resumes from the frozen backbone plus the saved adapters (prosper.modeling.lora)
            encoder = SparseEncoder.from_settings(self._model_settings(), device=load_device)
        if lora is not None:
            from prosper.modeling.lora import add_adapters, load_trainable

            add_adapters(encoder, lora)
            if checkpoint is not None:
                load_trainable(encoder, checkpoint / ckpt.STATE_DIR)
        encoder.full_settings = s  # save() writes the whole run's settings to prosper.yaml
        encoder.train()
        loss_fn.bind_scoring(encoder.score)  # Eq. 11, as configured
        self.encoder = encoder

        from prosper.training.negatives import training_data_settings

        data = load_training_data(training_data_settings(s, out, main, lambda: barrier(info)))
        if main:
            for line in data.report.warnings():
                self.console.print(f"[yellow]warning:[/] {line}", highlight=False)
        if loss_fn.requires_teacher and (not data.has_teacher or t.hard_negatives < 1):
            raise ConfigError(
                "train.loss: margin_mse needs a triples file with teacher_scores and train.hard_negatives >= 1"
            )
        plan = BatchPlan(len(data), t.batch_size, t.seed, info.world_size)
        total_steps = t.max_steps
        if t.epochs is not None:
            total_steps = min(total_steps, max(1, math.ceil(t.epochs * plan.batches_per_epoch / t.grad_accumulation)))
        parallel = wrap_model(_DualEncoder.wrap(encoder), encoder, t.strategy, info, device, t.find_unused_parameters)
        forward = parallel.forward
        dev = build_dev_set(s.data, t.seed) if main or parallel.every_rank_evaluates else None
        params = [p for p in encoder.parameters() if p.requires_grad]
        optimizer = build_optimizer(encoder, t.optimizer, encoder.kind)
        scheduler = build_scheduler(optimizer, t.warmup_steps, total_steps)

        budget = None
        if t.target_terms is not None:
            from prosper.training.budget import TermBudget

            budget = TermBudget(t.target_terms, total_steps)
        step, position, best, best_step = 0, 0, None, None
        if checkpoint is not None:
            sdir = checkpoint / ckpt.STATE_DIR
            parallel.load_optimizer_state(optimizer, sdir / "optimizer.pt")
            scheduler.load_state_dict(ckpt.torch_load(sdir / "scheduler.pt"))
            if scaler is not None:
                scaler.load_state_dict(ckpt.torch_load(sdir / "scaler.pt"))
            ckpt.set_rng_state(ckpt.torch_load(sdir / f"rng-rank{info.rank}.pt"))
            step, position = int(state["step"]), int(state["position"])
            best, best_step = state.get("best_metric"), state.get("best_step")
            if budget is not None:
                budget.load_state_dict(state.get("budget", {}))
        tmp_tag = broadcast_object(os.getpid(), info)

        log = MetricsLog(out / "metrics.jsonl", enabled=main)
        if main:
            if checkpoint is not None:
                log.truncate_after(step)
                self.console.print(f"resuming from {checkpoint} (step {step})", highlight=False)
            atomic_write_text(out / "settings.yaml", s.to_yaml())
            log.write({"event": "start", "step": step, "total_steps": total_steps, "examples": len(data),
                       "world_size": info.world_size, "resumed": checkpoint is not None})

        lfw = encoder.settings.lfw
        caps = {
            "query": lfw.k_query if lfw.enabled else encoder.vocab_size,
            "item": lfw.k_item if lfw.enabled else encoder.vocab_size,
        }
        ramp_end = max((r.ramp_steps for r in regularizers.values()), default=None)
        guard = CollapseGuard(encoder.vocab_size, caps, ramp_end, t.collapse_dense_fraction)

        def save_checkpoint(at_step: int) -> Path:
            name = ckpt.checkpoint_name(at_step)
            root = ckpt.checkpoints_dir(out)
            final = root / name
            tmp = root / f"{name}.tmp-{tmp_tag}"
            model_state, optimizer_state = parallel.model_state(), parallel.optimizer_state(optimizer)
            if main:
                root.mkdir(parents=True, exist_ok=True)
                _write_model(encoder, tmp, model_state, trainable=True)
                sdir = tmp / ckpt.STATE_DIR
                ckpt.torch_save(optimizer_state, sdir / "optimizer.pt")
                ckpt.torch_save(scheduler.state_dict(), sdir / "scheduler.pt")
                if scaler is not None:
                    ckpt.torch_save(scaler.state_dict(), sdir / "scaler.pt")
            barrier(info)
            ckpt.torch_save(ckpt.rng_state(), tmp / ckpt.STATE_DIR / f"rng-rank{info.rank}.pt")
            barrier(info)
            if main:
                ckpt.write_json(
                    tmp / ckpt.STATE_DIR / "state.json",
                    {
                        "step": at_step,
                        "position": position,
                        "epoch": plan.epoch_of(max(0, position - 1)),
                        "total_steps": total_steps,
                        "best_metric": best,
                        "best_step": best_step,
                        "world_size": info.world_size,
                        "budget": budget.state_dict() if budget is not None else None,
                        "settings": s.model_dump(mode="json"),
                    },
                )
                os.replace(tmp, final)
                ckpt.prune(out, t.keep_last)
            barrier(info)
            for callback in self.callbacks:
                callback.on_checkpoint(self, at_step, final)
            return final

        progress = _progress(self.console, enabled=main and t.progress)
        task = progress.add_task("training", total=total_steps, completed=step, stats="")
        window: dict[str, float] = {}
        window_steps = 0
        last_logs: dict[str, Any] = {}
        last_eval = None
        started = time.perf_counter()
        start_step = step
        with progress:
            while step < total_steps:
                update = step + 1  # λ schedules and logs count updates from 1
                sums = {"loss": 0.0, "rank_loss": 0.0, "nnz_query": 0.0, "nnz_item": 0.0}
                for micro in range(t.grad_accumulation):
                    indices = plan.indices(position, info.rank)
                    batch = make_batch(data, indices, position, t.seed, t.hard_negatives)
                    position += 1
                    qf = _to(encoder.tokenize(batch.query_texts, "query"), device)
                    df = _to(encoder.tokenize(batch.item_texts, "item"), device)
                    sync = parallel.gradient_sync(micro == t.grad_accumulation - 1)
                    with sync:
                        with autocast():
                            q_base, q_vec, d_base, d_vec = forward(qf, df)
                        rank_loss = loss_fn(q_vec.float(), d_vec.float(), batch)
                        total = rank_loss
                        for reg_name, reg in regularizers.items():
                            for side, base, final in (("query", q_base, q_vec), ("item", d_base, d_vec)):
                                weight = budget.weight(reg, update, side) if budget else reg.weight(update, side)
                                value = reg.penalty(base if reg.target == "base" else final)
                                total = total + weight * value
                                key = f"{reg_name}_{side}"
                                sums[key] = sums.get(key, 0.0) + float(value.detach()) / t.grad_accumulation
                                sums[f"lambda_{key}"] = weight
                        scaled = total / t.grad_accumulation
                        if scaler is not None:
                            scaler.scale(scaled).backward()
                        else:
                            scaled.backward()
                    sums["loss"] += float(total.detach()) / t.grad_accumulation
                    sums["rank_loss"] += float(rank_loss.detach()) / t.grad_accumulation
                    sums["nnz_query"] += float((q_vec.detach() > 0).sum(-1).float().mean()) / t.grad_accumulation
                    sums["nnz_item"] += float((d_vec.detach() > 0).sum(-1).float().mean()) / t.grad_accumulation
                if scaler is not None:
                    scaler.unscale_(optimizer)
                grad_norm = None
                if t.max_grad_norm is not None:
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm))
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                lr = scheduler.get_last_lr()[0]
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                if budget is not None:  # every rank steers with the same (averaged) widths
                    widths = all_reduce_mean([sums["nnz_query"], sums["nnz_item"]], info, device)
                    budget.observe(step, dict(zip(("query", "item"), widths)))
                    for side, target in (("query", budget.targets["query"]), ("item", budget.targets["item"])):
                        if target is not None:
                            sums[f"target_{side}"] = budget.target(step, side)
                if not math.isfinite(sums["loss"]):
                    raise ConfigError(
                        f"step {step}: the loss is not finite ({sums['loss']}); lower train.optimizer.lr or "
                        "use train.amp=none/bf16"
                    )
                sums["lr"] = lr
                if grad_norm is not None:
                    sums["grad_norm"] = grad_norm
                for key, value in sums.items():
                    window[key] = window.get(key, 0.0) + value
                window_steps += 1
                progress.update(task, completed=step, stats=_stats_line(sums))

                if step % t.log_every == 0 or step == total_steps:
                    keys = sorted(window)
                    values = all_reduce_mean([window[k] / window_steps for k in keys], info, device)
                    logs = dict(zip(keys, values))
                    elapsed = time.perf_counter() - started
                    logs.update(
                        event="train",
                        step=step,
                        epoch=round(position / plan.batches_per_epoch, 4),
                        steps_per_s=(step - start_step) / elapsed if elapsed > 0 else None,
                    )
                    window, window_steps = {}, 0
                    last_logs = logs
                    log.write(logs)
                    for message in guard.check(step, {"query": logs["nnz_query"], "item": logs["nnz_item"]}):
                        if main:
                            _loud(self.console, message)
                        log.write({"event": "warning", "step": step, "message": message})
                    for callback in self.callbacks:
                        callback.on_log(self, step, logs)

                if dev is not None and (step % t.eval_every == 0 or step == total_steps):
                    with torch.random.fork_rng(devices=[]), parallel.evaluation():
                        metrics = evaluate_encoder(
                            encoder, dev, recall_k=t.eval_recall_k, batch_size=t.eval_batch_size
                        )
                    if parallel.every_rank_evaluates:  # one decision (best/) for all ranks
                        metrics = broadcast_object(metrics, info)
                    key = "mrr@10" if t.best_metric == "mrr@10" else f"recall@{t.eval_recall_k}"
                    improved = best is None or metrics[key] > best
                    if improved:
                        best, best_step = metrics[key], step
                        _save_model(encoder, out / "best", tmp_tag, parallel, main)
                    last_eval = metrics
                    log.write({"event": "eval", "step": step, **metrics, "best": best, "best_step": best_step})
                    if main:
                        progress.console.print(
                            f"step {step}: dev MRR@10 {metrics['mrr@10']:.4f}, Recall@{t.eval_recall_k} "
                            f"{metrics[f'recall@{t.eval_recall_k}']:.4f}, nnz q {metrics['nnz_query']:.1f} "
                            f"d {metrics['nnz_item']:.1f}" + (" (best)" if improved else ""),
                            highlight=False,
                        )
                barrier(info)

                if step % t.save_every == 0 or step == total_steps:
                    save_checkpoint(step)

        final_dir = out / "final" if main else None
        _save_model(encoder, out / "final", tmp_tag, parallel, main)
        if main:
            log.write({"event": "end", "step": step, "best_metric": best, "best_step": best_step})
            log.close()
        barrier(info)
        best_dir = out / "best" if best is not None and main else None
        return TrainResult(out, final_dir, best_dir, step, best, last_logs, last_eval)


# -- helpers ------------------------------------------------------------------------------
def _to(features: dict, device) -> dict:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}


def _save_model(encoder, directory: Path, tag, parallel, main: bool) -> None:
    """``best/`` and ``final/``: the model alone (LoRA merged). Every rank calls it (FSDP gathers)."""
    state = parallel.model_state()
    if main:
        tmp = directory.with_name(f"{directory.name}.tmp-{tag}")
        _write_model(encoder, tmp, state)
        replace_dir(tmp, directory)


def _write_model(encoder, directory: Path, state, trainable: bool = False) -> None:
    """Write ``encoder`` (``state``: a gathered full state dict, or ``None`` for the live modules);
    with ``trainable``, also the trained tensors a LoRA run resumes from (trainer_state/)."""
    from prosper.modeling.checkpoint import save_checkpoint

    save_checkpoint(encoder, directory, state=state)
    if not trainable:
        return
    sdir = directory / ckpt.STATE_DIR
    sdir.mkdir(parents=True, exist_ok=True)
    if getattr(encoder, "lora_layers", None):
        from prosper.modeling.lora import save_trainable

        save_trainable(encoder, state if state is not None else encoder.state_dict(), sdir)


def _stats_line(sums: dict) -> str:
    parts = [f"loss {sums['loss']:.4f}"]
    regs = sorted(k for k in sums if k.endswith("_query") and not k.startswith(("lambda_", "nnz_")))
    for key in regs:
        name = key[: -len("_query")]
        parts.append(f"{name} q {sums[key]:.3g} d {sums.get(name + '_item', 0.0):.3g}")
    parts.append(f"nnz q {sums['nnz_query']:.0f} d {sums['nnz_item']:.0f}")
    parts.append(f"lr {sums['lr']:.2e}")
    return " | ".join(parts)


def _loud(console, message: str) -> None:
    from rich.panel import Panel

    console.print(Panel(message, title="collapse guard", style="bold red"))


def _progress(console, enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[stats]}"),
        console=console,
        disable=not enabled,
        transient=False,
    )
