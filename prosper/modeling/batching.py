"""Length-sorted batches bounded by a token budget (``infer.batch_tokens``).

A fixed number of texts per batch is the wrong unit for a transformer: its activations, and
the attention above all, grow with ``texts x longest text`` (and attention with the square of
the length), so 256 titles of 20 tokens and 256 descriptions of 512 tokens differ by 25x in
memory. Sorting the texts of a buffer by token count and cutting the sorted list into batches of
at most ``batch_tokens`` padded tokens (``rows x longest row``, what the backbone really
computes) keeps the per-batch memory the same for short and long texts, and the sort keeps the
padding small. ``batch_size`` stays an upper bound on the rows of a batch. This is the
"token-budget batching" of fairseq's ``--max-tokens`` (Ott et al. 2019, arXiv:1904.01038) and
of dynamic batching in sentence-transformers' and vLLM's schedulers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def plan_batches(lengths: Sequence[int], batch_size: int, batch_tokens: int | None = None) -> list[np.ndarray]:
    """Indices into ``lengths``, longest first, cut into batches.

    Each batch has at most ``batch_size`` rows and, with ``batch_tokens``, at most
    ``batch_tokens`` padded tokens (rows x the batch's longest text, the first row since the
    order descends). A text longer than the budget on its own forms a batch of one. The order
    within equal lengths is the input order (a stable sort), so the plan is deterministic.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if batch_tokens is not None and batch_tokens < 1:
        raise ValueError(f"batch_tokens must be >= 1, got {batch_tokens}")
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size == 0:
        return []
    order = np.argsort(-lengths, kind="stable")
    batches = []
    start, n = 0, len(order)
    while start < n:
        longest = max(1, int(lengths[order[start]]))
        rows = batch_size if batch_tokens is None else max(1, min(batch_size, batch_tokens // longest))
        batches.append(order[start : start + rows])
        start += rows
    return batches
