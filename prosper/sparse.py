"""The one in-memory type that carries sparse vectors between stages.

:class:`SparseVectors` is CSR-like: row ``i`` owns ``term_ids[offsets[i]:offsets[i+1]]`` and the
matching ``weights``. Encoders produce it, exporters, the index and ``explain`` consume it;
nothing converts to Python dicts on the hot path. Within a row, term ids are sorted ascending
and weights are strictly positive.

It behaves like a sequence of rows: ``len(v)``, ``for row in v``, ``v[i]`` and ``v[2:5]``. Indexing
with an int gives a **one-row SparseVectors** (not a view object), so a single row goes
anywhere vectors go (``index.search(v[0])``, ``v[0].decode()``); a slice, a list of ints or a
boolean mask gives the selected rows. ``decode`` lists ``(term, weight)`` pairs, highest weight
first; ``to_scipy`` / ``from_scipy`` convert to and from ``scipy.sparse`` CSR matrices.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

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
    def from_scipy(cls, matrix, ids: Sequence[str] | None = None) -> SparseVectors:
        """From any ``scipy.sparse`` matrix or array ``[n, vocab]`` (copied; duplicates summed,
        terms sorted, entries <= 0 dropped: weights are strictly positive). ``ids`` default to
        ``"0", "1", ...``."""
        from scipy.sparse import csr_matrix

        csr = csr_matrix(matrix, dtype=np.float32, copy=True)
        csr.sum_duplicates()  # also sorts the column indices of every row
        csr.data[csr.data < 0] = 0
        csr.eliminate_zeros()
        n, vocab = csr.shape
        ids = [str(i) for i in range(n)] if ids is None else [str(i) for i in ids]
        if len(ids) != n:
            raise ValueError(f"{len(ids)} ids for {n} rows")
        return cls(ids, csr.indptr.astype(np.int64), csr.indices.astype(np.int32), csr.data, int(vocab))

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

    def __iter__(self) -> Iterator[SparseVectors]:
        """One-row :class:`SparseVectors` per row, in order."""
        for i in range(len(self)):
            yield self.slice(i, i + 1)

    def __getitem__(self, key) -> SparseVectors:
        """``v[i]``: row ``i`` as one-row vectors (negative ``i`` counts from the end); ``v[a:b]``,
        ``v[[i, j]]`` or ``v[mask]``: those rows."""
        n = len(self)
        if isinstance(key, (int, np.integer)):
            i = int(key) + n if key < 0 else int(key)
            if not 0 <= i < n:
                raise IndexError(f"row {int(key)} is out of range for {n} rows")
            return self.slice(i, i + 1)
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1:
                return self.slice(start, max(start, stop))
            return self.take(np.arange(start, stop, step))
        order = np.asarray(key)
        if order.dtype == bool:
            if order.shape != (n,):
                raise IndexError(f"boolean mask of shape {order.shape} for {n} rows")
            order = np.flatnonzero(order)
        elif order.size == 0:
            order = order.astype(np.int64)
        elif not np.issubdtype(order.dtype, np.integer) or order.ndim != 1:
            raise TypeError(f"rows are selected by int, slice, a list of ints or a boolean mask, not {type(key).__name__}")
        order = np.where(order < 0, order + n, order)
        if len(order) and (order.min() < 0 or order.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        return self.take(order)

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

    def decode(self, top_k: int | None = None, vocabulary: Any = None) -> list[list[tuple[str, float]]]:
        """Per row, ``(term, weight)`` pairs, highest weight first (ties: lower term id first).

        ``top_k`` keeps the first k of each row (None: all). ``vocabulary`` names the terms: an
        encoder (its tokenizer decodes each term), a Hugging Face tokenizer, or one string per
        term id (``encoder.vocabulary()``, an index's ``vocabulary``). Terms are shown as
        readable text (``Ġdrill`` -> ``drill``, never a control character; see
        :mod:`prosper.modeling.terms`). Without a vocabulary, terms are the term ids as strings.
        """
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be at least 1 (got {top_k})")
        rows = []
        for i in range(len(self)):
            terms, weights = self.row(i)
            order = np.lexsort((terms, -weights))[:top_k]
            rows.append((terms[order], weights[order]))
        wanted = sorted({int(t) for terms, _ in rows for t in terms})
        names = dict(zip(wanted, _term_names(vocabulary, wanted, self.vocab_size)))
        return [[(names[int(t)], float(w)) for t, w in zip(terms, weights)] for terms, weights in rows]

    def equals(self, other: SparseVectors, atol: float = 0.0) -> bool:
        return (
            self.ids == other.ids
            and self.vocab_size == other.vocab_size
            and np.array_equal(self.offsets, other.offsets)
            and np.array_equal(self.term_ids, other.term_ids)
            and np.allclose(self.weights, other.weights, atol=atol, rtol=0)
        )


def _term_names(vocabulary: Any, term_ids: list[int], vocab_size: int) -> list[str]:
    """Readable names of ``term_ids`` (see :meth:`SparseVectors.decode`)."""
    from prosper.modeling.terms import display_terms

    if vocabulary is None:
        return [str(t) for t in term_ids]
    tokenizer = getattr(vocabulary, "tokenizer", None)  # a SparseEncoder
    if tokenizer is None and hasattr(vocabulary, "convert_ids_to_tokens"):
        tokenizer = vocabulary
    if tokenizer is not None:
        return display_terms(tokenizer, term_ids)
    if len(vocabulary) != vocab_size:
        raise ValueError(f"vocabulary has {len(vocabulary)} terms but the vectors {vocab_size}")
    return vocabulary_terms(vocabulary, term_ids)


def vocabulary_terms(vocabulary: Sequence[str], term_ids: Sequence[int]) -> list[str]:
    """Readable text of raw vocabulary strings, without the tokenizer (an index's ``vocabulary``).

    A byte-level BPE vocabulary (nearly every term spelled in the 256-character byte alphabet,
    some starting with ``Ġ``) is decoded through that alphabet; otherwise SentencePiece's ``▁``
    word marker becomes a space. The result goes through :func:`prosper.modeling.terms.readable`.
    """
    from prosper.modeling.terms import raw_bytes, readable

    byte_level = any(len(t) > 1 and t[0] == "Ġ" for t in vocabulary) and sum(
        1 for t in vocabulary if raw_bytes(t) is None
    ) <= max(8, len(vocabulary) // 100)  # added special tokens may use other characters
    out = []
    for term in (vocabulary[int(i)] for i in term_ids):
        data = raw_bytes(term) if byte_level else None
        if data is None:
            out.append(readable(term.replace("\u2581", " ")))
            continue
        try:
            out.append(readable(data.decode("utf-8")))
        except UnicodeDecodeError:  # part of a multi-byte character: show the bytes
            out.append("".join(f"<0x{b:02X}>" for b in data))
    return out
