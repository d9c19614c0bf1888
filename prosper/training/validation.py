"""Validation during training: Recall@K and MRR@10 of held-out queries against the corpus.

The dev set is the ``data.dev_split`` qrels: at most ``data.max_dev_queries`` queries (a seeded
sample; the paper picks the best checkpoint on 500 validation queries) searched against
``data.max_dev_items`` items: every item judged for those queries plus a seeded sample of the
rest of the corpus (reservoir sampling while streaming, so any corpus size fits), or the whole
corpus when ``data.max_dev_items`` is null. Items are encoded with the model being trained and
searched exactly with :class:`prosper.retrieval.index.InvertedIndex` under the model's scoring
rule (Eq. 11); metrics come from ``ir_measures``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class DevSet:
    query_ids: list[str]
    query_texts: list[str]
    item_ids: list[str]
    item_texts: list[str]
    qrels: dict[str, dict[str, int]]
    min_grade: int

    def __len__(self) -> int:
        return len(self.query_ids)


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
    qids = sorted(q for q, judged in qrels.items() if any(g >= min_grade for g in judged.values()))
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
    judged_items: dict[str, str] = {}
    sample: list[tuple[str, str]] = []  # reservoir of unjudged items
    seen_other = 0
    for record in iter_collection(Path(corpus), "item", **fields):
        if record.id in judged:
            judged_items[record.id] = record.text
            continue
        seen_other += 1
        if limit is None:
            sample.append((record.id, record.text))
        elif len(sample) < limit:
            sample.append((record.id, record.text))
        else:
            j = int(rng.integers(seen_other))
            if j < limit:
                sample[j] = (record.id, record.text)
    room = None if limit is None else max(0, limit - len(judged_items))
    others = sample if room is None else sample[:room]
    items = list(judged_items.items()) + sorted(others)
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
    """Encode the dev queries and items, search exactly, return MRR@10, Recall@K and nnz."""
    import torch

    from prosper.retrieval.index import InvertedIndex

    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            items = encoder.encode(dev.item_texts, side="item", batch_size=batch_size, ids=dev.item_ids)
            queries = encoder.encode(dev.query_texts, side="query", batch_size=batch_size, ids=dev.query_ids)
    finally:
        encoder.train(was_training)
    index = InvertedIndex.build(items)
    results = index.search(queries, k=max(recall_k, 10), scoring=encoder.settings.scoring)
    run = {
        qid: {str(doc): float(score) for doc, score in zip(res.ids, res.scores)}
        for qid, res in zip(dev.query_ids, results)
    }
    metrics = ranking_metrics(run, dev.qrels, recall_k=recall_k, min_grade=dev.min_grade)
    metrics["nnz_query"] = float(queries.nnz.mean()) if len(queries) else 0.0
    metrics["nnz_item"] = float(items.nnz.mean()) if len(items) else 0.0
    return metrics


def ranking_metrics(run, qrels, *, recall_k: int = 100, min_grade: int = 1) -> dict[str, float]:
    """MRR@10 and Recall@K (relevant: grade >= ``min_grade``), averaged over the judged queries."""
    import ir_measures
    from ir_measures import RR, R

    measures = [RR(rel=min_grade) @ 10, R(rel=min_grade) @ recall_k]
    # Queries that retrieved nothing still count (as zeros).
    run = {q: (docs or {"__none__": 0.0}) for q, docs in run.items()}
    values = ir_measures.calc_aggregate(measures, qrels, run)
    return {"mrr@10": float(values[measures[0]]), f"recall@{recall_k}": float(values[measures[1]])}
