"""Atomic writes: nothing half-written is ever left under its final name.

Every writer goes through a temporary name next to the target (``<name>.tmp-<pid>``, on the same
file system so ``os.replace`` is atomic) and renames it into place when complete. Readers and
``--resume`` treat anything containing ``.tmp-`` as debris of an interrupted write.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from prosper.errors import InputError


def temp_path(path: str | Path) -> Path:
    """``<name>.tmp-<pid>`` next to ``path``."""
    path = Path(path)
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


class AtomicFile:
    """A binary file written under a temporary name and renamed into place by :meth:`commit`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_path(self.path)
        self.handle = self.tmp.open("wb")

    def write(self, data) -> None:
        self.handle.write(data)

    def commit(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        self.tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` through a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    with tmp.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return path


def atomic_write_json(path: str | Path, payload: Any, indent: int | None = 2) -> Path:
    """Write ``payload`` as JSON (non-ASCII kept) through a temporary file."""
    return atomic_write_text(path, json.dumps(payload, indent=indent, ensure_ascii=False) + "\n")


def staging_dir(directory: str | Path, overwrite: bool = False, what: str = "folder") -> Path:
    """A fresh, empty temporary folder to build ``directory`` in; pass it to :func:`replace_dir`.

    Refuses an existing ``directory`` unless ``overwrite``.
    """
    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise InputError(f"{what} already exists (use --force / overwrite=True)", directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(directory)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def replace_dir(tmp: str | Path, directory: str | Path) -> Path:
    """Move a finished temporary folder into place; an existing folder is swapped out first."""
    tmp, directory = Path(tmp), Path(directory)
    if directory.exists():
        old = directory.with_name(f"{directory.name}.old.tmp-{os.getpid()}")
        os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, directory)
    return directory
