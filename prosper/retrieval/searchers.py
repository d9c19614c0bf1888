"""Searcher components: what ``search.searcher: {name: ...}`` selects.

A searcher factory takes its validated params and returns a :class:`prosper.components.Searcher`
(``build(items, vocabulary=None, metadata=None)`` and ``open(directory)``, each giving a
:class:`prosper.components.SearchIndex` with ``search``, ``save`` and ``len``). ``meta.json`` in every index folder names the searcher that
wrote it, so ``prosper search --index IDX`` reopens it with the right one.

Only pydantic is imported here; numpy and the engines load when an index is built or opened.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from prosper.components import Searcher


class ExactParams(BaseModel):
    """The exact searcher has no parameters: scoring and top terms are chosen per search."""

    model_config = ConfigDict(extra="forbid")


class ExactSearcher(Searcher):
    """Exact top-k over prosper's embedded, memory-mapped inverted index (Eq. 11)."""

    name = "exact"

    def __init__(self, params: ExactParams | None = None) -> None:
        self.params = params or ExactParams()

    def build(self, items, vocabulary=None, metadata=None):
        from prosper.retrieval.index import InvertedIndex

        return InvertedIndex.build(items, vocabulary=vocabulary, metadata=metadata)

    def open(self, directory: str | Path):
        from prosper.retrieval.index import InvertedIndex

        return InvertedIndex.open(directory)


class SeismicParams(BaseModel):
    """Approximate search with Seismic (pyseismic-lsr); names follow its ``build_from_dataset``.

    ``query_cut`` and ``heap_factor`` trade recall for speed at search time; ``query_cut: null``
    uses every query term (or ``query_top_terms`` when set). ``scoring`` is fixed at build time
    because the item side of ``both_l2`` / ``item_l2`` must be folded into the stored vectors.
    """

    model_config = ConfigDict(extra="forbid")
    n_postings: int = Field(3500, ge=1)  # postings kept per term (Seismic build)
    centroid_fraction: float = Field(0.1, gt=0, le=1)  # clusters per posting list, as a fraction
    min_cluster_size: int = Field(2, ge=1)  # smallest block of a posting list
    summary_energy: float = Field(0.4, gt=0, le=1)  # share of a block's mass its summary keeps
    max_fraction: float = Field(1.5, gt=0)  # Seismic build parameter (see pyseismic-lsr)
    doc_cut: int = Field(15, ge=1)  # Seismic build parameter (see pyseismic-lsr)
    query_cut: int | None = Field(None, ge=1)  # query terms used; null: all (or query_top_terms)
    heap_factor: float = Field(0.8, gt=0, le=1)  # block pruning aggressiveness: lower is faster, less exact
    num_threads: int = Field(1, ge=0)  # 0: all cores (Rayon default)
    item_l2: bool = False  # store L2-normalised items (needed for the both_l2 / item_l2 scorings)


class SeismicSearcher(Searcher):
    """Approximate top-k with Seismic (pyseismic-lsr); install ``prosper-retrieval[seismic]``."""

    name = "seismic"
    exact = False

    def __init__(self, params: SeismicParams | None = None) -> None:
        self.params = params or SeismicParams()

    def build(self, items, vocabulary=None, metadata=None):
        from prosper.retrieval.seismic import SeismicSearchIndex

        return SeismicSearchIndex.build(items, self.params, vocabulary=vocabulary, metadata=metadata)

    def open(self, directory: str | Path):
        from prosper.retrieval.seismic import SeismicSearchIndex

        return SeismicSearchIndex.open(directory, self.params)


def open_index(directory: str | Path, registry=None):
    """Open any index folder with the searcher named in its ``meta.json``."""
    from prosper.retrieval.index import read_meta

    meta = read_meta(Path(directory))
    if registry is None:
        from prosper.plugins import get_registry

        registry = get_registry()
    name = meta.get("searcher", "exact")
    params = meta.get("params", {})
    return registry.build("searcher", {"name": name, **params}, where=f"{directory}/meta.json").open(directory)
