"""Built-in searchers, registered through the ``prosper`` entry-point group.

* ``exact``: the embedded inverted index (:mod:`prosper.retrieval.index`), exact top-k per Eq. 11.
* ``seismic``: approximate search with pyseismic-lsr (optional extra ``prosper-retrieval[seismic]``),
  imported only when a seismic index is built or opened.
* ``milvus``: a Milvus collection (server or Milvus Lite; optional extra ``prosper-retrieval[milvus]``);
  pymilvus is imported only when the collection is used.

Nothing heavy is imported here: this module loads whenever the registry does.
"""

from __future__ import annotations

from prosper import hookimpl
from prosper.retrieval.milvus import MilvusSearcher, MilvusSearchParams
from prosper.retrieval.searchers import (
    ExactParams,
    ExactSearcher,
    SeismicParams,
    SeismicSearcher,
)


@hookimpl
def register_searchers(register):
    register("exact", ExactSearcher, ExactParams)
    register("seismic", SeismicSearcher, SeismicParams)
    register("milvus", MilvusSearcher, MilvusSearchParams)
