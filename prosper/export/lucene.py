"""Lucene impact exporter for Anserini: ``-collection JsonVectorCollection -impact -pretokenized``.

Items become JsonVectorCollection JSONL lines ``{"id": ..., "contents": "", "vector": {term: int}}``;
queries become TSV lines ``qid<TAB>term term term ...`` with each term repeated by its integer
weight (Anserini's ``TsvString`` topic reader; the repetition count is the query-side impact).

Integer weights are ``round(w × scale)`` (half to even, like Python's ``round``), computed in
float64. The rules below answer the pitfalls of real Anserini (docs/exporting.md):

* weights must be positive integers: zeros after rounding are dropped, never written as 0;
* weights above ``max_weight`` (default 2^24 − 1: Lucene scores are float32, exact only below
  2^24; anything past 2^31 − 1 would wrap) raise an error naming the id and term, or are
  clipped with ``overflow: clip`` (counted);
* a vector whose every weight rounds to 0 (``empty: keep_top``, the default) keeps its
  highest-weighted term at weight 1, so no item becomes unretrievable and no query empty;
  ``empty: write`` writes it with no terms; ``empty: error`` stops. All such rows are counted;
* Lucene's boolean queries fail beyond 1,024 clauses: queries keep their ``max_query_terms``
  highest-weighted terms (counted as ``query_terms_truncated``); a query with no terms at all
  cannot be a TSV topic and is left out, counted as ``empty_queries_omitted``;
* terms are made whitespace-proof by :func:`lucene_terms` (escapes, length cap); query ids may
  not contain a tab or line break (TSV), which is an error, not a silent change.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prosper.errors import ConfigError, InputError
from prosper.components import Exporter, Writer
from prosper.export.base import check_vocabulary, joined_rows, json_strings, string_array_bytes
from prosper.export.params import EXACT_LIMIT, INT_LIMIT, MAX_CLAUSES, LuceneParams  # noqa: F401
from prosper.fileio import AtomicFile
from prosper.sparse import SparseVectors

#: Lucene's whitespace tokenizer cuts tokens at this many UTF-16 code units.
MAX_TERM_UTF16 = 255

# Characters escaped in terms: everything Python's str.split() or Java's Character.isWhitespace
# treats as a separator, the no-break spaces Java keeps but Python splits (U+00A0, U+0085,
# U+2007, U+202F), other controls, and the escape character itself.
_ESCAPED = frozenset(
    [c for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    + list(range(0x00, 0x20))
    + list(range(0x7F, 0xA0))
    + [0x00A0, 0x0085, 0x2007, 0x202F, 0x3000, 0x180E, 0x2028, 0x2029, 0xFEFF, ord("\\")]
)
_ESCAPE_TABLE = {c: f"\\u{c:04X}" for c in _ESCAPED}


def sanitise_term(term: str) -> str:
    """A term Lucene's whitespace analysis keeps whole; injective over all strings.

    Whitespace, control characters and the backslash become ``\\uXXXX``; the empty string becomes
    ``\\e``; a result longer than 255 UTF-16 units is cut and ends ``\\h`` + 16 hex digits of
    the original's BLAKE2b hash. No lowercasing or Unicode normalisation.
    """
    if term == "":
        return "\\e"
    out = term.translate(_ESCAPE_TABLE)
    if _utf16_len(out) <= MAX_TERM_UTF16:
        return out
    digest = "\\h" + hashlib.blake2b(term.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    keep, used = [], _utf16_len(digest)
    for char in out:
        width = 2 if ord(char) > 0xFFFF else 1
        if used + width > MAX_TERM_UTF16:
            break
        keep.append(char)
        used += width
    return "".join(keep) + digest


def _utf16_len(text: str) -> int:
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


_TERMS_CACHE: dict[int, tuple[Sequence[str], list[str]]] = {}


def lucene_terms(vocabulary: Sequence[str]) -> list[str]:
    """The sanitised term of every term id; raises if two ids would share a term."""
    cached = _TERMS_CACHE.get(id(vocabulary))
    if cached is not None and cached[0] is vocabulary:
        return cached[1]
    terms = [sanitise_term(t) for t in vocabulary]
    if len(set(terms)) != len(terms):
        seen: dict[str, int] = {}
        for i, term in enumerate(terms):
            if term in seen:
                raise ConfigError(
                    f"vocabulary entries {seen[term]} and {i} map to the same Lucene term {term!r}; "
                    "the vocabulary must be unique"
                )
            seen[term] = i
    _TERMS_CACHE.clear()
    _TERMS_CACHE[id(vocabulary)] = (vocabulary, terms)
    return terms


def quantise(
    vectors: SparseVectors, params: LuceneParams, side: str, counts: dict[str, int]
) -> tuple[SparseVectors, np.ndarray]:
    """Integer impacts ``round(w × scale)`` as a SparseVectors whose weights are whole numbers.

    Applies the overflow, empty-vector and query-clause rules of the module docstring and adds
    to ``counts``. Returns the kept entries (weights as float32) and their exact int64 impacts.
    """
    n = len(vectors)
    impacts = np.rint(vectors.weights.astype(np.float64) * params.scale)
    over = impacts > params.max_weight
    if over.any():
        if params.overflow == "error":
            pos = int(np.flatnonzero(over)[0])
            row = int(np.searchsorted(vectors.offsets, pos, side="right")) - 1
            raise InputError(
                f"id {vectors.ids[row]!r}: weight {float(vectors.weights[pos])} × scale {params.scale} = "
                f"{impacts[pos]:.0f} exceeds max_weight {params.max_weight}; lower export.scale or set "
                "export.overflow=clip"
            )
        counts["clipped"] = counts.get("clipped", 0) + int(over.sum())
        impacts[over] = params.max_weight
    impacts = impacts.astype(np.int64)
    keep = impacts > 0
    rows = np.repeat(np.arange(n), vectors.nnz)
    kept = np.bincount(rows[keep], minlength=n)
    vanished = np.flatnonzero((kept == 0) & (vectors.nnz > 0))
    counts["empty_before"] = counts.get("empty_before", 0) + int((vectors.nnz == 0).sum())
    if len(vanished):
        counts["quantised_empty"] = counts.get("quantised_empty", 0) + len(vanished)
        if params.empty == "error":
            raise InputError(
                f"id {vectors.ids[vanished[0]]!r}: every weight rounds to 0 at scale {params.scale}; raise "
                "export.scale or set export.empty=keep_top|write"
            )
        if params.empty == "keep_top":
            for row in vanished:  # rare: a Python loop over these rows only
                lo, hi = vectors.offsets[row], vectors.offsets[row + 1]
                top = lo + int(np.argmax(vectors.weights[lo:hi]))  # ties: lowest term id
                impacts[top], keep[top] = 1, True
    if side == "query":
        kept = np.bincount(rows[keep], minlength=n)
        for row in np.flatnonzero(kept > params.max_query_terms):
            lo, hi = vectors.offsets[row], vectors.offsets[row + 1]
            inside = np.flatnonzero(keep[lo:hi])
            # highest impact first, then highest float weight, then lowest term id
            order = np.lexsort((vectors.term_ids[lo:hi][inside], -vectors.weights[lo:hi][inside], -impacts[lo:hi][inside]))
            keep[lo + inside[order[params.max_query_terms :]]] = False
            counts["query_terms_truncated"] = counts.get("query_terms_truncated", 0) + 1
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows[keep], minlength=n), out=offsets[1:])
    out = SparseVectors(vectors.ids, offsets, vectors.term_ids[keep], vectors.weights[keep], vectors.vocab_size)
    counts["max_impact"] = max(counts.get("max_impact", 0), int(impacts[keep].max()) if keep.any() else 0)
    return out, impacts[keep]


class LuceneExporter(Exporter):
    """Anserini impact files: JsonVectorCollection JSONL (items), repeated-term TSV (queries)."""

    def __init__(self, params: LuceneParams | None = None):
        self.params = params or LuceneParams()
        self._cache: tuple[int, object, object] | None = None

    def suffix(self, side: str) -> str:
        return ".tsv" if side == "query" else ".jsonl"

    def _terms(self, vocabulary: Sequence[str]):
        import pyarrow as pa

        if self._cache is None or self._cache[0] != id(vocabulary):
            terms = lucene_terms(vocabulary)
            self._cache = (id(vocabulary), pa.array(terms, pa.string()), json_strings(terms))
        return self._cache[1], self._cache[2]

    def open(self, path, vocabulary: Sequence[str], side: str, metadata: dict | None = None) -> LuceneWriter:
        if side not in ("item", "query"):
            raise ConfigError(f"side must be 'item' or 'query', not {side!r}")
        plain, quoted = self._terms(vocabulary)
        return LuceneWriter(Path(path), plain, quoted, len(vocabulary), side, self.params)

    def read(self, path, vocabulary: Sequence[str], side: str) -> SparseVectors:
        """Impacts divided by ``scale``: the weights Anserini scores with, in prosper's units."""
        from prosper.export.readers import read_json_vectors, read_repeated_term_tsv

        terms = lucene_terms(vocabulary)
        scale = self.params.scale
        if side == "query":
            return read_repeated_term_tsv(path, terms, weight=lambda count: count / scale)
        return read_json_vectors(path, terms, weight=lambda impact: impact / scale)

    def roundtrip(self, vectors: SparseVectors, side: str) -> SparseVectors:
        """The quantised vectors (impact / scale); queries left without terms are not written."""
        kept, impacts = quantise(vectors, self.params, side, {})
        out = SparseVectors(kept.ids, kept.offsets, kept.term_ids, (impacts / self.params.scale).astype(np.float32), kept.vocab_size)
        if side == "query":
            out = out.take(np.flatnonzero(out.nnz > 0))
        return out


class LuceneWriter(Writer):
    def __init__(self, path: Path, plain_terms, quoted_terms, vocab_size: int, side: str, params: LuceneParams):
        self.file = AtomicFile(path)
        self.plain, self.quoted = plain_terms, quoted_terms
        self.vocab_size, self.side, self.params = vocab_size, side, params
        self.counts: dict[str, int] = {"rows": 0}

    def write(self, batch: SparseVectors) -> None:
        check_vocabulary(batch, self.vocab_size)
        if len(batch) == 0:
            return
        vectors, impacts = quantise(batch, self.params, self.side, self.counts)
        if self.side == "item":
            self._write_items(vectors, impacts)
        else:
            self._write_queries(vectors, impacts)
        self.counts["rows"] += len(batch)

    def _write_items(self, vectors: SparseVectors, impacts: np.ndarray) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        keys = self.quoted.take(pa.array(vectors.term_ids))
        values = pc.cast(pa.array(impacts), pa.string())
        bodies = joined_rows(pc.binary_join_element_wise(keys, values, ":"), vectors.offsets, ",")
        lines = pc.binary_join_element_wise(
            '{"id":', json_strings(vectors.ids), ',"contents":"","vector":{', bodies, "}}\n", ""
        )
        self.file.write(string_array_bytes(lines))

    def _write_queries(self, vectors: SparseVectors, impacts: np.ndarray) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        for qid in vectors.ids:
            if "\t" in qid or "\n" in qid or "\r" in qid:
                raise InputError(f"query id {qid!r} contains a tab or line break, which TSV topics cannot hold")
        rows = np.repeat(np.arange(len(vectors)), vectors.nnz)
        tokens_per_row = np.bincount(rows, weights=impacts, minlength=len(vectors)).astype(np.int64)
        too_long = np.flatnonzero(tokens_per_row > self.params.max_query_tokens)
        if len(too_long):
            row = int(too_long[0])
            raise InputError(
                f"query {vectors.ids[row]!r} would repeat terms {int(tokens_per_row[row])} times "
                f"(max_query_tokens {self.params.max_query_tokens}); lower export.scale"
            )
        # Anserini's TsvString reader cannot hold a query without terms: such rows are counted
        # (empty_queries_omitted) and left out, and the CLI reports the count.
        empty = int((tokens_per_row == 0).sum())
        if empty:
            self.counts["empty_queries_omitted"] = self.counts.get("empty_queries_omitted", 0) + empty
        # Expand term ids by their impact in chunks of bounded size (a line holds sum(impacts) tokens).
        start, n = 0, len(vectors)
        while start < n:
            stop, budget = start, 0
            while stop < n and (stop == start or budget + tokens_per_row[stop] <= 4_000_000):
                budget += int(tokens_per_row[stop])
                stop += 1
            lo, hi = int(vectors.offsets[start]), int(vectors.offsets[stop])
            tokens = self.plain.take(pa.array(np.repeat(vectors.term_ids[lo:hi], impacts[lo:hi])))
            counts = tokens_per_row[start:stop]
            offsets = np.zeros(stop - start + 1, np.int64)
            np.cumsum(counts, out=offsets[1:])
            bodies = joined_rows(tokens, offsets, " ")
            lines = pc.binary_join_element_wise(pa.array(vectors.ids[start:stop], pa.string()), bodies, "\t")
            lines = pc.binary_join_element_wise(lines, "\n", "").filter(pa.array(counts > 0))
            self.file.write(string_array_bytes(lines))
            start = stop

    def close(self) -> dict:
        self.file.commit()
        return dict(self.counts)

    def abort(self) -> None:
        self.file.abort()
