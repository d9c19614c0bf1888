"""The one in-memory type that carries sparse vectors between stages.

:class:`SparseVectors` is CSR-like: row ``i`` owns ``term_ids[offsets[i]:offsets[i+1]]`` and the
matching ``weights``. Encoders produce it, exporters, the index and ``explain`` consume it;
nothing converts to Python dicts on the hot path. Within a row, term ids are sorted ascending
and weights are strictly positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class SparseVectors:
    ids: list[str]
    offsets: np.ndarray  # int64, len(ids) + 1
    term_ids: np.ndarray  # int32
    weights: np.ndarray  # float32
    vocab_size: int

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        self.term_ids = np.asarray(self.term_ids, dtype=np.int32)
        self.weights = np.asarray(self.weights, dtype=np.float32)
        if len(self.offsets) != len(self.ids) + 1:
            raise ValueError(f"offsets has {len(self.offsets)} entries for {len(self.ids)} rows")
        if len(self.term_ids) != len(self.weights) or int(self.offsets[-1]) != len(self.term_ids):
            raise ValueError("term_ids, weights and offsets disagree")

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def empty(cls, vocab_size: int) -> SparseVectors:
        return cls([], np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), vocab_size)

    @classmethod
    def from_dense(cls, matrix, ids: Sequence[str]) -> SparseVectors:
        """From a ``[n, vocab]`` torch tensor or numpy array; keeps entries > 0."""
        if hasattr(matrix, "detach"):  # torch tensor: find non-zeros where the data lives
            import torch

            matrix = matrix.detach()
            rows, cols = torch.nonzero(matrix > 0, as_tuple=True)
            values = matrix[rows, cols].float().cpu().numpy()
            rows, cols = rows.cpu().numpy(), cols.cpu().numpy()
            n, vocab = matrix.shape
        else:
            matrix = np.asarray(matrix)
            rows, cols = np.nonzero(matrix > 0)
            values = matrix[rows, cols]
            n, vocab = matrix.shape
        if len(ids) != n:
            raise ValueError(f"{len(ids)} ids for {n} rows")
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
        return cls(list(ids), offsets, cols.astype(np.int32), values.astype(np.float32), int(vocab))

    @classmethod
    def from_rows(cls, ids: Sequence[str], rows: Sequence[tuple[Sequence[int], Sequence[float]]], vocab_size: int):
        """From ``(term_ids, weights)`` pairs per row; sorts terms and drops non-positive weights."""
        offsets = np.zeros(len(ids) + 1, np.int64)
        all_terms, all_weights = [], []
        for i, (terms, weights) in enumerate(rows):
            terms = np.asarray(terms, dtype=np.int64)
            weights = np.asarray(weights, dtype=np.float32)
            keep = weights > 0
            terms, weights = terms[keep], weights[keep]
            order = np.argsort(terms, kind="stable")
            all_terms.append(terms[order])
            all_weights.append(weights[order])
            offsets[i + 1] = offsets[i] + len(terms)
        term_ids = np.concatenate(all_terms) if all_terms else np.zeros(0, np.int32)
        weights = np.concatenate(all_weights) if all_weights else np.zeros(0, np.float32)
        if len(term_ids) and (term_ids.min() < 0 or term_ids.max() >= vocab_size):
            raise ValueError(f"term id out of range for vocabulary size {vocab_size}")
        return cls(list(ids), offsets, term_ids, weights, vocab_size)

    @classmethod
    def concat(cls, parts: Sequence[SparseVectors]) -> SparseVectors:
        if not parts:
            raise ValueError("nothing to concatenate")
        vocab = parts[0].vocab_size
        if any(p.vocab_size != vocab for p in parts):
            raise ValueError("cannot concatenate vectors over different vocabularies")
        ids = [i for p in parts for i in p.ids]
        offsets = [np.zeros(1, np.int64)]
        base = 0
        for p in parts:
            offsets.append(p.offsets[1:] + base)
            base += int(p.offsets[-1])
        return cls(
            ids,
            np.concatenate(offsets),
            np.concatenate([p.term_ids for p in parts]),
            np.concatenate([p.weights for p in parts]),
            vocab,
        )

    # -- access ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.offsets[i], self.offsets[i + 1]
        return self.term_ids[start:end], self.weights[start:end]

    def slice(self, start: int, stop: int) -> SparseVectors:
        lo, hi = int(self.offsets[start]), int(self.offsets[stop])
        return SparseVectors(
            self.ids[start:stop],
            self.offsets[start : stop + 1] - lo,
            self.term_ids[lo:hi],
            self.weights[lo:hi],
            self.vocab_size,
        )

    def take(self, order) -> SparseVectors:
        """Rows ``order[0], order[1], ...`` as new vectors (a vectorised gather of CSR rows)."""
        order = np.asarray(order, dtype=np.int64)
        lengths = self.nnz[order]
        offsets = np.zeros(len(order) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = np.repeat(self.offsets[:-1][order] - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
        return SparseVectors(
            [self.ids[i] for i in order], offsets, self.term_ids[gather], self.weights[gather], self.vocab_size
        )

    @property
    def nnz(self) -> np.ndarray:
        """Number of non-zero terms per row."""
        return np.diff(self.offsets)

    def to_dense(self) -> np.ndarray:
        dense = np.zeros((len(self), self.vocab_size), np.float32)
        rows = np.repeat(np.arange(len(self)), self.nnz)
        dense[rows, self.term_ids] = self.weights
        return dense

    def to_scipy(self):
        """A ``scipy.sparse.csr_matrix`` view of the same data (shares the arrays)."""
        from scipy.sparse import csr_matrix

        return csr_matrix((self.weights, self.term_ids, self.offsets), shape=(len(self), self.vocab_size))

    def equals(self, other: SparseVectors, atol: float = 0.0) -> bool:
        return (
            self.ids == other.ids
            and self.vocab_size == other.vocab_size
            and np.array_equal(self.offsets, other.offsets)
            and np.array_equal(self.term_ids, other.term_ids)
            and np.allclose(self.weights, other.weights, atol=atol, rtol=0)
        )
