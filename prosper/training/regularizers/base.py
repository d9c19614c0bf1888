"""What every sparsity regularizer shares: its parameters and its scheduled weight.

A regularizer (hookspecs: ``register_regularizers``) is an object with ``penalty(vectors) ->
tensor`` and ``weight(step, side) -> float``. The trainer adds
``weight(t, "query") · penalty(w_q) + weight(t, "item") · penalty(w_d)`` to the ranking loss
(Eq. 12), where ``w`` is the BASE vector (before LRN and top-k, Eq. 13) unless ``target: final``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from prosper.training.schedules import scheduled_weight


class RegularizerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lambda_query: float = Field(5e-3, ge=0)  # λ_q at the end of the ramp (paper: 5e-3 for FLOPS)
    lambda_item: float = Field(1e-3, ge=0)  # λ_d at the end of the ramp (paper: 1e-3 for FLOPS)
    schedule: Literal["quadratic", "linear", "constant"] = "quadratic"  # quadratic: λ·min(1, t/T)^2
    ramp_steps: int = Field(400, ge=0)  # T: steps to reach the full λ
    target: Literal["base", "final"] = "base"  # base: w before LRN/LFW (Eq. 13); final: W after them


class Regularizer:
    """Base class; subclasses implement :meth:`penalty`."""

    #: short name used in logs (``flops_query`` ...)
    name = "regularizer"

    def __init__(self, params: RegularizerParams | None = None):
        self.params = params or RegularizerParams()

    @property
    def target(self) -> str:
        return self.params.target

    @property
    def ramp_steps(self) -> int:
        return self.params.ramp_steps

    def weight(self, step: int, side: str) -> float:
        """λ_side at update ``step`` under the configured schedule."""
        if side == "query":
            lam = self.params.lambda_query
        elif side == "item":
            lam = self.params.lambda_item
        else:
            raise ValueError(f"side must be 'query' or 'item', got {side!r}")
        return scheduled_weight(lam, self.params.schedule, step, self.params.ramp_steps)

    def penalty(self, vectors):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"
