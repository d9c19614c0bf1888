"""The ``prosper`` command line: a thin layer over the Python API.

Each command group lives in its own module with a ``register(app)`` function; plugins add
commands through the ``register_commands`` hook. Errors are turned into one line here, in one
place (:func:`main`); ``PROSPER_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated

import typer

import prosper

# Command modules, in help order. Each one imports heavy libraries inside its functions only.
COMMAND_MODULES = (
    "prosper.cli.config",
    "prosper.cli.plugins",
    "prosper.cli.train",
    "prosper.cli.infer",
    "prosper.cli.explain",
    "prosper.cli.search",
    "prosper.cli.eval",
    "prosper.cli.mine",
    "prosper.cli.data",
    "prosper.cli.demo",
)

app = typer.Typer(
    name="prosper",
    help="LLMs as sparse retrievers for first-stage product search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"prosper {prosper.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show third-party progress bars and log messages (transformers, hub).")
    ] = False,
) -> None:
    """LLMs as sparse retrievers for first-stage product search."""
    from prosper.cli.common import quiet_third_party

    quiet_third_party(not verbose)


def _register_commands() -> None:
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # command group not present in this build
                continue
            raise
        module.register(app)
    from prosper.plugins import get_plugin_manager

    get_plugin_manager().hook.register_commands(app=app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    from prosper.errors import ProsperError

    debug = os.environ.get("PROSPER_DEBUG") == "1"
    try:
        _register_commands()
        result = app(args=argv, standalone_mode=False)
        return result if isinstance(result, int) else 0
    except ProsperError as exc:
        if debug:
            raise
        from rich.markup import escape

        from prosper.cli.common import err_console

        # escape: messages hold brackets ("[malformed]", "prosper-retrieval[ray]") that are not markup
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # click's own usage errors and aborts
        import click

        if isinstance(exc, click.exceptions.Exit):
            return exc.exit_code
        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            print("aborted", file=sys.stderr)
            return 1
        if debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (set PROSPER_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def run() -> None:  # pragma: no cover - console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
