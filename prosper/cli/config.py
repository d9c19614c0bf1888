"""``prosper config init|show|validate|docs``: write, print and check settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prosper.cli.common import (
    ConfigOption,
    OverridesArgument,
    console,
    resolve_settings,
)

config_app = typer.Typer(help="Show and validate settings.", no_args_is_help=True)


@config_app.command("init")
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the reference configuration.")] = Path("prosper.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write the reference configuration (the paper's recipe, every section) to PATH."""
    from prosper.settings import write_reference_config

    write_reference_config(path, overwrite=force)
    console.print(f"wrote {path}: edit it, then run e.g. prosper train --config {path}", highlight=False)


@config_app.command("show")
def show(config: ConfigOption = None, overrides: OverridesArgument = None) -> None:
    """Print the resolved settings (defaults < --config < PROSPER_* env < overrides) as YAML."""
    from rich.syntax import Syntax

    settings = resolve_settings(config, overrides)
    console.print(Syntax(settings.to_yaml(), "yaml", background_color="default"))


@config_app.command("validate")
def validate(
    path: Annotated[Path, typer.Argument(help="The YAML settings file to check.")],
    overrides: OverridesArgument = None,
) -> None:
    """Check a settings file, including every component's parameters; exit 0 when valid."""
    resolve_settings(path, overrides)
    console.print(f"[green]ok[/]: {path} is valid")


@config_app.command("docs")
def docs() -> None:
    """Print the settings reference (every setting and built-in component parameter) as Markdown."""
    from prosper.config_docs import render_reference

    typer.echo(render_reference())


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
