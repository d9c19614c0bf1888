"""Retrieval metrics through ir-measures, plus sparsity (non-zeros and FLOPS) per query.

Measure names users write, and the ir-measures measure each one is:

============  ==========================  ==============================================
name          ir-measures                 relevance
============  ==========================  ==============================================
nDCG@10       ``nDCG@10``                 graded: gain = the qrels grade (0 gives nothing)
MRR@10        ``RR(rel=2)@10``            grade >= ``mrr_rel`` (default 2, "highly relevant")
Recall@k      ``R(rel=1)@k``              grade >= ``rel`` (default 1)
Hit@k         ``Success(rel=1)@k``        grade >= ``rel`` (default 1): a relevant item in the top k
============  ==========================  ==============================================

Any other string is parsed by ``ir_measures.parse_measure`` (e.g. ``"P@5"``, ``"AP"``). Means are
taken by ir-measures over every query in the qrels: a query missing from the run, or with no
relevant item, counts as 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

DEFAULT_MEASURES = (
    "nDCG@10",
    "MRR@10",
    "Recall@10",
    "Recall@100",
    "Recall@1000",
    "Hit@1",
    "Hit@10",
    "Hit@100",
    "Hit@1000",
)
_FRIENDLY = re.compile(r"^(nDCG|MRR|Recall|Hit)@(\d+)$")


def to_ir_measure(name: str, mrr_rel: int = 2, rel: int = 1):
    """The ir-measures measure object for one of our names (or any ir-measures string)."""
    import ir_measures
    from ir_measures import RR, R, Success, nDCG

    match = _FRIENDLY.match(name)
    if match is None:
        try:
            return ir_measures.parse_measure(name)
        except Exception as exc:  # ir-measures raises several kinds on bad names
            from prosper.errors import ConfigError

            raise ConfigError(f"unknown measure {name!r}: {exc}") from None
    kind, cutoff = match.group(1), int(match.group(2))
    if kind == "nDCG":
        return nDCG @ cutoff
    if kind == "MRR":
        return RR(rel=mrr_rel) @ cutoff
    if kind == "Recall":
        return R(rel=rel) @ cutoff
    return Success(rel=rel) @ cutoff


def evaluate(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Sequence[str] = DEFAULT_MEASURES,
    mrr_rel: int = 2,
    rel: int = 1,
) -> dict[str, float]:
    """Mean of each measure over the qrels' queries, keyed by the names given, in their order."""
    import ir_measures

    mapping = {name: to_ir_measure(name, mrr_rel, rel) for name in measures}
    run = {qid: {d: float(s) for d, s in hits.items()} for qid, hits in run.items()}
    qrels = {qid: {d: int(g) for d, g in judged.items()} for qid, judged in qrels.items()}
    if not qrels:
        from prosper.errors import InputError

        raise InputError("the qrels hold no judgments")
    values = ir_measures.calc_aggregate(list(mapping.values()), qrels, run)
    return {name: float(values[measure]) for name, measure in mapping.items()}


def per_query(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Sequence[str] = DEFAULT_MEASURES,
    mrr_rel: int = 2,
    rel: int = 1,
) -> dict[str, dict[str, float]]:
    """``{qid: {measure name: value}}`` for every query ir-measures evaluates."""
    import ir_measures

    mapping = {name: to_ir_measure(name, mrr_rel, rel) for name in measures}
    back = {str(m): name for name, m in mapping.items()}
    out: dict[str, dict[str, float]] = {}
    for metric in ir_measures.iter_calc(list(mapping.values()), dict(qrels), dict(run)):
        out.setdefault(metric.query_id, {})[back[str(metric.measure)]] = float(metric.value)
    return out


def sparsity_stats(queries, index, query_top_terms: int | None = None) -> dict[str, float]:
    """Non-zeros and the expected cost of exact scoring for these queries against ``index``.

    * ``query_nnz``: mean non-zero terms per query (after ``query_top_terms`` pruning);
    * ``item_nnz``: mean non-zero terms per indexed item;
    * ``postings_per_query``: mean of ``Σ_{t in q} df(t)``, the posting entries an exact
      term-at-a-time search multiplies, i.e. the expected multiplications per query against
      the whole index;
    * ``flops``: the FLOPS expectation of Paria et al. (2020) used by SPLADE and the paper,
      ``Σ_j p_j^(q) p_j^(d)``, with ``p_j`` the fraction of queries / items where term ``j`` is
      non-zero: the expected multiplications for one query–item pair. It equals
      ``postings_per_query / n_items`` exactly.
    """
    from prosper.retrieval.index import prepare_query

    n_items = len(index)
    nnz, postings = [], []
    for i in range(len(queries)):
        terms, _ = prepare_query(*queries.row(i), "none", query_top_terms)
        nnz.append(len(terms))
        postings.append(int(index.document_frequency(terms).sum()))
    mean_postings = float(np.mean(postings)) if postings else 0.0
    return {
        "query_nnz": float(np.mean(nnz)) if nnz else 0.0,
        "item_nnz": float(np.asarray(index.item_nnz).mean()) if n_items else 0.0,
        "postings_per_query": mean_postings,
        "flops": mean_postings / n_items if n_items else 0.0,
    }
