"""Name -> component resolution for the four (five) component kinds.

The registry is filled by :mod:`prosper.plugins` from the registration hooks. It knows, for each
name, the factory, the pydantic model of its parameters and which distribution provided it,
so that errors can say exactly which names exist and who registered a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from prosper.errors import ConfigError, PluginError

KINDS = ("backbone", "loss", "regularizer", "exporter", "searcher")


@dataclass(frozen=True)
class Component:
    kind: str
    name: str
    factory: Callable[[Any], Any]
    params_model: type[BaseModel]
    provider: str  # distribution name, or "(in-process)"
    version: str
    plugin: str  # plugin (entry point) name

    @property
    def doc(self) -> str:
        text = (self.factory.__doc__ or "").strip()
        return text.splitlines()[0] if text else ""


class Registry:
    def __init__(self) -> None:
        self._components: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}

    def add(self, component: Component) -> None:
        if component.kind not in self._components:
            raise PluginError(f"unknown component kind {component.kind!r}; kinds: {', '.join(KINDS)}")
        if not isinstance(component.params_model, type) or not issubclass(component.params_model, BaseModel):
            raise PluginError(
                f"{component.kind} {component.name!r} from {component.provider}: params_model must be a "
                "pydantic BaseModel subclass"
            )
        existing = self._components[component.kind].get(component.name)
        if existing is not None:
            raise PluginError(
                f"{component.kind} {component.name!r} is registered twice: by {existing.provider} "
                f"(plugin {existing.plugin}) and by {component.provider} (plugin {component.plugin}); "
                "uninstall one or block it with PROSPER_DISABLE_PLUGINS"
            )
        self._components[component.kind][component.name] = component

    def names(self, kind: str) -> list[str]:
        return sorted(self._components[kind])

    def components(self, kind: str | None = None) -> list[Component]:
        kinds = KINDS if kind is None else (kind,)
        return [self._components[k][n] for k in kinds for n in sorted(self._components[k])]

    def get(self, kind: str, name: str, where: str | None = None) -> Component:
        try:
            return self._components[kind][name]
        except KeyError:
            known = ", ".join(self.names(kind)) or "none"
            prefix = f"{where}: " if where else ""
            raise ConfigError(f"{prefix}unknown {kind} {name!r}; registered: {known}") from None

    def validate(self, kind: str, spec: Mapping[str, Any] | BaseModel, where: str | None = None) -> BaseModel:
        """Validate a ``{name: ..., **params}`` spec against the component's params model."""
        data = spec_dict(spec)
        name = data.pop("name", None)
        if name is None:
            raise ConfigError(f"{where or kind}: missing 'name'")
        component = self.get(kind, name, where)
        try:
            return component.params_model.model_validate(data)
        except ValidationError as exc:
            message = format_validation_error(exc, prefix=where)
            if exc.errors()[0]["type"] == "extra_forbidden":
                fields = ", ".join(component.params_model.model_fields) or "none"
                message += f" for {kind} {name!r} (its parameters: {fields})"
            raise ConfigError(message) from None

    def build(self, kind: str, spec: Mapping[str, Any] | BaseModel, where: str | None = None) -> Any:
        """Validate ``spec`` and call the component's factory with the validated params."""
        data = spec_dict(spec)
        params = self.validate(kind, data, where)
        component = self.get(kind, data["name"], where)
        built = component.factory(params)
        base = contract_base(kind)
        if not isinstance(built, base):
            raise PluginError(
                f"{kind} {component.name!r} from {component.provider}: its factory returned a "
                f"{type(built).__name__}, not a prosper.components.{base.__name__} (see docs/plugins.md)"
            )
        return built


def spec_dict(spec: Mapping[str, Any] | BaseModel | str) -> dict[str, Any]:
    """A component spec as a plain ``{name: ..., **params}`` dict (from a name, dict or model)."""
    if isinstance(spec, str):
        return {"name": spec}
    return spec.model_dump() if isinstance(spec, BaseModel) else dict(spec)


def contract_base(kind: str) -> type:
    """The :mod:`prosper.components` base class every component of ``kind`` is an instance of."""
    from prosper import components

    return {
        "backbone": components.Backbone,
        "loss": components.RankingLoss,
        "regularizer": components.Regularizer,
        "exporter": components.Exporter,
        "searcher": components.Searcher,
    }[kind]


def format_validation_error(exc: ValidationError, prefix: str | None = None, locate=None) -> str:
    """One line for the first pydantic error: ``field.path: message`` (and file:line if known)."""
    err = exc.errors()[0]
    parts: list[str] = [prefix] if prefix else []
    for item in err["loc"]:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    path = ".".join(parts) or "settings"
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    elif "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], (dict, list)):
        message = f"{message} (got {err['input']!r})"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    where = locate(path) if locate else None
    return f"{where + ': ' if where else ''}{path}: {message}{suffix}"
