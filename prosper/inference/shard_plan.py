"""Cut a collection into shards that any process can read back on its own (for ``infer.engine=ray``).

Why a plan. The local driver (:mod:`prosper.inference.driver`) cuts shards while it streams:
shard ``k`` holds valid records ``k*S .. (k+1)*S-1`` in input order, where *valid* depends on
``infer.on_error``, on duplicate ids seen anywhere before and on ``--limit``: knowledge that only
a sequential pass has. To write the very same shard files from many Ray actors, the driver makes
that pass once with prosper's own reader (:func:`~prosper.data.collections.iter_collection`: the
same ``file:line`` errors, the same on_error rule, the same duplicate rule, the same counts) and
records, for every shard, where its records are: :class:`Segment` s of (file, byte range, line
runs of the records it keeps). An actor then reads only its byte range and parses it again with
the same reader (:func:`read_segment`), so it encodes exactly the texts the local path encodes,
and a file that changed in between is detected (the record count no longer matches).

Choices weighed: ``ray.data.read_json``/``read_parquet`` parse with Ray's own rules (no line
numbers, other acceptance of bad JSON, no duplicate rule, no on_error) and cut blocks that are
not prosper's shards; validating chunks in parallel Ray tasks would still need a global pass for
duplicates and the limit. The plan pass reads every line once on one core (the rate is measured
by ``benchmarks/infer_ray.py``, see docs/scaling.md) and keeps the ids seen (as the local path
does); the model forward passes, nearly all of the time with an LLM encoder, are what Ray spreads.

Lists of files (or globs) are read as one collection in the given order; an id repeated across
files is a duplicate like one repeated within a file. ``.gz`` files work (byte offsets count
decompressed bytes; an actor then decompresses up to its range), but plain files seek directly.
"""

from __future__ import annotations

import glob
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prosper.data.collections import (
    CollectionStats,
    Record,
    _open_binary,  # the reader's own opener (.gz looked through), so offsets match its bytes
    _Problems,  # the reader's on_error rule, reused for duplicates across files
    collection_format,
    iter_collection,
    resolve_collection,
)
from prosper.errors import InputError
from prosper.inference.driver import _limit  # the local driver's pull pattern: the same counts

_GLOB_CHARS = set("*?[")


@dataclass
class Segment:
    """The records of one shard that live in one file.

    ``first``/``last`` are the lines (Parquet: 1-based rows) of its first and last record,
    ``runs`` the ``[start, end]`` line ranges of the records kept (a gap is a blank, skipped or
    duplicate line), ``start``/``end`` the byte range of lines ``first..last`` (text formats).
    """

    file: str
    first: int
    last: int
    runs: list[list[int]]
    rows: int = 0
    start: int = 0
    end: int = 0


@dataclass
class Shard:
    index: int
    rows: int = 0
    segments: list[Segment] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Shard:
        data = json.loads(text)
        return cls(data["index"], data["rows"], [Segment(**s) for s in data["segments"]])


def resolve_inputs(inputs: str | Path | Sequence[str | Path], side: str = "item") -> list[Path]:
    """Absolute collection files from a path, a BEIR folder, a glob, or a list of them (in order)."""
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not items:
        raise InputError("no input collection given")
    files: list[Path] = []
    for item in items:
        text = str(item)
        if _GLOB_CHARS & set(text) and not Path(text).exists():
            matches = sorted(glob.glob(text))
            if not matches:
                raise InputError("no file matches this pattern", text)
            files.extend(resolve_collection(m, side).resolve() for m in matches)
        else:
            files.append(resolve_collection(item, side).resolve())
    for file in files:
        collection_format(file)  # unknown suffixes fail here, before any work
    seen: set[Path] = set()
    for file in files:
        if file in seen:
            raise InputError("given twice as input", file)
        seen.add(file)
    return files


def _records(files: list[Path], side: str, on_error: str, stats: CollectionStats, title_field: str,
             text_field: str) -> Iterator[Record]:
    if len(files) == 1:  # exactly the local path's reading
        yield from iter_collection(files[0], side, title_field=title_field, text_field=text_field,
                                   on_error=on_error, stats=stats)
        return
    problems = _Problems(on_error, stats)
    seen: dict[str, int] = {}  # id -> file index << 40 | line of its first occurrence
    for index, file in enumerate(files):
        for record in iter_collection(file, side, title_field=title_field, text_field=text_field,
                                      on_error=on_error, stats=stats, check_duplicates=False):
            first = seen.get(record.id)
            if first is not None:
                stats.yielded -= 1  # counted by the reader, taken back as a duplicate
                where = f"{files[first >> 40]}:{first & ((1 << 40) - 1)}"
                problems.report("duplicate_id", f"duplicate id {record.id!r} (first at {where})", file, record.line)
                continue
            seen[record.id] = index << 40 | record.line
            yield record


def plan_shards(
    files: list[Path],
    side: str,
    shard_size: int,
    *,
    on_error: str = "fail",
    title_field: str = "title",
    text_field: str = "text",
    limit: int | None = None,
    stats: CollectionStats | None = None,
    advance: Callable[[int], None] | None = None,
) -> list[Shard]:
    """Read the collection once and return its shards (raises the reader's ``file:line`` errors)."""
    stats = stats if stats is not None else CollectionStats()
    records = _records(files, side, on_error, stats, title_field, text_field)
    if limit is not None:
        records = _limit(records, limit)
    shards: list[Shard] = []
    segment: Segment | None = None
    for i, record in enumerate(records):
        if i % shard_size == 0:
            shards.append(Shard(len(shards)))
            segment = None
        shard = shards[-1]
        line = record.line
        if segment is None or segment.file != record.source:
            segment = Segment(record.source, line, line, [[line, line]])
            shard.segments.append(segment)
        elif line == segment.last + 1:
            segment.runs[-1][1] = line
        else:
            segment.runs.append([line, line])
        segment.last = line
        segment.rows += 1
        shard.rows += 1
        if advance is not None and (i + 1) % 4096 == 0:
            advance(4096)
    if advance is not None and shards:
        advance(sum(s.rows for s in shards) % 4096)
    _add_byte_ranges(shards)
    return shards


def _add_byte_ranges(shards: list[Shard]) -> None:
    by_file: dict[str, list[Segment]] = {}
    for shard in shards:
        for segment in shard.segments:
            by_file.setdefault(segment.file, []).append(segment)
    for file, segments in by_file.items():
        path = Path(file)
        if collection_format(path) == "parquet":
            continue
        offsets = line_offsets(path, {s.first for s in segments} | {s.last + 1 for s in segments})
        for segment in segments:
            segment.start, segment.end = offsets[segment.first], offsets[segment.last + 1]


def line_offsets(path: Path, lines: set[int]) -> dict[int, int]:
    """Byte offset where each of ``lines`` (1-based) starts; lines past the end get the size.

    Counts ``\\n`` in 1 MiB blocks (the reader splits lines the same way), so it runs at disk
    speed rather than at parsing speed.
    """
    targets = sorted(lines)
    out: dict[int, int] = {}
    t = 0
    while t < len(targets) and targets[t] <= 1:
        out[targets[t]] = 0
        t += 1
    line, pos = 1, 0  # `line` starts at or before `pos`
    with _open_binary(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            n = block.count(b"\n")
            if t < len(targets) and targets[t] <= line + n:
                j, current = -1, line
                while t < len(targets) and targets[t] <= line + n:
                    while current < targets[t]:
                        j = block.index(b"\n", j + 1)
                        current += 1
                    out[targets[t]] = pos + j + 1
                    t += 1
            line += n
            pos += len(block)
    for target in targets[t:]:
        out[target] = pos
    return out


def read_segment(segment: Segment, side: str = "item", *, title_field: str = "title",
                 text_field: str = "text") -> list[Record]:
    """The records of ``segment``, read from its byte range (or rows) with prosper's reader."""
    path = Path(segment.file)
    kind = collection_format(path)
    with tempfile.TemporaryDirectory(prefix="prosper-segment-") as tmp:
        if kind == "parquet":
            local, offset = _parquet_rows(path, segment, Path(tmp), title_field, text_field), segment.first - 1
        else:
            local, offset = _text_lines(path, segment, Path(tmp), kind)
        runs, r = segment.runs, 0
        kept: list[Record] = []
        # on_error=skip: the plan already applied the policy; here only its chosen lines are kept
        for record in iter_collection(local, side, title_field=title_field, text_field=text_field,
                                      on_error="skip", check_duplicates=False):
            line = record.line + offset
            while r < len(runs) and runs[r][1] < line:
                r += 1
            if r < len(runs) and runs[r][0] <= line:
                kept.append(Record(record.id, record.text, segment.file, line))
    if len(kept) != segment.rows:
        raise InputError(
            f"lines {segment.first}-{segment.last} now hold {len(kept)} records where the plan found "
            f"{segment.rows}: the file changed during the run; start again with --overwrite", path)
    return kept


def _text_lines(path: Path, segment: Segment, tmp: Path, kind: str) -> tuple[Path, int]:
    """Copy the segment's lines to ``tmp``; a blank first line keeps line-1 rules (BOM, TSV
    header) from applying to a segment that does not start the file. Returns (file, line offset)."""
    local = tmp / ("segment.jsonl" if kind == "jsonl" else "segment.tsv")
    pad = segment.first > 1
    with _open_binary(path) as source, local.open("wb") as target:
        if pad:
            target.write(b"\n")
        source.seek(segment.start)
        remaining = segment.end - segment.start
        while remaining > 0:
            block = source.read(min(remaining, 1 << 22))
            if not block:
                break
            target.write(block)
            remaining -= len(block)
    return local, (segment.first - 2 if pad else 0)


def _parquet_rows(path: Path, segment: Segment, tmp: Path, title_field: str, text_field: str) -> Path:
    """Write rows ``first..last`` (the row groups that hold them, sliced) to a small Parquet file."""
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(path)
    names = handle.schema_arrow.names
    columns = list(dict.fromkeys(c for c in ("id", "_id", title_field, text_field) if c in names))
    lo, hi = segment.first - 1, segment.last  # rows [lo, hi), 0-based
    groups, group_start, start = [], None, 0
    for g in range(handle.num_row_groups):
        n = handle.metadata.row_group(g).num_rows
        if start < hi and start + n > lo:
            groups.append(g)
            group_start = start if group_start is None else group_start
        start += n
    table = handle.read_row_groups(groups, columns=columns).slice(lo - (group_start or 0), hi - lo)
    local = tmp / "segment.parquet"
    pq.write_table(table, local)
    return local
