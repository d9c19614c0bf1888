"""The one evaluation pipeline: encode -> index -> search -> (BM25, fusion) -> metrics.

:func:`run_pipeline` is called by ``prosper eval`` (:func:`evaluate_checkpoint`), by training
validation (:func:`prosper.training.validation.evaluate_encoder`) and by the demo
(:mod:`prosper.demo.pipeline`), so the three cannot drift apart. Its rule for queries without
hits (:func:`prosper.evaluation.metrics.mean_over`): they count as zero for every measure, and
every mean is over all judged queries of the :class:`~prosper.evaluation.evalset.EvalSet`.

Stages a caller has already run are passed in: item vectors (``items``), an index (``index``,
e.g. one opened from disk) or query vectors (``queries``); the rest runs here. BM25
(:mod:`prosper.retrieval.bm25`) searches the same items' texts; ``fusions`` fuse the two runs
(:mod:`prosper.retrieval.fusion`, settings ``search.fusion_*``) into the system
``prosper+bm25 (<method>)``.

``prosper eval --checkpoint C --data BEIR --split dev`` (:func:`evaluate_checkpoint`) writes
``run.trec``, ``run.bm25.trec``, ``run.<method>.trec`` and ``metrics.json`` into ``output``;
``prosper eval --run FILE --qrels QRELS`` (:func:`evaluate_run_files`) scores run files alone.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prosper.evaluation.evalset import EvalSet, load_eval_set
from prosper.evaluation.metrics import DEFAULT_MEASURES

__all__ = ["EvalSet", "Evaluation", "evaluate_checkpoint", "evaluate_run_files", "load_eval_set", "run_pipeline"]


@dataclass
class Evaluation:
    """What :func:`run_pipeline` found: runs, per-query values and means, and what it built."""

    evalset: EvalSet
    measures: tuple[str, ...]
    scoring: str
    runs: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # system -> run
    values: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # system -> qid -> measure
    systems: dict[str, dict[str, float]] = field(default_factory=dict)  # system -> measure -> mean (+ prosper's stats)
    tags: dict[str, str] = field(default_factory=dict)  # system -> TREC run tag
    fusion: dict[str, Any] = field(default_factory=dict)  # method -> the fuse() options used
    timings: dict[str, float] = field(default_factory=dict)
    items: Any = None  # SparseVectors of the items (None when an index was given)
    queries: Any = None  # SparseVectors of the queries
    index: Any = None
    bm25: Any = None  # the BM25Channel, when BM25 ran

    def means(self, system: str, qids: Sequence[str] | None = None) -> dict[str, float]:
        """Mean of each measure of ``system`` over ``qids`` (default: every judged query)."""
        from prosper.evaluation.metrics import mean_over

        return mean_over(self.values[system], self.evalset.query_ids if qids is None else qids, self.measures)

    def channels(self, depth: int, min_grade: int, n_examples: int = 5, qids: Sequence[str] | None = None):
        """The multi-channel ``recall_types`` analysis of prosper and BM25 (over ``qids``)."""
        from prosper.retrieval.channels import analyse_channels

        qrels = self.evalset.qrels if qids is None else self.evalset.subset(qids)
        texts = {"query_texts": self.evalset.query_text(), "item_texts": self.evalset.item_text()} if n_examples else {}
        runs = {name: self.runs[name] for name in ("prosper", "bm25")}
        return analyse_channels(runs, qrels, depth=depth, min_grade=min_grade, n_examples=n_examples, **texts)

    def write_runs(self, paths: Mapping[str, str | Path]) -> dict[str, str]:
        """Write the runs of the systems named in ``paths`` as TREC files; ``{system: path}``."""
        from prosper.retrieval.runs import write_run

        return {name: str(write_run(path, self.runs[name], tag=self.tags[name])) for name, path in paths.items()}


def run_pipeline(
    evalset: EvalSet,
    search,
    encoder=None,
    *,
    items=None,
    queries=None,
    index=None,
    bm25: bool = False,
    fusions: Sequence[str] = (),
    measures: Sequence[str] = DEFAULT_MEASURES,
    batch_size: int = 256,
    stats: bool = True,
    progress: bool = False,
) -> Evaluation:
    """Evaluate ``encoder`` (a :class:`~prosper.modeling.encoder.SparseEncoder`) on ``evalset``.

    ``search`` is a :class:`~prosper.settings.SearchSettings`: ``k``, ``scoring`` (else the
    model's), ``query_top_terms``, ``searcher`` (used when no ``index`` is given), ``mrr_rel``
    and ``rel`` (the relevance grades of the measures) and ``fusion_*``. With ``stats`` the
    prosper system also reports non-zeros and FLOPS per query (embedded index only).
    """
    from prosper.evaluation.metrics import per_query, sparsity_stats
    from prosper.retrieval.api import resolve_scoring
    from prosper.retrieval.index import InvertedIndex
    from prosper.retrieval.runs import results_to_run

    if fusions:
        from prosper.retrieval.fusion import check_method

        for method in fusions:
            check_method(method)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    if index is None and items is None:
        items = encoder.encode(evalset.item_texts, side="item", batch_size=batch_size, ids=evalset.item_ids, show_progress=progress)
    if queries is None:
        queries = encoder.encode(evalset.query_texts, side="query", batch_size=batch_size, ids=evalset.query_ids)
    timings["encode_s"] = time.perf_counter() - start
    if index is None:
        from prosper.plugins import get_registry

        start = time.perf_counter()
        searcher = get_registry().build("searcher", search.searcher, where="search.searcher")
        index = searcher.build(items, vocabulary=encoder.vocabulary())
        timings["index_s"] = time.perf_counter() - start
    scoring = resolve_scoring(None, search.scoring, encoder, index)
    result = Evaluation(evalset, tuple(measures), scoring, items=items, queries=queries, index=index, timings=timings)

    start = time.perf_counter()
    hits = index.search(queries, k=search.k, scoring=scoring, query_top_terms=search.query_top_terms)
    result.runs["prosper"] = results_to_run(list(queries.ids), hits)
    result.tags["prosper"] = "prosper"
    timings["search_s"] = time.perf_counter() - start
    if bm25 or fusions:
        _add_bm25(result, search.k)
    for method in fusions:
        _add_fusion(result, method, search)

    for name, run in result.runs.items():
        result.values[name] = per_query(run, evalset.qrels, measures, search.mrr_rel, search.rel)
        result.systems[name] = result.means(name)
    if stats and isinstance(index, InvertedIndex):  # needs the posting lists' document frequencies
        result.systems["prosper"].update(sparsity_stats(queries, index, search.query_top_terms))
    return result


def _add_bm25(result: Evaluation, k: int) -> None:
    """BM25 over the same items' texts (:class:`~prosper.retrieval.bm25.BM25Channel`)."""
    from prosper.retrieval.bm25 import BM25Channel
    from prosper.retrieval.runs import results_to_run

    evalset = result.evalset
    start = time.perf_counter()
    result.bm25 = BM25Channel.build(evalset.item_ids, evalset.item_texts)
    result.runs["bm25"] = results_to_run(evalset.query_ids, result.bm25.search(evalset.query_texts, k=k))
    result.tags["bm25"] = "bm25"
    result.timings["bm25_s"] = time.perf_counter() - start


def _add_fusion(result: Evaluation, method: str, search) -> None:
    """Fuse the prosper and BM25 runs with ``method``: the system ``prosper+bm25 (<method>)``."""
    from prosper.retrieval.fusion import fuse, fused_name, fusion_options

    channels = {name: result.runs[name] for name in ("prosper", "bm25")}
    options = fusion_options(method, search)
    name = fused_name(method, channels)
    result.runs[name] = fuse(channels, method, k=search.k, **options)
    result.tags[name] = method
    result.fusion[method] = {"system": name, **options}


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
    """``prosper eval --checkpoint``: the whole evaluation; returns the JSON payload (also written
    to ``output/metrics.json``; ``output`` defaults to ``CHECKPOINT/eval-SPLIT``).

    Metrics of the checkpoint, and with ``bm25`` of BM25 over the same corpus; ``channels`` adds
    the multi-channel analysis and ``fusion`` (``rrf`` | ``combsum``) the fused pair; both imply BM25.
    """
    from prosper.evaluation.report import write_json
    from prosper.modeling.encoder import SparseEncoder

    if fusion is not None:
        from prosper.retrieval.fusion import check_method

        check_method(fusion)  # before any model loads
    search = settings.search
    output = Path(output) if output is not None else Path(checkpoint) / f"eval-{split}"
    data_settings = settings.data
    evalset = load_eval_set(data, split, title_field=data_settings.title_field, text_field=data_settings.text_field)
    if console is not None:
        console.print(f"encoding {len(evalset.item_ids):,} items and {len(evalset):,} {split} queries with {checkpoint}", highlight=False)
    start = time.perf_counter()
    encoder = SparseEncoder.from_pretrained(str(checkpoint))  # a checkpoint, a SPLADE folder or a hub id
    loaded_s = time.perf_counter() - start
    result = run_pipeline(
        evalset,
        search,
        encoder,
        bm25=bm25 or channels,
        fusions=[fusion] if fusion is not None else [],
        batch_size=settings.infer.batch_size,
        progress=console is not None,
    )
    result.timings["encode_s"] += loaded_s
    paths = {"prosper": output / "run.trec", "bm25": output / "run.bm25.trec"}
    paths.update({spec["system"]: output / f"run.{method}.trec" for method, spec in result.fusion.items()})
    payload = {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "split": split,
        "n_queries": len(evalset),
        "n_items": len(evalset.item_ids),
        "k": search.k,
        "scoring": result.scoring,
        "query_top_terms": search.query_top_terms,
        "searcher": search.searcher.model_dump(),
        "mrr_rel": search.mrr_rel,
        "rel": search.rel,
        "systems": result.systems,
        "runs": result.write_runs({name: path for name, path in paths.items() if name in result.runs}),
    }
    for method, spec in result.fusion.items():
        payload["fusion"] = {"method": method, **spec}
    if channels:
        analysis = result.channels(search.channel_depth, search.rel)
        payload["channels"] = analysis.to_dict()
        payload["_analysis"] = analysis
    payload["timings"] = result.timings
    write_json(output / "metrics.json", {k: v for k, v in payload.items() if not k.startswith("_")})
    payload["output"] = str(output)
    return payload


def evaluate_run_files(
    run_paths: Sequence[str | Path],
    qrels_path: str | Path,
    search,
    measures: Sequence[str] | None = None,
    channels: bool = False,
) -> dict:
    """``prosper eval --run FILE... --qrels QRELS``: the metrics of each run file (same rule as
    :func:`run_pipeline`), and with ``channels`` the multi-channel analysis of two or more runs
    (the analysis object under ``_analysis``). Systems are named by the files' stems."""
    from prosper.data.qrels import read_qrels
    from prosper.errors import ConfigError
    from prosper.evaluation.metrics import evaluate
    from prosper.retrieval.runs import read_run

    judged = read_qrels(qrels_path)
    runs, names = {}, {}
    for path in map(Path, run_paths):
        name = path.stem if path.stem not in runs else str(path)
        runs[name], names[name] = read_run(path), str(path)
    kw = {"mrr_rel": search.mrr_rel, "rel": search.rel}
    chosen = list(measures or DEFAULT_MEASURES)
    payload: dict[str, Any] = {"qrels": str(qrels_path), "n_queries": len(judged), "runs": names, **kw}
    payload["systems"] = {name: evaluate(run, judged, chosen, **kw) for name, run in runs.items()}
    if channels:
        if len(runs) < 2:
            raise ConfigError("--channels needs two or more --run files")
        from prosper.retrieval.channels import analyse_channels

        analysis = analyse_channels(runs, judged, depth=search.channel_depth, min_grade=search.rel)
        payload["channels"] = analysis.to_dict()
        payload["_analysis"] = analysis
    return payload
