"""Element-wise pieces of the encoder: Eq. 5, the literal indicator, the analysis filters."""

from __future__ import annotations

import torch


def log_saturation(x: torch.Tensor) -> torch.Tensor:
    """Eq. 5: ``log(1 + ReLU(x))``, the SPLADE saturation applied to logits (and hidden states)."""
    return torch.log1p(torch.relu(x))


def literal_indicator(input_ids: torch.Tensor, literal_mask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``I`` of Eq. 9: 1.0 for every vocabulary id present in the input, 0.0 elsewhere.

    ``literal_mask`` [B, L] marks the positions that count: real text tokens only, never
    padding or special tokens. Returns float32 ``[B, V]``.
    """
    batch = input_ids.shape[0]
    indicator = torch.zeros(batch, vocab_size, dtype=torch.float32, device=input_ids.device)
    rows, cols = torch.nonzero(literal_mask, as_tuple=True)
    ids = input_ids[rows, cols]
    keep = ids < vocab_size  # tokenizer ids beyond the model's head are never terms
    indicator[rows[keep], ids[keep]] = 1.0
    return indicator


def keep_terms(vectors: torch.Tensor, indicator: torch.Tensor, which: str) -> torch.Tensor:
    """Analysis mode: ``all`` keeps W, ``literal`` keeps ``W ⊙ I``, ``expansion`` keeps ``W ⊙ (1 − I)``."""
    if which == "all":
        return vectors
    if which == "literal":
        return vectors * indicator
    if which == "expansion":
        return vectors * (1.0 - indicator)
    raise ValueError(f"unknown term filter {which!r} (all | literal | expansion)")
