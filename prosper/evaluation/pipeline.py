"""``prosper eval --checkpoint C --data BEIR --split dev``: encode, index, search, evaluate.

One call answers "is my retriever good, and what does it add?": metrics of the checkpoint (and
of BM25 over the same corpus with ``bm25=True``), non-zeros and FLOPS per query, and with
``channels=True`` the multi-channel ``recall_types`` analysis; ``fusion="rrf"`` or ``"combsum"``
also fuses the two runs (:mod:`prosper.retrieval.fusion`, settings ``search.fusion_*``) and
reports the pair as the system ``prosper+bm25 (rrf)``. Everything lands in ``output``:
``run.trec``, ``run.bm25.trec``, ``run.<method>.trec``, ``metrics.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

from prosper.errors import InputError


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    split: str,
    settings,
    output: str | Path | None = None,
    bm25: bool = False,
    channels: bool = False,
    fusion: str | None = None,
    console=None,
) -> dict:
    """Run the whole evaluation and return the JSON payload (also written to ``output/metrics.json``)."""
    from prosper.data.collections import iter_collection
    from prosper.data.qrels import read_qrels, split_path
    from prosper.evaluation.metrics import evaluate, sparsity_stats
    from prosper.evaluation.report import write_json
    from prosper.modeling.encoder import SparseEncoder
    from prosper.plugins import get_registry
    from prosper.retrieval.api import resolve_scoring
    from prosper.retrieval.runs import results_to_run, write_run

    data = Path(data)
    qrels = read_qrels(split_path(data, split))
    search = settings.search
    measures_kw = {"mrr_rel": search.mrr_rel, "rel": search.rel}
    channels = channels or False
    if fusion is not None:
        from prosper.retrieval.fusion import check_method

        check_method(fusion)  # before any model loads
    bm25 = bm25 or channels or fusion is not None  # the channel analysis and fusion need BM25
    output = Path(output) if output is not None else Path(checkpoint) / f"eval-{split}"

    def say(msg):
        if console is not None:
            console.print(msg, highlight=False)

    kw = {"title_field": settings.data.title_field, "text_field": settings.data.text_field}
    item_ids, item_texts = [], []
    for record in iter_collection(data, side="item", **kw):
        item_ids.append(record.id)
        item_texts.append(record.text)
    all_queries = {r.id: r.text for r in iter_collection(data, side="query", **kw)}
    missing = [qid for qid in qrels if qid not in all_queries]
    if missing:
        raise InputError(f"{len(missing)} judged queries have no text in queries.jsonl (first: {missing[0]!r})", data)
    qids = list(qrels)
    query_texts = [all_queries[q] for q in qids]

    timings: dict[str, float] = {}
    say(f"encoding {len(item_ids):,} items and {len(qids):,} {split} queries with {checkpoint}")
    start = time.perf_counter()
    encoder = SparseEncoder.load(checkpoint)
    bs = settings.infer.batch_size
    items = encoder.encode(item_texts, side="item", batch_size=bs, ids=item_ids, show_progress=console is not None)
    queries = encoder.encode(query_texts, side="query", batch_size=bs, ids=qids)
    timings["encode_s"] = time.perf_counter() - start

    start = time.perf_counter()
    searcher = get_registry().build("searcher", search.searcher, where="search.searcher")
    index = searcher.build(items, vocabulary=encoder.vocabulary())
    timings["index_s"] = time.perf_counter() - start
    scoring = resolve_scoring(None, search.scoring, encoder)
    start = time.perf_counter()
    results = index.search(queries, k=search.k, scoring=scoring, query_top_terms=search.query_top_terms)
    timings["search_s"] = time.perf_counter() - start
    run = results_to_run(qids, results)
    write_run(output / "run.trec", run, tag="prosper")

    systems = {"prosper": evaluate(run, qrels, **measures_kw)}
    stats = sparsity_stats(queries, index, search.query_top_terms) if hasattr(index, "document_frequency") else {}
    systems["prosper"].update(stats)
    payload = {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "split": split,
        "n_queries": len(qids),
        "n_items": len(item_ids),
        "k": search.k,
        "scoring": scoring,
        "query_top_terms": search.query_top_terms,
        "searcher": search.searcher.model_dump(),
        "mrr_rel": search.mrr_rel,
        "rel": search.rel,
        "systems": systems,
        "runs": {"prosper": str(output / "run.trec")},
    }
    if bm25:
        from prosper.retrieval.bm25 import BM25Channel

        start = time.perf_counter()
        channel = BM25Channel.build(item_ids, item_texts)
        bm25_run = results_to_run(qids, channel.search(query_texts, k=search.k))
        timings["bm25_s"] = time.perf_counter() - start
        write_run(output / "run.bm25.trec", bm25_run, tag="bm25")
        systems["bm25"] = evaluate(bm25_run, qrels, **measures_kw)
        payload["runs"]["bm25"] = str(output / "run.bm25.trec")
        if fusion is not None:
            _add_fusion(payload, fusion, {"prosper": run, "bm25": bm25_run}, qrels, search, output, measures_kw)
        if channels:
            from prosper.retrieval.channels import analyse_channels

            analysis = analyse_channels(
                {"prosper": run, "bm25": bm25_run},
                qrels,
                depth=search.channel_depth,
                min_grade=search.rel,
                query_texts=dict(zip(qids, query_texts)),
                item_texts=dict(zip(item_ids, item_texts)),
            )
            payload["channels"] = analysis.to_dict()
            payload["_analysis"] = analysis
    payload["timings"] = timings
    write_json(output / "metrics.json", {k: v for k, v in payload.items() if not k.startswith("_")})
    payload["output"] = str(output)
    return payload


def _add_fusion(payload: dict, method: str, runs: dict, qrels, search, output: Path, measures_kw: dict) -> None:
    """Fuse the channels' runs, write ``run.<method>.trec`` and report the pair as one more system."""
    from prosper.evaluation.metrics import evaluate
    from prosper.retrieval.fusion import fuse, fused_name, fusion_options
    from prosper.retrieval.runs import write_run

    options = fusion_options(method, search)
    fused = fuse(runs, method, k=search.k, **options)
    name = fused_name(method, runs)
    path = write_run(output / f"run.{method}.trec", fused, tag=method)
    payload["systems"][name] = evaluate(fused, qrels, **measures_kw)
    payload["runs"][name] = str(path)
    payload["fusion"] = {"method": method, "system": name, **options}
