"""Weight schedules for the sparsity regularizers (METHOD.md, Eq. 12-13 recipe).

The paper ramps each λ quadratically, ``λ_t = λ · min(1, t/T)^2`` (T ≈ 1.5 epochs; the template
config uses T = 400 steps), so that the ranking loss shapes the vectors before sparsity bites.
``t`` is the index of the optimizer update, counted from 1 for the first update; ``T = 0``
means "no ramp" (full λ from the start).
"""

from __future__ import annotations

from typing import Literal

ScheduleName = Literal["quadratic", "linear", "constant"]
SCHEDULES = ("quadratic", "linear", "constant")


def ramp_factor(schedule: str, step: int, ramp_steps: int) -> float:
    """The multiplier in [0, 1] applied to λ at update ``step``.

    quadratic: ``min(1, t/T)^2`` (the paper); linear: ``min(1, t/T)``; constant: ``1``.
    """
    if schedule == "constant" or ramp_steps <= 0:
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
        return 1.0
    progress = min(1.0, max(0, step) / ramp_steps)
    if schedule == "quadratic":
        return progress * progress
    if schedule == "linear":
        return progress
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def scheduled_weight(lam: float, schedule: str, step: int, ramp_steps: int) -> float:
    """``λ · ramp_factor(schedule, step, T)``."""
    return float(lam) * ramp_factor(schedule, step, ramp_steps)
