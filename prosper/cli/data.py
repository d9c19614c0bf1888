"""``prosper data synth``: write a synthetic product-search collection (BEIR layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prosper.cli.common import console

data_app = typer.Typer(help="Data sets: make synthetic product-search collections.", no_args_is_help=True)


@data_app.command("synth")
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write corpus.jsonl, queries.jsonl, qrels/ and manifest.json into.")],
    seed: Annotated[int, typer.Option(help="Random seed: the same seed and sizes give the same bytes.")] = 0,
    products: Annotated[int, typer.Option("--products", "-p", help="Number of products in the catalog.")] = 2000,
    queries: Annotated[int, typer.Option("--queries", "-q", help="Number of queries (train + dev).")] = 1000,
    dev_fraction: Annotated[float, typer.Option(help="Share of each query kind held out for qrels/dev.tsv.")] = 0.2,
) -> None:
    """Generate a catalog with brands, model numbers and attributes, and queries of six kinds
    (model numbers, brand + category, attributes, synonyms, hypernyms, misspellings) with graded
    judgments. See ``prosper.demo.synth`` for the details."""
    import json

    from rich.table import Table

    from prosper.demo.synth import KINDS, generate

    out = generate(out_dir, seed=seed, n_products=products, n_queries=queries, dev_fraction=dev_fraction)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    table = Table(title=f"{manifest['n_products']} products, seed {seed}")
    table.add_column("query kind")
    table.add_column("train", justify="right")
    table.add_column("dev", justify="right")
    for kind in KINDS:
        table.add_row(kind, str(manifest["splits"]["train"]["kinds"][kind]), str(manifest["splits"]["dev"]["kinds"][kind]))
    table.add_row("[bold]all[/]", str(manifest["splits"]["train"]["queries"]), str(manifest["splits"]["dev"]["queries"]))
    console.print(table)
    grades = manifest["judgments"]
    console.print(f"wrote {out}")
    console.print(f"judgments: {grades['2']} grade 2, {grades['1']} grade 1, {grades['0']} grade 0")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
