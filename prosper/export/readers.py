"""Reading exported files back into :class:`prosper.sparse.SparseVectors`.

Every exporter can read what it wrote (the component contract's ``Exporter.read``), so users can
check an export and the contract tests can compare a round trip with the original vectors.
Term strings map back to term ids through the same vocabulary the export used; an unknown term
is an :class:`InputError` naming the file and line.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from prosper.errors import InputError
from prosper.sparse import SparseVectors


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield number, line


def _term_index(terms: Sequence[str]) -> dict[str, int]:
    return {term: i for i, term in enumerate(terms)}


def _rows_to_vectors(ids: list[str], rows: list[tuple[list[int], list[float]]], vocab_size: int) -> SparseVectors:
    return SparseVectors.from_rows(ids, rows, vocab_size) if ids else SparseVectors.empty(vocab_size)


def read_json_vectors(
    path: str | Path, terms: Sequence[str], field: str = "vector", weight: Callable[[float], float] = float
) -> SparseVectors:
    """JSON lines ``{"id": ..., field: {term: weight}}``; ``terms`` is the term string per id as
    written (the vocabulary, or its sanitised form), ``weight`` converts a stored weight."""
    path = Path(path)
    index = _term_index(terms)
    ids, rows = [], []
    for number, line in _lines(path):
        try:
            record = json.loads(line)
            vector = record[field]
            ids.append(str(record["id"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"not a vector line ({exc})", path, number) from None
        try:
            term_ids = [index[term] for term in vector]
        except KeyError as exc:
            raise InputError(f"term {exc.args[0]!r} is not in the vocabulary", path, number) from None
        rows.append((term_ids, [weight(w) for w in vector.values()]))
    return _rows_to_vectors(ids, rows, len(terms))


def read_repeated_term_tsv(path: str | Path, terms: Sequence[str], weight: Callable[[float], float] = float) -> SparseVectors:
    """TSV topics ``qid<TAB>term term ...`` whose repetitions are the impact of each term."""
    path = Path(path)
    index = _term_index(terms)
    ids, rows = [], []
    for number, line in _lines(path):
        qid, sep, body = line.rstrip("\n").partition("\t")
        if not sep:
            raise InputError("expected 'id<TAB>terms'", path, number)
        try:
            counts = Counter(index[token] for token in body.split(" ") if token)
        except KeyError as exc:
            raise InputError(f"term {exc.args[0]!r} is not in the vocabulary", path, number) from None
        ids.append(qid)
        rows.append((list(counts), [weight(c) for c in counts.values()]))
    return _rows_to_vectors(ids, rows, len(terms))
