"""Searcher components: what ``search.searcher: {name: ...}`` selects.

A searcher factory takes its validated params and returns a :class:`prosper.components.Searcher`
(``build(items, vocabulary=None, metadata=None)`` and ``open(directory)``, each giving a
:class:`prosper.components.SearchIndex` with ``search``, ``save`` and ``len``). ``meta.json`` in every index folder names the searcher that
wrote it, so ``prosper search --index IDX`` reopens it with the right one.

Only pydantic is imported here; numpy and the engines load when an index is built or opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prosper.components import Searcher


class ExactParams(BaseModel):
    """The exact searcher: block-max pruning knobs (scoring and top terms are chosen per search).

    ``block_size`` is fixed when the index is built; ``pruning`` and ``threshold_factor`` are
    stored in ``meta.json`` and apply whenever the index is opened (see docs/search.md).
    """

    model_config = ConfigDict(extra="forbid")
    block_size: int = Field(8, ge=4, le=65536)  # rows per block of pruned search (a power of two)
    pruning: Literal["auto", "always", "never"] = "auto"  # auto: block-max pruning or the accumulator, whichever is faster per query (both exact)
    threshold_factor: float = Field(1.0, gt=0, le=1)  # 1 = exact; f < 1 scores a block only while f x its bound >= the k-th score so far (faster, approximate)

    @field_validator("block_size")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError(f"block_size must be a power of two (got {value})")
        return value


class ExactSearcher(Searcher):
    """Exact top-k over prosper's embedded, memory-mapped inverted index (Eq. 11)."""

    name = "exact"

    def __init__(self, params: ExactParams | None = None) -> None:
        self.params = params or ExactParams()

    def build(self, items, vocabulary=None, metadata=None):
        from prosper.retrieval.index import InvertedIndex

        p = self.params
        return InvertedIndex.build(
            items, vocabulary=vocabulary, metadata=metadata,
            block_size=p.block_size, pruning=p.pruning, threshold_factor=p.threshold_factor,
        )

    def open(self, directory: str | Path):
        from prosper.retrieval.index import InvertedIndex

        return InvertedIndex.open(directory, pruning=self.params.pruning, threshold_factor=self.params.threshold_factor)


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


def open_index(directory: str | Path, registry=None, overrides=None):
    """Open any index folder with the searcher named in its ``meta.json``.

    ``overrides`` (a ``{name, ...params}`` spec, e.g. ``search.searcher``) replaces the stored
    params it names when it names the same searcher: search-time knobs such as the exact
    searcher's ``threshold_factor`` apply without a rebuild.
    """
    from prosper.retrieval.index import read_meta

    meta = read_meta(Path(directory))
    if registry is None:
        from prosper.plugins import get_registry

        registry = get_registry()
    name = meta.get("searcher", "exact")
    params = meta.get("params", {})
    if overrides is not None:
        spec = overrides.model_dump() if hasattr(overrides, "model_dump") else dict(overrides)
        if spec.pop("name", None) == name:
            params = {**params, **spec}
    return registry.build("searcher", {"name": name, **params}, where=f"{directory}/meta.json").open(directory)
