"""``infer.engine=ray``: encode a collection on a Ray Data actor pool, shard files as the local path writes.

Over 300 lines on purpose: the driver side and the actor side exchange shard plans and results
whose formats must match; keeping them together keeps that contract in one place.

Flow. (1) A Ray task loads the checkpoint once to read its vocabulary and tokenizer name (the run's
fingerprint needs them, and the driver stays free of torch and GPUs). (2) The driver checks the
output folder exactly as the local driver does (``--resume`` / ``--overwrite``, the same
``_run.prosper`` fingerprint). (3) It plans the shards with prosper's own reader
(:mod:`prosper.inference.shard_plan`: one pass, ``file:line`` errors, ``infer.on_error``,
duplicate ids, ``--limit``), so shard ``k`` holds the same records as the local path's
``part-<k>``. (4) The unfinished shards become a Ray dataset of read tasks (file, byte range, line
runs), encoded with ``map_batches`` on an actor pool: each actor (:class:`ShardEncoder`) loads the
checkpoint once (one GPU per actor where the cluster has GPUs), then for each shard reads its byte
range with prosper's reader, encodes it buffer by buffer with the encoder's length-bucketed
``encode`` and writes ``part-<k>`` atomically plus its ``.prosper`` state file, as the local
driver does. (5) The driver writes ``_rank-0.prosper`` and ``manifest.prosper`` (and merges when
asked), so ``prosper index`` / ``prosper export`` read the result unchanged, and a run interrupted
at any point resumes from its finished shards under either engine.

Why whole shards per actor call rather than records flowing through ``map_batches``: a shard is
the unit of the output format and of resume; encoding and writing it in one actor keeps the
files byte-compatible with the local path, needs no shuffle to regroup records by shard, and a
killed actor leaves at most a ``.tmp-<pid>`` file that resume ignores. Shards are large enough
(``infer.shard_size``, 100,000 records by default) that a read of the byte range costs little next
to the forward passes.

On a cluster, the checkpoint, the input and the output folder must be on a file system every node
sees under the same path, and prosper must be installed on every node (see docs/scaling.md).
Ray is optional: ``pip install 'prosper-retrieval[ray]'``.
"""

from __future__ import annotations

import copy
import logging
import os
import resource
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prosper.data.collections import CollectionStats, count_lines
from prosper.errors import ConfigError, ProsperError
from prosper.export.base import build_exporter
from prosper.inference.driver import (
    FORMAT_VERSION,
    STATE_SUFFIX,
    EncodeSummary,
    _chunks,
    _Progress,
    _prepare,
    _shard_done,
    _state,
    _sum_counts,
    _write_json,
    _write_manifest,
    encode_buffer,
)
from prosper.inference.shard_plan import Shard, plan_shards, read_segment, resolve_inputs

INSTALL_HINT = "infer.engine=ray needs Ray: pip install 'prosper-retrieval[ray]'"


@dataclass
class RayEncodeSummary(EncodeSummary):
    """The local summary plus what the actors did (``actors``: per actor shards, rows, peak memory)."""

    engine: str = "ray"
    num_actors: int = 0
    actors: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # probe, plan, encode seconds


def import_ray():
    """``ray`` with Ray Data, or a one-line :class:`ConfigError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


# -- what runs inside Ray -----------------------------------------------------------------
def _enter(job: dict) -> None:
    """Resolve relative paths as the driver does (shared file systems mount at the same path)."""
    if job.get("cwd") and os.path.isdir(job["cwd"]):
        os.chdir(job["cwd"])
    threads = job.get("threads")
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def describe_checkpoint(job: dict) -> dict[str, Any]:
    """Load the checkpoint once; return its vocabulary, tokenizer name and scoring (the probe task)."""
    from prosper.inference.api import load_encoder
    from prosper.inference.driver import _tokenizer_name

    _enter(job)
    encoder = load_encoder(job["checkpoint"], job["device"], **job["model_overrides"])
    scoring = getattr(getattr(encoder, "settings", None), "scoring", None)
    return {"vocabulary": list(encoder.vocabulary()), "tokenizer": _tokenizer_name(encoder), "scoring": scoring}


class ShardEncoder:
    """A Ray actor: loads the checkpoint once, then encodes and writes one whole shard per call."""

    def __init__(self, job: dict):
        from prosper.inference.api import load_encoder

        _enter(job)
        self.job = job
        self.encoder = load_encoder(job["checkpoint"], job["device"], **job["model_overrides"])
        self.vocabulary = list(self.encoder.vocabulary())
        if len(self.vocabulary) != job["vocab_size"]:
            raise ConfigError(f"{job['checkpoint']}: the actor sees {len(self.vocabulary)} terms, the driver "
                              f"{job['vocab_size']}; every node must read the same checkpoint")
        self.exporter, _ = build_exporter(job["exporter"])
        self.parts_dir = Path(job["parts_dir"])
        try:
            import ray

            self.name = ray.get_runtime_context().get_actor_id() or f"pid-{os.getpid()}"
            self.node = ray.get_runtime_context().get_node_id()
        except Exception:  # pragma: no cover - outside Ray
            self.name, self.node = f"pid-{os.getpid()}", ""

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        results = [self.encode_shard(Shard.from_json(str(task))) for task in batch["task"]]
        return {key: np.asarray([r[key] for r in results]) for key in results[0]}

    def encode_shard(self, shard: Shard) -> dict[str, Any]:
        job = self.job
        started = time.perf_counter()
        part = self.parts_dir / f"part-{shard.index:05d}{job['suffix']}"
        writer = self.exporter.open(part, self.vocabulary, job["side"], job["meta"])
        rows = 0
        try:
            records = (record for segment in shard.segments
                       for record in read_segment(segment, job["side"], title_field=job["title_field"],
                                                  text_field=job["text_field"]))
            for buffer in _chunks(records, job["buffer_size"]):
                vectors = encode_buffer(self.encoder, buffer, job["side"], job["batch_size"], job["batch_tokens"])
                writer.write(vectors)
                rows += len(vectors)
            counts = writer.close()
        except BaseException:
            writer.abort()
            raise
        _write_json(_state(part), {"shard": shard.index, "rows": rows, "bytes": part.stat().st_size, "counts": counts})
        return {
            "shard": shard.index,
            "rows": rows,
            "seconds": time.perf_counter() - started,
            "actor": self.name,
            "node": self.node,
            "pid": os.getpid(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "gpu_peak_mb": _gpu_peak_mb(),
        }


def _gpu_peak_mb() -> float:
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return 0.0
    return torch.cuda.max_memory_allocated() / 2**20


# -- the driver ---------------------------------------------------------------------------
def _connect(ray, address: str | None) -> bool:
    """Join ``address`` (or the Ray instance this process already runs); True if we started one."""
    if ray.is_initialized():
        return False
    try:
        if address in (None, "", "local") and not os.environ.get("RAY_ADDRESS"):
            ray.init(include_dashboard=False, logging_level=logging.WARNING)
        else:
            ray.init(address=None if address in (None, "", "local") else address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or os.environ.get("RAY_ADDRESS")
        raise ConfigError(f"infer.ray.address={where}: cannot join the Ray cluster ({str(exc).splitlines()[0]})") from None
    return True


def _unwrap(exc: BaseException) -> BaseException | None:
    """The ProsperError inside Ray's wrappers, as one line; None if there is none."""
    todo, seen = [exc], set()
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        wrapper = type(current).__module__.startswith("ray")  # RayTaskError(InputError) is both
        if isinstance(current, ProsperError) and not wrapper:
            clean = copy.copy(current)
            clean.args = (str(current).splitlines()[0],)  # Ray appends its own notes
            return clean
        todo += [current.__cause__, current.__context__, getattr(current, "cause", None)]
    return None


def _actor_resources(ray, settings) -> tuple[float, float]:
    rs = settings.ray
    gpus = rs.num_gpus_per_actor
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    return float(rs.num_cpus_per_actor), float(gpus)


def _actor_count(ray, settings, gpus: float, shards: int) -> int:
    rs = settings.ray
    if rs.num_actors is not None:
        count = rs.num_actors
    else:
        resources = ray.cluster_resources()
        if gpus > 0:
            count = int(resources.get("GPU", 0) // gpus)
        else:
            count = int(resources.get("CPU", 1) // rs.num_cpus_per_actor)
    return max(1, min(count, shards))


def infer_ray(
    checkpoint: str | Path,
    input: str | Path | Sequence[str | Path],
    side: str = "item",
    output: str | Path = "vectors.parquet",
    exporter: Any = "parquet",
    settings=None,
    resume: bool = False,
    *,
    merge: bool = True,
    overwrite: bool = False,
    title_field: str = "title",
    text_field: str = "text",
    limit: int | None = None,
    metadata: dict | None = None,
    device: str | None = None,
    model_overrides: dict[str, Any] | None = None,
    progress: bool = False,
    address: str | None = None,
    on_shard_done: Callable[[int], None] | None = None,
) -> RayEncodeSummary:
    """Encode ``input`` (a collection, BEIR folder, glob or list of them) with the checkpoint on
    a Ray Data actor pool; the arguments are those of :func:`prosper.inference.api.infer` plus
    ``address`` (else ``settings.ray.address``). ``settings`` is an ``InferSettings``."""
    from prosper.settings import InferSettings

    settings = settings or InferSettings()
    if side not in ("item", "query"):
        raise ConfigError(f"side must be 'item' or 'query', not {side!r}")
    ray = import_ray()
    exporter_obj, spec = build_exporter(exporter)
    files = resolve_inputs(input, side)
    output = Path(output)
    parts_dir = output.with_name(output.name + ".parts") if merge else output
    if merge and output.is_dir():
        raise ConfigError(f"--output {output} is a folder; name a file, or keep the shards with --no-merge")
    suffix = exporter_obj.suffix(side)

    started_ray = _connect(ray, address or settings.ray.address)
    context = ray.data.DataContext.get_current()
    saved = (context.raise_original_map_exception, context.enable_progress_bars)
    context.raise_original_map_exception = True  # our errors keep their file:line message
    context.enable_progress_bars = False  # prosper's own bar counts items; Ray's would log per operator
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    if os.environ.get("PROSPER_DEBUG") != "1":  # Ray Data's INFO lines stay in its session log files
        data_logger.setLevel(logging.WARNING)
    try:
        return _run(ray, _Request(
            checkpoint=checkpoint, files=files, side=side, output=output, parts_dir=parts_dir, exporter=exporter,
            exporter_obj=exporter_obj, spec=spec, suffix=suffix, settings=settings, resume=resume, merge=merge,
            overwrite=overwrite, title_field=title_field, text_field=text_field, limit=limit,
            metadata=dict(metadata or {}), device=device, model_overrides=dict(model_overrides or {}),
            progress=progress, on_shard_done=on_shard_done))
    except Exception as exc:
        clean = _unwrap(exc)
        if clean is not None:
            raise clean from None
        if type(exc).__module__.startswith("ray"):
            raise ProsperError(f"a Ray encoder actor failed: {_first_line(exc)}") from exc
        raise
    finally:
        context.raise_original_map_exception, context.enable_progress_bars = saved
        data_logger.setLevel(level)
        if started_ray:
            ray.shutdown()


def _first_line(exc: BaseException) -> str:
    for line in str(exc).splitlines():
        line = line.strip()
        if line and not line.startswith(("File ", "^", "Traceback")):
            return line
    return type(exc).__name__


@dataclass
class _Request:
    """One :func:`infer_ray` call, its arguments resolved (files, output folder, exporter)."""

    checkpoint: str | Path
    files: list[Path]
    side: str
    output: Path
    parts_dir: Path
    exporter: Any  # as given: a name or spec travels to the actors as data
    exporter_obj: Any
    spec: dict
    suffix: str
    settings: Any
    resume: bool
    merge: bool
    overwrite: bool
    title_field: str
    text_field: str
    limit: int | None
    metadata: dict
    device: str | None
    model_overrides: dict
    progress: bool
    on_shard_done: Callable[[int], None] | None


def _run(ray, r: _Request) -> RayEncodeSummary:
    checkpoint, files, side, settings, progress = r.checkpoint, r.files, r.side, r.settings, r.progress
    parts_dir, suffix, exporter_obj = r.parts_dir, r.suffix, r.exporter_obj
    timings: dict[str, float] = {}
    began = time.perf_counter()
    cpus, gpus = _actor_resources(ray, settings)
    job = {
        "checkpoint": str(checkpoint),
        "device": r.device or ("cuda" if gpus > 0 else "cpu"),
        "model_overrides": r.model_overrides,
        "cwd": os.getcwd(),
        "threads": max(1, int(cpus)),
    }
    clock = time.perf_counter()
    probe = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(describe_checkpoint)
    described = ray.get(probe.remote(job))
    timings["probe_s"] = time.perf_counter() - clock
    vocabulary = described["vocabulary"]
    scoring = described["scoring"]  # recorded as prosper.inference.api.infer records it
    meta = {"tokenizer": described["tokenizer"], "checkpoint": str(checkpoint),
            **({"scoring": scoring} if scoring else {}), **r.metadata}
    single = len(files) == 1
    fingerprint = {  # the local driver's fingerprint, so either engine resumes the other's run
        "version": FORMAT_VERSION,
        "input": str(files[0]) if single else [str(f) for f in files],
        "input_bytes": files[0].stat().st_size if single else [f.stat().st_size for f in files],
        "side": side,
        "shard_size": settings.shard_size,
        "limit": r.limit,
        "on_error": settings.on_error,
        "exporter": r.spec,
        "metadata": {k: str(v) for k, v in meta.items()},
        "vocab_size": len(vocabulary),
    }
    _prepare(parts_dir, fingerprint, r.resume, r.overwrite, 0)

    clock = time.perf_counter()
    stats = CollectionStats()
    total = None
    if progress:
        counts = [count_lines(f, side) for f in files]
        total = None if None in counts else sum(counts)
        total = min(total, r.limit) if total is not None and r.limit is not None else total
    bar = _Progress(progress, total, f"reading {side}s")
    try:
        shards = plan_shards(files, side, settings.shard_size, on_error=settings.on_error, title_field=r.title_field,
                             text_field=r.text_field, limit=r.limit, stats=stats, advance=bar.advance)
    finally:
        bar.close()
    timings["plan_s"] = time.perf_counter() - clock

    summary = RayEncodeSummary(output=str(r.output), side=side, timings=timings)
    parts = [parts_dir / f"part-{s.index:05d}{suffix}" for s in shards]
    todo = [s for s, part in zip(shards, parts) if not _shard_done(part)]
    summary.shards_resumed = len(shards) - len(todo)
    clock = time.perf_counter()
    if todo:
        job.update(
            vocab_size=len(vocabulary), exporter=r.spec if _is_spec(r.exporter) else exporter_obj,
            parts_dir=str(parts_dir.resolve()), suffix=suffix, side=side, meta=meta, title_field=r.title_field,
            text_field=r.text_field, buffer_size=settings.buffer_size,
            batch_size=settings.ray.batch_size or settings.batch_size,
            batch_tokens=getattr(settings, "batch_tokens", None),
        )
        summary.num_actors = _actor_count(ray, settings, gpus, len(todo))
        bar = _Progress(progress, sum(s.rows for s in shards), f"encoding {side}s on {summary.num_actors} Ray actor(s)")
        bar.advance(sum(s.rows for s in shards) - sum(s.rows for s in todo))
        dataset = ray.data.from_items([{"task": s.to_json()} for s in todo], override_num_blocks=len(todo))
        encoded = dataset.map_batches(
            ShardEncoder,
            fn_constructor_kwargs={"job": job},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=summary.num_actors, max_tasks_in_flight_per_actor=1),
            num_cpus=cpus,
            num_gpus=gpus,
        )
        try:
            # one shard at a time, no prefetch: progress and on_shard_done follow the actors closely
            for batch in encoded.iter_batches(batch_size=1, prefetch_batches=0):
                row = {key: values[0] for key, values in batch.items()}
                _record_actor(summary, row)
                bar.advance(int(row["rows"]))
                if r.on_shard_done is not None:
                    r.on_shard_done(int(row["shard"]))
        finally:
            bar.close()
    timings["encode_s"] = time.perf_counter() - clock

    summary.shards = len(shards)
    summary.collection = stats.to_dict()
    _write_json(parts_dir / f"_rank-0{STATE_SUFFIX}", {"shards": len(shards), "collection": summary.collection})
    summary.exporter = _sum_counts(parts_dir, suffix, len(shards), 0, 1)
    summary.rows = summary.exporter.get("rows", 0)
    _write_manifest(parts_dir, parts, fingerprint, summary)
    if r.merge:
        if parts:
            exporter_obj.merge(parts, r.output, side)
        else:  # an empty collection still gives a valid (empty) file
            exporter_obj.open(r.output, vocabulary, side, meta).close()
        shutil.rmtree(parts_dir)
        summary.files = [str(r.output)]
    else:
        summary.files = [str(p) for p in parts]
    summary.seconds = time.perf_counter() - began
    return summary


def _is_spec(exporter) -> bool:
    """A name or ``{name: ...}`` spec travels as data; an exporter object travels pickled."""
    from collections.abc import Mapping

    from pydantic import BaseModel

    return isinstance(exporter, (str, Mapping, BaseModel))


def _record_actor(summary: RayEncodeSummary, row: dict) -> None:
    summary.shards_encoded += 1
    actor = summary.actors.setdefault(str(row["actor"]), {"node": str(row["node"]), "pid": int(row["pid"]),
                                                          "shards": 0, "rows": 0, "seconds": 0.0})
    actor["shards"] += 1
    actor["rows"] += int(row["rows"])
    actor["seconds"] = round(actor["seconds"] + float(row["seconds"]), 3)
    actor["peak_rss_mb"] = round(max(actor.get("peak_rss_mb", 0.0), float(row["peak_rss_mb"])), 1)
    actor["gpu_peak_mb"] = round(max(actor.get("gpu_peak_mb", 0.0), float(row["gpu_peak_mb"])), 1)
