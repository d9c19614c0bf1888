"""L1 regularizer: the mean over the batch of ``Σ_j |w_ij|``.

The classic convex sparsity penalty (Tibshirani, "Regression Shrinkage and Selection via the
Lasso", 1996), the baseline Paria et al. (ICLR 2020) compare FLOPS against. It treats every term
alike, whatever its document frequency.
"""

from __future__ import annotations

from prosper.components import RegularizerParams, ScheduledRegularizer


class L1Params(RegularizerParams):
    pass


class L1Regularizer(ScheduledRegularizer):
    """L1 = mean_i Σ_j |w_ij|."""


    def penalty(self, vectors):
        return vectors.float().abs().sum(dim=-1).mean()
