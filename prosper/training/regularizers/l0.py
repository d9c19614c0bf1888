"""A differentiable surrogate of the number of non-zeros, ``||w||_0``.

We implement the log-sum relaxation of Candès, Wakin & Boyd, "Enhancing Sparsity by Reweighted
ℓ1 Minimization" (J. Fourier Anal. Appl. 14, 2008), which replaces ``||w||_0`` by
``Σ_j log(1 + |w_j|/ε)``. We divide by ``log(1 + 1/ε)`` so that a term of weight 1 counts as one
non-zero; as ε -> 0 each non-zero term's contribution tends to 1 for any fixed weight, while a
zero contributes exactly 0. Small weights are pushed to zero far harder than large ones (the
gradient is ``1 / ((ε + |w|) log(1 + 1/ε))``), unlike L1's constant pull.

``penalty(w) = mean_i Σ_j log(1 + |w_ij|/ε) / log(1 + 1/ε)``.
"""

from __future__ import annotations

import math

from pydantic import Field

from prosper.components import RegularizerParams, ScheduledRegularizer


class L0Params(RegularizerParams):
    epsilon: float = Field(0.1, gt=0)  # smaller: closer to the true count, stiffer gradient near 0


class L0Regularizer(ScheduledRegularizer):
    """Log-sum surrogate of the non-zero count (Candès, Wakin & Boyd 2008)."""


    def __init__(self, params: L0Params | None = None):
        super().__init__(params or L0Params())

    def penalty(self, vectors):
        eps = self.params.epsilon
        return (vectors.float().abs() / eps).log1p().sum(dim=-1).mean() / math.log1p(1.0 / eps)
