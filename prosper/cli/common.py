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


FusionOption = Annotated[
    Optional[str],
    typer.Option("--fusion", help="Also run BM25 over the same corpus and fuse the two runs: rrf | combsum (settings search.fusion_*)."),
]


def search_settings(config: Path | None, overrides: list[str] | None):
    """Settings with the searcher validated. These commands build no model from the settings
    (a checkpoint carries its own), so an unrelated component cannot stop them."""
    from prosper.plugins import get_registry
    from prosper.settings import load_settings

    settings = load_settings(config, overrides or [])
    get_registry().validate("searcher", settings.search.searcher, "search.searcher")
    return settings


def check_model_reference(model) -> None:
    """Fail before anything loads when ``--model`` names a local folder that does not exist.

    A hub id (``org/name``) is left to the loader; anything that looks like a path (absolute,
    ``./``/``../``, ``~``, or more than one ``/``) must exist.
    """
    if model is None:
        return
    from pathlib import Path

    from prosper.errors import CheckpointError

    text = str(model)
    path = Path(text).expanduser()
    if path.exists():
        return
    looks_local = text.startswith(("/", "./", "../", "~")) or text.count("/") != 1 or text.endswith("/")
    if looks_local:
        raise CheckpointError(f"--model {text}: no such folder (give a prosper checkpoint, a SPLADE folder or a hub id)")


def check_input_path(path, option: str) -> None:
    """Fail before any model loads when an input file or folder is missing."""
    if path is None:
        return
    from pathlib import Path

    from prosper.errors import InputError

    if not Path(path).exists():
        raise InputError(f"{option}: no such file or folder", path)


def check_query_text(text: str | None) -> None:
    """An empty or blank query is a usage error (exit 2), never an empty result."""
    if text is not None and not text.strip():
        from prosper.errors import ConfigError

        raise ConfigError("the query text is empty: give the words to search for")
