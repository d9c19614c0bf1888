"""``prosper.Index``: an index built from an encoder that remembers how to search it.

The user's three lines (after sentence-transformers' ``SparseEncoder`` then ``similarity``)::

    encoder = prosper.SparseEncoder.from_pretrained("naver/splade-v3")      # or a folder
    index = prosper.Index.build(encoder, {"p1": "oak nightstand", "p2": "drill"})
    results = index.search(encoder.encode_queries(["bedside table"]), k=10)

The index keeps the encoder's scoring rule (Eq. 11 ``query_l2``, or the dot product for a plain
SPLADE model) and its vocabulary, and saves both: ``index.search`` needs no ``scoring=`` and
:meth:`Index.open` restores them. Building goes through the registered searcher (``exact`` by
default, any ``search.searcher`` spec), so a saved folder also opens with ``prosper search``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prosper.components import SearchIndex, SearchResult
from prosper.errors import InputError
from prosper.sparse import SparseVectors


def item_texts(items: Any) -> tuple[list[str], list[str]]:
    """``(ids, texts)`` from texts (ids ``"0", "1", ...``), ``(id, text)`` pairs or an ``{id: text}`` mapping."""
    if isinstance(items, (str, bytes)):
        raise InputError("items must be texts, (id, text) pairs or a mapping of id to text, not one string")
    if isinstance(items, Mapping):
        pairs = list(items.items())
    elif isinstance(items, Iterable):
        listed = list(items)
        if all(isinstance(x, str) for x in listed):
            return [str(i) for i in range(len(listed))], listed
        pairs = listed
    else:
        raise InputError(f"items must be texts, (id, text) pairs or a mapping of id to text, not {type(items).__name__}")
    ids, texts = [], []
    for n, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise InputError(f"item {n}: expected an (id, text) pair, got {type(pair).__name__} (mixing texts and pairs?)")
        item_id, text = pair
        if not isinstance(text, str):
            raise InputError(f"item {n} ({item_id!r}): the text must be a string, not {type(text).__name__}")
        ids.append(str(item_id))
        texts.append(text)
    return ids, texts


class Index(SearchIndex):
    """A :class:`~prosper.components.SearchIndex` plus the encoder's scoring and vocabulary.

    ``search`` takes query vectors (``encoder.encode_queries(texts)``) or, when the index holds
    its encoder, the query texts themselves; ``scoring`` defaults to the one stored at build
    time. ``decode`` names the terms of vectors with the stored vocabulary.
    """

    def __init__(self, index: SearchIndex, scoring: str | None = None, encoder=None, vocabulary: Sequence[str] | None = None):
        self.index = index
        self.scoring = scoring or index.scoring
        self.encoder = encoder
        self._vocabulary = None if vocabulary is None else list(vocabulary)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        encoder,
        items: Any,
        searcher: str | Mapping[str, Any] | None = None,
        batch_size: int = 64,
        show_progress: bool = False,
        scoring: str | None = None,
    ) -> Index:
        """Encode ``items`` with ``encoder`` and index them.

        ``items``: texts, ``(id, text)`` pairs or ``{id: text}``. ``searcher``: a registered
        searcher name or ``{name, ...params}`` spec (default ``exact``). ``scoring`` overrides
        the encoder's ``model.scoring`` as the stored default.
        """
        from prosper.plugins import get_registry
        from prosper.retrieval.index import check_scoring

        ids, texts = item_texts(items)
        scoring = check_scoring(scoring or encoder.settings.scoring)
        vectors = encoder.encode_items(texts, ids=ids, batch_size=batch_size, show_progress=show_progress)
        spec = {"name": searcher} if isinstance(searcher, str) else dict(searcher or {"name": "exact"})
        built = get_registry().build("searcher", spec, where="searcher")
        vocabulary = list(encoder.vocabulary())
        metadata = {"scoring": scoring, "model": encoder.source or "", "tokenizer": _tokenizer_name(encoder)}
        return cls(built.build(vectors, vocabulary=vocabulary, metadata=metadata), scoring, encoder, vocabulary)

    @classmethod
    def open(cls, directory: str | Path, encoder=None) -> Index:
        """Reopen a saved index with the scoring it was built for (``encoder``: for text queries)."""
        from prosper.retrieval.searchers import open_index

        return cls(open_index(directory), encoder=encoder)

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the index folder (scoring and vocabulary included) atomically."""
        return self.index.save(directory, overwrite=overwrite)

    # -- access ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.index)

    @property
    def ids(self):
        """Item ids in row order."""
        return self.index.ids

    @property
    def vocabulary(self) -> list[str] | None:
        """One term string per term id, as the encoder's tokenizer writes them."""
        if self._vocabulary is None:
            self._vocabulary = self.index.vocabulary
        return self._vocabulary

    def decode(self, vectors: SparseVectors, top_k: int | None = None) -> list[list[tuple[str, float]]]:
        """``vectors.decode`` with this index's encoder or vocabulary naming the terms."""
        return vectors.decode(top_k, self.encoder if self.encoder is not None else self.vocabulary)

    # -- search ---------------------------------------------------------------------------
    def search(
        self, queries, k: int = 10, scoring: str | None = None, query_top_terms: int | None = None
    ) -> list[SearchResult]:
        """Top ``k`` items per query, best first (``SearchResult(ids, scores)`` each).

        ``queries``: :class:`~prosper.sparse.SparseVectors` (one row per query), or a list of
        query texts when the index was built (or opened) with an encoder.
        """
        if not isinstance(queries, SparseVectors):
            if self.encoder is None:
                raise InputError("queries must be SparseVectors (encoder.encode_queries(texts)); this index has no encoder to encode texts")
            queries = self.encoder.encode_queries(queries)
        return self.index.search(queries, k=k, scoring=scoring or self.scoring, query_top_terms=query_top_terms)

    def __repr__(self) -> str:
        return f"Index({len(self)} items, scoring={self.scoring!r}, searcher={type(self.index).__name__})"


def _tokenizer_name(encoder) -> str:
    return str(getattr(encoder.tokenizer, "name_or_path", "") or "")
