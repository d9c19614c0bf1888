"""An embedded inverted index over item vectors with exact top-k scoring (Eq. 11).

Over 300 lines on purpose: the folder format, building, opening and the exact search over it are
one contract; the pruning kernels live in :mod:`.pruning` and :mod:`.kernels`.

No server: the index is a folder of ``.npy`` arrays opened memory-mapped, so opening costs a
few milliseconds whatever the corpus size, and several processes share the pages::

    IDX/
      meta.json              format, version, sizes, scoring default, extra metadata
      term_offsets.npy       int64 [vocab_size + 1]: postings of term t are [off[t], off[t+1])
      postings_items.npy     int32 [nnz]: item rows, ascending within a term
      postings_weights.npy   float32 [nnz]: item weights W_d[t]
      item_norms.npy         float32 [n_items]: ||W_d||_2 (for the item_l2 / both_l2 scorings)
      item_nnz.npy           int32 [n_items]: non-zeros per item (statistics)
      dense_*.npy            common terms' block maxima, for pruned search (version 2, pruning.py)
      forward_*.npy          the item rows (term ids, weights) that pruned search scores
      ids.txt                item ids, one a line, in row order (read on first use)
      vocabulary.json        term string per term id, when known (read on first use)

Scoring, Eq. 11: ``s(q, d) = TopK(W_q)/||TopK(W_q)||_2 · TopK(W_d)``. The vectors arrive already
cut by the Lexical Focusing Window; only the query is L2-normalised by default. The ablations
``none``, ``query_l1``, ``both_l2`` and ``item_l2`` are options. ``query_top_terms=N`` keeps the N
highest-weighted query terms before normalising (the paper serves with 16); ties go to the
lower term id.

Search is exact and takes one of two routes, chosen per query (``pruning="auto"``):

* the accumulator adds ``w_q[t] * W_d[t]`` posting by posting into one dense float32 score
  array reused across queries (``np.add.at``), then selects the top k; cheapest for short
  posting lists or a k that is large against the catalog;
* block-max pruning (:mod:`prosper.retrieval.pruning`, BMP-style, compiled with numba) bounds
  blocks of rows and scores only those that can still reach the top k; it returns the same
  rows and bit-identical scores, and its cost grows far slower than the catalog.

Only items with a positive score are returned; ties are broken by item row (earlier rows
first), so results are deterministic. ``threshold_factor < 1`` makes pruning approximate.
Format version 1 folders (no pruning arrays) still open and search with the accumulator.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prosper.components import SearchIndex, SearchResult
from prosper.errors import ConfigError, InputError
from prosper.fileio import replace_dir, staging_dir
from prosper.retrieval import pruning as _pruning
from prosper.sparse import SparseVectors

FORMAT = "prosper-inverted-index"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: no block arrays, searched by the accumulator only
SCORINGS = ("query_l2", "none", "query_l1", "both_l2", "item_l2")
_FAST_ADD_AT = int(np.__version__.split(".")[0]) >= 2
_ARRAYS = ("term_offsets", "postings_items", "postings_weights", "item_norms", "item_nnz")


def check_scoring(scoring: str) -> str:
    if scoring not in SCORINGS:
        raise ConfigError(f"scoring {scoring!r} is unknown; choose one of {', '.join(SCORINGS)}")
    return scoring


def prepare_query(
    terms: np.ndarray, weights: np.ndarray, scoring: str = "query_l2", query_top_terms: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The query side of Eq. 11: optional top-N pruning, then the query normalisation.

    Returns ``(terms, weights)`` with ``weights`` as float32, normalised per ``scoring``.
    """
    terms = np.asarray(terms)
    weights = np.asarray(weights, dtype=np.float32)
    if query_top_terms is not None and len(weights) > query_top_terms:
        keep = np.lexsort((terms, -weights))[:query_top_terms]  # highest weight, then lowest id
        keep.sort()
        terms, weights = terms[keep], weights[keep]
    if scoring in ("query_l2", "both_l2"):
        norm = float(np.sqrt(np.dot(weights.astype(np.float64), weights)))
        if norm > 0:
            weights = (weights / norm).astype(np.float32)
    elif scoring == "query_l1":
        norm = float(np.abs(weights.astype(np.float64)).sum())
        if norm > 0:
            weights = (weights / norm).astype(np.float32)
    return terms, weights


class InvertedIndex(SearchIndex):
    """Term -> (item rows, weights) postings; exact top-k by Eq. 11.

    Build with :meth:`build` (in memory), persist with :meth:`save`, reopen memory-mapped with
    :meth:`open`. ``search`` returns one :class:`SearchResult` per query row. One instance
    reuses one score accumulator, so give each thread its own (``open`` is cheap).

    ``pruning``: ``auto`` (default) picks the accumulator or block-max pruning per query,
    ``always`` / ``never`` force one (both exact). ``threshold_factor`` (0 < f <= 1, default 1 =
    exact) lets pruning skip a block unless ``f * bound >= the k-th score so far``.
    """

    searcher = "exact"

    def __init__(
        self,
        term_offsets: np.ndarray,
        postings_items: np.ndarray,
        postings_weights: np.ndarray,
        item_norms: np.ndarray,
        item_nnz: np.ndarray,
        ids: Sequence[str] | None,
        meta: dict,
        directory: Path | None = None,
        vocabulary: list[str] | None = None,
        blocks: dict | None = None,
        pruning: str = "auto",
        threshold_factor: float = 1.0,
    ) -> None:
        # Plain ndarray views of (possibly memory-mapped) arrays: slicing a np.memmap is slower.
        self.term_offsets = np.asarray(term_offsets)
        self.postings_items = np.asarray(postings_items)
        self.postings_weights = np.asarray(postings_weights)
        self.item_norms = np.asarray(item_norms)
        self.item_nnz = np.asarray(item_nnz)
        self.meta = meta
        # searches default to the scoring the index was built for (metadata.scoring), else Eq. 11
        self.scoring = meta.get("scoring") or (meta.get("metadata") or {}).get("scoring") or "query_l2"
        self.directory = directory
        self._ids = None if ids is None else np.asarray(list(ids), dtype=object)
        self._vocabulary = vocabulary
        self._inv_norms: np.ndarray | None = None
        self._acc: np.ndarray | None = None
        self.blocks = blocks
        self.pruning = pruning
        self.threshold_factor = threshold_factor
        self._pruner: _pruning.BlockMaxPruner | None = None

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        items: SparseVectors,
        vocabulary: Sequence[str] | None = None,
        metadata: dict | None = None,
        block_size: int = _pruning.DEFAULT_BLOCK_SIZE,
        pruning: str = "auto",
        threshold_factor: float = 1.0,
    ) -> InvertedIndex:
        """Invert item vectors (CSR rows) into per-term postings sorted by item row, plus the
        block maxima of pruned search (``block_size`` rows a block, a power of two)."""
        block_size = _pruning.check_block_size(block_size)
        n = len(items)
        if len(set(items.ids)) != n:
            seen: set[str] = set()
            dup = next(i for i in items.ids if i in seen or seen.add(i))
            raise InputError(f"duplicate item id {dup!r}; item ids must be unique")
        if any("\n" in i or "\r" in i for i in items.ids):
            raise InputError("item ids must not contain line breaks")
        if n >= 2**31 - 1:
            raise InputError(f"{n} items: the index stores rows as int32 and holds at most 2^31 - 2")
        if vocabulary is not None and len(vocabulary) != items.vocab_size:
            raise InputError(f"vocabulary has {len(vocabulary)} terms but the vectors {items.vocab_size}")
        if len(items.term_ids) and (items.term_ids.min() < 0 or items.term_ids.max() >= items.vocab_size):
            raise InputError(f"term id out of range for vocabulary size {items.vocab_size}")
        nnz = items.nnz
        rows = np.repeat(np.arange(n, dtype=np.int32), nnz)
        # A stable sort by term keeps rows ascending inside each posting list; on 16-bit keys
        # numpy sorts stably by radix, several times faster than on 32-bit ones.
        keys = items.term_ids.astype(np.uint16) if items.vocab_size <= 65536 else items.term_ids
        order = np.argsort(keys, kind="stable")
        del keys
        postings_items = rows[order]
        del rows
        postings_weights = items.weights[order].astype(np.float32, copy=False)
        del order
        df = np.bincount(items.term_ids, minlength=items.vocab_size)
        term_offsets = np.zeros(items.vocab_size + 1, np.int64)
        np.cumsum(df, out=term_offsets[1:])
        item_norms = _row_norms(items)
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "searcher": "exact",
            "n_items": n,
            "vocab_size": int(items.vocab_size),
            "nnz": int(len(items.term_ids)),
            "block_size": block_size,
            "dense_terms": 0,
            "pruning_arrays": False,
            "has_vocabulary": vocabulary is not None,
            "params": {"block_size": block_size, "pruning": pruning, "threshold_factor": threshold_factor},
            "metadata": dict(metadata or {}),
        }
        forward = _pruning.build_forward(items)  # None: a row repeats a term; no pruning then
        blocks = None
        if forward is not None:
            blocks = {**_pruning.build_blocks(term_offsets, postings_items, postings_weights, block_size, n), **forward}
            meta.update(dense_terms=len(blocks["dense_q"]), pruning_arrays=True)
        return cls(
            term_offsets,
            postings_items,
            postings_weights,
            item_norms.astype(np.float32),
            nnz.astype(np.int32),
            items.ids,
            meta,
            vocabulary=None if vocabulary is None else list(vocabulary),
            blocks=blocks,
            pruning=pruning,
            threshold_factor=threshold_factor,
        )

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the index folder atomically (a temporary folder renamed into place)."""
        directory = Path(directory)
        tmp = staging_dir(directory, overwrite, "index folder")
        for name in _ARRAYS:
            np.save(tmp / f"{name}.npy", getattr(self, name), allow_pickle=False)
        for name, array in (self.blocks or {}).items():
            np.save(tmp / f"{name}.npy", array, allow_pickle=False)
        (tmp / "ids.txt").write_text("".join(f"{i}\n" for i in self.ids), encoding="utf-8")
        if self.vocabulary is not None:
            (tmp / "vocabulary.json").write_text(json.dumps(self.vocabulary, ensure_ascii=False), encoding="utf-8")
        (tmp / "meta.json").write_text(json.dumps(self.meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        replace_dir(tmp, directory)
        self.directory = directory
        return directory

    @classmethod
    def open(
        cls, directory: str | Path, mmap: bool = True, pruning: str | None = None, threshold_factor: float | None = None
    ) -> InvertedIndex:
        """Open a saved index; arrays are memory-mapped (read-only) unless ``mmap=False``.

        ``pruning`` / ``threshold_factor`` default to the values the index was built with.
        """
        directory = Path(directory)
        meta = read_meta(directory)
        if meta.get("format") != FORMAT:
            raise InputError(f"not a prosper inverted index (format {meta.get('format')!r})", directory / "meta.json")
        if meta.get("version") not in READABLE_VERSIONS:
            raise InputError(
                f"index version {meta.get('version')} is not supported (this prosper reads "
                f"{', '.join(map(str, READABLE_VERSIONS))}); rebuild it with `prosper index`", directory
            )
        names = _ARRAYS + (_pruning.PRUNING_ARRAYS if meta.get("pruning_arrays") else ())
        arrays = {}
        for name in names:
            path = directory / f"{name}.npy"
            if not path.is_file():
                raise InputError("index file missing", path)
            arrays[name] = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        n, v = meta["n_items"], meta["vocab_size"]
        if (
            len(arrays["term_offsets"]) != v + 1
            or len(arrays["item_norms"]) != n
            or len(arrays["postings_items"]) != int(arrays["term_offsets"][-1])
            or len(arrays["postings_weights"]) != len(arrays["postings_items"])
        ):
            raise InputError("index arrays disagree with meta.json (corrupt or partial index)", directory)
        blocks = {name: arrays.pop(name) for name in _pruning.PRUNING_ARRAYS if name in arrays} or None
        if blocks is not None and not _pruning.arrays_agree(blocks, meta):
            raise InputError("pruning arrays disagree with meta.json (corrupt or partial index)", directory)
        params = meta.get("params", {})
        return cls(
            ids=None, meta=meta, directory=directory, blocks=blocks, **arrays,
            pruning=pruning or params.get("pruning", "auto"),
            threshold_factor=threshold_factor if threshold_factor is not None else params.get("threshold_factor", 1.0),
        )

    # -- access ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.meta["n_items"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def ids(self) -> np.ndarray:
        """Item ids in row order (object array of str), read from ``ids.txt`` on first use."""
        if self._ids is None:
            text = (self.directory / "ids.txt").read_text(encoding="utf-8")
            ids = text.split("\n")[:-1]
            if len(ids) != len(self):
                raise InputError(f"ids.txt has {len(ids)} ids for {len(self)} items", self.directory / "ids.txt")
            self._ids = np.asarray(ids, dtype=object)
        return self._ids

    @property
    def vocabulary(self) -> list[str] | None:
        if self._vocabulary is None and self.directory is not None and self.meta.get("has_vocabulary"):
            path = self.directory / "vocabulary.json"
            self._vocabulary = json.loads(path.read_text(encoding="utf-8"))
        return self._vocabulary

    def document_frequency(self, term_ids: np.ndarray) -> np.ndarray:
        """Posting-list length of each term: how many items contain it."""
        term_ids = np.asarray(term_ids, dtype=np.int64)
        return self.term_offsets[term_ids + 1] - self.term_offsets[term_ids]

    # -- search ---------------------------------------------------------------------------
    def search(
        self,
        queries: SparseVectors,
        k: int = 1000,
        scoring: str | None = None,
        query_top_terms: int | None = None,
    ) -> list[SearchResult]:
        """Exact top-``k`` items for each query row (Eq. 11), best first; ``scoring=None`` uses
        the index's stored :attr:`scoring`."""
        ids = self.ids
        return [SearchResult(ids[rows], scores) for rows, scores in self.search_rows(queries, k, scoring, query_top_terms)]

    def search_rows(
        self, queries: SparseVectors, k: int = 1000, scoring: str | None = None, query_top_terms: int | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Like :meth:`search` but returns item rows (int64) instead of ids."""
        scoring = check_scoring(scoring or self.scoring)
        if k < 1:
            raise ConfigError(f"k must be at least 1 (got {k})")
        if queries.vocab_size != self.vocab_size:
            raise InputError(
                f"query vectors have vocabulary size {queries.vocab_size} but the index {self.vocab_size}; "
                "encode queries with the model that encoded the items"
            )
        out = []
        for i in range(len(queries)):
            terms, weights = queries.row(i)
            terms, weights = prepare_query(terms, weights, scoring, query_top_terms)
            out.append(self.search_one(terms, weights, k, item_l2=scoring in ("both_l2", "item_l2")))
        return out

    def search_one(
        self, terms: np.ndarray, weights: np.ndarray, k: int, item_l2: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows and scores for one prepared query (already pruned and normalised)."""
        terms = np.asarray(terms, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.float32)
        budget = self._pruning_budget(terms, weights, k)
        if budget is not None:
            inv = self._inverse_norms() if item_l2 else None
            found = self._pruner.search(terms, weights, k, inv, self.threshold_factor, budget)
            if found is not None:
                return found
        return self.accumulate(terms, weights, k, item_l2)

    def _pruning_budget(self, terms: np.ndarray, weights: np.ndarray, k: int) -> int | None:
        """None: score this query exhaustively; else the pruner's posting budget (-1: none)."""
        if self._pruner is None and self.blocks is not None:
            self._pruner = _pruning.BlockMaxPruner(
                self.term_offsets, self.postings_items, self.postings_weights, self.blocks,
                int(self.meta["block_size"]), self.vocab_size,
            )
        return _pruning.plan(self._pruner, self.pruning, self.threshold_factor, terms, weights, k, self.meta)

    def _inverse_norms(self) -> np.ndarray:
        if self._inv_norms is None:
            with np.errstate(divide="ignore"):
                inv = np.where(self.item_norms > 0, 1.0 / self.item_norms, 0.0)
            self._inv_norms = inv.astype(np.float32)
        return self._inv_norms

    def accumulate(
        self, terms: np.ndarray, weights: np.ndarray, k: int, item_l2: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exhaustive top-k of one prepared query: every posting into a dense accumulator."""
        n = len(self)
        if self._acc is None:
            self._acc = np.zeros(n, np.float32)
        acc = self._acc
        offsets = self.term_offsets
        terms = np.asarray(terms, dtype=np.int64)
        los = offsets[terms].tolist()
        his = offsets[terms + 1].tolist()
        items, values = self.postings_items, self.postings_weights
        try:
            touched = 0
            for lo, hi, w in zip(los, his, np.asarray(weights, np.float32).tolist()):
                if hi > lo:
                    if _FAST_ADD_AT:  # numpy >= 2: ufunc.at has a fast path, quicker than fancy +=
                        np.add.at(acc, items[lo:hi], values[lo:hi] * np.float32(w))
                    else:  # rows are unique within a posting list, so the fancy += adds each once
                        acc[items[lo:hi]] += values[lo:hi] * np.float32(w)
                    touched += hi - lo
            if touched == 0:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            if item_l2:
                acc *= self._inverse_norms()
            return top_k(acc, k)
        finally:
            acc.fill(0.0)  # the accumulator is reused by the next query, even after an error


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the ``k`` highest positive scores, best first, ties by ascending row.

    The positive scores are gathered first (a selection over a mostly-zero accumulator is
    slow: introselect degrades on many equal values); one selection among them finds the k-th
    score, a vectorised comparison keeps every row at or above it (ties included, so the
    tie-break by row stays exact) and only those few are sorted.
    """
    cand = np.flatnonzero(scores > 0)  # ascending rows
    values = scores[cand]
    if len(cand) > k:
        kth = np.partition(values, len(values) - k)[len(values) - k]
        keep = values >= kth
        cand, values = cand[keep], values[keep]
    # rows are ascending, so a stable sort on -score breaks ties by row
    order = np.argsort(-values, kind="stable")[:k]
    return cand[order].astype(np.int64), values[order]


def _row_norms(items: SparseVectors, chunk: int = 1 << 18) -> np.ndarray:
    """``||W_d||_2`` per row (float64 sums of squares), ``chunk`` rows at a time so the float64
    copy of the weights stays small."""
    n, nnz = len(items), items.nnz
    norms = np.zeros(n, np.float64)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        lo, hi = int(items.offsets[start]), int(items.offsets[stop])
        if hi > lo:
            sq = items.weights[lo:hi].astype(np.float64) ** 2
            full = np.flatnonzero(nnz[start:stop])  # reduceat over the non-empty rows only
            norms[start + full] = np.add.reduceat(sq, items.offsets[start:stop][full] - lo)
    return np.sqrt(norms)


def read_meta(directory: Path) -> dict:
    path = Path(directory) / "meta.json"
    if not path.is_file():
        raise InputError("not an index folder (meta.json missing)", directory)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", path, exc.lineno) from None
