"""Fusing the runs of several channels (prosper beside BM25) into one ranking.

The paper serves the sparse retriever next to the keyword channel of a product search engine;
fusing the two runs shows what the pair achieves together. Two classic methods, both over runs
in the :data:`prosper.retrieval.runs.Run` form ``{qid: {docid: score}}``:

* ``rrf``, Reciprocal Rank Fusion (Cormack et al., 2009):
  ``s(d) = Σ_c w_c / (rrf_k + rank_c(d))``, with ``rank_c(d)`` the 1-based rank of ``d`` in
  channel ``c`` (as its TREC run file writes it: score descending, ties in the channel's own
  order). Only ranks count, so scores on different scales need no calibration.
* ``combsum`` (Fox and Shaw, 1994): ``s(d) = Σ_c w_c · norm_c(d)``, the scores normalised per
  query and channel: ``minmax`` (default) maps the channel's best item to 1 and its worst to 0
  (all equal scores: every item 1); ``zscore`` subtracts the mean and divides by the population
  standard deviation (all equal: 0); ``none`` keeps raw scores.

A document a channel did not retrieve contributes 0 from that channel (under ``zscore`` that is
the channel's mean, not its worst). Weights default to 1 per channel; a channel of weight 0 is
left out. The fused run holds the top ``k`` of every query, ordered by fused score descending,
ties by document id *descending*: the order trec_eval (and ir-measures' nDCG, Recall and Hit)
reads tied scores in, so the ranks written in a run file are the ranks the measures see, and the
result never depends on dict order. (Fused scores tie often: RRF gives every item alone at rank
``r`` of one channel the same score.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from prosper.errors import ConfigError
from prosper.retrieval.runs import Run, ranked

METHODS = ("rrf", "combsum")
NORMALIZATIONS = ("minmax", "zscore", "none")


def fused_name(method: str, channels=("prosper", "bm25")) -> str:
    """The system name reports use: ``"prosper+bm25 (rrf)"``."""
    return f"{'+'.join(channels)} ({method})"


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"fusion method {method!r} is unknown; choose one of {', '.join(METHODS)}")
    return method


def fusion_options(method: str, search) -> dict:
    """The keyword arguments of :func:`fuse` that ``search.fusion_*`` settings give for ``method``
    (the weights spelled out for both channels: one the settings leave out weighs 1)."""
    options: dict = {"weights": {"prosper": 1.0, "bm25": 1.0} | dict(search.fusion_weights)}
    if check_method(method) == "rrf":
        options["rrf_k"] = search.fusion_rrf_k
    else:
        options["normalization"] = search.fusion_normalization
    return options


def fuse(
    runs: Mapping[str, Mapping[str, Mapping[str, float]]],
    method: str = "rrf",
    k: int = 1000,
    rrf_k: float = 60,
    weights: Mapping[str, float] | None = None,
    normalization: str = "minmax",
) -> Run:
    """Fuse ``{channel: run}`` into one run of at most ``k`` items per query.

    Queries are those of any channel, in the order they first appear (channels in the order
    given); a query no channel retrieved anything for stays, with no items.
    """
    check_method(method)
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"fusion normalization {normalization!r} is unknown; choose one of {', '.join(NORMALIZATIONS)}")
    if k < 1 or rrf_k < 0:
        raise ConfigError(f"fusion needs k >= 1 and rrf_k >= 0 (got k={k}, rrf_k={rrf_k})")
    chosen = _weights(runs, weights)
    qids = list(dict.fromkeys(qid for run in runs.values() for qid in run))
    fused: Run = {}
    for qid in qids:
        totals: dict[str, float] = {}
        for name, weight in chosen.items():
            hits = runs[name].get(qid, {})
            contributions = _rrf(hits, rrf_k) if method == "rrf" else _normalised(hits, normalization)
            for docid, value in contributions.items():
                totals[docid] = totals.get(docid, 0.0) + weight * value
        best = sorted(totals.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:k]
        fused[qid] = dict(best)
    return fused


def _weights(runs: Mapping[str, object], weights: Mapping[str, float] | None) -> dict[str, float]:
    """Channel -> weight, channels in the order of ``runs``; weight-0 channels dropped."""
    weights = dict(weights or {})
    unknown = [name for name in weights if name not in runs]
    if unknown:
        raise ConfigError(f"fusion weights name unknown channel {unknown[0]!r} (channels: {', '.join(runs)})")
    out = {}
    for name in runs:
        weight = float(weights.get(name, 1.0))
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"fusion weight of {name!r} must be a finite number >= 0, got {weight}")
        if weight > 0:
            out[name] = weight
    return out


def _rrf(hits: Mapping[str, float], rrf_k: float) -> dict[str, float]:
    return {docid: 1.0 / (rrf_k + rank) for rank, (docid, _) in enumerate(ranked(hits), start=1)}


def _normalised(hits: Mapping[str, float], normalization: str) -> dict[str, float]:
    if not hits or normalization == "none":
        return {docid: float(s) for docid, s in hits.items()}
    scores = [float(s) for s in hits.values()]
    if normalization == "minmax":
        low, high = min(scores), max(scores)
        if high == low:  # one item, or all tied: each is the channel's best
            return dict.fromkeys(hits, 1.0)
        return {docid: (float(s) - low) / (high - low) for docid, s in hits.items()}
    mean = math.fsum(scores) / len(scores)
    std = math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / len(scores))
    if std == 0:
        return dict.fromkeys(hits, 0.0)
    return {docid: (float(s) - mean) / std for docid, s in hits.items()}
