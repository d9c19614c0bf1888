"""What the demo reads off the evaluation: means per query kind, its verdicts, the channels, terms.

Everything here is computed from one :class:`~prosper.evaluation.pipeline.Evaluation`: the
per-query values the pipeline already holds are averaged over the queries of each synthetic
kind (:func:`~prosper.evaluation.pipeline.Evaluation.means`, a query without hits counting as
zero), the multi-channel analysis is :func:`prosper.retrieval.channels.analyse_channels`, and the
explanations are :func:`prosper.modeling.explain.explain` with terms decoded for display.
"""

from __future__ import annotations

from typing import Any

from prosper.demo.presets import CLAIM_KINDS, CLAIM_MEASURE, FUSION_CLAIM
from prosper.demo.report import DemoSummary


def evaluate_kinds(result, kinds: dict[str, str], summary: DemoSummary, search) -> None:
    """Means per query kind from the pipeline's per-query values; the verdicts; the channels."""
    from prosper.demo.synth import KINDS

    qids = result.evalset.query_ids
    groups = {kind: [q for q in qids if kinds.get(q) == kind] for kind in KINDS}
    groups = {kind: members for kind, members in groups.items() if members}
    groups["all"] = list(qids)
    for system in result.runs:
        summary.metrics[system] = {
            kind: {name: round(v, 4) for name, v in result.means(system, members).items()} | {"queries": len(members)}
            for kind, members in groups.items()
        }
    prosper, bm25 = summary.metrics["prosper"], summary.metrics["bm25"]
    summary.beats_bm25 = {k: prosper[k][CLAIM_MEASURE] > bm25[k][CLAIM_MEASURE] for k in CLAIM_KINDS if k in groups}
    fused = summary.metrics[result.fusion[FUSION_CLAIM]["system"]]
    below = [kind for kind in groups if fused[kind][CLAIM_MEASURE] < bm25[kind][CLAIM_MEASURE]]
    summary.fusion = {"system": result.fusion[FUSION_CLAIM]["system"], "measure": CLAIM_MEASURE, "below_bm25": below}

    summary.channels = result.channels(search.channel_depth, search.rel, n_examples=3).to_dict()
    per_kind = {}
    for kind, members in groups.items():  # where does each channel add relevant items?
        if kind != "all":
            sub = result.channels(search.channel_depth, search.rel, n_examples=0, qids=members)
            per_kind[kind] = {"prosper only": sub.count("prosper"), "bm25 only": sub.count("bm25"),
                              "both": sub.count("prosper", "bm25"), "neither": sub.relevant.get(0, 0)}  # fmt: skip
    summary.channels["relevant_by_kind"] = per_kind


def explain_queries(encoder, result, kinds: dict[str, str], n: int) -> list[dict[str, Any]]:
    """Top terms (literal or expansion) of one synonym, one misspelling and one hypernym query."""
    from prosper.modeling.explain import explain
    from prosper.modeling.terms import display_terms

    qids, qrels, run = result.evalset.query_ids, result.evalset.qrels, result.runs["prosper"]
    picks: list[str] = []
    for kind in ("synonym", "misspelling", "hypernym", "brand_category"):
        of_kind = [q for q in qids if kinds.get(q) == kind]
        # prefer a query prosper answers well (a highly relevant item first), else the kind's first
        good = [q for q in of_kind if run.get(q) and qrels[q].get(next(iter(run[q])), 0) >= 2]
        if good or of_kind:
            picks.append((good or of_kind)[0])
        if len(picks) >= n:
            break
    texts = result.evalset.query_text()
    out = []
    for qid in picks:
        terms = explain(encoder, texts[qid], side="query", top=10)["terms"]
        names = display_terms(encoder.tokenizer, [t["id"] for t in terms])
        out.append({
            "query_id": qid, "kind": kinds[qid], "query": texts[qid],
            "terms": [{"term": name, "id": t["id"], "weight": round(t["weight"], 4), "literal": t["literal"]}
                      for name, t in zip(names, terms)],
            "top_item": next(iter(run.get(qid, {})), None),
        })  # fmt: skip
    return out
