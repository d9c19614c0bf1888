"""The base of the ranking losses: :class:`prosper.components.RankingLoss`, re-exported.

Batch layout (:class:`prosper.components.TrainingBatch`, built by :mod:`prosper.data.training`):
``query_vectors`` ``[B, V]`` are the final query vectors ``W_q`` (after LRN and LFW);
``item_vectors`` ``[B + B·h, V]`` are the B positives (row i is query i's positive) followed by the
hard negatives in query-major order. Scores use the encoder's scoring rule (Eq. 11), which the
trainer binds with :meth:`RankingLoss.bind_scoring`; the default is the paper's (only the query
is L2-normalised).
"""

from __future__ import annotations

from prosper.components import RankingLoss, TrainingBatch

__all__ = ["RankingLoss", "TrainingBatch"]
