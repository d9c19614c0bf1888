"""Contract checks of exporters (write, merge, read back) and searchers (equal to brute force)."""

from __future__ import annotations

from pathlib import Path

from prosper.contracts import CheckReport, require

# Term strings that trip engines up: byte-level BPE markers, WordPiece suffixes, dots (OpenSearch
# rank_features), spaces and a no-break space (Lucene), non-ASCII, an empty string.
TRICKY_TERMS = ["Ġdrill", "##ing", "a.b", "x y", "no\u00a0break", "é", "ß", "[CLS]", "18v", ""]


def vocabulary(size: int = 64) -> list[str]:
    return TRICKY_TERMS + [f"t{i}" for i in range(size - len(TRICKY_TERMS))]


def random_vectors(n: int, vocab_size: int, seed: int, prefix: str, max_terms: int = 12):
    """Random vectors with varied widths (one empty row), weights in [0.05, 3) at float32."""
    import numpy as np

    from prosper.sparse import SparseVectors

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        width = 0 if i == 3 else int(rng.integers(1, max_terms + 1))
        terms = rng.choice(vocab_size, size=width, replace=False)
        rows.append((terms, rng.uniform(0.05, 3.0, size=width).astype(np.float32)))
    return SparseVectors.from_rows([f"{prefix}{i}" for i in range(n)], rows, vocab_size)


def _same(got, want, atol: float = 1e-6) -> bool:
    return got.equals(want, atol=atol)


def check_exporter(spec: dict, label: str, root: Path, report: CheckReport, registry) -> None:
    from prosper.components import Exporter, Writer
    from prosper.plugins import get_registry
    from prosper.sparse import SparseVectors

    exporter = (registry or get_registry()).build("exporter", spec, "export")
    require(isinstance(exporter, Exporter), label, "the factory must return a prosper.components.Exporter")
    vocab = vocabulary()
    require(bool(exporter.sides) and set(exporter.sides) <= {"item", "query"}, label, "sides must name item and/or query")
    for side, seed in (("item", 1), ("query", 2)):
        if side not in exporter.sides:
            continue
        vectors = random_vectors(40, len(vocab), seed, "d" if side == "item" else "q")
        suffix = exporter.suffix(side)
        require(isinstance(suffix, str), label, f"suffix({side!r}) must be a str")
        parts = []
        for k, (lo, hi) in enumerate(((0, 25), (25, 40))):
            path = root / f"{side}-part-{k}{suffix}"
            writer = exporter.open(path, vocab, side, {"tokenizer": "contract-check"})
            require(isinstance(writer, Writer), label, "open() must return a prosper.components.Writer")
            for start in range(lo, hi, 10):  # several write() calls per file
                writer.write(vectors.slice(start, min(start + 10, hi)))
            summary = writer.close()
            require(isinstance(summary, dict) and summary.get("rows") == hi - lo, label, f"close() must return a dict with rows={hi - lo} (got {summary!r})")
            parts.append(path)
        expected = exporter.roundtrip(vectors, side)
        if not exporter.store:  # a store holds every shard's rows: one shard cannot be read alone
            first = exporter.read(parts[0], vocab, side)
            require(_same(first, exporter.roundtrip(vectors.slice(0, 25), side)), label, f"read() of a {side} file must equal roundtrip() of what was written")
        merged = root / f"{side}-merged{suffix}"
        exporter.merge(parts, merged, side)
        got = exporter.read(merged, vocab, side)
        require(_same(got, expected), label, f"read() after merge() of two {side} shards must equal roundtrip() of all rows")
        report.ok(f"{side}: 40 vectors written in two shards, merged and read back equal")
    side = exporter.sides[0]
    aborted = root / f"aborted{exporter.suffix(side)}"
    writer = exporter.open(aborted, vocab, side, None)
    writer.write(random_vectors(5, len(vocab), 3, "x"))
    writer.abort()
    leftovers = [p.name for p in root.iterdir() if p.name.startswith("aborted")]
    require(not leftovers, label, f"abort() must leave nothing behind (found {leftovers})")
    report.ok("abort() leaves nothing behind")
    empty = exporter.roundtrip(SparseVectors.empty(len(vocab)), side)
    require(len(empty) == 0, label, "roundtrip() of no vectors must be empty")


def brute_force(items, queries, k: int):
    """Eq. 11 (query L2-normalised) for every pair, top k per query: [(rows, scores)]."""
    import numpy as np

    d = items.to_dense().astype(np.float64)
    out = []
    for i in range(len(queries)):
        q = np.zeros(items.vocab_size)
        terms, weights = queries.row(i)
        q[terms] = weights
        norm = np.linalg.norm(q)
        scores = d @ (q / norm if norm > 0 else q)
        order = np.lexsort((np.arange(len(scores)), -scores))
        order = order[scores[order] > 0][:k]
        out.append((order, scores[order]))
    return out


def _compare(index, items, queries, k: int, exact: bool, label: str, when: str) -> float:
    import numpy as np

    results = index.search(queries, k=k, scoring="query_l2")
    require(len(results) == len(queries), label, f"search() must return one result per query ({when})")
    hits = total = 0
    position = {item_id: row for row, item_id in enumerate(items.ids)}
    for i, (result, (rows, scores)) in enumerate(zip(results, brute_force(items, queries, k))):
        got_rows = np.array([position[str(x)] for x in result.ids], dtype=np.int64)
        got_scores = np.asarray(result.scores, dtype=np.float64)
        require(np.all(np.diff(got_scores) <= 1e-6), label, f"query {i}: results must be best first ({when})")
        exact_of_got = {int(r): s for r, s in zip(*brute_force_scores(items, queries, i, got_rows))}
        # float32 for exact searchers; approximate ones may store weights at half precision
        tolerance = (lambda s: 1e-4) if exact else (lambda s: 5e-3 * max(1.0, abs(s)))
        require(all(abs(exact_of_got[int(r)] - s) <= tolerance(s) for r, s in zip(got_rows, got_scores)), label, f"query {i}: scores must be Eq. 11's ({when})")
        if exact:
            require(list(got_rows) == list(rows), label, f"query {i}: top-{k} must equal exhaustive scoring ({when}): {list(got_rows)} != {list(rows)}")
        hits += len(set(got_rows.tolist()) & set(rows.tolist()))
        total += len(rows)
    return hits / total if total else 1.0


def brute_force_scores(items, queries, i: int, rows):
    import numpy as np

    q = np.zeros(items.vocab_size)
    terms, weights = queries.row(i)
    q[terms] = weights
    norm = np.linalg.norm(q)
    scores = items.take(rows).to_dense().astype(np.float64) @ (q / norm if norm > 0 else q)
    return rows, scores


def check_searcher(spec: dict, label: str, root: Path, report: CheckReport, registry) -> None:
    from prosper.components import SearchIndex, Searcher
    from prosper.plugins import get_registry

    searcher = (registry or get_registry()).build("searcher", spec, "search.searcher")
    require(isinstance(searcher, Searcher), label, "the factory must return a prosper.components.Searcher")
    vocab = vocabulary()
    items = random_vectors(300, len(vocab), 5, "d")
    queries = random_vectors(25, len(vocab), 6, "q", max_terms=6)
    index = searcher.build(items, vocabulary=vocab, metadata={"scoring": "query_l2"})
    require(isinstance(index, SearchIndex), label, "build() must return a prosper.components.SearchIndex")
    require(len(index) == len(items), label, f"len(index) must be {len(items)}")
    exact = searcher.exact
    for k in (10, 400):
        recall = _compare(index, items, queries, k, exact, label, f"k={k}")
        require(exact or recall >= 0.9, label, f"an approximate searcher must reach recall >= 0.9 at k={k} on a small index (got {recall:.3f})")
    report.ok("built index answers like brute-force Eq. 11" + ("" if exact else f" (recall {recall:.3f})"))
    directory = root / "saved-index" if searcher.needs_directory else None
    index.save(directory if directory is not None else root / "saved-index", overwrite=True)
    reopened = searcher.open(directory)
    _compare(reopened, items, queries, 10, exact, label, "after save/open")
    report.ok("saved and reopened index answers the same")
