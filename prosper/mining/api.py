"""``mine_hard_negatives``: qrels + a retrieval source -> a triples file ``prosper train`` reads.

For each query of ``qrels/<split>.tsv`` with at least one positive (grade >= ``min_grade``)
the source ranks the whole corpus, :func:`prosper.mining.select.select_negatives` picks the
negatives, and one JSONL record is written::

    {"query": "q1", "positives": ["d1", "d4"], "negatives": ["d9", "d7"], "source": "bm25",
     "negative_ranks": [null, 3], "negative_scores": [null, 11.2], "negative_origins": ["judged", "mined"],
     "best_positive_rank": 1, "best_positive_score": 14.0}

The first three fields are what :mod:`prosper.data.triples` reads; the rest is provenance
that training ignores. Queries go in qrels order, ``chunk_size`` at a time, through
:class:`prosper.mining.output.ResumableJsonl`; random sampling is seeded per query position,
so a resumed run writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prosper.errors import ConfigError, InputError
from prosper.mining.output import ResumableJsonl
from prosper.mining.select import MiningOptions, Selection, select_negatives

COUNT_KEYS = (
    "queries", "queries_without_negative", "negatives", "judged_negatives", "mined_negatives",
    "skipped_positives", "skipped_range", "skipped_margin",
)

@dataclass
class MiningSummary:
    output: Path
    meta: dict  # what the sidecar holds
    resumed_queries: int  # queries found done by --resume
    seconds: float


def _check_inputs(data: Path, split: str, checkpoint: str | None) -> Path:
    """Fail on a missing folder, split or checkpoint before anything is read or loaded."""
    from prosper.data.collections import resolve_collection
    from prosper.data.qrels import split_path

    if not data.is_dir():
        raise InputError("data folder not found (expected a BEIR folder: corpus.jsonl, queries.jsonl, qrels/)", data)
    qrels = split_path(data, split)
    if not qrels.is_file():
        known = sorted(p.stem for p in (data / "qrels").glob("*.tsv"))
        raise ConfigError(f"--split {split}: {qrels} not found (splits there: {', '.join(known) or 'none'})")
    resolve_collection(data, "item")
    resolve_collection(data, "query")
    if checkpoint is not None:  # a prosper checkpoint, a SPLADE folder or a hub id, inspected without loading
        from prosper.modeling.pretrained import inspect_pretrained

        inspect_pretrained(checkpoint)
    return qrels


def _model_name(model: str) -> str:
    """A local model folder's absolute path, or the hub id as given."""
    return str(Path(model).resolve()) if Path(model).exists() else model


def _record(qid: str, positives: list[str], selection: Selection, source: str) -> dict:
    def score(value):
        return None if value is None else round(value, 6)

    negatives = selection.negatives
    return {
        "query": qid,
        "positives": positives,
        "negatives": [n.id for n in negatives],
        "source": source,
        "negative_ranks": [n.rank for n in negatives],
        "negative_scores": [score(n.score) for n in negatives],
        "negative_origins": [n.origin for n in negatives],
        "best_positive_rank": selection.best_positive_rank,
        "best_positive_score": score(selection.best_positive_score),
    }


def _tally(counts: dict, selection: Selection) -> None:
    n = len(selection.negatives)
    counts["queries"] += 1
    counts["queries_without_negative"] += n == 0
    counts["negatives"] += n
    judged = sum(neg.origin == "judged" for neg in selection.negatives)
    counts["judged_negatives"] += judged
    counts["mined_negatives"] += n - judged
    counts["skipped_positives"] += selection.skipped_positives
    counts["skipped_range"] += selection.skipped_range
    counts["skipped_margin"] += selection.skipped_margin
    counts["per_query"][str(n)] = counts["per_query"].get(str(n), 0) + 1


def _per_query_stats(histogram: dict[str, int]) -> dict:
    sizes = Counter({int(k): v for k, v in histogram.items()})
    total = sum(sizes.values())
    return {
        "mean": round(sum(k * v for k, v in sizes.items()) / total, 4) if total else 0.0,
        "min": min(sizes) if sizes else 0,
        "max": max(sizes) if sizes else 0,
        "histogram": {str(k): sizes[k] for k in sorted(sizes)},
    }


def mine_hard_negatives(
    data: str | Path,
    output: str | Path,
    *,
    bm25: bool = False,
    checkpoint: str | Path | None = None,
    source=None,
    split: str = "train",
    options: MiningOptions | None = None,
    chunk_size: int = 1000,
    resume: bool = False,
    force: bool = False,
    title_field: str = "title",
    text_field: str = "text",
    on_error: str = "fail",
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = False,
    on_chunk: Callable[[int, int], None] | None = None,
) -> MiningSummary:
    """Mine hard negatives for the queries of ``data/qrels/<split>.tsv`` into ``output`` (JSONL).

    Give exactly one source: ``bm25=True``, ``checkpoint=DIR`` (encoded with
    ``batch_size`` on ``device``) or ``source=`` an object like those of
    :mod:`prosper.mining.sources`. ``options`` say what is kept (:class:`MiningOptions`).
    ``resume`` continues an interrupted run, ``force`` replaces a finished output or discards an
    unfinished one. ``on_chunk(done, total)`` is called after each chunk is on disk. Options,
    paths and the output's state are checked before any file is read or model loaded.
    """
    start_time = time.perf_counter()
    options = (options or MiningOptions()).check()
    if (bm25, checkpoint is not None, source is not None).count(True) != 1:
        raise ConfigError("give exactly one source: --bm25 or --checkpoint DIR")
    if chunk_size < 1:
        raise ConfigError(f"--chunk-size must be at least 1 (got {chunk_size})")
    data = Path(data).resolve()
    checkpoint = None if checkpoint is None else str(checkpoint)
    qrels_path = _check_inputs(data, split, checkpoint)
    source_name = "bm25" if bm25 else _model_name(checkpoint) if checkpoint is not None else str(source.name)
    fingerprint = {
        "source": source_name, "data": str(data), "split": split,
        "title_field": title_field, "text_field": text_field, **options.to_dict(),
    }
    writer = ResumableJsonl(output, fingerprint, resume=resume, force=force)
    writer.check()

    queries, skipped = _queries_and_texts(data, qrels_path, options.min_grade, title_field, text_field, on_error)
    item_ids, item_texts = _corpus(data, title_field, text_field, on_error)
    known_items = set(item_ids)
    todo = []
    for qid, text, positives, judged in queries:
        kept = [p for p in positives if p in known_items]
        skipped["positives_not_in_corpus"] += len(positives) - len(kept)
        if kept:
            todo.append((qid, text, kept, judged))
        else:
            skipped["queries_without_known_positive"] += 1
    if not todo:
        detail = f"a positive (grade >= {options.min_grade}) in the corpus and a text"
        raise InputError(f"no query with {detail}", qrels_path)
    writer.verify_queries(hashlib.sha256("\n".join(q[0] for q in todo).encode("utf-8")).hexdigest())

    if source is None:
        from prosper.mining.sources import BM25Source, CheckpointSource

        if bm25:
            source = BM25Source(item_ids, item_texts)
        else:
            source = CheckpointSource(
                checkpoint, item_ids, item_texts, batch_size=batch_size, device=device, progress=progress
            )
    del item_texts  # the source keeps what it needs

    done, counts = writer.start()
    resumed = done
    counts = {key: counts.get(key, 0) for key in COUNT_KEYS} | {"per_query": dict(counts.get("per_query", {}))}
    while done < len(todo):
        chunk = todo[done : done + chunk_size]
        lines = _mine_chunk(chunk, done, source, source_name, options, known_items, counts)
        done += len(chunk)
        writer.append(lines, done, counts)
        if on_chunk is not None:
            on_chunk(done, len(todo))

    import prosper

    per_query = counts.pop("per_query")
    describe = getattr(source, "describe", None)
    meta = {
        "prosper_version": prosper.__version__,
        "source": describe() if describe else {"kind": source_name},
        "data": str(data),
        "split": split,
        "qrels": str(qrels_path),
        "options": options.to_dict(),
        "chunk_size": chunk_size,
        "title_field": title_field,
        "text_field": text_field,
        "corpus_items": len(item_ids),
        "counts": {**skipped, **counts},
        "negatives_per_query": _per_query_stats(per_query),
        "resumed_queries": resumed,
        "seconds": round(time.perf_counter() - start_time, 3),  # of this invocation
    }
    path = writer.finish(meta)
    return MiningSummary(path, meta, resumed, meta["seconds"])


def _queries_and_texts(data: Path, qrels_path: Path, min_grade: int, title_field, text_field, on_error):
    """``[(qid, text, positives, judgments)]`` in qrels order for the queries with a positive and
    a text, and the counts of those left out."""
    from prosper.data.collections import iter_collection
    from prosper.data.qrels import read_qrels

    qrels = read_qrels(qrels_path)
    with_positive = {q: [i for i, g in judged.items() if g >= min_grade] for q, judged in qrels.items()}
    with_positive = {q: p for q, p in with_positive.items() if p}
    kw = {"title_field": title_field, "text_field": text_field, "on_error": on_error}
    texts = {r.id: r.text for r in iter_collection(data, "query", **kw) if r.id in with_positive}
    skipped = {
        "judged_queries": len(qrels),
        "queries_without_positive": len(qrels) - len(with_positive),
        "queries_without_text": sum(q not in texts for q in with_positive),
        "queries_without_known_positive": 0,
        "positives_not_in_corpus": 0,
    }
    queries = [(q, texts[q], p, qrels[q]) for q, p in with_positive.items() if q in texts]
    return queries, skipped


def _corpus(data: Path, title_field, text_field, on_error) -> tuple[list[str], list[str]]:
    from prosper.data.collections import iter_collection

    ids, texts = [], []
    for record in iter_collection(data, "item", title_field=title_field, text_field=text_field, on_error=on_error):
        ids.append(record.id)
        texts.append(record.text)
    return ids, texts


def _mine_chunk(chunk, start: int, source, source_name: str, options, known_items, counts) -> list[str]:
    """The JSONL lines of one chunk of queries (``start``: the position of its first query)."""
    results = source.search([text for _, text, _, _ in chunk], options.depth)
    lines = []
    for offset, ((qid, _, positives, judged), result) in enumerate(zip(chunk, results)):
        rng = None
        if options.sampling == "random":  # seeded by position: the same draw whatever the chunking
            import numpy as np

            rng = np.random.default_rng([options.seed, start + offset])
        selection = select_negatives(result.ids, result.scores, judged, options, rng, known_items)
        _tally(counts, selection)
        lines.append(json.dumps(_record(qid, positives, selection, source_name), ensure_ascii=False))
    return lines
