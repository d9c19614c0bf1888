"""Choosing the hard negatives of one query from one ranking: pure functions, no I/O.

A *ranking* is what a source (BM25, a checkpoint) returned for the query: item ids best first
with their scores; ranks are 1-based positions in it. For each query:

1. judged negatives (grade < ``min_grade`` for this query) come first when
   ``include_judged_negatives``: somebody looked at them and said "not relevant", so they
   cannot be false negatives, and they were judged because they looked close to the query;
2. then candidates from the ranking, in rank order, minus: every judged positive of the query,
   the first ``range_min`` ranks, and the *margin band*: a candidate whose score is too close
   to the query's best-scoring positive in the same ranking (``relative_margin``: score >
   ``(1 - m) * best``; ``absolute_margin``: score > ``best - m``; both: either drops it) is
   likely an unjudged relevant item, as in sentence-transformers' ``mine_hard_negatives``. When no
   positive was retrieved there is no reference score and no band;
3. ``num_negatives`` in all: the first ones (``sampling="top"``) or a seeded sample of the
   remaining candidates (``"random"``), kept in rank order.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import asdict, dataclass, field

from prosper.errors import ConfigError

SAMPLINGS = ("top", "random")


@dataclass(frozen=True)
class MiningOptions:
    """What :func:`select_negatives` keeps; the CLI flags have the same names (``--range-min``)."""

    depth: int = 100  # candidates looked at per query (the source's top-k)
    num_negatives: int = 8
    min_grade: int = 1  # grade >= min_grade is a positive
    range_min: int = 0  # skip the first range_min ranks (positives included in the count)
    relative_margin: float | None = None
    absolute_margin: float | None = None
    sampling: str = "top"
    seed: int = 0
    include_judged_negatives: bool = True

    def check(self) -> MiningOptions:
        """Raise :class:`ConfigError` naming the flag of the first bad value."""
        if self.depth < 1:
            raise ConfigError(f"--depth must be at least 1 (got {self.depth})")
        if self.num_negatives < 1:
            raise ConfigError(f"--num-negatives must be at least 1 (got {self.num_negatives})")
        if not 0 <= self.range_min < self.depth:
            raise ConfigError(f"--range-min must be in [0, --depth) = [0, {self.depth}) (got {self.range_min})")
        if self.relative_margin is not None and not 0 <= self.relative_margin < 1:
            raise ConfigError(f"--relative-margin must be in [0, 1) (got {self.relative_margin})")
        if self.absolute_margin is not None and self.absolute_margin < 0:
            raise ConfigError(f"--absolute-margin must be >= 0 (got {self.absolute_margin})")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"--sampling must be one of {', '.join(SAMPLINGS)} (got {self.sampling!r})")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Negative:
    id: str
    rank: int | None  # 1-based rank in the source's ranking; None: judged but not retrieved
    score: float | None
    origin: str  # "judged" (grade < min_grade in the qrels) or "mined" (from the ranking)


@dataclass
class Selection:
    """The negatives of one query and why the other candidates were left out (counts)."""

    negatives: list[Negative] = field(default_factory=list)
    best_positive_rank: int | None = None
    best_positive_score: float | None = None
    skipped_positives: int = 0  # judged positives met in the ranking
    skipped_range: int = 0  # ranks <= range_min
    skipped_margin: int = 0  # inside the margin band


def margin_threshold(best: float | None, relative: float | None, absolute: float | None) -> float | None:
    """Scores above this are too close to the best positive; None: no band."""
    if best is None:
        return None
    limits = []
    if relative is not None:
        limits.append((1.0 - relative) * best)
    if absolute is not None:
        limits.append(best - absolute)
    return min(limits) if limits else None


def select_negatives(
    ids: Sequence[str],
    scores: Sequence[float],
    judgments: dict[str, int],
    options: MiningOptions,
    rng=None,
    known_items: Container[str] | None = None,
) -> Selection:
    """The negatives of one query (see the module docstring for the rules).

    ``ids``/``scores``: the ranking, best first. ``judgments``: this query's qrels (id -> grade).
    ``rng``: a ``numpy.random.Generator``, needed for ``sampling="random"``. ``known_items``:
    the corpus ids; judged negatives outside it are left out (training would drop them).
    """
    out = Selection()
    ranked = [(str(i), float(s)) for i, s in zip(ids[: options.depth], scores[: options.depth])]
    for rank, (item, score) in enumerate(ranked, start=1):
        if judgments.get(item, -1) >= options.min_grade:
            out.best_positive_rank, out.best_positive_score = rank, score
            break  # best first: the first positive met is the best one

    judged: list[Negative] = []
    if options.include_judged_negatives:
        negative_grades = {i for i, g in judgments.items() if g < options.min_grade}
        in_ranking = {item for item, _ in ranked}
        judged = [
            Negative(item, rank, score, "judged")
            for rank, (item, score) in enumerate(ranked, start=1)
            if item in negative_grades
        ]
        judged += [
            Negative(item, None, None, "judged")
            for item in judgments
            if item in negative_grades and item not in in_ranking and (known_items is None or item in known_items)
        ]
        judged = judged[: options.num_negatives]
    taken = {n.id for n in judged}

    threshold = margin_threshold(out.best_positive_score, options.relative_margin, options.absolute_margin)
    pool: list[Negative] = []
    for rank, (item, score) in enumerate(ranked, start=1):
        if judgments.get(item, -1) >= options.min_grade:
            out.skipped_positives += 1
        elif item in taken:
            continue
        elif rank <= options.range_min:
            out.skipped_range += 1
        elif threshold is not None and score > threshold:
            out.skipped_margin += 1
        else:
            pool.append(Negative(item, rank, score, "mined"))

    room = options.num_negatives - len(judged)
    if options.sampling == "random" and len(pool) > room:
        if rng is None:
            raise ValueError("sampling='random' needs an rng")
        picked = sorted(rng.choice(len(pool), size=room, replace=False).tolist())  # rank order kept
        mined = [pool[i] for i in picked]
    else:
        mined = pool[:room]
    out.negatives = judged + mined
    return out
