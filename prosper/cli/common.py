"""Pieces every command shares: the console, the --config option and settings resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="YAML settings file (defaults < file < PROSPER_* env < overrides)."),
]
OverridesArgument = Annotated[
    Optional[list[str]],
    typer.Argument(help="Setting overrides written section.key=value, e.g. train.batch_size=32.", show_default=False),
]


def resolve_settings(config: Path | None, overrides: list[str] | None):
    """Load and validate settings (components included) for a command."""
    from prosper.settings import resolve

    return resolve(config, overrides or [])
