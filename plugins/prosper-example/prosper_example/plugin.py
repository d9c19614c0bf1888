"""Registers the ``hoyer`` regularizer with prosper.

Keep plugin modules light: this module is imported whenever prosper loads its plugins
(``prosper --help`` included), so torch is never imported at module level here; ``penalty``
receives torch tensors and uses only their methods.
"""

from __future__ import annotations

from pydantic import Field

from prosper import hookimpl
from prosper.components import RegularizerParams, ScheduledRegularizer


class HoyerParams(RegularizerParams):
    """Parameters users write next to ``name: hoyer`` (λ per side, schedule, ramp, target)."""

    lambda_query: float = Field(1e-3, ge=0)
    lambda_item: float = Field(1e-3, ge=0)


class HoyerRegularizer(ScheduledRegularizer):
    """Hoyer sparsity penalty ``mean_i (||w_i||_1 / ||w_i||_2)^2`` (Hurley & Rickard 2009,
    used for sparse retrieval by Kurtz et al.): scale-invariant, so it pushes towards fewer
    terms without shrinking the weights of the terms that stay.

    :class:`ScheduledRegularizer` gives the contract's ``weight``, ``peak_weight``, ``target``
    and ``ramp_steps`` from the params: λ ramps quadratically over ``ramp_steps`` like FLOPS.
    """

    def __init__(self, params: HoyerParams):
        super().__init__(params)

    def penalty(self, vectors):
        l1 = vectors.abs().sum(dim=-1)
        l2 = vectors.pow(2).sum(dim=-1).sqrt().clamp_min(1e-9)
        return (l1 / l2).pow(2).mean()


@hookimpl
def register_regularizers(register):
    register("hoyer", HoyerRegularizer, HoyerParams)
