"""Contract checks of ranking losses and regularizers: real gradient steps, then the trainer."""

from __future__ import annotations

import math
from pathlib import Path

from prosper.contracts import CheckReport, require
from prosper.contracts.fixtures import model_settings, sample_texts, tiny_backbone, training_settings

STEPS = 12


def _encoder(root: Path):
    import torch

    from prosper.modeling.encoder import SparseEncoder

    torch.manual_seed(0)
    encoder = SparseEncoder.from_settings(model_settings(tiny_backbone(root)), device="cpu")
    encoder.train()
    return encoder


def _fixed_batch(encoder, hard_negatives: int):
    """Features and a TrainingBatch: B queries, their positives, then h negatives per query."""
    import torch

    from prosper.components import TrainingBatch

    queries, items = sample_texts()
    b = len(queries)
    negatives = [items[(i + 1 + j) % b] for i in range(b) for j in range(hard_negatives)]
    item_texts = items + negatives
    index = list(range(b)) + [(i + 1 + j) % b for i in range(b) for j in range(hard_negatives)]
    teacher = None
    if hard_negatives:
        teacher = torch.cat([torch.full((b, 1), 5.0), torch.zeros(b, hard_negatives)], dim=1)
    batch = TrainingBatch(
        query_ids=[f"q{i}" for i in range(b)],
        query_texts=queries,
        item_ids=[f"d{i}" for i in index],
        item_texts=item_texts,
        item_index=torch.tensor(index),
        positive_index=torch.arange(b)[:, None],
        num_negatives=hard_negatives,
        teacher_scores=teacher,
    )
    return encoder.tokenize(queries, "query"), encoder.tokenize(item_texts, "item"), batch


def _descend(encoder, objective, steps: int = STEPS) -> list[float]:
    """Adam steps on ``objective()``; the values seen before each step, and after the last."""
    import torch

    optimizer = torch.optim.Adam([p for p in encoder.parameters() if p.requires_grad], lr=3e-3)
    values = []
    for _ in range(steps):
        optimizer.zero_grad()
        value = objective()
        values.append(float(value.detach()))
        value.backward()
        optimizer.step()
    with torch.no_grad():
        values.append(float(objective().detach()))
    return values


def _run_trainer(spec_loss: dict, regularizers: list[dict], root: Path, out: str) -> list[dict]:
    from prosper.training.metrics_log import read_metrics
    from prosper.training.trainer import train

    import shutil

    shutil.rmtree(root / out, ignore_errors=True)  # a fresh run each time the check is run
    settings = training_settings(root, tiny_backbone(root), spec_loss, regularizers, out)
    train(settings)
    return [row for row in read_metrics(Path(settings.train.output_dir) / "metrics.jsonl") if "loss" in row]


def check_loss(spec: dict, label: str, root: Path, report: CheckReport, registry) -> None:
    import torch

    from prosper.components import RankingLoss
    from prosper.plugins import get_registry

    loss = (registry or get_registry()).build("loss", spec, "loss")
    require(isinstance(loss, RankingLoss), label, "the factory must return a prosper.components.RankingLoss")
    require(isinstance(loss.requires_teacher, bool), label, "requires_teacher must be a bool")
    encoder = _encoder(root)
    loss.bind_scoring(encoder.score)
    qf, df, batch = _fixed_batch(encoder, hard_negatives=1 if loss.requires_teacher else 0)

    def objective():
        q = encoder(qf, "query").vectors.float()
        d = encoder(df, "item").vectors.float()
        value = loss(q, d, batch)
        require(isinstance(value, torch.Tensor) and value.dim() == 0, label, "forward must return a scalar tensor")
        return value

    values = _descend(encoder, objective)
    require(all(math.isfinite(v) for v in values), label, f"the loss must stay finite (got {values})")
    require(values[-1] < values[0], label, f"{STEPS} gradient steps on a fixed batch must lower the loss ({values[0]:.4g} -> {values[-1]:.4g})")
    report.ok(f"loss falls on a fixed batch: {values[0]:.4g} -> {values[-1]:.4g} in {STEPS} steps")
    if loss.requires_teacher:
        report.ok("trainer run skipped: the loss needs teacher scores, which the tiny shop has none of")
        return
    rows = _run_trainer(spec, [], root, f"train-loss-{spec['name']}")
    require(bool(rows) and all(math.isfinite(r["loss"]) for r in rows), label, "the trainer must log a finite loss")
    report.ok(f"the trainer ran {len(rows)} logged steps with it (final loss {rows[-1]['loss']:.4g})")


def check_regularizer(spec: dict, label: str, root: Path, report: CheckReport, registry) -> None:
    from prosper.components import Regularizer
    from prosper.plugins import get_registry

    reg = (registry or get_registry()).build("regularizer", spec, "regularizer")
    require(isinstance(reg, Regularizer), label, "the factory must return a prosper.components.Regularizer")
    require(reg.target in ("base", "final"), label, f"target must be 'base' or 'final', not {reg.target!r}")
    require(isinstance(reg.ramp_steps, int) and reg.ramp_steps >= 0, label, "ramp_steps must be an int >= 0")
    for side in ("query", "item"):
        weights = [reg.weight(step, side) for step in (1, max(1, reg.ramp_steps // 2), reg.ramp_steps + 1, reg.ramp_steps + 100)]
        peak = reg.peak_weight(side)
        require(all(isinstance(w, float) and math.isfinite(w) and w >= 0 for w in weights + [peak]), label, f"weight({side}) must be finite floats >= 0")
        require(all(w <= peak * (1 + 1e-9) + 1e-12 for w in weights), label, f"weight(step, {side!r}) must never exceed peak_weight({side!r})")
        require(abs(weights[-1] - peak) <= 1e-9 * max(1.0, peak), label, f"after ramp_steps, weight({side!r}) must equal peak_weight")
    report.ok("weight / peak_weight / target / ramp_steps are well formed")
    encoder = _encoder(root)
    queries, items = sample_texts()
    features = encoder.tokenize(queries + items, "item")

    def objective():
        out = encoder(features, "item")
        return reg.penalty(out.base if reg.target == "base" else out.vectors)

    values = _descend(encoder, objective)
    require(all(math.isfinite(v) for v in values), label, f"the penalty must stay finite (got {values})")
    require(values[-1] < values[0], label, f"{STEPS} steps minimising the penalty alone must lower it ({values[0]:.4g} -> {values[-1]:.4g})")
    report.ok(f"minimising the penalty lowers it: {values[0]:.4g} -> {values[-1]:.4g} in {STEPS} steps")
    rows = _run_trainer({"name": "in_batch_nll"}, [spec], root, f"train-regularizer-{spec['name']}")
    key = f"{spec['name']}_query"
    require(bool(rows) and all(math.isfinite(r["loss"]) for r in rows), label, "the trainer must log a finite loss")
    require(any(key in r for r in rows), label, f"the trainer must log the penalty as {key}")
    report.ok(f"the trainer ran {len(rows)} logged steps with it and logged {key}")
