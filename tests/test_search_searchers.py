"""Searcher plugins: `exact` and `seismic` are registered; seismic (optional) against exact."""

from __future__ import annotations

import numpy as np
import pytest

from prosper.errors import ConfigError
from prosper.plugins import get_registry
from prosper.retrieval.index import InvertedIndex
from prosper.retrieval.searchers import open_index
from prosper.sparse import SparseVectors


def _vectors(rng, n, vocab, nnz, prefix):
    rows = []
    for _ in range(n):
        terms = np.unique(rng.zipf(1.4, size=nnz) % vocab)
        rows.append((terms, rng.random(len(terms)) + 0.05))
    return SparseVectors.from_rows([f"{prefix}{i}" for i in range(n)], rows, vocab)


def test_builtin_searchers_are_registered():
    registry = get_registry()
    assert {"exact", "seismic"} <= set(registry.names("searcher"))
    assert registry.get("searcher", "exact").provider != "(in-process)"
    searcher = registry.build("searcher", {"name": "exact"})
    assert searcher.name == "exact"
    with pytest.raises(ConfigError, match="unknown field|heap"):
        registry.validate("searcher", {"name": "exact", "heap_factor": 0.5}, "search.searcher")


def test_open_index_uses_the_searcher_in_meta(tmp_path):
    items = _vectors(np.random.default_rng(0), 50, 40, 8, "d")
    InvertedIndex.build(items).save(tmp_path / "idx")
    assert isinstance(open_index(tmp_path / "idx"), InvertedIndex)


def test_seismic_recall_against_exact(tmp_path):
    pytest.importorskip("seismic", reason="pyseismic-lsr (optional extra 'seismic') is not installed")
    rng = np.random.default_rng(1)
    items = _vectors(rng, 2000, 500, 30, "d")
    queries = _vectors(rng, 30, 500, 10, "q")
    registry = get_registry()
    seismic = registry.build("searcher", {"name": "seismic", "n_postings": 400}).build(items)
    exact = InvertedIndex.build(items)
    got, want = seismic.search(queries, 10), exact.search(queries, 10)
    recall = np.mean([len(set(g.ids) & set(w.ids)) / len(w.ids) for g, w in zip(got, want)])
    assert recall > 0.8
    # scores are Eq. 11 query_l2 dot products, like the exact ones
    for g, w in zip(got, want):
        common = {d: s for d, s in zip(w.ids, w.scores)}
        for d, s in zip(g.ids, g.scores):
            if d in common:
                assert s == pytest.approx(common[d], rel=2e-3)
    seismic.save(tmp_path / "sx")
    again = open_index(tmp_path / "sx")
    assert [r.ids.tolist() for r in again.search(queries, 10)] == [r.ids.tolist() for r in got]
    with pytest.raises(ConfigError, match="item_l2"):
        seismic.search(queries, 10, scoring="both_l2")


def test_seismic_missing_gives_install_hint(monkeypatch):
    import builtins

    from prosper.retrieval import seismic as module

    real_import = builtins.__import__

    def no_seismic(name, *args, **kw):
        if name == "seismic":
            raise ImportError("no module named seismic")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_seismic)
    with pytest.raises(ConfigError, match=r"pip install 'prosper-retrieval\[seismic\]'"):
        module.import_seismic()
