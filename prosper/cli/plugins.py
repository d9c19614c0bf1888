"""``prosper plugins list|check``: what is installed, who provides it, and whether it keeps
its contract (:mod:`prosper.contracts`)."""

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


@plugins_app.command("check")
def check_plugins(
    names: Annotated[list[str] | None, typer.Argument(help="Component names to check (default: every registered one).")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="backbone | loss | regularizer | exporter | searcher.")] = None,
    params: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A parameter for the component, key=value (repeatable).")
    ] = None,
) -> None:
    """Run the contract checks on registered components: real training steps for losses and
    regularizers, write/read-back for exporters, brute-force agreement for searchers, loading
    and encoding for backbones. Exits 1 naming the first broken rule."""
    from prosper.contracts import check_component, find_component
    from prosper.errors import ProsperError
    from prosper.plugins import get_registry
    from prosper.settings import parse_overrides

    extra = parse_overrides(params or [])
    if names:
        targets = [find_component(name, kind) for name in names]
    else:
        targets = get_registry().components(kind)
    failed = 0
    for component in targets:
        try:
            report = check_component(component.name, component.kind, extra)
        except ProsperError as exc:
            failed += 1
            console.print(f"[red]FAIL[/] {exc}", highlight=False)
            continue
        console.print(f"[green]ok[/] {component.kind} {component.name} ({component.provider})", highlight=False)
        for line in report.passed:
            console.print(f"   - {line}", highlight=False)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(plugins_app, name="plugins")
