"""``prosper infer`` (encode a collection) and ``prosper export`` (convert Parquet vectors).

Thin layers over :func:`prosper.inference.api.infer` and :func:`prosper.export.convert.convert`;
heavy libraries are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from prosper.cli.common import (
    ConfigOption,
    OverridesArgument,
    check_input_path,
    check_model_reference,
    console,
    err_console,
    resolve_settings,
)

Side = Annotated[str, typer.Option("--side", help="item (corpus.jsonl of a BEIR folder) or query (queries.jsonl).")]
Format = Annotated[
    Optional[str], typer.Option("--format", "-f", help="Exporter name: parquet (default), jsonl, lucene or a plugin's.")
]


def _with_format(fmt: str | None, overrides: list[str] | None) -> list[str]:
    # --format picks the exporter before validation, so export.* overrides check against it.
    overrides = list(overrides or [])
    return ([f"export.name={fmt}"] + overrides) if fmt else overrides


def _export_settings(config: Path | None, overrides: list[str]):
    """Settings with only the exporter validated: converting needs no model."""
    from prosper.plugins import get_registry
    from prosper.settings import load_settings

    settings = load_settings(config, overrides)
    get_registry().validate("exporter", settings.export, "export")
    return settings


def _model_overrides(overrides: list[str]) -> dict:
    from prosper.settings import parse_overrides

    return parse_overrides([o for o in overrides if o.strip().startswith("model.")]).get("model", {})


def _report_counts(collection: dict, exporter: dict) -> None:
    skipped = collection.get("skipped") or {}
    for reason, count in sorted(skipped.items()):
        example = (collection.get("first") or {}).get(reason, "")
        err_console.print(f"[yellow]skipped {count} record(s): {reason}[/] (first: {example})", highlight=False)
    notes = {
        "quantised_empty": "vector(s) rounded to nothing at this scale (rule: export.empty)",
        "clipped": "impact(s) clipped to export.max_weight",
        "empty_queries_omitted": "quer(y/ies) without any term left out of the file",
        "query_terms_truncated": "quer(y/ies) cut to export.max_query_terms terms",
        "subnormal_dropped": "weight(s) below Float.MIN_NORMAL dropped (Lucene FeatureField refuses them)",
    }
    for key, text in notes.items():
        if exporter.get(key):
            err_console.print(f"[yellow]note:[/] {exporter[key]} {text}", highlight=False)


def infer_command(
    checkpoint: Annotated[Path, typer.Option("--model", "--checkpoint", help="Model: a prosper checkpoint, a SPLADE folder or a Hugging Face hub id; --checkpoint is an alias.")],
    input: Annotated[list[Path], typer.Option("--input", "-i", metavar="PATH", help="JSONL, TSV, Parquet file or BEIR folder (--engine ray: repeat -i, globs too).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (a folder with --no-merge).")],
    side: Side = "item",
    format: Format = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run, skipping finished shards.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Discard an unfinished run and start again.")] = False,
    merge: Annotated[bool, typer.Option("--merge/--no-merge", help="Merge shards into one file, or keep them with a manifest.")] = True,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Encode only the first N records.")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:N (default: model.device).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar with items/s.")] = True,
    engine: Annotated[Optional[str], typer.Option("--engine", help="local (this process, torchrun-aware) or ray (a Ray Data actor pool); infer.engine.")] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster for --engine ray (infer.ray.address; default RAY_ADDRESS or a local Ray).")] = None,
    config: ConfigOption = None,
    overrides: OverridesArgument = None,
) -> None:
    """Encode a collection with a trained checkpoint and write it for a search engine.

    Streams in bounded memory, batches by token length, writes resumable shards (split across
    ranks under torchrun) through an exporter plugin. Settings: infer.batch_tokens (padded
    tokens a batch), infer.batch_size, infer.buffer_size, infer.shard_size, infer.on_error=fail|skip, export.* (export.scale=100).
    --engine ray encodes the shards on a Ray Data actor pool instead (infer.ray.*, docs/scaling.md).
    """
    overrides = _with_format(format, overrides)
    if engine:  # like --format: set before validation, so a bad value names infer.engine
        overrides = [f"infer.engine={engine}"] + overrides
    settings = resolve_settings(config, overrides)
    check_model_reference(checkpoint)  # inputs and model path before the model loads
    for path in input:
        if not any(ch in str(path) for ch in "*?["):  # globs (--engine ray) are expanded later
            check_input_path(path, "--input")
    if address:
        settings.infer.ray.address = address
    from prosper.inference.api import infer

    if settings.infer.engine != "ray":
        from prosper.errors import ConfigError

        if len(input) != 1:
            raise ConfigError("--input: the local engine reads one collection; give several with --engine ray")
        input = input[0]
    summary = infer(
        checkpoint,
        input,
        side=side,
        output=output,
        exporter=settings.export,
        settings=settings.infer,
        resume=resume,
        device=device,
        model_overrides=_model_overrides(overrides),
        merge=merge,
        overwrite=overwrite,
        title_field=settings.data.title_field,
        text_field=settings.data.text_field,
        limit=limit,
        progress=progress,
    )
    _report_counts(summary.collection, summary.exporter)
    if summary.rank == 0:
        resumed = f", {summary.shards_resumed} resumed" if summary.shards_resumed else ""
        actors = f" on {summary.num_actors} Ray actor(s)" if getattr(summary, "engine", "") == "ray" else ""
        console.print(
            f"wrote {summary.rows} {side} vectors to {summary.output} "
            f"({summary.shards} shard(s){resumed}; {summary.items_per_s:,.1f} items/s{actors})",
            highlight=False,
        )


def export_command(
    input: Annotated[Path, typer.Option("--input", "-i", help="Parquet vectors written by prosper infer.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file.")],
    format: Format = None,
    side: Annotated[Optional[str], typer.Option("--side", help="Override the side recorded in the file.")] = None,
    config: ConfigOption = None,
    overrides: OverridesArgument = None,
) -> None:
    """Convert Parquet vectors to another exporter's format, without re-encoding."""
    from prosper.export.convert import convert

    settings = _export_settings(config, _with_format(format, overrides))
    result = convert(input, settings.export, output, side=side)
    _report_counts({}, result)
    console.print(
        f"wrote {result['rows']} {result['side']} vectors to {output} ({result['vectors_per_s']:,.0f} vectors/s)",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("infer")(infer_command)
    app.command("export")(export_command)
