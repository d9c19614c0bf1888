"""The Literal Residual Network (LRN), Eq. 8-9 of the PROSPER paper.

``w' = FC(h)`` maps one hidden state (hidden size -> |V|, with bias, Xavier init) to a
vocabulary-wide vector; literal terms (``I = 1``) are then topped up:

* ``compensate`` (the paper, Eq. 9): ``W = w + I ⊙ (max(w') − w')`` — a literal the model
  already weights low gets a large boost, one it weights high a small one;
* ``add`` (ablation "simple addition"): ``W = w + I ⊙ w'``;
* ``review`` (the authors' published review code): ``W = w + I ⊙ (max(w) − w')``.

``max`` is over the vocabulary, per sequence. The result is clamped at zero so vectors stay
non-negative in every mode (a no-op for ``compensate``, where ``max(w') − w' ≥ 0``).
The layer is kept in float32 whatever the backbone's precision or quantisation.
"""

from __future__ import annotations

import torch
from torch import nn

from prosper.modeling.transforms import log_saturation


def literal_residual(w: torch.Tensor, w_prime: torch.Tensor, indicator: torch.Tensor, mode: str = "compensate") -> torch.Tensor:
    """Combine base vector ``w`` [B, V], ``w'`` [B, V] and indicator ``I`` [B, V] (Eq. 9 and variants)."""
    if mode == "compensate":
        residual = w_prime.amax(dim=-1, keepdim=True) - w_prime
    elif mode == "add":
        residual = w_prime
    elif mode == "review":
        residual = w.amax(dim=-1, keepdim=True) - w_prime
    else:
        raise ValueError(f"unknown LRN mode {mode!r} (compensate | add | review)")
    return torch.relu(w + indicator * residual)


class LiteralResidual(nn.Module):
    """``FC``: hidden -> |V| with bias, Xavier-initialised weight, zero bias; float32."""

    def __init__(self, hidden_size: int, vocab_size: int):
        super().__init__()
        self.fc = nn.Linear(hidden_size, vocab_size, bias=True, dtype=torch.float32)
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(
        self,
        w: torch.Tensor,
        hidden: torch.Tensor,
        indicator: torch.Tensor,
        mode: str = "compensate",
        transform_hidden: bool = True,
    ) -> torch.Tensor:
        h = hidden.float()
        if transform_hidden:  # Eq. 5 applies the same saturation to the hidden state
            h = log_saturation(h)
        w_prime = self.fc(h)
        return literal_residual(w.float(), w_prime, indicator, mode)
