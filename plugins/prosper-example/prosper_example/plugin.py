"""Registers the ``hoyer`` regularizer with prosper.

Keep plugin modules light: this module is imported whenever prosper loads its plugins
(``prosper --help`` included), so torch is imported inside the methods that need it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from prosper import hookimpl


class HoyerParams(BaseModel):
    """Parameters users write next to ``name: hoyer``."""

    model_config = ConfigDict(extra="forbid")
    lambda_query: float = Field(1e-3, ge=0)
    lambda_item: float = Field(1e-3, ge=0)
    ramp_steps: int = Field(400, ge=0)


class HoyerRegularizer:
    """Hoyer sparsity penalty ``mean_i (||w_i||_1 / ||w_i||_2)^2`` (Hurley & Rickard 2009,
    used for sparse retrieval by Kurtz et al.): scale-invariant, so it pushes towards fewer
    terms without shrinking the weights of the terms that stay.

    The weight ramps quadratically to lambda over ``ramp_steps`` steps, like prosper's FLOPS.
    """

    def __init__(self, params: HoyerParams):
        self.params = params

    def penalty(self, vectors):
        l1 = vectors.abs().sum(dim=-1)
        l2 = vectors.pow(2).sum(dim=-1).sqrt().clamp_min(1e-9)
        return (l1 / l2).pow(2).mean()

    def weight(self, step: int, side: str) -> float:
        lam = self.params.lambda_query if side == "query" else self.params.lambda_item
        if self.params.ramp_steps == 0:
            return lam
        return lam * min(1.0, step / self.params.ramp_steps) ** 2


@hookimpl
def register_regularizers(register):
    register("hoyer", HoyerRegularizer, HoyerParams)
