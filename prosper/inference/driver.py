"""Streaming, sharded, resumable encoding of a collection into exporter files.

Over 300 lines on purpose: shards, state files, the run fingerprint and resume are one on-disk
protocol (the Ray engine writes the same); splitting it would spread that protocol over modules.

:func:`encode_collection` reads a collection record by record (:mod:`prosper.data.collections`),
fills a buffer of ``infer.buffer_size`` texts, orders the buffer by token length and cuts it
into batches of at most ``infer.batch_tokens`` padded tokens and ``infer.batch_size`` texts
(length bucketing under a token budget, :mod:`prosper.modeling.batching`), encodes the batches
with the encoder (which applies LRN and the Lexical Focusing Window, Eq. 8-10, a few rows at a
time), puts the vectors back in input order and hands them to an exporter writer. Memory is
bounded by the buffer (``buffer_size`` x ``model.max_length`` token ids, 4 bytes each) and the
token budget, never by the collection.

Output layout. Records are cut into shards of ``infer.shard_size`` (in input order); shard ``k``
is written to ``part-<k>.<ext>`` under a temporary name and renamed when complete, then a small
``part-<k>.<ext>.prosper`` state file records its row count and size. With ``merge=True`` (the
default) the shards live in ``<output>.parts/`` and are concatenated into ``<output>`` at the end
(atomically) and the folder removed; with ``merge=False`` ``<output>`` is a folder that keeps the
shards plus ``manifest.prosper`` (JSON) listing them. State files end in ``.prosper`` so that
Anserini, which reads ``.json``/``.jsonl``/``.gz`` files of a folder, never mistakes them for
documents.

Resume. ``resume=True`` skips every shard whose file and state agree, re-reading (not
re-encoding) its records, so the result equals an uninterrupted run. A run is identified by a
fingerprint (input file and size, side, shard size, exporter, checkpoint); resuming a different
run is an error.

torchrun. With ``RANK``/``WORLD_SIZE`` set, rank ``r`` encodes shards ``k`` with
``k % WORLD_SIZE == r``; rank 0 merges once every rank has written its ``_rank-<r>.prosper`` file.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prosper.data.collections import (
    CollectionStats,
    Record,
    count_lines,
    iter_collection,
    resolve_collection,
)
from prosper.errors import ConfigError, InputError
from prosper.export.base import build_exporter
from prosper.fileio import atomic_write_json
from prosper.sparse import SparseVectors

STATE_SUFFIX = ".prosper"
RUN_FILE = "_run" + STATE_SUFFIX
MANIFEST = "manifest" + STATE_SUFFIX
FORMAT_VERSION = 1
#: Characters of text a buffer holds at most (besides ``infer.buffer_size`` records): ~32 MB.
BUFFER_CHARS = 1 << 25


@dataclass
class EncodeSummary:
    """What a run did; ``to_dict()`` is what the CLI prints and the benchmark records."""

    output: str
    side: str
    rows: int = 0  # vectors written by this process (all ranks' on rank 0 after merging)
    shards: int = 0
    shards_encoded: int = 0
    shards_resumed: int = 0
    seconds: float = 0.0
    collection: dict[str, Any] = field(default_factory=dict)
    exporter: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    rank: int = 0
    world_size: int = 1

    @property
    def items_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["items_per_s"] = round(self.items_per_s, 1)
        return out


# -- helpers ------------------------------------------------------------------------------
def dist_info(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world size) from the arguments, else torchrun's ``RANK``/``WORLD_SIZE``."""
    from prosper.training.distributed import env_info  # the one reader of torchrun's variables

    launched = env_info()
    rank = launched.rank if rank is None else rank
    world_size = launched.world_size if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} is outside world size {world_size}")
    return rank, world_size


def _barrier() -> None:
    """Synchronise ranks when torch.distributed runs; a no-op otherwise (files do the rest)."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _write_json(path: Path, data: dict) -> None:
    atomic_write_json(path, data, indent=1)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _wait_for(paths: Sequence[Path], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        missing = [p for p in paths if not p.exists()]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise InputError(f"timed out after {timeout_s:.0f}s waiting for {what}", missing[0])
        time.sleep(0.2)


def encode_buffer(
    encoder, records: list[Record], side: str, batch_size: int, batch_tokens: int | None = None
) -> SparseVectors:
    """Encode one buffer; ``SparseEncoder.encode`` sorts it by token length into batches of at
    most ``batch_size`` texts and ``batch_tokens`` padded tokens and returns the vectors in input
    order, so the texts are tokenised once. An encoder whose ``encode`` takes no
    ``batch_tokens`` is called without it (batches of ``batch_size`` texts)."""
    extra = {"batch_tokens": batch_tokens} if batch_tokens is not None and _takes_batch_tokens(encoder) else {}
    return encoder.encode(
        [r.text for r in records], side=side, batch_size=batch_size, ids=[r.id for r in records], show_progress=False,
        **extra,
    )


def _takes_batch_tokens(encoder) -> bool:
    import inspect

    try:
        parameters = inspect.signature(encoder.encode).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False
    return "batch_tokens" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _chunks(records: Iterator[Record], size: int, max_chars: int | None = BUFFER_CHARS) -> Iterator[list[Record]]:
    """Consecutive buffers of at most ``size`` records and about ``max_chars`` characters of text:
    the tokenizer truncates every text to ``model.max_length`` tokens, but the raw texts of a
    buffer stay in memory until it is encoded, so long descriptions must not multiply by 8,192."""
    chunk: list[Record] = []
    chars = 0
    for record in records:
        chunk.append(record)
        chars += len(record.text)
        if len(chunk) == size or (max_chars is not None and chars >= max_chars):
            yield chunk
            chunk = []
            chars = 0
    if chunk:
        yield chunk


class _Progress:
    """A rich progress bar with items/s on rank 0 (silent elsewhere or when disabled)."""

    def __init__(self, enabled: bool, total: int | None, description: str):
        self.bar = None
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.text import Text

        class _Rate(ProgressColumn):
            def render(self, task):
                return Text(f"{task.speed:,.1f} items/s" if task.speed else "- items/s")

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TimeElapsedColumn(),
        )
        self.bar.start()
        self.task = self.bar.add_task(description, total=total)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# -- the driver ---------------------------------------------------------------------------
def encode_collection(
    encoder,
    input: str | Path,
    side: str,
    output: str | Path,
    exporter,
    settings=None,
    resume: bool = False,
    *,
    merge: bool = True,
    overwrite: bool = False,
    title_field: str = "title",
    text_field: str = "text",
    limit: int | None = None,
    metadata: dict | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = False,
    on_shard_done: Callable[[int], None] | None = None,
    wait_timeout_s: float = 24 * 3600,
) -> EncodeSummary:
    """Encode ``input`` (a collection, see :func:`~prosper.data.collections.iter_collection`) on
    ``side`` ('item' | 'query') and write it with ``exporter`` (an exporter object or a spec
    ``{name: ..., **params}``) to ``output``. ``settings`` is an ``InferSettings`` (batch_size,
    batch_tokens, buffer_size, shard_size, on_error). ``on_shard_done(k)`` is called after each finished shard.
    """
    from prosper.settings import InferSettings

    settings = settings or InferSettings()
    if side not in ("item", "query"):
        raise ConfigError(f"side must be 'item' or 'query', not {side!r}")
    exporter, spec = build_exporter(exporter)
    rank, world_size = dist_info(rank, world_size)
    source = resolve_collection(input, side)
    output = Path(output)
    parts_dir = output.with_name(output.name + ".parts") if merge else output
    if merge and output.is_dir():
        raise ConfigError(f"--output {output} is a folder; name a file, or keep the shards with --no-merge")
    vocabulary = list(encoder.vocabulary())
    meta = {"tokenizer": _tokenizer_name(encoder), **(metadata or {})}
    fingerprint = {
        "version": FORMAT_VERSION,
        "input": str(source.resolve()),
        "input_bytes": source.stat().st_size,
        "side": side,
        "shard_size": settings.shard_size,
        "limit": limit,
        "on_error": settings.on_error,
        "exporter": spec,
        "metadata": {k: str(v) for k, v in meta.items()},
        "vocab_size": len(vocabulary),
    }
    _prepare(parts_dir, fingerprint, resume, overwrite, rank)

    suffix = exporter.suffix(side)
    stats = CollectionStats()
    records: Iterator[Record] = iter_collection(
        source, side, title_field=title_field, text_field=text_field, on_error=settings.on_error, stats=stats
    )
    if limit is not None:
        records = _limit(records, limit)
    summary = EncodeSummary(output=str(output), side=side, rank=rank, world_size=world_size)
    total = count_lines(source, side) if progress and rank == 0 else None
    bar = _Progress(progress and rank == 0, min(total, limit) if total and limit else total, f"encoding {side}s")
    started = time.perf_counter()
    shard_count = 0
    try:
        for shard, shard_records in enumerate(_shard_streams(records, settings.shard_size)):
            shard_count = shard + 1
            part = parts_dir / f"part-{shard:05d}{suffix}"
            mine = shard % world_size == rank
            if not mine or _shard_done(part):
                skipped = sum(1 for _ in shard_records)  # read (and validated), not encoded
                if mine:
                    summary.shards_resumed += 1
                    summary.rows += skipped
                bar.advance(skipped)
                continue
            writer = exporter.open(part, vocabulary, side, meta)
            rows = 0
            try:
                for buffer in _chunks(shard_records, settings.buffer_size):
                    vectors = encode_buffer(encoder, buffer, side, settings.batch_size, settings.batch_tokens)
                    writer.write(vectors)
                    rows += len(vectors)
                    bar.advance(len(vectors))
                counts = writer.close()
            except BaseException:
                writer.abort()
                raise
            _write_json(_state(part), {"shard": shard, "rows": rows, "bytes": part.stat().st_size, "counts": counts})
            summary.rows += rows
            summary.shards_encoded += 1
            if on_shard_done is not None:
                on_shard_done(shard)
    finally:
        bar.close()
    summary.shards = shard_count
    summary.collection = stats.to_dict()
    _write_json(parts_dir / f"_rank-{rank}{STATE_SUFFIX}", {"shards": shard_count, "collection": summary.collection})
    _barrier()
    if rank != 0:
        summary.seconds = time.perf_counter() - started
        summary.exporter = _sum_counts(parts_dir, suffix, shard_count, rank, world_size)
        return summary
    _wait_for(
        [parts_dir / f"_rank-{r}{STATE_SUFFIX}" for r in range(world_size)], wait_timeout_s, "the other ranks to finish"
    )
    parts = [parts_dir / f"part-{k:05d}{suffix}" for k in range(shard_count)]
    _wait_for([_state(p) for p in parts], wait_timeout_s, "every shard")
    summary.exporter = _sum_counts(parts_dir, suffix, shard_count, 0, 1)
    summary.rows = summary.exporter.get("rows", 0)
    _write_manifest(parts_dir, parts, fingerprint, summary)
    if merge:
        if parts:
            merge_parts = exporter.merge
            merge_parts(parts, output, side)
        else:  # an empty collection still gives a valid (empty) file
            exporter.open(output, vocabulary, side, meta).close()
        shutil.rmtree(parts_dir)
        summary.files = [str(output)]
    else:
        summary.files = [str(p) for p in parts]
    summary.seconds = time.perf_counter() - started
    return summary


def _limit(records: Iterator[Record], limit: int) -> Iterator[Record]:
    for i, record in enumerate(records):
        if i >= limit:
            return
        yield record


def _shard_streams(records: Iterator[Record], shard_size: int) -> Iterator[Iterator[Record]]:
    """Split the stream into consecutive sub-streams of ``shard_size`` records, lazily."""
    iterator = iter(records)
    while True:
        try:
            first = next(iterator)
        except StopIteration:
            return
        stream = _take(first, iterator, shard_size)
        yield stream
        for _ in stream:  # drain what the consumer left
            pass


def _take(first: Record, iterator: Iterator[Record], n: int) -> Iterator[Record]:
    yield first
    for _ in range(n - 1):
        try:
            yield next(iterator)
        except StopIteration:
            return


def _state(part: Path) -> Path:
    return part.with_name(part.name + STATE_SUFFIX)


def _shard_done(part: Path) -> bool:
    state = _read_json(_state(part))
    return bool(state) and part.is_file() and part.stat().st_size == state.get("bytes")


def _prepare(parts_dir: Path, fingerprint: dict, resume: bool, overwrite: bool, rank: int) -> None:
    run_file = parts_dir / RUN_FILE
    if rank == 0:
        if parts_dir.exists():
            previous = _read_json(run_file)
            if overwrite:
                shutil.rmtree(parts_dir)
            elif not resume:
                what = "an earlier, unfinished or unmerged run" if previous is not None else "files"
                raise InputError(
                    f"holds {what}; pass --resume to continue it or --overwrite to start again", parts_dir
                )
            elif previous is not None and previous != fingerprint:
                changed = sorted(k for k in fingerprint if previous.get(k) != fingerprint[k])
                raise ConfigError(
                    f"{parts_dir}: cannot resume, the run differs in {', '.join(changed)}; use --overwrite to start again"
                )
        parts_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run_file, fingerprint)
    _barrier()
    if rank != 0:
        _wait_for([run_file], 600, "rank 0 to prepare the output")
        if _read_json(run_file) != fingerprint:
            raise ConfigError(f"{parts_dir}: rank {rank} sees different settings from rank 0")


def _sum_counts(parts_dir: Path, suffix: str, shards: int, rank: int, world_size: int) -> dict[str, int]:
    total: dict[str, int] = {}
    for k in range(rank, shards, world_size):
        state = _read_json(_state(parts_dir / f"part-{k:05d}{suffix}")) or {}
        for key, value in (state.get("counts") or {}).items():
            if key.startswith("max_"):
                total[key] = max(total.get(key, 0), value)
            else:
                total[key] = total.get(key, 0) + value
    return total


def _write_manifest(parts_dir: Path, parts: list[Path], fingerprint: dict, summary: EncodeSummary) -> None:
    shards = []
    for part in parts:
        state = _read_json(_state(part)) or {}
        shards.append({"file": part.name, "rows": state.get("rows"), "bytes": state.get("bytes")})
    _write_json(
        parts_dir / MANIFEST,
        {"run": fingerprint, "rows": summary.rows, "shards": shards, "collection": summary.collection,
         "exporter": summary.exporter},
    )


def _tokenizer_name(encoder) -> str:
    tokenizer = getattr(encoder, "tokenizer", None)
    return str(getattr(tokenizer, "name_or_path", "") or "")
