"""The PROSPER training loop (METHOD.md, Eq. 12-13 and the training recipe).

Over 300 lines on purpose: the loop's named steps (start, train step, log, validate, checkpoint,
finish) share one :class:`TrainingRun`; resume lives in :mod:`prosper.training.resume`.

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

from prosper.errors import ConfigError, DeviceError
from prosper.fileio import atomic_write_text, replace_dir
from prosper.progress import ProgressBar
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
from prosper.training.resume import (
    Position,
    check_resume,
    find_resume_checkpoint,
    restore,
    write_checkpoint,
    write_model,
)

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



@dataclass
class TrainingRun:
    """Everything one run holds while it trains; built by :meth:`Trainer._start`."""

    settings: Any
    info: DistInfo
    device: Any
    out: Path
    encoder: Any
    parallel: Any
    loss_fn: Any
    regularizers: dict
    budget: Any
    data: Any
    plan: Any
    total_steps: int
    optimizer: Any
    scheduler: Any
    scaler: Any
    autocast: Any
    dev: Any
    log: MetricsLog
    guard: Any
    tmp_tag: Any
    at: Position
    progress: ProgressBar | None = None
    window: dict[str, float] = field(default_factory=dict)
    window_steps: int = 0
    last_logs: dict[str, Any] = field(default_factory=dict)
    last_eval: dict[str, float] | None = None
    started: float = 0.0
    start_step: int = 0

    @property
    def main(self) -> bool:
        return self.info.is_main


class Trainer:
    """The loop, in named steps: :meth:`_start` (state), :meth:`_train_step`, :meth:`_log`,
    :meth:`_validate`, :meth:`_checkpoint`, :meth:`_finish`. ``console`` is the rich console the
    caller draws on (the CLI's); a plain one is made when none is given."""

    def __init__(self, settings, *, resume: bool = False, callbacks=(), console=None):
        self.settings = settings
        self.resume = resume
        self.callbacks = list(callbacks)
        if console is None:
            from rich.console import Console

            console = Console()
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

    def _load_encoder(self, checkpoint: Path | None, device, sharded: bool):
        import torch

        from prosper.modeling.encoder import SparseEncoder

        load_device = torch.device("cpu") if sharded else device  # fully_shard moves each rank's shard
        lora = self.settings.model.lora
        if checkpoint is not None and lora is None:
            encoder = SparseEncoder.load(checkpoint, device=load_device, precision="fp32")
        else:  # LoRA resumes from the frozen backbone plus the saved adapters (prosper.modeling.lora)
            encoder = SparseEncoder.from_settings(self._model_settings(), device=load_device)
        if lora is not None:
            from prosper.modeling.lora import add_adapters, load_trainable

            add_adapters(encoder, lora)
            if checkpoint is not None:
                load_trainable(encoder, checkpoint / ckpt.STATE_DIR)
        encoder.full_settings = self.settings  # save() writes the whole run's settings to prosper.yaml
        encoder.train()
        return encoder

    def _load_data(self, info: DistInfo, loss_fn):
        from prosper.data.training import load_training_data
        from prosper.training.negatives import training_data_settings

        s, t = self.settings, self.settings.train
        data = load_training_data(training_data_settings(s, self.output_dir, info.is_main, lambda: barrier(info)))
        if info.is_main:
            for line in data.report.warnings():
                self.console.print(f"[yellow]warning:[/] {line}", highlight=False)
        if loss_fn.requires_teacher and (not data.has_teacher or t.hard_negatives < 1):
            raise ConfigError(
                f"train.loss: {t.loss.name} needs a triples file with teacher_scores and train.hard_negatives >= 1"
            )
        return data

    def _start(self, info: DistInfo, device) -> TrainingRun:
        """Build or restore every piece of state the loop needs."""
        import random

        import numpy as np
        import torch

        from prosper.data.training import BatchPlan
        from prosper.training.collapse import CollapseGuard
        from prosper.training.optim import build_optimizer, build_scheduler
        from prosper.training.validation import build_dev_set

        self._apply_budget_window()
        s, t, out = self.settings, self.settings.train, self.output_dir
        loss_fn, regularizers = self._build_components()
        sharded = t.strategy == "fsdp" and info.enabled  # prosper.training.fsdp
        if sharded:
            from prosper.training.fsdp import check_settings

            check_settings(t)
        autocast, scaler = self._amp(device)
        checkpoint = find_resume_checkpoint(out, self.resume, info, self.console)
        state = check_resume(checkpoint, s, info) if checkpoint is not None else None

        random.seed(t.seed)
        np.random.seed(t.seed)
        torch.manual_seed(t.seed)
        encoder = self._load_encoder(checkpoint, device, sharded)
        loss_fn.bind_scoring(encoder.score)  # Eq. 11, as configured
        self.encoder = encoder
        data = self._load_data(info, loss_fn)
        plan = BatchPlan(len(data), t.batch_size, t.seed, info.world_size)
        total_steps = t.max_steps
        if t.epochs is not None:
            total_steps = min(total_steps, max(1, math.ceil(t.epochs * plan.batches_per_epoch / t.grad_accumulation)))
        parallel = wrap_model(_DualEncoder.wrap(encoder), encoder, t.strategy, info, device, t.find_unused_parameters)
        dev = build_dev_set(s.data, t.seed) if info.is_main or parallel.every_rank_evaluates else None
        optimizer = build_optimizer(encoder, t.optimizer, encoder.kind)
        scheduler = build_scheduler(optimizer, t.warmup_steps, total_steps)
        budget = None
        if t.target_terms is not None:
            from prosper.training.budget import TermBudget

            budget = TermBudget(t.target_terms, total_steps)
            budget.sample_probe(data, t.seed)
        at = Position()
        if checkpoint is not None:
            at = restore(checkpoint, state, info, parallel, optimizer, scheduler, scaler, budget)

        log = MetricsLog(out / "metrics.jsonl", enabled=info.is_main)
        if info.is_main:
            if checkpoint is not None:
                log.truncate_after(at.step)
                self.console.print(f"resuming from {checkpoint} (step {at.step})", highlight=False)
            atomic_write_text(out / "settings.yaml", s.to_yaml())
            log.write({"event": "start", "step": at.step, "total_steps": total_steps, "examples": len(data),
                       "world_size": info.world_size, "resumed": checkpoint is not None})
        lfw = encoder.settings.lfw
        caps = {
            "query": lfw.k_query if lfw.enabled else encoder.vocab_size,
            "item": lfw.k_item if lfw.enabled else encoder.vocab_size,
        }
        ramp_end = max((r.ramp_steps for r in regularizers.values()), default=None)
        return TrainingRun(
            settings=s, info=info, device=device, out=out, encoder=encoder, parallel=parallel, loss_fn=loss_fn,
            regularizers=regularizers, budget=budget, data=data, plan=plan, total_steps=total_steps,
            optimizer=optimizer, scheduler=scheduler, scaler=scaler, autocast=autocast, dev=dev, log=log,
            guard=CollapseGuard(encoder.vocab_size, caps, ramp_end, t.collapse_dense_fraction),
            tmp_tag=broadcast_object(os.getpid(), info), at=at,
        )

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
        run = self._start(info, device)
        t = run.settings.train
        run.started, run.start_step = time.perf_counter(), run.at.step
        with ProgressBar(run.total_steps, "training", enabled=run.main and t.progress, unit="steps",
                         console=self.console, stats=True) as run.progress:
            run.progress.update(completed=run.at.step)
            while run.at.step < run.total_steps:
                self._train_step(run)
                step = run.at.step
                if step % t.log_every == 0 or step == run.total_steps:
                    self._log(run)
                if run.dev is not None and (step % t.eval_every == 0 or step == run.total_steps):
                    self._validate(run)
                barrier(info)
                if step % t.save_every == 0 or step == run.total_steps:
                    self._checkpoint(run)
        return self._finish(run)

    def _train_step(self, run: TrainingRun) -> dict[str, float]:
        """One optimizer update over ``grad_accumulation`` micro-batches; adds to the log window."""
        import torch

        from prosper.data.training import make_batch

        t, encoder, device = run.settings.train, run.encoder, run.device
        update = run.at.step + 1  # λ schedules and logs count updates from 1
        sums = {"loss": 0.0, "rank_loss": 0.0, "nnz_query": 0.0, "nnz_item": 0.0}
        for micro in range(t.grad_accumulation):
            indices = run.plan.indices(run.at.position, run.info.rank)
            batch = make_batch(run.data, indices, run.at.position, t.seed, t.hard_negatives)
            run.at.position += 1
            qf = _to(encoder.tokenize(batch.query_texts, "query"), device)
            df = _to(encoder.tokenize(batch.item_texts, "item"), device)
            with run.parallel.gradient_sync(micro == t.grad_accumulation - 1):
                with run.autocast():
                    q_base, q_vec, d_base, d_vec = run.parallel.forward(qf, df)
                rank_loss = run.loss_fn(q_vec.float(), d_vec.float(), batch)
                total = rank_loss
                for reg_name, reg in run.regularizers.items():
                    for side, base, final in (("query", q_base, q_vec), ("item", d_base, d_vec)):
                        weight = run.budget.weight(reg, update, side) if run.budget else reg.weight(update, side)
                        value = reg.penalty(base if reg.target == "base" else final)
                        total = total + weight * value
                        key = f"{reg_name}_{side}"
                        sums[key] = sums.get(key, 0.0) + float(value.detach()) / t.grad_accumulation
                        sums[f"lambda_{key}"] = weight
                scaled = total / t.grad_accumulation
                (run.scaler.scale(scaled) if run.scaler is not None else scaled).backward()
            sums["loss"] += float(total.detach()) / t.grad_accumulation
            sums["rank_loss"] += float(rank_loss.detach()) / t.grad_accumulation
            sums["nnz_query"] += float((q_vec.detach() > 0).sum(-1).float().mean()) / t.grad_accumulation
            sums["nnz_item"] += float((d_vec.detach() > 0).sum(-1).float().mean()) / t.grad_accumulation
        optimizer, scaler = run.optimizer, run.scaler
        if scaler is not None:
            scaler.unscale_(optimizer)
        if t.max_grad_norm is not None:
            params = [p for p in encoder.parameters() if p.requires_grad]
            sums["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm))
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        sums["lr"] = run.scheduler.get_last_lr()[0]
        run.scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        run.at.step += 1
        step = run.at.step
        if run.budget is not None:  # every rank steers with the same (averaged) widths
            widths = all_reduce_mean([sums["nnz_query"], sums["nnz_item"]], run.info, device)
            run.budget.observe(step, dict(zip(("query", "item"), widths)))
            if run.budget.probe_due(step):  # every rank encodes the same probe: the same ratios
                with torch.random.fork_rng(devices=[]), run.parallel.evaluation():
                    run.budget.calibrate(run.budget.probe_widths(encoder, t.eval_batch_size))
            for side, ratio in run.budget.ratios().items():
                sums[f"width_ratio_{side}"] = ratio
            for side in ("query", "item"):
                if run.budget.targets[side] is not None:
                    sums[f"target_{side}"] = run.budget.target(step, side)
        if not math.isfinite(sums["loss"]):
            raise ConfigError(
                f"step {step}: the loss is not finite ({sums['loss']}); lower train.optimizer.lr or use train.amp=none/bf16"
            )
        for key, value in sums.items():
            run.window[key] = run.window.get(key, 0.0) + value
        run.window_steps += 1
        run.progress.update(completed=step, stats=_stats_line(sums))
        return sums

    def _log(self, run: TrainingRun) -> None:
        """Average the window over steps and ranks into one metrics.jsonl line; the collapse guard."""
        step = run.at.step
        keys = sorted(run.window)
        values = all_reduce_mean([run.window[k] / run.window_steps for k in keys], run.info, run.device)
        logs = dict(zip(keys, values))
        elapsed = time.perf_counter() - run.started
        logs.update(
            event="train",
            step=step,
            epoch=round(run.at.position / run.plan.batches_per_epoch, 4),
            steps_per_s=(step - run.start_step) / elapsed if elapsed > 0 else None,
        )
        run.window, run.window_steps = {}, 0
        run.last_logs = logs
        run.log.write(logs)
        for message in run.guard.check(step, {"query": logs["nnz_query"], "item": logs["nnz_item"]}):
            if run.main:
                _loud(self.console, message)
            run.log.write({"event": "warning", "step": step, "message": message})
        for callback in self.callbacks:
            callback.on_log(self, step, logs)

    def _validate(self, run: TrainingRun) -> None:
        """Dev metrics through the evaluation pipeline; the best model goes to ``best/``."""
        import torch

        from prosper.training.validation import evaluate_encoder

        t, at = run.settings.train, run.at
        with torch.random.fork_rng(devices=[]), run.parallel.evaluation():
            metrics = evaluate_encoder(run.encoder, run.dev, recall_k=t.eval_recall_k, batch_size=t.eval_batch_size)
        if run.parallel.every_rank_evaluates:  # one decision (best/) for all ranks
            metrics = broadcast_object(metrics, run.info)
        key = "mrr@10" if t.best_metric == "mrr@10" else f"recall@{t.eval_recall_k}"
        improved = at.best is None or metrics[key] > at.best
        if improved:
            at.best, at.best_step = metrics[key], at.step
            _save_model(run, run.out / "best")
        run.last_eval = metrics
        run.log.write({"event": "eval", "step": at.step, **metrics, "best": at.best, "best_step": at.best_step})
        if run.main:
            self.console.print(
                f"step {at.step}: dev MRR@10 {metrics['mrr@10']:.4f}, Recall@{t.eval_recall_k} "
                f"{metrics[f'recall@{t.eval_recall_k}']:.4f}, nnz q {metrics['nnz_query']:.1f} "
                f"d {metrics['nnz_item']:.1f}" + (" (best)" if improved else ""),
                highlight=False,
            )

    def _checkpoint(self, run: TrainingRun) -> Path:
        final = write_checkpoint(run, run.at)
        for callback in self.callbacks:
            callback.on_checkpoint(self, run.at.step, final)
        return final

    def _finish(self, run: TrainingRun) -> TrainResult:
        """``final/`` (and the end of metrics.jsonl); the result names ``best/`` if there is one."""
        at, main = run.at, run.main
        _save_model(run, run.out / "final")
        if main:
            run.log.write({"event": "end", "step": at.step, "best_metric": at.best, "best_step": at.best_step})
            run.log.close()
        barrier(run.info)
        final_dir = run.out / "final" if main else None
        best_dir = run.out / "best" if at.best is not None and main else None
        return TrainResult(run.out, final_dir, best_dir, at.step, at.best, run.last_logs, run.last_eval)


# -- helpers ------------------------------------------------------------------------------
def _to(features: dict, device) -> dict:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}


def _save_model(run: TrainingRun, directory: Path) -> None:
    """``best/`` and ``final/``: the model alone (LoRA merged). Every rank calls it (FSDP gathers)."""
    state = run.parallel.model_state()
    if run.main:
        tmp = directory.with_name(f"{directory.name}.tmp-{run.tmp_tag}")
        write_model(run.encoder, tmp, state)
        replace_dir(tmp, directory)


def _stats_line(sums: dict) -> str:
    parts = [f"loss {sums['loss']:.4f}"]
    regs = sorted(k for k in sums if k.endswith("_query") and not k.startswith(("lambda_", "nnz_", "target_")))
    for key in regs:
        name = key[: -len("_query")]
        parts.append(f"{name} q {sums[key]:.3g} d {sums.get(name + '_item', 0.0):.3g}")
    parts.append(f"nnz q {sums['nnz_query']:.0f} d {sums['nnz_item']:.0f}")
    parts.append(f"lr {sums['lr']:.2e}")
    return " | ".join(parts)


def _loud(console, message: str) -> None:
    from rich.panel import Panel

    console.print(Panel(message, title="collapse guard", style="bold red"))
