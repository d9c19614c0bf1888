"""TREC run files: ``qid Q0 docid rank score tag``, one retrieved item a line.

Runs live in memory as ``{qid: {docid: score}}`` (the shape ir-measures takes). Writing is
atomic; reading names ``file:line`` on a malformed line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from prosper.errors import InputError

Run = dict[str, dict[str, float]]


def results_to_run(qids: Sequence[str], results: Sequence) -> Run:
    """``SearchResult`` per query (aligned with ``qids``) -> ``{qid: {docid: score}}``, best first."""
    if len(qids) != len(results):
        raise ValueError(f"{len(qids)} query ids for {len(results)} results")
    return {qid: dict(zip(r.ids.tolist(), r.scores.astype(float).tolist())) for qid, r in zip(qids, results)}


def ranked(hits: Mapping[str, float]) -> list[tuple[str, float]]:
    """Items by descending score, ties by the order they were given in."""
    return sorted(hits.items(), key=lambda kv: -kv[1])


def write_run(path: str | Path, run: Mapping[str, Mapping[str, float]], tag: str = "prosper") -> Path:
    """Write a TREC run file atomically; ranks start at 1; scores printed with 8 significant digits (float32 is exact to ~7)."""
    path = Path(path)
    if any(ch.isspace() for ch in tag) or not tag:
        raise InputError(f"run tag {tag!r} must be one word")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as out:
        for qid, hits in run.items():
            for rank, (docid, score) in enumerate(ranked(hits), start=1):
                if any(ch.isspace() for ch in qid) or any(ch.isspace() for ch in docid):
                    tmp.unlink(missing_ok=True)
                    raise InputError(f"ids in a TREC run cannot contain whitespace: {qid!r} / {docid!r}")
                out.write(f"{qid} Q0 {docid} {rank} {score:.8g} {tag}\n")
    os.replace(tmp, path)
    return path


def read_run(path: str | Path) -> Run:
    """Read a TREC run file into ``{qid: {docid: score}}``."""
    path = Path(path)
    if not path.is_file():
        raise InputError("run file not found", path)
    run: Run = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                raise InputError(f"expected 6 fields (qid Q0 docid rank score tag), found {len(fields)}", path, line_no)
            qid, _, docid, _, score, _ = fields
            try:
                value = float(score)
            except ValueError:
                raise InputError(f"score {score!r} is not a number", path, line_no) from None
            run.setdefault(qid, {})[docid] = value
    return run


def truncate(run: Mapping[str, Mapping[str, float]], depth: int) -> Run:
    """Keep the top ``depth`` items of every query."""
    return {qid: dict(ranked(hits)[:depth]) for qid, hits in run.items()}


def iter_lines(run: Mapping[str, Mapping[str, float]], tag: str = "prosper") -> Iterable[str]:
    for qid, hits in run.items():
        for rank, (docid, score) in enumerate(ranked(hits), start=1):
            yield f"{qid} Q0 {docid} {rank} {score:.8g} {tag}"
