"""Margin-MSE distillation (Hofstätter et al., "Improving Efficient Neural Ranking Models with
Cross-Architecture Knowledge Distillation", 2020); METHOD.md: orthogonal to PROSPER, supported.

For query i with positive d_i^+ and hard negatives d_ij^-, match the student's score margin to
the teacher's: ``L = mean_ij ( (s(q_i,d_i^+) - s(q_i,d_ij^-)) - (t_i^+ - t_ij^-) )^2``.
Needs hard negatives (``train.hard_negatives >= 1``) and teacher scores from the triples file
(``batch.teacher_scores``: ``[B, 1 + h]``, positive first).
"""

from __future__ import annotations

import torch

from prosper.errors import ConfigError
from prosper.components import RankingLoss, TrainingBatch
from prosper.training.losses.params import MarginMSEParams


class MarginMSELoss(RankingLoss):
    """MSE between student and teacher score margins (positive minus each hard negative)."""

    requires_teacher = True

    def __init__(self, params: MarginMSEParams | None = None):
        super().__init__()
        self.params = params or MarginMSEParams()

    def forward(self, query_vectors: torch.Tensor, item_vectors: torch.Tensor, batch: TrainingBatch) -> torch.Tensor:
        teacher = batch.teacher_scores
        h = int(batch.num_negatives)
        if teacher is None or h < 1:
            raise ConfigError(
                "train.loss: margin_mse needs teacher scores and hard negatives "
                "(a triples file with 'negatives' and 'teacher_scores', train.hard_negatives >= 1)"
            )
        b = query_vectors.shape[0]
        scores = self.score(query_vectors, item_vectors)  # [B, B + B·h]; small, so score all pairs
        rows = torch.arange(b, device=scores.device)
        s_pos = scores[rows, rows]
        neg_cols = b + rows[:, None] * h + torch.arange(h, device=scores.device)[None, :]
        s_neg = scores.gather(1, neg_cols)  # [B, h]: query i against its own hard negatives
        teacher = teacher.to(s_pos.device, torch.float32)
        student_margin = s_pos[:, None] - s_neg
        teacher_margin = teacher[:, :1] - teacher[:, 1 : 1 + h]
        return torch.nn.functional.mse_loss(student_margin, teacher_margin)
