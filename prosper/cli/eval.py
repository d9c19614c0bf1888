"""``prosper eval``: score run files, or encode -> index -> search -> score a checkpoint.

A thin layer over :mod:`prosper.evaluation.pipeline` (the pipeline training validation and the
demo also use) and :mod:`prosper.evaluation.report`; heavy imports stay inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from prosper.cli.common import (
    ConfigOption,
    FusionOption,
    OverridesArgument,
    check_input_path,
    check_model_reference,
    console,
    search_settings,
)


def eval_command(
    run: Annotated[Optional[list[Path]], typer.Option("--run", help="TREC run file(s) to evaluate (repeat for several).")] = None,
    qrels: Annotated[Optional[Path], typer.Option("--qrels", help="Judgments: BEIR TSV or TREC qrels.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--model", "--checkpoint", help="All-in-one: encode, index, search, evaluate with this model (a prosper checkpoint, a SPLADE folder or a Hugging Face hub id; --checkpoint is an alias).")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/).")] = None,
    split: Annotated[str, typer.Option("--split", help="qrels/<split>.tsv to evaluate on.")] = "dev",
    bm25: Annotated[bool, typer.Option("--bm25", help="Also evaluate BM25 (bm25s) over the same corpus.")] = False,
    channels: Annotated[bool, typer.Option("--channels", help="Multi-channel recall_types analysis (implies --bm25 with --checkpoint).")] = False,
    fusion: FusionOption = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder for runs + metrics.json (default: CHECKPOINT/eval-SPLIT).")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the metrics as JSON here (run files mode).")] = None,
    measures: Annotated[Optional[list[str]], typer.Option("--measure", help="Measures instead of the defaults (repeat), e.g. nDCG@10, 'RR(rel=1)@10'.")] = None,
    config: ConfigOption = None,
    overrides: OverridesArgument = None,
) -> None:
    """nDCG@10, MRR@10 (grade >= search.mrr_rel, default 2), Recall@10/100/1000, Hit@1/10/100/1000.

    Every mean is over all judged queries; a query without hits counts as 0 for every measure.
    """
    from prosper.errors import ConfigError
    from prosper.evaluation.report import channels_tables, metrics_table, write_json

    settings = search_settings(config, overrides)
    if checkpoint is not None:
        if data is None or run:
            raise ConfigError("--checkpoint needs --data BEIR_DIR (and no --run)")
        if measures:
            raise ConfigError("--measure applies to --run files; the all-in-one mode reports the defaults")
        check_model_reference(checkpoint)  # before anything is read or loaded
        check_input_path(data, "--data")
        from prosper.evaluation.pipeline import evaluate_checkpoint

        payload = evaluate_checkpoint(
            checkpoint, data, split, settings, output, bm25=bm25, channels=channels, fusion=fusion, console=console
        )
        title = f"{data} / {split} ({payload['n_queries']:,} queries)"
    else:
        if not run or qrels is None:
            raise ConfigError("give --run RUN --qrels QRELS, or --checkpoint C --data BEIR_DIR")
        if fusion is not None:
            raise ConfigError("--fusion applies to --checkpoint; fuse run files with prosper.retrieval.fusion.fuse")
        from prosper.evaluation.pipeline import evaluate_run_files

        payload = evaluate_run_files(run, qrels, settings.search, measures, channels=channels)
        title = f"{qrels} ({payload['n_queries']:,} queries)"
    console.print(metrics_table(payload["systems"], title=title))
    if "_analysis" in payload:
        for table in channels_tables(payload["_analysis"]):
            console.print(table)
    if checkpoint is not None:
        console.print(f"runs and metrics.json in {payload['output']}", highlight=False)
    elif json_path is not None:
        write_json(json_path, {k: v for k, v in payload.items() if not k.startswith("_")})
        console.print(f"metrics -> {json_path}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
