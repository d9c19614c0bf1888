"""What every ranking loss shares: the scoring rule and the batch layout.

Loss API (hookspecs ``register_losses``): an ``nn.Module`` whose
``forward(query_vectors, item_vectors, batch)`` returns a scalar.

Batch layout built by :mod:`prosper.data.training` and the trainer:

* ``query_vectors``: ``[B, V]`` final query vectors ``W_q`` (after LRN and LFW);
* ``item_vectors``: ``[B + B·h, V]``: the B positives (row i is query i's positive) followed by
  the hard negatives in query-major order (query i owns rows ``B + i·h ... B + i·h + h - 1``);
* ``batch["num_negatives"]``: h; ``batch["item_index"]``: ``LongTensor[B + B·h]`` global ids of
  the items; ``batch["positive_index"]``: ``LongTensor[B, P]`` every item known relevant to
  query i (padded with -1), so that another query's positive that is also relevant to query i
  is not used as a negative for it; ``batch["teacher_scores"]``: ``[B, 1 + h]`` (optional).

Scores use the encoder's scoring rule (Eq. 11); the trainer sets :attr:`RankingLoss.score_fn`
to ``encoder.score``. The default here is the paper's: only the query is L2-normalised.
"""

from __future__ import annotations

import torch


def query_l2_score(query_vectors: torch.Tensor, item_vectors: torch.Tensor) -> torch.Tensor:
    """Eq. 11: ``s(q, d) = W_q / ||W_q||_2 · W_d`` for every pair, ``[Bq, Bd]``."""
    q = query_vectors.float()
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return q @ item_vectors.float().T


class RankingLoss(torch.nn.Module):
    """Base class: holds the scoring function (the encoder's, once the trainer binds it)."""

    def __init__(self) -> None:
        super().__init__()
        self.score_fn = query_l2_score

    def score(self, query_vectors: torch.Tensor, item_vectors: torch.Tensor) -> torch.Tensor:
        return self.score_fn(query_vectors, item_vectors)
