"""Contract check of backbones: load a tiny model and encode deterministically."""

from __future__ import annotations

from pathlib import Path

from prosper.contracts import CheckReport, ContractError, require
from prosper.contracts.fixtures import model_settings, sample_texts, tiny_backbone


def check_backbone(spec: dict, label: str, root: Path, report: CheckReport, registry) -> None:
    """``spec`` may name a ``path``; otherwise a tiny causal LM, then a tiny masked LM, is tried."""
    from prosper.components import Backbone
    from prosper.modeling.encoder import SparseEncoder
    from prosper.plugins import get_registry

    registry = registry or get_registry()
    paths = [Path(spec["path"])] if spec.get("path") else [tiny_backbone(root, "causal"), tiny_backbone(root, "mlm")]
    errors = []
    for path in paths:
        full = {**spec, "path": str(path)}
        backbone = registry.build("backbone", full, "model.backbone")
        require(isinstance(backbone, Backbone), label, "the factory must return a prosper.components.Backbone")
        base = model_settings(path, spec["name"])
        settings = base.model_copy(update={"backbone": type(base.backbone).model_validate(full)})
        try:
            encoder = SparseEncoder.from_settings(settings, device="cpu", registry=registry)
        except Exception as exc:  # the other tiny model may be the right kind
            errors.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        queries, items = sample_texts()
        for side, texts in (("query", queries), ("item", items)):
            first = encoder.encode(texts, side=side)
            again = encoder.encode(texts, side=side)
            require(len(first) == len(texts), label, f"encode must give one vector per {side} text")
            require(first.vocab_size == encoder.vocab_size, label, "vectors must span the tokenizer's vocabulary")
            require(bool((first.nnz > 0).all()), label, f"every {side} vector must have terms")
            require(first.equals(again), label, f"encoding the same {side} texts twice must give the same vectors")
        report.ok(f"loaded {path.name} ({encoder.kind}) and encoded queries and items deterministically")
        return
    raise ContractError(f"{label}: could not load a tiny causal or masked LM ({'; '.join(errors)}); pass path=DIR")
