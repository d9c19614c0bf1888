"""Parameter models of the built-in losses (torch-free, so plugin loading stays light)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class InBatchNLLParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, gt=0)  # τ; the paper uses none (τ = 1)
    gather: bool = False  # also use other ranks' items as negatives (DistributedDataParallel)
    mask_false_negatives: bool = True  # drop items known relevant to the query from its denominator


class MarginMSEParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
