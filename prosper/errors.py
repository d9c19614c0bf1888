"""Errors that reach the user as one line, never a traceback.

Every expected failure (bad configuration, bad input file, unknown plugin) is a
:class:`ProsperError`. The CLI catches them in one place (:mod:`prosper.cli.app`), prints
``error: <message>`` and exits with :attr:`ProsperError.exit_code`.
"""

from __future__ import annotations

from pathlib import Path


class ProsperError(Exception):
    """Base class: ``str(error)`` is the one line shown to the user."""

    exit_code = 1


class ConfigError(ProsperError):
    """The settings are invalid (bad YAML, wrong type, unknown field or component)."""

    exit_code = 2


class PluginError(ProsperError):
    """A plugin is unknown, registered twice or failed to load."""

    exit_code = 3


class InputError(ProsperError):
    """An input file is missing or malformed; names ``file:line`` where it knows it."""

    exit_code = 4

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(f"{where}{message}")


class CheckpointError(ProsperError):
    """A checkpoint directory is missing, incomplete or unsafe to load."""

    exit_code = 5


class DeviceError(ProsperError):
    """A precision or quantisation choice is not available on the current device."""

    exit_code = 6
