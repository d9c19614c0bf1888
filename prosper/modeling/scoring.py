"""Relevance scores, Eq. 11 of the PROSPER paper, and the normalisations the paper compares.

``query_l2`` (default, Eq. 11): ``s(q, d) = W_q / ||W_q||_2 · W_d``. Alternatives: ``none``
(plain dot product), ``query_l1`` (``W_q / ||W_q||_1 · W_d``), ``both_l2`` (cosine) and
``item_l2`` (``W_q · W_d / ||W_d||_2``). Vectors are already top-k'd by the LFW.
"""

from __future__ import annotations

import torch

SCORINGS = ("query_l2", "none", "query_l1", "both_l2", "item_l2")
EPS = 1e-12


def normalise(vectors: torch.Tensor, norm: str | None) -> torch.Tensor:
    """Divide each row by its L1 or L2 norm (``None``: unchanged); all-zero rows stay zero."""
    if norm is None:
        return vectors
    p = {"l1": 1, "l2": 2}[norm]
    return vectors / vectors.norm(p=p, dim=-1, keepdim=True).clamp_min(EPS)


def side_norms(scoring: str) -> tuple[str | None, str | None]:
    """(query norm, item norm) for a scoring name."""
    table = {
        "query_l2": ("l2", None),
        "none": (None, None),
        "query_l1": ("l1", None),
        "both_l2": ("l2", "l2"),
        "item_l2": (None, "l2"),
    }
    if scoring not in table:
        raise ValueError(f"unknown scoring {scoring!r} ({' | '.join(SCORINGS)})")
    return table[scoring]


def score(queries: torch.Tensor, items: torch.Tensor, scoring: str = "query_l2") -> torch.Tensor:
    """``[Bq, V] x [Bd, V] -> [Bq, Bd]`` scores under ``scoring`` (Eq. 11 and its variants)."""
    q_norm, d_norm = side_norms(scoring)
    return normalise(queries, q_norm) @ normalise(items, d_norm).transpose(0, 1)
