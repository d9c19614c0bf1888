"""InfoNCE with in-batch negatives (METHOD.md Eq. 12, L_rank).

For query i with positive d_i^+:
``L = -1/B Σ_i log( exp(s(q_i, d_i^+)/τ) / Σ_{d ∈ D} exp(s(q_i, d)/τ) )``
where D is every item of the batch: all B positives (the other queries' positives are the
in-batch negatives) plus the optional hard negatives, and, with ``gather: true`` under
``torchrun``, the items of every other rank too (Karpukhin et al., DPR, 2020, use the same
cross-device trick). The paper uses no temperature (τ = 1) and no hard negatives. Items known to
be relevant to q_i (other than its target) are removed from its denominator: in product search
two queries of a batch often share relevant products.
"""

from __future__ import annotations

import torch

from prosper.components import RankingLoss, TrainingBatch
from prosper.training.losses.params import InBatchNLLParams


def gather_with_grad(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather ``tensor`` over ranks, keeping the gradient of this rank's slice.

    Returns ``(concatenated, offset of this rank's rows)``. Without a process group: identity.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor, 0
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.detach().contiguous())
    rank = dist.get_rank()
    parts[rank] = tensor  # the local slice carries the gradient; DDP averages the rest
    return torch.cat(parts, dim=0), rank * tensor.shape[0]


class InBatchNLLLoss(RankingLoss):
    """InfoNCE over in-batch (+ hard, + cross-rank) negatives (Eq. 12)."""

    def __init__(self, params: InBatchNLLParams | None = None):
        super().__init__()
        self.params = params or InBatchNLLParams()

    def forward(self, query_vectors: torch.Tensor, item_vectors: torch.Tensor, batch: TrainingBatch) -> torch.Tensor:
        n_queries = query_vectors.shape[0]
        item_index = batch.item_index
        offset = 0
        if self.params.gather:
            item_vectors, offset = gather_with_grad(item_vectors)
            if item_index is not None:
                item_index, _ = gather_with_grad(item_index)
        scores = self.score(query_vectors, item_vectors) / self.params.temperature
        targets = torch.arange(n_queries, device=scores.device) + offset
        positives = batch.positive_index
        if self.params.mask_false_negatives and positives is not None and item_index is not None:
            item_index = item_index.to(scores.device)
            positives = positives.to(scores.device)
            relevant = (item_index[None, :, None] == positives[:, None, :]).any(dim=-1)  # [B, N]
            relevant[torch.arange(n_queries, device=scores.device), targets] = False
            scores = scores.masked_fill(relevant, float("-inf"))
        return torch.nn.functional.cross_entropy(scores, targets)
