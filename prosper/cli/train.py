"""``prosper train``: fine-tune a PROSPER retriever (a thin layer over :mod:`prosper.training`)."""

from __future__ import annotations

from typing import Annotated

import typer

from prosper.cli.common import (
    ConfigOption,
    OverridesArgument,
    console,
    resolve_settings,
)


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_command(
        config: ConfigOption = None,
        overrides: OverridesArgument = None,
        resume: Annotated[
            bool,
            typer.Option("--resume", help="Continue from the last checkpoint in train.output_dir (same settings)."),
        ] = False,
    ) -> None:
        """Train a retriever: InfoNCE + scheduled FLOPS (Eq. 12-13), checkpoints, --resume, torchrun.

        Reads data.path (BEIR: corpus.jsonl, queries.jsonl, qrels/<split>.tsv) or data.triples,
        writes train.output_dir: checkpoints/step-N/, best/, final/, metrics.jsonl, settings.yaml.
        Launch with `torchrun --nproc_per_node N $(which prosper) train ...` for several processes.
        """
        settings = resolve_settings(config, overrides)
        from prosper.training.trainer import train

        result = train(settings, resume=resume, console=console)
        if result.final_dir is not None:
            console.print(f"trained {result.steps} steps; final model: {result.final_dir}", highlight=False)
            if result.best_dir is not None:
                console.print(
                    f"best dev {settings.train.best_metric}: {result.best_metric:.4f} -> {result.best_dir}",
                    highlight=False,
                )
