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
over every query in the qrels (:func:`mean_over`): a judged query missing from the run, with no
hits, or with no relevant item counts as 0 for every measure. ir-measures computes the values of
the queries that have hits; the zeros are filled in here, so the rule does not depend on the
ir-measures backend.
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


def _checked(run, qrels) -> tuple[dict, dict]:
    """Plain ``{qid: {docid: float}}`` / ``{qid: {docid: int}}`` copies; empty qrels are an error."""
    qrels = {str(qid): {str(d): int(g) for d, g in judged.items()} for qid, judged in qrels.items()}
    if not qrels:
        from prosper.errors import InputError

        raise InputError("the qrels hold no judgments")
    run = {str(qid): {str(d): float(s) for d, s in hits.items()} for qid, hits in run.items()}
    return run, qrels


def per_query(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Sequence[str] = DEFAULT_MEASURES,
    mrr_rel: int = 2,
    rel: int = 1,
) -> dict[str, dict[str, float]]:
    """``{qid: {measure name: value}}`` for **every** query of the qrels, in the qrels' order.

    A judged query the run does not answer (missing, or with no hits) gets 0 for every measure;
    queries of the run without judgments are left out. This is the rule of every mean prosper
    reports (:func:`mean_over`).
    """
    import ir_measures

    run, qrels = _checked(run, qrels)
    mapping = {name: to_ir_measure(name, mrr_rel, rel) for name in measures}
    back = {str(m): name for name, m in mapping.items()}
    out = {qid: dict.fromkeys(mapping, 0.0) for qid in qrels}
    answered = {qid: hits for qid, hits in run.items() if hits and qid in qrels}
    if answered:
        for metric in ir_measures.iter_calc(list(mapping.values()), qrels, answered):
            if metric.query_id in out:
                out[metric.query_id][back[str(metric.measure)]] = float(metric.value)
    return out


def mean_over(
    values: Mapping[str, Mapping[str, float]], qids: Sequence[str], measures: Sequence[str]
) -> dict[str, float]:
    """Mean of each measure over ``qids``; a query absent from ``values`` counts as 0.

    The one rule for queries without hits, shared by ``prosper eval``, training validation and
    the demo: they count as zero for every measure, and the mean is over all judged queries.
    """
    qids = list(qids)
    if not qids:
        return dict.fromkeys(measures, 0.0)
    return {name: float(sum(values.get(q, {}).get(name, 0.0) for q in qids) / len(qids)) for name in measures}


def evaluate(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    measures: Sequence[str] = DEFAULT_MEASURES,
    mrr_rel: int = 2,
    rel: int = 1,
) -> dict[str, float]:
    """Mean of each measure over the qrels' queries, keyed by the names given, in their order."""
    return mean_over(per_query(run, qrels, measures, mrr_rel, rel), list(qrels), measures)


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
