"""Approximate search with Seismic (pyseismic-lsr): the optional ``seismic`` searcher.

Seismic (Bruch et al., SIGIR 2024) prunes and clusters posting lists and skips blocks by their
summaries, so it answers much faster than exhaustive scoring at a small loss of recall. It
computes plain dot products; prosper applies the query side of Eq. 11 before handing the query
over, and folds item L2 normalisation into the stored vectors when ``item_l2`` is set.

Install with ``pip install 'prosper-retrieval[seismic]'``. The module imports ``seismic`` only
when an index is built or opened, and says how to install it when it is missing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np

from prosper.components import SearchIndex
from prosper.errors import ConfigError, InputError
from prosper.fileio import replace_dir, staging_dir
from prosper.retrieval.index import (
    SearchResult,
    check_scoring,
    prepare_query,
    read_meta,
)
from prosper.sparse import SparseVectors

FORMAT = "prosper-seismic-index"
VERSION = 1


def import_seismic():
    try:
        import seismic
    except ImportError:
        raise ConfigError(
            "search.searcher: the seismic searcher needs pyseismic-lsr; "
            "install it with: pip install 'prosper-retrieval[seismic]'"
        ) from None
    return seismic


class SeismicSearchIndex(SearchIndex):
    """A Seismic index plus the metadata prosper needs (sizes, ids, params)."""

    searcher = "seismic"

    def __init__(self, index, params, meta: dict, directory: Path | None = None) -> None:
        self.index = index
        self.params = params
        self.meta = meta
        self.directory = directory
        # searches default to the scoring the items were encoded for (metadata.scoring), else Eq. 11
        self.scoring = meta.get("scoring") or (meta.get("metadata") or {}).get("scoring") or "query_l2"
        self._string = import_seismic().get_seismic_string()

    @classmethod
    def build(cls, items: SparseVectors, params, vocabulary=None, metadata=None) -> SeismicSearchIndex:
        seismic = import_seismic()
        if len(set(items.ids)) != len(items):
            raise InputError("duplicate item ids; item ids must be unique")
        weights = items.weights
        if params.item_l2:
            sq = np.add.reduceat(weights.astype(np.float64) ** 2, items.offsets[:-1]) if len(weights) else []
            norms = np.sqrt(np.asarray(sq, np.float64))
            norms[items.nnz == 0] = 1.0
            weights = (weights / np.repeat(norms, items.nnz)).astype(np.float32)
        dataset = seismic.SeismicDataset()
        with _quiet():
            dataset.add_documents_by_id(
                list(items.ids), items.term_ids.astype(np.int64), weights.astype(np.float32), items.offsets
            )
            index = seismic.SeismicIndex.build_from_dataset(
                dataset,
                n_postings=params.n_postings,
                centroid_fraction=params.centroid_fraction,
                min_cluster_size=params.min_cluster_size,
                summary_energy=params.summary_energy,
                max_fraction=params.max_fraction,
                doc_cut=params.doc_cut,
                num_threads=params.num_threads,
            )
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "searcher": "seismic",
            "params": params.model_dump(),
            "n_items": len(items),
            "vocab_size": int(items.vocab_size),
            "nnz": int(len(items.term_ids)),
            "has_vocabulary": vocabulary is not None,
            "metadata": dict(metadata or {}),
        }
        built = cls(index, params, meta)
        built._vocabulary = None if vocabulary is None else list(vocabulary)
        return built

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        directory = Path(directory)
        tmp = staging_dir(directory, overwrite, "index folder")
        with _quiet():
            self.index.save(str(tmp / "index"))  # writes index.index.seismic
        vocabulary = getattr(self, "_vocabulary", None)
        if vocabulary is not None:
            (tmp / "vocabulary.json").write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
        (tmp / "meta.json").write_text(json.dumps(self.meta, indent=2) + "\n", encoding="utf-8")
        replace_dir(tmp, directory)
        self.directory = directory
        return directory

    @classmethod
    def open(cls, directory: str | Path, params=None) -> SeismicSearchIndex:
        seismic = import_seismic()
        directory = Path(directory)
        meta = read_meta(directory)
        if meta.get("format") != FORMAT:
            raise InputError(f"not a prosper seismic index (format {meta.get('format')!r})", directory)
        path = directory / "index.index.seismic"
        if not path.is_file():
            raise InputError("index file missing", path)
        with _quiet():
            index = seismic.SeismicIndex.load(str(path))
        if params is None:
            from prosper.retrieval.searchers import SeismicParams

            params = SeismicParams.model_validate(meta.get("params", {}))
        return cls(index, params, meta, directory)

    def __len__(self) -> int:
        return int(self.meta["n_items"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def vocabulary(self):
        vocabulary = getattr(self, "_vocabulary", None)
        if vocabulary is None and self.directory is not None and self.meta.get("has_vocabulary"):
            vocabulary = json.loads((self.directory / "vocabulary.json").read_text(encoding="utf-8"))
            self._vocabulary = vocabulary
        return vocabulary

    def search(
        self, queries: SparseVectors, k: int = 1000, scoring: str | None = None, query_top_terms: int | None = None
    ) -> list[SearchResult]:
        scoring = check_scoring(scoring or self.scoring)
        wants_item_l2 = scoring in ("both_l2", "item_l2")
        if wants_item_l2 != bool(self.params.item_l2):
            raise ConfigError(
                f"scoring {scoring!r} needs a seismic index built with item_l2={wants_item_l2} "
                f"(this one has item_l2={self.params.item_l2})"
            )
        if queries.vocab_size != self.vocab_size:
            raise InputError(f"query vocabulary size {queries.vocab_size} differs from the index's {self.vocab_size}")
        qids, comps, vals = [], [], []
        for i in range(len(queries)):
            terms, weights = prepare_query(*queries.row(i), scoring, query_top_terms)
            qids.append(str(i))
            comps.append(np.asarray([str(t) for t in terms.tolist()], dtype=self._string))
            vals.append(weights.astype(np.float32))
        cut = self.params.query_cut or query_top_terms or max([len(c) for c in comps] + [1])
        with _quiet():
            raw = self.index.batch_search(
                np.asarray(qids, dtype=self._string), comps, vals, k=k, query_cut=int(cut),
                heap_factor=self.params.heap_factor, num_threads=self.params.num_threads,
            )
        # batch_search does not keep the query order: each hit names its query id (h[0])
        by_query = {hits[0][0]: hits for hits in raw if hits}
        results = []
        for qid in qids:
            hits = [h for h in by_query.get(qid, []) if h[1] > 0]
            ids = np.asarray([h[2] for h in hits], dtype=object)
            scores = np.asarray([h[1] for h in hits], dtype=np.float32)
            results.append(SearchResult(ids, scores))
        return results


@contextlib.contextmanager
def _quiet():
    """Seismic prints progress from Rust to stdout; keep prosper's output clean."""
    stdout_fd = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        os.dup2(stdout_fd, 1)
        os.close(stdout_fd)
