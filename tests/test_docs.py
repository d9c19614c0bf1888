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
        signature = f"{name}{inspect.signature(getattr(hookspecs, name))}"
        assert f"### `{signature}`" in text, f"hook {signature} has no section in docs/plugins.md"


def test_every_component_method_is_documented_with_its_signature():
    from prosper import components

    text = (DOCS / "plugins.md").read_text(encoding="utf-8")
    for cls in (components.Backbone, components.RankingLoss, components.Regularizer, components.Exporter,
                components.Writer, components.Searcher, components.SearchIndex):
        for name, member in vars(cls).items():
            if name.startswith("_") and name != "__len__" or not callable(member):
                continue
            params = [p for p in inspect.signature(member).parameters if p != "self"]
            signature = f"`{name}({', '.join(params)})`"
            assert signature in text, f"{cls.__name__}.{signature} is not in docs/plugins.md"


def test_configuration_reference_matches_the_settings_model():
    from prosper.config_docs import BEGIN, END, render_reference

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    committed = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert committed == render_reference(), "docs/configuration.md is stale: regenerate with `prosper config docs`"


def test_every_setting_is_in_the_configuration_reference():
    from prosper.settings import ProsperSettings

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")

    def paths(model, prefix=""):
        from pydantic import BaseModel

        from prosper.settings import ComponentSpec

        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation is not ComponentSpec:
                yield from paths(annotation, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}"

    missing = [p for p in paths(ProsperSettings) if f"`{p}`" not in text]
    assert not missing and len(list(paths(ProsperSettings))) > 60
