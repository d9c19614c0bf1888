"""Streaming readers for text collections: JSONL, TSV, Parquet and BEIR folders.

Every reader yields :class:`Record` objects one at a time, so a collection of any size is read in
bounded memory (the only state that grows is the set of ids already seen, kept to detect
duplicates). Problems are never dropped silently: a malformed JSON line, a missing id, bytes that
are not UTF-8, an empty text or a duplicate id either raises :class:`~prosper.errors.InputError`
naming ``file:line`` (``on_error="fail"``, the default) or is skipped and counted in a
:class:`CollectionStats` (``on_error="skip"``).

Formats (chosen by suffix; a ``.gz`` suffix is decompressed on the fly):

* JSONL (``.jsonl``, ``.json``, ``.ndjson``): ``{"_id" | "id": ..., "title"?: ..., "text"?: ...}``;
* TSV (``.tsv``, ``.txt``): ``id<TAB>text`` (further tab-separated fields are joined to the text
  with a space); a first line such as ``id<TAB>text`` is recognised as a header;
* Parquet (``.parquet``): columns ``id`` (or ``_id``), ``text`` and optionally ``title``;
* a BEIR folder: ``corpus.jsonl`` for ``side="item"``, ``queries.jsonl`` for ``side="query"``.

Title and text are joined with one space (either may be missing), as the paper encodes
product titles (plus description when present).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from prosper.errors import InputError

OnError = Literal["fail", "skip"]

#: The reasons a line can be rejected; each is counted separately in :class:`CollectionStats`.
REASONS = ("malformed", "undecodable", "missing_id", "empty_text", "duplicate_id")

JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}
TSV_SUFFIXES = {".tsv", ".txt"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
BEIR_FILES = {"item": "corpus", "query": "queries"}
_ID_HEADERS = {"id", "_id", "docid", "doc_id", "qid", "query_id", "query-id", "corpus-id", "pid"}
_TEXT_HEADERS = {"text", "title", "query", "contents", "body", "passage"}


@dataclass
class Record:
    """One item or query: its id, the text to encode and where it came from (``file:line``)."""

    id: str
    text: str
    source: str
    line: int


@dataclass
class CollectionStats:
    """What a pass over a collection saw: records yielded and lines skipped, by reason.

    ``first`` keeps the first message per reason (``file:line: ...``) so a summary can show
    the user an example of each problem.
    """

    read: int = 0  # non-blank lines / rows looked at
    yielded: int = 0
    skipped: Counter = field(default_factory=Counter)
    first: dict[str, str] = field(default_factory=dict)

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        """``"1200 records; skipped 3 (empty_text 2, duplicate_id 1)"``."""
        text = f"{self.yielded} records"
        if self.skipped:
            detail = ", ".join(f"{reason} {count}" for reason, count in sorted(self.skipped.items()))
            text += f"; skipped {self.total_skipped} ({detail})"
        return text

    def to_dict(self) -> dict:
        return {"read": self.read, "yielded": self.yielded, "skipped": dict(self.skipped), "first": dict(self.first)}


class _Problems:
    """Applies the on_error policy: raise at once, or count and go on."""

    def __init__(self, on_error: str, stats: CollectionStats):
        if on_error not in ("fail", "skip"):
            raise ValueError(f"on_error must be 'fail' or 'skip', not {on_error!r}")
        self.on_error = on_error
        self.stats = stats

    def report(self, reason: str, message: str, path: Path, line: int) -> None:
        if self.on_error == "fail":
            hint = " (on_error=skip, e.g. infer.on_error=skip, skips and counts such lines)"
            raise InputError(f"{message} [{reason}]{hint}", path, line)
        self.stats.skipped[reason] += 1
        self.stats.first.setdefault(reason, str(InputError(f"{message} [{reason}]", path, line)))


def resolve_collection(path: str | Path, side: str = "item") -> Path:
    """The file to read: ``path`` itself, or the side's file inside a BEIR folder."""
    if side not in BEIR_FILES:
        raise InputError(f"side must be 'item' or 'query', not {side!r}")
    path = Path(path)
    if path.is_dir():
        stem = BEIR_FILES[side]
        for suffix in (".jsonl", ".jsonl.gz", ".parquet", ".tsv"):
            candidate = path / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
        raise InputError(f"not a BEIR folder: no {stem}.jsonl for side {side!r}", path)
    if not path.is_file():
        raise InputError("collection not found", path)
    return path


def collection_format(path: Path) -> str:
    """``jsonl``, ``tsv`` or ``parquet`` from the file name (``.gz`` looked through)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in TSV_SUFFIXES:
        return "tsv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise InputError(
        f"unknown collection format {suffix or '(no suffix)'!r}; use .jsonl, .tsv, .parquet or a BEIR folder", path
    )


def iter_collection(
    path: str | Path,
    side: str = "item",
    *,
    title_field: str = "title",
    text_field: str = "text",
    on_error: OnError = "fail",
    stats: CollectionStats | None = None,
    check_duplicates: bool = True,
) -> Iterator[Record]:
    """Yield the records of a collection one by one, in file order.

    ``on_error="fail"`` raises :class:`InputError` (``file:line: message [reason]``) at the
    first bad line; ``"skip"`` skips it and counts it in ``stats.skipped[reason]``. Duplicate
    ids keep their first occurrence.
    """
    stats = stats if stats is not None else CollectionStats()
    problems = _Problems(on_error, stats)
    file = resolve_collection(path, side)
    kind = collection_format(file)
    if kind == "jsonl":
        raw = _jsonl_rows(file, title_field, text_field, problems)
    elif kind == "tsv":
        raw = _tsv_rows(file, problems)
    else:
        raw = _parquet_rows(file, title_field, text_field)
    seen: dict[str, int] | None = {} if check_duplicates else None
    source = str(file)
    for line, item_id, text in raw:
        stats.read += 1
        if item_id is None:
            problems.report("missing_id", "no id (expected an '_id' or 'id' field)", file, line)
            continue
        if not text.strip():
            problems.report("empty_text", f"empty text for id {item_id!r}", file, line)
            continue
        if seen is not None:
            first = seen.get(item_id)
            if first is not None:
                problems.report("duplicate_id", f"duplicate id {item_id!r} (first at line {first})", file, line)
                continue
            seen[item_id] = line
        stats.yielded += 1
        yield Record(item_id, text, source, line)


def load_texts(path: str | Path, side: str = "item", **kw) -> dict[str, str]:
    """The whole collection as ``{id: text}`` (for small collections: queries, tests)."""
    return {record.id: record.text for record in iter_collection(path, side, **kw)}


def count_lines(path: str | Path, side: str = "item") -> int | None:
    """A cheap upper bound on the number of records (for progress bars); None if unknown."""
    try:
        file = resolve_collection(path, side)
        kind = collection_format(file)
    except InputError:
        return None
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(file).metadata.num_rows
    if file.suffix.lower() == ".gz":
        return None
    count = 0
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
    return count


# -- per-format row readers: yield (line, id | None, text) --------------------------------
def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")


def _decoded_lines(path: Path, problems: _Problems) -> Iterator[tuple[int, str]]:
    """Non-blank lines as text; lines that are not UTF-8 are reported, never replaced."""
    with _open_binary(path) as handle:
        for line_no, data in enumerate(handle, start=1):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.stats.read += 1
                problems.report("undecodable", f"not UTF-8 ({exc.reason} at byte {exc.start})", path, line_no)
                continue
            if line_no == 1 and text.startswith("\ufeff"):
                text = text[1:]  # byte-order mark
            if text.strip():
                yield line_no, text


def _join(*parts: object) -> str:
    return " ".join(str(p).strip() for p in parts if p is not None and str(p).strip())


def _jsonl_rows(path: Path, title_field: str, text_field: str, problems: _Problems):
    for line_no, text in _decoded_lines(path, problems):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.stats.read += 1
            problems.report("malformed", f"invalid JSON ({exc.msg} at column {exc.colno})", path, line_no)
            continue
        if not isinstance(obj, dict):
            problems.stats.read += 1
            problems.report("malformed", f"expected a JSON object, found {type(obj).__name__}", path, line_no)
            continue
        item_id = obj.get("_id", obj.get("id"))
        item_id = None if item_id is None or str(item_id) == "" else str(item_id)
        yield line_no, item_id, _join(obj.get(title_field), obj.get(text_field))


def _tsv_rows(path: Path, problems: _Problems):
    for line_no, text in _decoded_lines(path, problems):
        fields = text.rstrip("\r\n").split("\t")
        if len(fields) < 2:
            problems.stats.read += 1
            problems.report("malformed", "expected id<TAB>text", path, line_no)
            continue
        if line_no == 1 and fields[0].strip().lower() in _ID_HEADERS and fields[1].strip().lower() in _TEXT_HEADERS:
            continue  # header line
        item_id = fields[0].strip() or None
        yield line_no, item_id, _join(*fields[1:])


def _parquet_rows(path: Path, title_field: str, text_field: str):
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise InputError(f"cannot read Parquet file ({exc})", path) from None
    names = set(handle.schema_arrow.names)
    id_column = "id" if "id" in names else "_id" if "_id" in names else None
    if id_column is None:
        raise InputError("Parquet collection has no 'id' (or '_id') column", path, 1)
    columns = [c for c in (title_field, text_field) if c in names]
    if not columns:
        raise InputError(f"Parquet collection has neither a {text_field!r} nor a {title_field!r} column", path, 1)
    row = 0
    for batch in handle.iter_batches(batch_size=4096, columns=[id_column, *columns]):
        data = batch.to_pydict()
        ids = data[id_column]
        parts = [data[c] for c in columns]
        for i, item_id in enumerate(ids):
            row += 1
            item_id = None if item_id is None or str(item_id) == "" else str(item_id)
            yield row, item_id, _join(*(p[i] for p in parts))
