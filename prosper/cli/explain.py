"""``prosper explain``: the top terms of a query or item vector, literal vs expansion.

A thin layer over :func:`prosper.modeling.explain.explain`; torch is imported inside the command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from prosper.cli.common import ConfigOption, OverridesArgument, console


def explain_command(
    text: Annotated[str, typer.Argument(help="The query or item text to explain.", show_default=False)],
    checkpoint: Annotated[
        Optional[Path], typer.Option("--model", "--checkpoint", help="Model: a prosper checkpoint, a SPLADE folder or a Hugging Face hub id; --checkpoint is an alias. Without it the model comes from the settings.")
    ] = None,
    side: Annotated[str, typer.Option("--side", help="query or item (LFW k, LRN side and analysis modes differ).")] = "query",
    top: Annotated[int, typer.Option("--top", min=1, help="How many terms to show.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of a table.")] = False,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:N (default: model.device).")] = None,
    config: ConfigOption = None,
    overrides: OverridesArgument = None,
) -> None:
    """Show the top-weighted terms of TEXT's sparse vector, each marked literal or expansion.

    With --checkpoint, model.* overrides (e.g. model.lfw.k_query=64) adjust the loaded
    settings; without it the (untrained) model is built from the settings, which shows the
    vectors before training.
    """
    from prosper.errors import InputError

    from prosper.cli.common import check_model_reference, check_query_text

    if side not in ("query", "item"):
        raise InputError(f"--side must be query or item, not {side!r}")
    check_query_text(text)
    check_model_reference(checkpoint)
    if checkpoint is not None:
        from prosper.modeling.encoder import SparseEncoder
        from prosper.settings import parse_overrides

        model_overrides = parse_overrides([o for o in overrides or [] if o.strip().startswith("model.")]).get("model", {})
        encoder = SparseEncoder.from_pretrained(str(checkpoint), device=device, **model_overrides)
    else:
        from prosper.cli.common import resolve_settings
        from prosper.modeling.encoder import SparseEncoder

        settings = resolve_settings(config, overrides)
        encoder = SparseEncoder.from_settings(settings.model, device=device)
    from prosper.modeling.explain import explain

    result = explain(encoder, text, side=side, top=top)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    _print_table(result)


def _print_table(result: dict) -> None:
    from rich.table import Table

    shown = len(result["terms"])
    literal = sum(1 for t in result["terms"] if t["literal"])
    table = Table(
        title=f"{result['side']}: {result['text']!r}",
        caption=f"{result['nnz']} non-zero terms; top {shown} shown ({literal} literal, {shown - literal} expansion)",
    )
    table.add_column("rank", justify="right")
    table.add_column("term")
    table.add_column("weight", justify="right")
    table.add_column("kind")
    for rank, term in enumerate(result["terms"], 1):
        kind = "[bold green]literal[/]" if term["literal"] else "[cyan]expansion[/]"
        table.add_row(str(rank), repr(term["term"])[1:-1], f"{term['weight']:.4f}", kind)
    console.print(f"vector size: [bold]{result['nnz']}[/] non-zero terms")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("explain")(explain_command)
