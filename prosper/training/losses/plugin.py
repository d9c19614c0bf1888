"""Built-in ranking losses, registered through the ``prosper`` entry-point group.

The loss modules import torch, so the factories import them lazily: loading plugins stays light.
"""

from __future__ import annotations

from prosper import hookimpl
from prosper.training.losses.params import InBatchNLLParams, MarginMSEParams


def in_batch_nll(params: InBatchNLLParams):
    """InfoNCE with in-batch negatives (Eq. 12); optional hard negatives, τ, cross-rank gather."""
    from prosper.training.losses.in_batch_nll import InBatchNLLLoss

    return InBatchNLLLoss(params)


def margin_mse(params: MarginMSEParams):
    """Margin-MSE distillation from teacher score margins (Hofstätter et al., 2020)."""
    from prosper.training.losses.margin_mse import MarginMSELoss

    return MarginMSELoss(params)


@hookimpl
def register_losses(register):
    register("in_batch_nll", in_batch_nll, InBatchNLLParams)
    register("margin_mse", margin_mse, MarginMSEParams)
