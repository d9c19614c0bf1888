"""FLOPS regularizer (METHOD.md Eq. 13; Paria et al., "Minimizing FLOPs to Learn Efficient
Sparse Representations", ICLR 2020).

``FLOPS(w) = Σ_j ( (1/B) Σ_i |w_ij| )^2``: the squared mean activation of each vocabulary term
over the batch, summed over the vocabulary. It approximates the expected number of
floating-point operations of a query-item dot product and, unlike L1, pushes hardest on terms
that are active for many inputs. Computed on the base vector ``w`` (before LRN and top-k).
"""

from __future__ import annotations

from prosper.components import RegularizerParams, ScheduledRegularizer


class FlopsParams(RegularizerParams):
    pass


class FlopsRegularizer(ScheduledRegularizer):
    """FLOPS = Σ_j (mean_i |w_ij|)^2 (Eq. 13)."""


    def penalty(self, vectors):
        return vectors.float().abs().mean(dim=0).pow(2).sum()
