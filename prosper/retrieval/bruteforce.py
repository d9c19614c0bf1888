"""Brute-force reference scoring with a scipy sparse product (tests and benchmarks).

Scores every item for every query, ``items @ q`` per Eq. 11 with the same normalisations as
:mod:`prosper.retrieval.index`; slow by design, the yardstick the index must match exactly.
"""

from __future__ import annotations

import numpy as np

from prosper.retrieval.index import check_scoring, prepare_query, top_k
from prosper.sparse import SparseVectors


class BruteForce:
    def __init__(self, items: SparseVectors) -> None:
        self.items = items
        self.matrix = items.to_scipy().tocsr()
        norms = np.sqrt(np.asarray(self.matrix.multiply(self.matrix).sum(axis=1), dtype=np.float64).ravel())
        with np.errstate(divide="ignore"):
            self.inv_norms = np.where(norms > 0, 1.0 / norms, 0.0).astype(np.float32)

    def scores(self, terms: np.ndarray, weights: np.ndarray, item_l2: bool = False) -> np.ndarray:
        """Dense score of every item for one prepared query."""
        q = np.zeros(self.items.vocab_size, np.float32)
        q[np.asarray(terms, dtype=np.int64)] = weights
        s = np.asarray(self.matrix @ q, dtype=np.float32).ravel()
        return s * self.inv_norms if item_l2 else s

    def search_rows(self, queries: SparseVectors, k: int, scoring: str = "query_l2", query_top_terms=None):
        check_scoring(scoring)
        out = []
        for i in range(len(queries)):
            terms, weights = prepare_query(*queries.row(i), scoring, query_top_terms)
            out.append(top_k(self.scores(terms, weights, scoring in ("both_l2", "item_l2")), k))
        return out
