"""Validation during training: Recall@K and MRR@10 of held-out queries against the corpus.

The dev set is the ``data.dev_split`` qrels: at most ``data.max_dev_queries`` judged queries (a
seeded sample; the paper picks the best checkpoint on 500 validation queries) searched against
``data.max_dev_items`` items: every item judged for those queries plus a seeded sample of the
rest of the corpus (reservoir sampling while streaming, so any corpus size fits), or the whole
corpus when ``data.max_dev_items`` is null. The model being trained is evaluated by the one
evaluation pipeline (:func:`prosper.evaluation.pipeline.run_pipeline`, the one ``prosper eval``
and the demo use): exact search under the model's scoring rule (Eq. 11), a query without hits
counting as zero, means over all the dev set's queries. Relevance is ``data.min_grade`` for both
measures, so on the whole dev split (``max_dev_queries`` >= its size, ``max_dev_items: null``)
the numbers equal ``prosper eval``'s with ``search.mrr_rel`` and ``search.rel`` at that grade.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prosper.evaluation.evalset import EvalSet


@dataclass
class DevSet(EvalSet):
    """The sampled dev set, with the grade at which an item counts as relevant."""

    min_grade: int = 1


def build_dev_set(data_settings, seed: int = 0) -> DevSet | None:
    """The validation set, or ``None`` when there are no dev qrels."""
    from prosper.data.collections import iter_collection
    from prosper.data.qrels import read_qrels, split_path

    if not data_settings.path or not data_settings.dev_split:
        return None
    path = split_path(data_settings.path, data_settings.dev_split)
    if not path.is_file():
        return None
    qrels = read_qrels(path)
    min_grade = data_settings.min_grade
    qids = sorted(qrels)  # every judged query: one without a relevant item counts as zero, as in `prosper eval`
    rng = np.random.default_rng([seed, 1])
    if len(qids) > data_settings.max_dev_queries:
        qids = sorted(rng.choice(qids, size=data_settings.max_dev_queries, replace=False).tolist())
    qrels = {q: qrels[q] for q in qids}
    judged = {d for q in qids for d in qrels[q]}
    corpus = data_settings.corpus or data_settings.path
    queries = data_settings.queries or data_settings.path
    fields = dict(title_field=data_settings.title_field, text_field=data_settings.text_field)
    query_text = {}
    wanted = set(qids)
    for record in iter_collection(queries, "query", **fields):
        if record.id in wanted:
            query_text[record.id] = record.text
    qids = [q for q in qids if q in query_text]
    limit = data_settings.max_dev_items
    judged_items: list[tuple[int, str, str]] = []  # (corpus position, id, text)
    sample: list[tuple[int, str, str]] = []  # reservoir of unjudged items
    seen_other = 0
    for position, record in enumerate(iter_collection(Path(corpus), "item", **fields)):
        entry = (position, record.id, record.text)
        if record.id in judged:
            judged_items.append(entry)
            continue
        seen_other += 1
        if limit is None or len(sample) < limit:
            sample.append(entry)
        else:
            j = int(rng.integers(seen_other))
            if j < limit:
                sample[j] = entry
    room = None if limit is None else max(0, limit - len(judged_items))
    others = sample if room is None else sample[:room]
    # corpus order, as `prosper eval` indexes them: equal scores then rank items the same way
    items = [(i, t) for _, i, t in sorted(judged_items + others)]
    if not qids or not items:
        return None
    return DevSet(
        qids,
        [query_text[q] for q in qids],
        [i for i, _ in items],
        [t for _, t in items],
        {q: qrels[q] for q in qids},
        min_grade,
    )


def evaluate_encoder(encoder, dev: DevSet, *, recall_k: int = 100, batch_size: int = 128) -> dict[str, float]:
    """Encode the dev queries and items, search exactly, return MRR@10, Recall@K and nnz.

    Keys: ``mrr@10``, ``recall@<recall_k>``, ``nnz_query``, ``nnz_item`` (mean non-zeros).
    """
    from prosper.evaluation.pipeline import run_pipeline
    from prosper.settings import SearchSettings

    search = SearchSettings(k=max(recall_k, 10), mrr_rel=dev.min_grade, rel=dev.min_grade)  # exact searcher
    measures = ("MRR@10", f"Recall@{recall_k}")
    result = run_pipeline(dev, search, encoder, measures=measures, batch_size=batch_size, stats=False)
    means = result.systems["prosper"]
    return {
        "mrr@10": means["MRR@10"],
        f"recall@{recall_k}": means[f"Recall@{recall_k}"],
        "nnz_query": float(result.queries.nnz.mean()) if len(result.queries) else 0.0,
        "nnz_item": float(result.items.nnz.mean()) if len(result.items) else 0.0,
    }
