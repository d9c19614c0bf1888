"""Docs that must match the code."""

from __future__ import annotations

import inspect
from pathlib import Path

from prosper import hookspecs

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_hook_is_documented():
    text = (DOCS / "plugins.md").read_text(encoding="utf-8")
    hooks = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]
    assert len(hooks) >= 6
    for name in hooks:
        assert f"### `{name}(" in text, f"hook {name} has no section in docs/plugins.md"
