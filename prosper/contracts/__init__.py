"""Contract checks any registered component can be put through: ``prosper plugins check NAME``.

Each check exercises a component only through its :mod:`prosper.components` base class, on
tiny models and data it builds itself (nothing is downloaded), and asserts on values:

* **loss**: gradient steps on a fixed batch of a tiny encoder lower the loss; then the real
  trainer runs a few steps with it;
* **regularizer**: ``weight``/``peak_weight``/``target``/``ramp_steps`` are well formed,
  minimising the penalty alone lowers it, and the real trainer runs a few steps with it;
* **exporter**: item and query vectors written through ``open``/``write``/``close`` and merged
  from two shards read back equal to ``roundtrip(vectors)``; ``abort`` leaves nothing behind;
* **searcher**: an index over random vectors answers like brute-force Eq. 11 (every result for
  exact searchers; recall >= 0.9 with exact scores for approximate ones), also after
  ``save``/``open``;
* **backbone**: loads a tiny causal or masked LM and encodes texts deterministically.

A failure raises :class:`ContractError` with one line that names the component and the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prosper.errors import ProsperError


class ContractError(ProsperError):
    """A component breaks its contract; the message names it and the rule."""

    exit_code = 1


@dataclass
class CheckReport:
    """What passed: one line per rule checked."""

    kind: str
    name: str
    passed: list[str] = field(default_factory=list)

    def ok(self, line: str) -> None:
        self.passed.append(line)


def require(condition: bool, component: str, rule: str) -> None:
    if not condition:
        raise ContractError(f"{component}: {rule}")


def _checks() -> dict[str, Callable]:
    from prosper.contracts import backbones, storage, training

    return {
        "loss": training.check_loss,
        "regularizer": training.check_regularizer,
        "exporter": storage.check_exporter,
        "searcher": storage.check_searcher,
        "backbone": backbones.check_backbone,
    }


def find_component(name: str, kind: str | None = None, registry=None):
    """The registered component called ``name`` (of ``kind`` when two kinds share a name)."""
    if registry is None:
        from prosper.plugins import get_registry

        registry = get_registry()
    matches = [c for c in registry.components(kind) if c.name == name]
    if not matches:
        from prosper.errors import ConfigError

        raise ConfigError(f"no registered component named {name!r}; see prosper plugins list")
    if len(matches) > 1:
        from prosper.errors import ConfigError

        kinds = ", ".join(c.kind for c in matches)
        raise ConfigError(f"{name!r} names a {kinds}; choose one with --kind")
    return matches[0]


def check_component(
    name: str,
    kind: str | None = None,
    params: Mapping[str, Any] | None = None,
    workdir: str | Path | None = None,
    registry=None,
) -> CheckReport:
    """Run the contract checks of one registered component; raise :class:`ContractError`."""
    import tempfile

    component = find_component(name, kind, registry)
    spec = {"name": component.name, **dict(params or {})}
    label = f"{component.kind} {component.name!r} ({component.provider})"
    report = CheckReport(component.kind, component.name)
    with tempfile.TemporaryDirectory(prefix="prosper-check-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        try:
            _checks()[component.kind](spec, label, root, report, registry)
        except ContractError:
            raise
        except ProsperError as exc:
            raise ContractError(f"{label}: {exc}") from None
        except Exception as exc:  # a plugin bug: report it as a broken contract, in one line
            raise ContractError(f"{label}: raised {type(exc).__name__}: {exc}") from exc
    return report


__all__ = ["CheckReport", "ContractError", "check_component", "find_component", "require"]
