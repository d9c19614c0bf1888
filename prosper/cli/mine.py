"""``prosper mine``: hard negatives for ``prosper train``, a thin layer over
:func:`prosper.mining.mine_hard_negatives`. Heavy imports stay inside the command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from prosper.cli.common import ConfigOption, OverridesArgument, console, err_console


def mine_command(
    data: Annotated[Path, typer.Option("--data", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Triples file to write (*.jsonl); a .meta.json sidecar goes beside it.")],
    bm25: Annotated[bool, typer.Option("--bm25", help="Rank with BM25 (bm25s, the eval baseline's analyzer).")] = False,
    checkpoint: Annotated[Optional[Path], typer.Option("--model", "--checkpoint", help="Rank with this model, exact search with its scoring (a prosper checkpoint, a SPLADE folder or a Hugging Face hub id; --checkpoint is an alias).")] = None,
    split: Annotated[str, typer.Option("--split", help="qrels/<split>.tsv whose queries get negatives.")] = "train",
    depth: Annotated[int, typer.Option("--depth", help="Candidates looked at per query.")] = 100,
    num_negatives: Annotated[int, typer.Option("--num-negatives", "-n", help="Negatives kept per query.")] = 8,
    min_grade: Annotated[int, typer.Option("--min-grade", help="Grade >= this is a positive (never a negative).")] = 1,
    range_min: Annotated[int, typer.Option("--range-min", help="Skip the first N ranks (positives counted).")] = 0,
    relative_margin: Annotated[Optional[float], typer.Option("--relative-margin", help="Drop candidates scoring > (1 - m) x the best positive's score.")] = None,
    absolute_margin: Annotated[Optional[float], typer.Option("--absolute-margin", help="Drop candidates scoring > the best positive's score - m.")] = None,
    sampling: Annotated[str, typer.Option("--sampling", help="top: the best-ranked candidates; random: a seeded sample (kept in rank order).")] = "top",
    seed: Annotated[int, typer.Option("--seed", help="Seed of --sampling random.")] = 0,
    judged: Annotated[bool, typer.Option("--include-judged-negatives/--no-include-judged-negatives", help="Put the query's judged non-relevant items (grade < --min-grade) first.")] = True,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Queries per chunk (the unit of --resume).")] = 1000,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace a finished output or discard an unfinished run.")] = False,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:N for --checkpoint (default: the model's).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the corpus-encoding progress bar (--checkpoint).")] = True,
    config: ConfigOption = None,
    overrides: OverridesArgument = None,
) -> None:
    """Mine hard negatives: rank the corpus for every query of a split, skip its judged positives
    and the margin band around them, write triples for `prosper train data.triples=FILE
    train.hard_negatives=N`. Settings used: data.title_field, data.text_field, infer.batch_size,
    infer.on_error."""
    from prosper.mining import MiningOptions, mine_hard_negatives
    from prosper.settings import load_settings

    settings = load_settings(config, overrides or [])
    options = MiningOptions(
        depth=depth, num_negatives=num_negatives, min_grade=min_grade, range_min=range_min,
        relative_margin=relative_margin, absolute_margin=absolute_margin, sampling=sampling, seed=seed,
        include_judged_negatives=judged,
    )

    def on_chunk(done: int, total: int) -> None:
        err_console.print(f"mined {done:,}/{total:,} queries", highlight=False)

    summary = mine_hard_negatives(
        data, output, bm25=bm25, checkpoint=checkpoint, split=split, options=options, chunk_size=chunk_size,
        resume=resume, force=force, title_field=settings.data.title_field, text_field=settings.data.text_field,
        on_error=settings.infer.on_error, batch_size=settings.infer.batch_size, device=device, progress=progress,
        on_chunk=on_chunk,
    )
    counts, per_query = summary.meta["counts"], summary.meta["negatives_per_query"]
    resumed = f", {summary.resumed_queries:,} resumed" if summary.resumed_queries else ""
    console.print(
        f"{counts['queries']:,} queries{resumed}, {counts['negatives']:,} negatives ({per_query['mean']:.2f} per query, "
        f"{counts['judged_negatives']:,} judged), {counts['queries_without_negative']:,} without any, "
        f"{counts['skipped_margin']:,} in the margin band, in {summary.seconds:.1f}s -> {summary.output}",
        highlight=False,
    )
    for key in ("queries_without_text", "queries_without_known_positive", "positives_not_in_corpus"):
        if counts.get(key):
            err_console.print(f"[yellow]note:[/] {counts[key]:,} {key.replace('_', ' ')}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("mine")(mine_command)
