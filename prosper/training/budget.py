"""Term budgets: steer the regularizer weights so the vectors end up as wide as the user asks.

``train.target_terms: {query: N, item: M}`` replaces hand-tuning λ over many runs. Per side, the
weight of every regularizer becomes ``λ_side · m_side(t)`` (λ at the end of its own schedule; the
budget replaces the ramp), and the multiplier follows an integral controller in log space::

    log m(t+1) = log m(t) + rate · log( nnz(t) / target(t) )

where ``nnz(t)`` is the mean number of non-zero terms of the batch's final vectors (after LRN and
LFW, i.e. what the index stores) and ``target(t)`` moves geometrically from the first batch's
width down to the budget over the first ``ramp`` fraction of the run, so the ranking loss shapes
the vectors before sparsity bites (the role the paper's quadratic λ ramp plays). Too wide: λ grows;
too narrow: it shrinks, but never below ``min_scale`` (default 1: the configured λ is the least
pressure). A budget wider than the model wants is thus a ceiling, the vectors stay narrower, and
the controller cannot wind λ down to nothing: on Home Depot a floor of 1e-4 let λ_d fall to 1e-6
while the items were narrow, and when they later widened past the budget (77 terms for 64) it
could not climb back in time. ``cap_factor`` sets the LFW window to at most ``cap_factor × budget``
for training and inference alike, so no single vector costs much more than the budget.

Training batches are encoded in training mode (dropout on), and the index stores vectors made in
eval mode: on Home Depot the catalogue's item vectors came out 17% wider than the training
batches the controller had steered to. So every ``probe_every`` updates the trainer encodes a
fixed, seeded sample of ``probe`` training items and queries twice, in eval and in training mode
(no gradients), and the controller steers ``nnz(t) · r`` instead, ``r`` the ratio of the two
widths: the same texts and weights, so ``r`` is dropout's effect alone. (A ratio against the
batches since the previous probe swung from 0.6 to 2.3 while the widths moved, and fed the
controller's oscillation.)
"""

from __future__ import annotations

import math

SIDES = ("query", "item")
_LOG_BOUND = math.log(1e4)  # m stays at most 1e4: a runaway controller cannot explode


class TermBudget:
    """The controller of :mod:`prosper.training.budget` for one training run."""

    def __init__(self, settings, total_steps: int):
        self.targets = {side: getattr(settings, side) for side in SIDES}
        self.rate = settings.rate
        self.ramp_steps = max(1, round(settings.ramp * total_steps))
        self.log_floor = math.log(settings.min_scale)
        self.log_scale = {side: 0.0 for side in SIDES}
        self.start: dict[str, float] = {}  # the first batch's widths: where the target ramp starts
        self.probe_size = settings.probe
        self.probe_every = settings.probe_every
        self.log_ratio = {side: 0.0 for side in SIDES}  # log(eval-mode width / training-mode width), last probe
        self.probe_texts: dict[str, list[str]] = {}  # set by sample_probe

    def controls(self, side: str) -> bool:
        return self.targets[side] is not None

    def target(self, step: int, side: str) -> float:
        """The width aimed at after update ``step`` (counted from 1)."""
        goal = float(self.targets[side])
        start = self.start.get(side, goal)
        progress = step / self.ramp_steps
        if start <= goal or progress >= 1:
            return goal
        return math.exp((1 - progress) * math.log(start) + progress * math.log(goal))

    def weight(self, regularizer, step: int, side: str) -> float:
        """The weight of ``regularizer`` on ``side`` at update ``step``."""
        if not self.controls(side):
            return regularizer.weight(step, side)
        peak = regularizer.peak_weight(side)  # λ at the end of its schedule: the budget ramps instead
        return peak * math.exp(self.log_scale[side])

    def observe(self, step: int, widths: dict[str, float]) -> None:
        """Update the multipliers after update ``step`` with the batch's mean widths."""
        for side in SIDES:
            if not self.controls(side):
                continue
            width = max(float(widths[side]), 1e-3) * math.exp(self.log_ratio[side])
            self.start.setdefault(side, width)
            error = math.log(width / self.target(step, side))
            scale = self.log_scale[side] + self.rate * error
            self.log_scale[side] = min(_LOG_BOUND, max(self.log_floor, scale))

    def sample_probe(self, data, seed: int) -> None:
        """Draw the probe: ``probe`` distinct training items and queries (seeded, fixed for the run)."""
        import numpy as np

        rng = np.random.default_rng([seed, 17])
        self.probe_texts = {}
        for side, texts in (("item", data.item_texts), ("query", sorted(set(data.query_texts)))):
            take = rng.choice(len(texts), size=min(self.probe_size, len(texts)), replace=False) if texts else []
            self.probe_texts[side] = [texts[int(i)] for i in sorted(take)]

    def probe_widths(self, encoder, batch_size: int) -> dict[str, tuple[float, float]]:
        """``{side: (eval-mode width, training-mode width)}`` of the probe, without gradients."""
        import torch

        widths = {}
        for side, texts in self.probe_texts.items():
            if not texts or not self.controls(side):
                continue
            eval_width = float(encoder.encode(texts, side=side, batch_size=batch_size).nnz.mean())
            was_training = encoder.training
            encoder.train()
            try:
                with torch.no_grad():
                    nnz = [float((encoder(encoder.tokenize(texts[k : k + batch_size], side), side).vectors > 0).sum())
                           for k in range(0, len(texts), batch_size)]
            finally:
                encoder.train(was_training)
            widths[side] = (eval_width, sum(nnz) / len(texts))
        return widths

    def probe_due(self, step: int) -> bool:
        """Whether the trainer should encode the probe after update ``step``."""
        return self.probe_size > 0 and step % self.probe_every == 0

    def calibrate(self, widths: dict[str, tuple[float, float]]) -> None:
        """Take the probe's ``(eval-mode, training-mode)`` widths: ``r`` per side is their ratio."""
        for side, (eval_width, train_width) in widths.items():
            if self.controls(side):
                self.log_ratio[side] = math.log(max(eval_width, 1e-3) / max(train_width, 1e-3))

    def ratios(self) -> dict[str, float]:
        return {side: math.exp(self.log_ratio[side]) for side in SIDES if self.controls(side)}

    def multipliers(self) -> dict[str, float]:
        return {side: math.exp(self.log_scale[side]) for side in SIDES if self.controls(side)}

    # checkpoint state, so that a resumed run steers exactly as an uninterrupted one
    def state_dict(self) -> dict:
        return {"log_scale": dict(self.log_scale), "start": dict(self.start), "log_ratio": dict(self.log_ratio)}

    def load_state_dict(self, state: dict) -> None:
        self.log_scale.update(state.get("log_scale", {}))
        self.start.update(state.get("start", {}))
        self.log_ratio.update(state.get("log_ratio", {}))


def capped_window(lfw, budget_settings):
    """The LFW settings with k at most ``cap_factor × budget`` on each budgeted side (a window
    the user switched off stays off: the controller alone then sets the width)."""
    if not lfw.enabled:
        return lfw
    update = {}
    for side, key in (("query", "k_query"), ("item", "k_item")):
        target = getattr(budget_settings, side)
        if target is not None:
            update[key] = min(getattr(lfw, key), max(1, math.ceil(budget_settings.cap_factor * target)))
    if not update:
        return lfw
    return lfw.model_copy(update=update)
