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

    table = Table(title="prosper plugins")
    for column in ("kind", "name", "distribution", "version", "description"):
        table.add_column(column)
    for c in components:
        table.add_row(c.kind, c.name, c.provider, c.version, c.doc)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(plugins_app, name="plugins")
