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


def quiet_third_party(quiet: bool = True) -> None:
    """Silence (or restore) transformers' and the hub's progress bars and info logs.

    prosper prints its own progress; ``Loading weights`` and ``Writing model shards`` bars from
    transformers would clutter every command. Environment variables reach libraries not yet
    imported (the usual case: commands import them lazily); already imported ones are told too.
    """
    import os
    import sys

    for name, value in (("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TRANSFORMERS_VERBOSITY", "error")):
        if quiet:
            os.environ[name] = value
        elif os.environ.get(name) == value:
            del os.environ[name]
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        if quiet:
            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
        else:
            hf_logging.enable_progress_bar()
            hf_logging.set_verbosity_warning()
