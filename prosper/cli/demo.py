"""``prosper demo``: synthetic data -> train -> encode -> export -> index -> evaluate vs BM25."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from prosper.cli.common import ConfigOption, OverridesArgument, console


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: every artefact and summary.md land here.")] = Path(
        "prosper-demo"
    ),
    size: Annotated[str, typer.Option(help="Size preset: tiny (seconds, for tests) or small (minutes).")] = "small",
    backbone: Annotated[
        Optional[str],
        typer.Option(
            help="Fine-tune this pretrained model (hub id or folder, e.g. Qwen/Qwen2.5-0.5B) instead of building "
            "a tiny one from scratch."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the data, the model and the training order.")] = 0,
    threads: Annotated[
        Optional[int], typer.Option(help="CPU threads for torch (default: 1 for the scratch model, torch's choice with --backbone).")
    ] = None,
    config: ConfigOption = None,
    overrides: OverridesArgument = None,
) -> None:
    """Run PROSPER end to end on synthetic product search, offline, and compare it with BM25.

    Generates a catalog and queries (model numbers, brands, attributes, synonyms, hypernyms, misspellings), builds a tiny Qwen-architecture model from scratch (not a pretrained LLM) or loads --backbone, trains it with the PROSPER recipe, encodes the catalog, exports Parquet and Lucene files, builds the embedded index, and prints metrics per query kind against BM25, the multi-channel counts and the terms of a few queries.
    """
    from prosper.demo import run_demo

    # An earlier demo's folder is replaced; any other non-empty folder is refused.
    run_demo(out, size=size, backbone=backbone, seed=seed, overrides=overrides or [], config_file=config,
             overwrite=True, console=console, threads=threads)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
