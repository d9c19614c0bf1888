"""Where candidate negatives come from: BM25 or a prosper checkpoint, over the whole corpus.

A source has a ``name`` (written into every mined record as provenance), a ``describe()`` dict
for the sidecar and ``search(texts, k) -> list[SearchResult]`` (best first). Any object with
these three can be passed to :func:`prosper.mining.mine_hard_negatives` as ``source=``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class BM25Source:
    """:class:`prosper.retrieval.bm25.BM25Channel` built over the corpus (the eval baseline's analyzer)."""

    name = "bm25"

    def __init__(self, item_ids: Sequence[str], item_texts: Sequence[str]) -> None:
        from prosper.retrieval.bm25 import BM25Channel

        self.channel = BM25Channel.build(item_ids, item_texts)

    def describe(self) -> dict:
        return {"kind": "bm25", **self.channel.params}

    def search(self, texts: Sequence[str], k: int):
        return self.channel.search(list(texts), k=k)


class CheckpointSource:
    """A checkpoint encodes the corpus into an exact :class:`InvertedIndex` and the queries per chunk;
    items are scored with the model's own scoring rule (Eq. 11), the one it was trained with."""

    def __init__(
        self,
        checkpoint: str | Path,
        item_ids: Sequence[str],
        item_texts: Sequence[str],
        batch_size: int = 64,
        device: str | None = None,
        progress: bool = False,
    ) -> None:
        from prosper.modeling.encoder import SparseEncoder
        from prosper.retrieval.api import resolve_scoring
        from prosper.retrieval.index import InvertedIndex

        self.name = str(Path(checkpoint).resolve()) if Path(checkpoint).exists() else str(checkpoint)
        self.batch_size = batch_size
        self.encoder = SparseEncoder.from_pretrained(str(checkpoint), device=device)
        self.scoring = resolve_scoring(None, None, self.encoder)
        items = self.encoder.encode(
            list(item_texts), side="item", batch_size=batch_size, ids=list(item_ids), show_progress=progress
        )
        self.index = InvertedIndex.build(items)

    def describe(self) -> dict:
        return {"kind": "checkpoint", "checkpoint": self.name, "scoring": self.scoring, "searcher": "exact"}

    def search(self, texts: Sequence[str], k: int):
        texts = list(texts)
        ids = [str(i) for i in range(len(texts))]
        vectors = self.encoder.encode(texts, side="query", batch_size=self.batch_size, ids=ids)
        return self.index.search(vectors, k=k, scoring=self.scoring)
