"""Block-max pruning for the embedded index: the arrays it needs, when to use it, the call.

Exhaustive scoring (:meth:`prosper.retrieval.index.InvertedIndex.accumulate`) touches every
posting of every query term, so its cost grows with the catalog. Block-max pruning in the
style of BMP (Mallia, Suel and Tonellotto, "Faster Learned Sparse Retrieval with Block-Max
Pruning", SIGIR 2024) cuts the item rows into blocks of ``block_size`` consecutive rows
(default 8). A query first sums ``w_q[t] * max_{d in block} W_d[t]`` into an upper bound per
block, then scores whole blocks exactly from the item rows (a forward index), highest bound
first, and stops when no remaining bound reaches the k-th best score. Same rows,
bit-identical scores and the same tie-break as exhaustive scoring: see
:mod:`prosper.retrieval.kernels` for why no epsilon is needed.

Small blocks keep the bounds tight (on Home Depot vectors at 2.2M items, k = 10 needs about
180 blocks of 8 rows against 520 of 16 or 3,200 of 64) but make the bound pass read about as
many entries as the posting lists hold; so block maxima are stored only for the common terms,
and every other term takes them from its postings during the pass.

Index arrays (``IDX/*.npy``, format version 2), derived at build time:

* ``dense_rows`` int32 [vocab_size]: the row of term ``t`` in ``dense_q``, or -1; a term has
  one when it occurs in at least :data:`DENSE_FRACTION` of the blocks;
* ``dense_q`` uint8 [dense terms, blocks] and ``dense_scale`` float32 [dense terms]: those
  terms' block maxima quantised upward, ``fl(float32(q) * scale) >= max`` exactly
  (:func:`quantize_up`), a quarter of the float32 size for a bound at most one code looser;
* ``forward_offsets`` int64 [n_items + 1], ``forward_terms`` (uint16 when the vocabulary
  fits, else int32), ``forward_weights`` float32: the item rows, term ids ascending, so
  scoring a block reads its rows contiguously.

The kernels compile with numba on first use (cached on disk). Without numba, for an index
without these arrays (version 1, or item rows that repeat a term id) and for a query the
bounds do not cover (a negative or NaN weight, term ids not strictly ascending), the index
scores exhaustively. ``pruning="auto"`` also does for the queries where that is faster
(:func:`budget`).
"""

from __future__ import annotations

import numpy as np

PRUNING = ("auto", "always", "never")
BLOCK_ARRAYS = ("dense_rows", "dense_q", "dense_scale")
FORWARD_ARRAYS = ("forward_offsets", "forward_terms", "forward_weights")
PRUNING_ARRAYS = BLOCK_ARRAYS + FORWARD_ARRAYS
DEFAULT_BLOCK_SIZE = 8
#: A term gets a dense row of block maxima when it occurs in at least this share of the blocks.
DENSE_FRACTION = 0.125
#: ``auto`` prunes only when ``k * block_size * K_RATIO <= n_items`` (see :func:`budget`). At 2.2M
#: items (a ratio of 273 for k=1000) pruning lost to the accumulator (12.5 vs 9.1 ms); at k=10 it
#: wins from 55k items up (ratio 680: 0.12 vs 0.24 ms).
K_RATIO = 500
#: The pruner's budget in item postings, about the accumulator's cost: an item posting scored
#: costs about a third of a scattered add, a row of the accumulator a quarter of an item posting.
BUDGET_POSTINGS, BUDGET_ROWS = 2, 0.25


def check_block_size(block_size: int) -> int:
    from prosper.errors import ConfigError

    if block_size & (block_size - 1) or not 4 <= block_size <= 65536:
        raise ConfigError(f"block_size must be a power of two between 4 and 65536 (got {block_size})")
    return int(block_size)


def build_blocks(
    term_offsets: np.ndarray, postings_items: np.ndarray, postings_weights: np.ndarray, block_size: int, n_items: int
) -> dict[str, np.ndarray]:
    """The quantised block maxima of the common terms (see the module docstring)."""
    shift = int(block_size).bit_length() - 1
    n_blocks = max(-(-n_items // block_size), 1)
    vocab = len(term_offsets) - 1
    df = np.diff(term_offsets)
    dense_rows = np.full(vocab, -1, np.int32)
    rows, scales = [], []
    for t in np.flatnonzero(df >= DENSE_FRACTION * n_blocks).tolist():  # a term in fewer blocks is not dense
        lo, hi = int(term_offsets[t]), int(term_offsets[t + 1])
        blk = postings_items[lo:hi] >> shift
        first = np.flatnonzero(np.concatenate(([True], blk[1:] != blk[:-1])))
        if len(first) >= DENSE_FRACTION * n_blocks:
            maxima = np.zeros(n_blocks, np.float32)
            maxima[blk[first]] = np.maximum.reduceat(postings_weights[lo:hi], first)
            q, scale = quantize_up(maxima)
            dense_rows[t] = len(rows)
            rows.append(q)
            scales.append(scale)
    return {
        "dense_rows": dense_rows,
        "dense_q": np.stack(rows) if rows else np.zeros((0, n_blocks), np.uint8),
        "dense_scale": np.asarray(scales, np.float32),
    }


def quantize_up(values: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """uint8 codes ``q`` and a float32 ``scale`` with ``fl(float32(q) * scale) >= value`` for
    every value (exactly, in float32 arithmetic as the kernel computes it), 0 only for 0."""
    top = np.float32(values.max()) if len(values) else np.float32(0)
    if not top > 0:
        return np.zeros(len(values), np.uint8), np.float32(1)
    scale = np.float32(top / np.float32(255))
    while np.float32(255) * scale < top:
        scale = np.nextafter(scale, np.float32(np.inf))
    q = np.minimum(np.ceil(values.astype(np.float64) / np.float64(scale)), 255).astype(np.uint8)
    while True:  # float rounding may leave a code one short
        low = (q.astype(np.float32) * scale) < values
        if not low.any():
            return q, scale
        q[low] += 1


def build_forward(items) -> dict[str, np.ndarray] | None:
    """The item rows as stored for block scoring, or None when a row repeats a term id (the
    block maxima would not bound its score; such an index is searched exhaustively)."""
    offsets, terms, weights = items.offsets, items.term_ids, items.weights
    if len(terms) > 1:
        inside = np.ones(len(terms) - 1, bool)  # pairs of neighbours within one row
        ends = offsets[1:-1]
        inside[ends[(ends > 0) & (ends < len(terms))] - 1] = False
        not_up = terms[1:] <= terms[:-1]
        not_up &= inside
        if not_up.any():
            if np.any((terms[1:] == terms[:-1]) & inside):
                return None
            rows = np.repeat(np.arange(len(items), dtype=np.int64), items.nnz)  # rows not sorted: sort
            order = np.lexsort((terms, rows))
            terms, weights = terms[order], weights[order]
    dtype = np.uint16 if items.vocab_size <= 65536 else np.int32
    return {
        "forward_offsets": offsets.astype(np.int64),
        "forward_terms": terms.astype(dtype),
        "forward_weights": weights.astype(np.float32),
    }


def arrays_agree(arrays: dict, meta: dict) -> bool:
    """Whether opened pruning arrays have the shapes ``meta.json`` implies."""
    n, dense = int(meta["n_items"]), int(meta["dense_terms"])
    return (
        len(arrays["dense_rows"]) == int(meta["vocab_size"])
        and arrays["dense_q"].shape == (dense, max(-(-n // int(meta["block_size"])), 1))
        and len(arrays["dense_scale"]) == dense
        and len(arrays["forward_offsets"]) == n + 1
        and len(arrays["forward_terms"]) == len(arrays["forward_weights"]) == int(meta["nnz"])
    )


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only C-contiguous view: one numba specialisation for built and mmap-opened arrays."""
    a = np.ascontiguousarray(a).view()
    a.setflags(write=False)
    return a


def load_kernels():
    """The numba kernels, or None when numba is not installed."""
    try:
        from prosper.retrieval import kernels
    except ImportError:
        return None
    return kernels


class BlockMaxPruner:
    """Pruned exact top-k over an index's postings, block and forward arrays.

    Holds per-query scratch (the block bounds, the query's weights by term), so like the index
    it serves one thread. ``last_stats``: [bands, blocks scored, item postings scored] of the
    last search.
    """

    def __init__(self, term_offsets, postings_items, postings_weights, arrays: dict, block_size: int, vocab_size: int):
        self.shift = int(block_size).bit_length() - 1
        self.block_size = int(block_size)
        self.term_offsets = _readonly(term_offsets)
        self.postings_items = _readonly(postings_items)
        self.postings_weights = _readonly(postings_weights)
        self.arrays = {name: _readonly(arrays[name]) for name in PRUNING_ARRAYS}
        n_items = len(self.arrays["forward_offsets"]) - 1
        self.n_blocks = max((n_items + self.block_size - 1) >> self.shift, 1)
        self.vocab_size = vocab_size
        self.kernels = load_kernels()
        self._ub: np.ndarray | None = None
        self._qw: np.ndarray | None = None
        self._block_inv: np.ndarray | None = None
        self.last_stats = np.zeros(3, np.int64)

    @property
    def available(self) -> bool:
        return self.kernels is not None

    @staticmethod
    def covers(terms: np.ndarray, weights: np.ndarray) -> bool:
        """Whether the bounds and the summation order hold for this query (else: exhaustive)."""
        return bool(np.all(weights >= 0)) and (len(terms) < 2 or bool(np.all(terms[1:] > terms[:-1])))

    def search(self, terms, weights, k: int, inv_norms: np.ndarray | None, factor: float = 1.0, budget: int = -1):
        """Top-k (rows int64, scores float32) of one prepared query, best first, ties by row;
        None when more than ``budget`` item postings would need scoring (``-1``: no limit)."""
        kern, a = self.kernels, self.arrays
        if self._ub is None:
            self._ub = np.zeros(self.n_blocks, np.float32)
            self._qw = np.zeros(self.vocab_size, np.float32)
        terms = np.ascontiguousarray(terms, dtype=np.int64)
        weights = np.ascontiguousarray(weights, dtype=np.float32)
        item_l2 = inv_norms is not None
        if item_l2:
            if self._block_inv is None:
                padded = np.zeros(self.n_blocks * self.block_size, np.float32)
                padded[: len(inv_norms)] = inv_norms
                self._block_inv = padded.reshape(self.n_blocks, self.block_size).max(axis=1)
            block_inv, norms = self._block_inv, np.ascontiguousarray(inv_norms, dtype=np.float32)
        else:
            block_inv = norms = np.zeros(0, np.float32)
        try:
            kern.block_upper_bounds(
                terms, weights, self.term_offsets, self.postings_items, self.postings_weights,
                a["dense_rows"], a["dense_q"], a["dense_scale"], self.shift, self._ub,
            )
            ok, scores, rows = kern.pruned_top_k(
                terms, weights, self._qw, a["forward_offsets"], a["forward_terms"], a["forward_weights"],
                self.shift, self._ub, norms, block_inv, item_l2, int(k), float(factor), int(budget), self.last_stats,
            )
        except BaseException:
            self._ub.fill(0.0)
            self._qw.fill(0.0)
            raise
        if not ok:
            return None
        order = np.lexsort((rows, -scores))  # score descending, then row ascending
        return rows[order].astype(np.int64), scores[order].astype(np.float32)


def budget(mode: str, postings: int, k: int, n_items: int, block_size: int, avg_nnz: float) -> int | None:
    """How ``pruning=mode`` treats a query: None = score it exhaustively, else the pruner's
    budget of item postings to score (-1: unlimited, for ``always``).

    The accumulator costs about one scattered add per posting plus a pass over the rows; the
    pruner scores at least ``k`` rows, whole blocks of them, and more per result the larger
    ``k`` is against the catalog. Measured on Home Depot vectors at 55k, 550k and 2.2M items
    (benchmarks/search_scale.py, docs/benchmarks.md), ``auto`` prunes when ``k`` is at most
    ``n_items / (block_size * K_RATIO)`` and the query's postings outnumber half the postings
    of ``k`` blocks; the budget (about the accumulator's cost, in item postings) makes it give
    up on a query that would cost more than scoring everything.
    """
    if mode == "always":
        return -1
    if k * block_size * K_RATIO > n_items or postings < k * block_size * avg_nnz / 2:
        return None
    return int(BUDGET_POSTINGS * postings + n_items * BUDGET_ROWS)


def plan(pruner: BlockMaxPruner | None, mode: str, factor: float, terms, weights, k: int, meta: dict) -> int | None:
    """The index's choice for one prepared query: None = exhaustive, else the pruner's budget.

    ``pruner`` is None for an index without the pruning arrays (format version 1, or item rows
    that repeat a term); ``meta`` is the index's ``meta.json`` (sizes, block size).
    """
    from prosper.errors import ConfigError

    if mode not in PRUNING:
        raise ConfigError(f"pruning {mode!r} is unknown; choose one of {', '.join(PRUNING)}")
    if not 0 < factor <= 1:
        raise ConfigError(f"threshold_factor must be in (0, 1] (got {factor})")
    if mode == "never" or not len(terms):
        return None
    if pruner is None or not pruner.available:
        if mode == "always":
            raise ConfigError(
                "pruning='always' needs numba (pip install numba)" if pruner is not None
                else "pruning='always' needs the block arrays: rebuild this index with `prosper index`"
            )
        return None
    if not pruner.covers(terms, weights):
        return None
    postings = int((pruner.term_offsets[terms + 1] - pruner.term_offsets[terms]).sum())
    n = int(meta["n_items"])
    return budget(mode, postings, k, n, pruner.block_size, int(meta["nnz"]) / max(n, 1))
