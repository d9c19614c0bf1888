"""Resuming a training run exactly: where to resume from, what must not have changed, and the
checkpoints that make it possible.

A training checkpoint (``checkpoints/step-N/``) is the model (as :func:`save_checkpoint` writes
it, LoRA merged) plus ``trainer_state/``: optimizer, LR schedule, loss scaler, every rank's RNG,
the data position, the best dev metric, the term-budget controller and the run's settings. An
interrupted run resumed from it ends with the same weights as an uninterrupted one, because
everything that decides the trajectory is restored and settings that would change it are refused
(:data:`RESUME_FREE` lists the ones that may change).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prosper.errors import CheckpointError, ConfigError
from prosper.training import checkpointing as ckpt
from prosper.training.distributed import DistInfo, barrier

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
class Position:
    """Where a run is: optimizer updates done, batches drawn, the best dev metric so far."""

    step: int = 0
    position: int = 0
    best: float | None = None
    best_step: int | None = None


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


def find_resume_checkpoint(out: Path, resume: bool, info: DistInfo, console) -> Path | None:
    """The checkpoint to resume from (``None``: start afresh); debris of interrupted writes is
    removed first. Refuses to start over a folder that holds checkpoints unless ``resume``."""
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.remove_partial(out)
    barrier(info)
    existing = ckpt.latest_checkpoint(out)
    if not resume:
        if existing is not None:
            raise ConfigError(
                f"train.output_dir: {out} already holds checkpoints; pass --resume to continue, or choose a new folder"
            )
        return None
    if existing is None and info.is_main:
        console.print(f"[yellow]--resume: no checkpoint in {out}; starting from scratch[/]")
    return existing


def check_resume(checkpoint: Path, settings, info: DistInfo) -> dict:
    """The checkpoint's state, after checking it was written by this run's settings and world."""
    state = ckpt.read_state(checkpoint)
    if state.get("world_size") != info.world_size:
        raise CheckpointError(
            f"{checkpoint}: written by {state.get('world_size')} process(es), resumed with {info.world_size}; "
            "the data order depends on it"
        )
    changed = settings_differences(state.get("settings", {}), settings.model_dump(mode="json"))
    if changed:
        raise ConfigError(
            f"--resume: {changed[0]} differs from the checkpoint's settings ({checkpoint}); "
            "resume with the same settings or start a new train.output_dir"
        )
    return state


def restore(checkpoint: Path, state: dict, info: DistInfo, parallel, optimizer, scheduler, scaler, budget) -> Position:
    """Load optimizer, schedule, scaler, this rank's RNG and the budget; the run's position."""
    sdir = checkpoint / ckpt.STATE_DIR
    parallel.load_optimizer_state(optimizer, sdir / "optimizer.pt")
    scheduler.load_state_dict(ckpt.torch_load(sdir / "scheduler.pt"))
    if scaler is not None:
        scaler.load_state_dict(ckpt.torch_load(sdir / "scaler.pt"))
    ckpt.set_rng_state(ckpt.torch_load(sdir / f"rng-rank{info.rank}.pt"))
    if budget is not None:
        budget.load_state_dict(state.get("budget", {}))
    return Position(int(state["step"]), int(state["position"]), state.get("best_metric"), state.get("best_step"))


def write_checkpoint(run, at: Position) -> Path:
    """``checkpoints/step-N/`` for ``run`` (a :class:`prosper.training.trainer.TrainingRun`),
    atomically: every rank adds its RNG state, rank 0 renames the folder into place and prunes."""
    info, out = run.info, run.out
    name = ckpt.checkpoint_name(at.step)
    root = ckpt.checkpoints_dir(out)
    final = root / name
    tmp = root / f"{name}.tmp-{run.tmp_tag}"
    model_state, optimizer_state = run.parallel.model_state(), run.parallel.optimizer_state(run.optimizer)
    if info.is_main:
        root.mkdir(parents=True, exist_ok=True)
        write_model(run.encoder, tmp, model_state, trainable=True)
        sdir = tmp / ckpt.STATE_DIR
        ckpt.torch_save(optimizer_state, sdir / "optimizer.pt")
        ckpt.torch_save(run.scheduler.state_dict(), sdir / "scheduler.pt")
        if run.scaler is not None:
            ckpt.torch_save(run.scaler.state_dict(), sdir / "scaler.pt")
    barrier(info)
    ckpt.torch_save(ckpt.rng_state(), tmp / ckpt.STATE_DIR / f"rng-rank{info.rank}.pt")
    barrier(info)
    if info.is_main:
        ckpt.write_json(
            tmp / ckpt.STATE_DIR / "state.json",
            {
                "step": at.step,
                "position": at.position,
                "epoch": run.plan.epoch_of(max(0, at.position - 1)),
                "total_steps": run.total_steps,
                "best_metric": at.best,
                "best_step": at.best_step,
                "world_size": info.world_size,
                "budget": run.budget.state_dict() if run.budget is not None else None,
                "settings": run.settings.model_dump(mode="json"),
            },
        )
        os.replace(tmp, final)
        ckpt.prune(out, run.settings.train.keep_last)
    barrier(info)
    return final


def write_model(encoder, directory: Path, state, trainable: bool = False) -> None:
    """Write ``encoder`` (``state``: a gathered full state dict, or ``None`` for the live modules);
    with ``trainable``, also the trained tensors a LoRA run resumes from (trainer_state/)."""
    from prosper.modeling.checkpoint import save_checkpoint

    save_checkpoint(encoder, directory, state=state)
    if not trainable:
        return
    sdir = directory / ckpt.STATE_DIR
    sdir.mkdir(parents=True, exist_ok=True)
    if encoder.lora_layers:
        from prosper.modeling.lora import save_trainable

        save_trainable(encoder, state if state is not None else encoder.state_dict(), sdir)
