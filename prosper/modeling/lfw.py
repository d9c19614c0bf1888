"""The Lexical Focusing Window (LFW), Eq. 10 of the PROSPER paper.

``TopK_k(W) = TopK(W, k)`` when ``||W||_0 > k``, else ``W``, per sequence; the paper's defaults
are ``k_q = 256`` for queries and ``k_d = 512`` for items. It is applied in training (gradients
flow through the kept weights) and at inference.
"""

from __future__ import annotations

import torch


def focusing_window(vectors: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest weights of each row that has more than ``k`` non-zeros."""
    if k >= vectors.shape[-1]:
        return vectors
    nnz = (vectors > 0).sum(dim=-1)
    over = nnz > k
    if not bool(over.any()):
        return vectors
    top = vectors.topk(k, dim=-1).indices
    keep = torch.zeros_like(vectors, dtype=torch.bool).scatter_(-1, top, True)
    keep |= ~over.unsqueeze(-1)
    return vectors * keep
