"""Streaming readers for training-example files ("triples"): JSONL, TSV and Parquet.

Each record names a query, one or more positive items, optionally hard negatives and teacher
scores (for margin-MSE distillation). Records are read one at a time (a file of any size is
streamed; Parquet by row batches); a malformed record raises :class:`InputError` naming
``file:line`` (``file:row`` for Parquet) and what was wrong.

* JSONL (``.jsonl``, ``.json``, ``.ndjson``), one object a line::

    {"query": "q1", "positives": ["d1"], "negatives": ["d7", "d9"],
     "teacher_scores": {"d1": 12.1, "d7": 3.2, "d9": 0.4}}

  ``query`` (or ``query_id``/``qid``) is a query id; ``query_text`` optionally gives its text
  inline. ``positives`` may be one id (``positive``/``pos``); ``negatives`` (``neg``) is optional.
  ``teacher_scores`` (``scores``) is a map id -> score or a list aligned with positives then
  negatives.
* TSV (``.tsv``, ``.txt``): ``query_id<TAB>positive_id[<TAB>negative_id ...]`` (MS MARCO-style id
  triples); a first line whose fields look like a header (``qid``, ``query``...) is skipped.
* Parquet (``.parquet``): the same fields as JSONL as columns (lists or scalars).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prosper.errors import InputError

_QUERY_KEYS = ("query", "query_id", "qid")
_POS_KEYS = ("positives", "positive", "pos")
_NEG_KEYS = ("negatives", "negative", "neg")
_SCORE_KEYS = ("teacher_scores", "scores")
_HEADER_WORDS = {"qid", "query", "query_id", "query-id", "pos", "positive", "pid", "docid", "neg", "negative"}


@dataclass
class TrainExample:
    """One training query: its id, its positives, optional hard negatives and teacher scores."""

    query_id: str
    positives: list[str]
    negatives: list[str] = field(default_factory=list)
    teacher: dict[str, float] | None = None  # item id -> teacher score
    query_text: str | None = None  # inline text (triples files may carry it)
    source: str = ""  # file:line, for messages


def _first(obj: dict, keys: tuple[str, ...]):
    for key in keys:
        if key in obj and obj[key] is not None:
            return obj[key]
    return None


def _id_list(value, what: str, path, line) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [str(value)]
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) for v in value):
        return [str(v) for v in value]
    raise InputError(f"{what} must be an id or a list of ids, got {type(value).__name__}", path, line)


def example_from_mapping(obj, path, line) -> TrainExample:
    """Validate one JSONL object / Parquet row into a :class:`TrainExample`."""
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}", path, line)
    query = _first(obj, _QUERY_KEYS)
    if query is None or not isinstance(query, (str, int)) or not str(query).strip():
        raise InputError("missing query id (field 'query')", path, line)
    positives = _id_list(_first(obj, _POS_KEYS), "positives", path, line)
    if not positives:
        raise InputError("no positive item (field 'positives')", path, line)
    negatives = _id_list(_first(obj, _NEG_KEYS), "negatives", path, line)
    scores = _first(obj, _SCORE_KEYS)
    teacher = None
    if scores is not None:
        if isinstance(scores, dict):
            teacher = {}
            for key, value in scores.items():
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise InputError(f"teacher score for {key!r} is not a number", path, line)
                teacher[str(key)] = float(value)
        elif isinstance(scores, (list, tuple)):
            ids = positives + negatives
            if len(scores) != len(ids):
                raise InputError(
                    f"teacher_scores has {len(scores)} values for {len(ids)} positives + negatives", path, line
                )
            if any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in scores):
                raise InputError("teacher_scores must be numbers", path, line)
            teacher = {item: float(v) for item, v in zip(ids, scores)}
        else:
            raise InputError("teacher_scores must be a map id -> score or a list", path, line)
        missing = [item for item in positives + negatives if item not in teacher]
        if missing:
            raise InputError(f"no teacher score for {missing[0]!r}", path, line)
    text = obj.get("query_text")
    if text is not None and not isinstance(text, str):
        raise InputError("query_text must be a string", path, line)
    return TrainExample(str(query), positives, negatives, teacher, text, f"{path}:{line}")


def _open_text(path: Path):
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".tsv", ".txt"):
        return "tsv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InputError(f"unknown triples format {suffix or '(no suffix)'!r}; use .jsonl, .tsv or .parquet", path)


def iter_triples(path: str | Path) -> Iterator[TrainExample]:
    """Yield the training examples of a triples file one by one (streamed)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("triples file not found", path)
    kind = _format(path)
    if kind == "parquet":
        yield from _parquet(path)
        return
    try:
        with _open_text(path) as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                if kind == "jsonl":
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})", path, line_no) from None
                    yield example_from_mapping(obj, path, line_no)
                else:
                    fields = [f.strip() for f in line.rstrip("\n\r").split("\t")]
                    if line_no == 1 and fields[0].lower() in _HEADER_WORDS:
                        continue
                    if len(fields) < 2 or not all(fields):
                        raise InputError(
                            f"expected query_id<TAB>positive_id[<TAB>negative_id...], found {len(fields)} field(s)",
                            path,
                            line_no,
                        )
                    yield TrainExample(fields[0], [fields[1]], fields[2:], None, None, f"{path}:{line_no}")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason})", path) from None


def _parquet(path: Path) -> Iterator[TrainExample]:
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise InputError(f"cannot read Parquet: {exc}", path) from None
    row = 0
    for batch in reader.iter_batches(batch_size=4096):
        for obj in batch.to_pylist():
            row += 1
            yield example_from_mapping(obj, path, row)
