"""``prosper plugins list``: what is installed and who provides it."""

from __future__ import annotations

from typing import Annotated

import typer

from prosper.cli.common import console

plugins_app = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)


@plugins_app.command("list")
def list_plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List registered components: kind, name, providing distribution and version."""
    from prosper.plugins import get_registry

    components = get_registry().components()
    if as_json:
        import json

        rows = [
            {"kind": c.kind, "name": c.name, "distribution": c.provider, "version": c.version, "plugin": c.plugin}
            for c in components
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title="prosper plugins", expand=True)
    rows = [(c.kind, c.name, c.provider, c.version) for c in components]
    for i, column in enumerate(("kind", "name", "distribution", "version")):
        # the identifying columns never shrink; the description gives way on narrow terminals
        table.add_column(column, no_wrap=True, min_width=max([len(column)] + [len(r[i]) for r in rows]))
    table.add_column("description", overflow="ellipsis", no_wrap=True, ratio=1)
    for row, c in zip(rows, components):
        table.add_row(*row, c.doc)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(plugins_app, name="plugins")
