"""Render the settings reference (docs/configuration.md) from the settings model itself.

Descriptions come from each field's trailing ``# comment`` in the source (or its pydantic
``description``), so the code stays the one place they are written. A test checks that the
committed docs equal what this renders: ``prosper config docs`` prints it.
"""

from __future__ import annotations

import inspect
import re
import typing

from pydantic import BaseModel

from prosper.settings import ComponentSpec, ProsperSettings

BEGIN = "<!-- BEGIN GENERATED: prosper config docs -->"
END = "<!-- END GENERATED -->"
_FIELD_LINE = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+)$")


def _comments(cls: type) -> dict[str, str]:
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for line in source.splitlines():
            match = _FIELD_LINE.match(line)
            if match:
                found[match.group(1)] = match.group(2).strip()
    return found


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(annotation, "__name__", str(annotation))


def _default(value) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    if value is None:
        return "`null`"
    text = repr(value) if not isinstance(value, (dict, list)) else __import__("json").dumps(value)
    return f"`{text}`".replace("|", "\\|")


def _rows(model: type[BaseModel], prefix: str):
    comments = _comments(model)
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation is not ComponentSpec:
            yield from _rows(annotation, path)
            continue
        description = field.description or comments.get(name, "")
        if annotation is ComponentSpec or typing.get_args(annotation) == (ComponentSpec,):
            description = (description + " " if description else "") + "A component: `{name: ..., params}`."
        yield path, _type_name(annotation), _default(field.get_default(call_default_factory=True)), description


def _component_rows(registry):
    for component in registry.components():
        if component.provider != "prosper-retrieval":
            continue
        comments = _comments(component.params_model)
        fields = component.params_model.model_fields
        if not fields:
            yield component.kind, component.name, "(none)", "", "", component.doc
            continue
        for name, field in fields.items():
            default = "(required)" if field.is_required() else _default(field.get_default(call_default_factory=True))
            yield component.kind, component.name, name, _type_name(field.annotation), default, (
                field.description or comments.get(name, "")
            )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_reference(registry=None) -> str:
    """The generated block of docs/configuration.md (markers included)."""
    if registry is None:
        from prosper.plugins import get_registry

        registry = get_registry()
    out = [BEGIN, "", "### Settings", "", "| setting | type | default | meaning |", "|---|---|---|---|"]
    for path, type_name, default, description in _rows(ProsperSettings, ""):
        out.append(f"| `{path}` | {type_name} | {default} | {_cell(description)} |")
    out += [
        "",
        "### Parameters of the built-in components",
        "",
        "| kind | name | parameter | type | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for kind, name, param, type_name, default, description in _component_rows(registry):
        shown = f"`{param}`" if param != "(none)" else param
        out.append(f"| {kind} | `{name}` | {shown} | {type_name} | {default} | {_cell(description)} |")
    out += ["", END]
    return "\n".join(out)
