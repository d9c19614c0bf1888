"""A BM25 channel over the same corpus, built on bm25s.

The lexical baseline of the paper's comparisons and the second channel of the multi-channel
analysis. Texts are lower-cased, split into words of two or more characters, English stop words
removed ("en") and words stemmed with the Snowball English stemmer (PyStemmer); BM25 uses the
Lucene variant with k1 = 1.5, b = 0.75 (bm25s defaults). These are the settings of the dataset
README's BM25 anchor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prosper.errors import InputError
from prosper.fileio import replace_dir, staging_dir
from prosper.retrieval.index import SearchResult

FORMAT = "prosper-bm25"


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str], stopwords: str = "en") -> list[list[str]]:
    """Word tokens per text, stop words removed and stemmed (the channel's analyzer)."""
    import bm25s

    return bm25s.tokenize(list(texts), stopwords=stopwords, stemmer=_stemmer(), return_ids=False, show_progress=False)


class BM25Channel:
    """BM25 over item texts: ``build(ids, texts)``, ``search(texts, k)``, ``save``/``open``."""

    def __init__(self, retriever, ids: Sequence[str], params: dict) -> None:
        self.retriever = retriever
        self.ids = np.asarray(list(ids), dtype=object)
        self.params = params

    @classmethod
    def build(
        cls, ids: Sequence[str], texts: Sequence[str], k1: float = 1.5, b: float = 0.75, stopwords: str = "en"
    ) -> BM25Channel:
        import bm25s

        if len(ids) != len(texts):
            raise InputError(f"{len(ids)} ids for {len(texts)} texts")
        if len(set(ids)) != len(ids):
            raise InputError("duplicate item ids; item ids must be unique")
        retriever = bm25s.BM25(k1=k1, b=b)
        retriever.index(tokenize(texts, stopwords), show_progress=False)
        return cls(retriever, ids, {"k1": k1, "b": b, "stopwords": stopwords, "stemmer": "english"})

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, texts: Sequence[str], k: int = 1000) -> list[SearchResult]:
        """Top-``k`` items per query text, best first; only items with a positive score."""
        tokens = tokenize(texts, self.params.get("stopwords", "en"))
        vocab = self.retriever.vocab_dict
        results = []
        known = [[t for t in q if t in vocab] for q in tokens]
        todo = [i for i, q in enumerate(known) if q]
        out: dict[int, SearchResult] = {}
        if todo:
            docs, scores = self.retriever.retrieve(
                [known[i] for i in todo], k=min(k, len(self)), show_progress=False, n_threads=0
            )
            for row, i in enumerate(todo):
                keep = scores[row] > 0
                out[i] = SearchResult(self.ids[docs[row][keep]], scores[row][keep].astype(np.float32))
        empty = SearchResult(np.zeros(0, dtype=object), np.zeros(0, np.float32))
        for i in range(len(tokens)):
            results.append(out.get(i, empty))
        return results

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        directory = Path(directory)
        tmp = staging_dir(directory, overwrite, "BM25 folder")
        self.retriever.save(str(tmp / "bm25s"))
        (tmp / "ids.txt").write_text("".join(f"{i}\n" for i in self.ids), encoding="utf-8")
        (tmp / "meta.json").write_text(json.dumps({"format": FORMAT, **self.params}, indent=2) + "\n", encoding="utf-8")
        replace_dir(tmp, directory)
        return directory

    @classmethod
    def open(cls, directory: str | Path) -> BM25Channel:
        import bm25s

        directory = Path(directory)
        meta_path = directory / "meta.json"
        if not meta_path.is_file():
            raise InputError("not a BM25 folder (meta.json missing)", directory)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise InputError(f"not a prosper BM25 folder (format {meta.get('format')!r})", meta_path)
        ids = (directory / "ids.txt").read_text(encoding="utf-8").split("\n")[:-1]
        retriever = bm25s.BM25.load(str(directory / "bm25s"))
        params = {key: value for key, value in meta.items() if key != "format"}
        return cls(retriever, ids, params)
