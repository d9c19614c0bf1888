"""Load a sparse model by folder or hub id, the way ``sentence_transformers.SparseEncoder("...")``
takes a name: a prosper checkpoint, a plain SPLADE (masked-LM) model or a causal LM.

Over 300 lines on purpose: the detection rules and the sentence-transformers folder reading are
one decision table; split, the rules would drift from the loader that applies them.

What the folder (or hub repository) holds decides how it loads; no code shipped with the model
ever runs (``trust_remote_code`` stays off):

* ``prosper.yaml`` -> a prosper checkpoint (:func:`prosper.modeling.checkpoint.load_checkpoint`).
* else ``config.json`` with ``architectures`` ending in ``ForMaskedLM`` -> the ``bert`` backbone as
  a plain SPLADE model; ending in ``ForCausalLM`` -> the ``qwen`` backbone. A
  sentence-transformers folder (``modules.json``) must be a transformer followed by
  ``SpladePooling``; pooling comes from ``1_SpladePooling/config.json``, the similarity from
  ``config_sentence_transformers.json``, the truncation length from ``sentence_bert_config.json``.

A plain SPLADE model gets the settings under which prosper's vectors equal
sentence-transformers' ``SparseEncoder`` on the same folder (SPLADE v2, Formal et al. 2021,
arXiv:2109.10086, Eq. 3: ``w_j = max_i log(1 + ReLU(logit_ij))``):

* max pooling over every attended position, ``[CLS]`` and ``[SEP]`` included (``sum`` when the
  folder's ``SpladePooling`` says so); ``log(1 + ReLU)`` saturation;
* LRN off (a plain model has no trained LRN layer), LFW off unless ``max_active_dims`` is set
  (then ``k_query = k_item = max_active_dims``, sentence-transformers' top-k);
* scoring ``none`` (the dot product, sentence-transformers' default ``similarity_fn_name: dot``;
  ``cosine`` maps to ``both_l2``);
* ``max_length`` = sentence-transformers' ``max_seq_length``: ``sentence_bert_config.json``'s, else
  the tokenizer's ``model_max_length`` capped at ``max_position_embeddings``.

A plain causal LM is an untrained starting point (e.g. to look at vectors before training):
last-token pooling, LRN off (no trained layer), LFW and scoring at prosper's defaults.
Keyword overrides (``max_length=64``, ``lfw={"k_item": 128}``) apply on top in every case.

Only the standard library, pydantic and yaml are imported at module level.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prosper.errors import CheckpointError, ConfigError, InputError

SETTINGS_FILE = "prosper.yaml"
#: ``org/name`` or ``name``: what the Hugging Face hub accepts as a repository id.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")
#: sentence-transformers module types prosper reproduces (older releases name them differently).
_TRANSFORMER_TYPES = ("MLMTransformer", "Transformer")
_POOLING_TYPES = ("SpladePooling",)
_SIMILARITY_SCORING = {"dot": "none", "cosine": "both_l2"}


@dataclass
class PretrainedSpec:
    """What :func:`inspect_pretrained` found: how to load ``source`` and with which settings.

    ``kind``: ``checkpoint`` (a prosper checkpoint in ``checkpoint_dir``), ``mlm`` (a plain
    SPLADE model) or ``causal``. ``model`` is the ``model`` settings section for plain models
    (before user overrides); ``notes`` say where each choice came from.
    """

    source: str
    kind: Literal["checkpoint", "mlm", "causal"]
    model: dict[str, Any] = field(default_factory=dict)
    checkpoint_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


class _Files:
    """Read small JSON files from a local folder or a hub repository (through the HF cache)."""

    def __init__(self, source: str, revision: str | None = None):
        self.source = source
        self.revision = revision
        self.offline = False
        local = Path(source).expanduser()
        if local.is_dir():
            self.root: Path | None = local
            self.repo: str | None = None
        elif local.exists():
            raise CheckpointError(f"{source}: not a directory (give a model folder or a hub id)")
        elif _HUB_ID.fullmatch(source) and ".." not in source:
            self.root, self.repo = None, source
        else:
            raise CheckpointError(f"{source}: model folder or checkpoint directory not found (and not a Hugging Face hub id)")

    def where(self, name: str) -> str:
        return str(self.root / name) if self.root is not None else f"{self.repo}/{name}"

    def path(self, name: str) -> Path | None:
        """Local path of ``name`` (downloaded into the HF cache for hub ids), or None if absent."""
        if self.root is not None:
            path = self.root / name
            return path if path.is_file() else None
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        try:
            return Path(hf_hub_download(self.repo, name, revision=self.revision))
        except LocalEntryNotFoundError:  # offline, or the hub unreachable, and not in the cache
            self.offline = True
            return None
        except EntryNotFoundError:
            return None
        except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
            raise ConfigError(f"{self.repo}: {_first_line(exc)}") from None
        except HfHubHTTPError as exc:
            raise ConfigError(f"{self.where(name)}: {_first_line(exc)}") from None

    def json(self, name: str) -> Any:
        path = self.path(name)
        if path is None:
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", self.where(name), exc.lineno) from None

    def text(self, name: str) -> str | None:
        path = self.path(name)
        return None if path is None else path.read_text(encoding="utf-8")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def inspect_pretrained(source: str | Path, revision: str | None = None) -> PretrainedSpec:
    """Decide how ``source`` (a folder or a hub id) loads, reading only its small JSON/YAML files."""
    source = str(source)
    files = _Files(source, revision)
    if files.root is not None and (files.root / SETTINGS_FILE).is_file():
        return PretrainedSpec(source, "checkpoint", checkpoint_dir=files.root, notes=[f"{SETTINGS_FILE}: a prosper checkpoint"])
    if files.repo is not None and files.text(SETTINGS_FILE) is not None:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(files.repo, revision=revision))
        return PretrainedSpec(source, "checkpoint", checkpoint_dir=folder, notes=[f"{SETTINGS_FILE}: a prosper checkpoint"])

    notes: list[str] = []
    if files.root is not None and files.root.name == "backbone" and (files.root.parent / SETTINGS_FILE).is_file():
        warnings.warn(
            f"{source} is the backbone of the prosper checkpoint {files.root.parent}; loading it alone drops "
            "the checkpoint's settings and LRN layer (give the checkpoint folder instead)",
            stacklevel=3,
        )
    modules = files.json("modules.json")
    backbone_dir, pooling, activation = "", "max", "relu"
    if modules is not None:
        backbone_dir, pooling, activation = _read_modules(files, modules, notes)
    config = files.json(f"{backbone_dir}/config.json" if backbone_dir else "config.json")
    if config is None:
        if files.root is not None:
            raise CheckpointError(
                f"{source}: neither a prosper checkpoint ({SETTINGS_FILE}) nor a Hugging Face model folder (config.json)"
            )
        if files.offline:
            raise ConfigError(f"{source}: no such local folder, and not in the Hugging Face cache (the hub is offline or unreachable)")
        raise ConfigError(f"{source}: the hub repository has no config.json (not a transformers model)")
    if not isinstance(config, dict):
        raise InputError("expected a JSON object", files.where("config.json"))
    architectures = [str(a) for a in config.get("architectures") or []]
    if files.root is not None:
        path = str(files.root / backbone_dir) if backbone_dir else str(files.root)
    elif backbone_dir:
        raise ConfigError(f"{source}: the transformer lives in the subfolder {backbone_dir!r}; download the repository and give its folder")
    else:
        path = source
    backbone: dict[str, Any] = {"path": path}
    if revision and files.repo is not None:
        backbone["revision"] = revision

    if any(a.endswith("ForMaskedLM") for a in architectures):
        backbone["name"] = "bert"
        st_config = files.json("config_sentence_transformers.json") or {}
        model = {
            "backbone": backbone,
            "pooling": pooling,
            "pool_special_tokens": True,
            "lrn": {"enabled": False},
            "lfw": {"enabled": False},
            "scoring": _scoring(st_config, files, notes),
            "max_length": _max_length(files, backbone_dir, config, notes),
        }
        top_k = st_config.get("max_active_dims")
        if top_k:
            model["lfw"] = {"enabled": True, "k_query": int(top_k), "k_item": int(top_k)}
            notes.append(f"config_sentence_transformers.json: max_active_dims={top_k} -> LFW k={top_k}")
        _warn_prompts(st_config, source)
        if activation != "relu":
            raise ConfigError(
                f"{files.where('1_SpladePooling/config.json')}: activation_function={activation!r} is not supported "
                "(prosper's saturation is log(1 + ReLU), activation_function='relu')"
            )
        notes.insert(0, f"config.json: {architectures[0]} -> a plain SPLADE model ({pooling} pooling, LRN off)")
        return PretrainedSpec(source, "mlm", model=model, notes=notes)
    if modules is not None:
        raise ConfigError(f"{files.where('modules.json')}: a sentence-transformers SPLADE model needs a *ForMaskedLM architecture")
    if any(a.endswith("ForCausalLM") for a in architectures):
        backbone["name"] = "qwen"
        notes.append(f"config.json: {architectures[0]} -> a causal LM (last-token pooling, LRN off)")
        return PretrainedSpec(source, "causal", model={"backbone": backbone, "lrn": {"enabled": False}}, notes=notes)
    shown = ", ".join(architectures) or "none"
    raise ConfigError(
        f"{files.where('config.json')}: architectures [{shown}] are neither *ForMaskedLM (SPLADE) nor *ForCausalLM"
    )


def _read_modules(files: _Files, modules: Any, notes: list[str]) -> tuple[str, str, str]:
    """``(transformer subfolder, pooling, activation)`` of a sentence-transformers folder."""
    where = files.where("modules.json")
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise InputError("expected a JSON list of modules", where)
    types = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if len(types) != 2 or types[0] not in _TRANSFORMER_TYPES or types[1] not in _POOLING_TYPES:
        raise ConfigError(
            f"{where}: modules [{', '.join(types)}] are not supported; prosper loads a transformer followed by "
            "SpladePooling (routers, static query embeddings and sparse auto-encoders are not)"
        )
    backbone_dir = str(modules[0].get("path") or "").strip("/")
    pooling_dir = str(modules[1].get("path") or "").strip("/")
    task = (files.json(f"{backbone_dir}/sentence_bert_config.json" if backbone_dir else "sentence_bert_config.json") or {}).get(
        "transformer_task"
    )
    if task not in (None, "fill-mask"):
        raise ConfigError(f"{where}: the transformer's task is {task!r}; SPLADE needs 'fill-mask' (MLM logits)")
    config_name = f"{pooling_dir}/config.json" if pooling_dir else "config.json"
    pooling_config = files.json(config_name) or {}
    pooling = str(pooling_config.get("pooling_strategy", "max"))
    activation = str(pooling_config.get("activation_function", "relu"))
    if pooling not in ("max", "sum"):
        raise ConfigError(f"{files.where(config_name)}: pooling_strategy={pooling!r} is not max or sum")
    notes.append(f"{config_name}: pooling_strategy={pooling}, activation_function={activation}")
    return backbone_dir, pooling, activation


def _scoring(st_config: dict, files: _Files, notes: list[str]) -> str:
    similarity = st_config.get("similarity_fn_name") or "dot"
    if similarity not in _SIMILARITY_SCORING:
        raise ConfigError(
            f"{files.where('config_sentence_transformers.json')}: similarity_fn_name={similarity!r} has no prosper "
            f"scoring (supported: {', '.join(_SIMILARITY_SCORING)})"
        )
    notes.append(f"similarity {similarity} -> scoring {_SIMILARITY_SCORING[similarity]}")
    return _SIMILARITY_SCORING[similarity]


def _max_length(files: _Files, backbone_dir: str, config: dict, notes: list[str]) -> int:
    """sentence-transformers' ``max_seq_length`` for this folder (see the module docstring)."""
    prefix = f"{backbone_dir}/" if backbone_dir else ""
    explicit = (files.json(f"{prefix}sentence_bert_config.json") or {}).get("max_seq_length")
    if explicit:
        notes.append(f"sentence_bert_config.json: max_seq_length={explicit}")
        return int(explicit)
    tokenizer_max = (files.json(f"{prefix}tokenizer_config.json") or {}).get("model_max_length")
    positions = config.get("max_position_embeddings")
    candidates = [int(v) for v in (tokenizer_max, positions) if isinstance(v, (int, float)) and 2 <= v < 1e9 and v != -1]
    length = min(candidates) if candidates else 512
    notes.append(f"max_length={length} (tokenizer model_max_length capped at max_position_embeddings)")
    return length


def _warn_prompts(st_config: dict, source: str) -> None:
    prompts = {k: v for k, v in (st_config.get("prompts") or {}).items() if v}
    if prompts:
        warnings.warn(
            f"{source}: prosper does not prepend the sentence-transformers prompts {sorted(prompts)}; "
            "add them to the texts to match its vectors",
            stacklevel=3,
        )




def pretrained_settings(spec: PretrainedSpec, **model_overrides: Any):
    """The validated :class:`~prosper.settings.ModelSettings` of a plain model with overrides applied."""
    from pydantic import ValidationError

    from prosper.registry import format_validation_error
    from prosper.settings import ModelSettings, merge_settings

    try:
        return ModelSettings.model_validate(merge_settings(spec.model, model_overrides, at=("model",)))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix="model")) from None


def load_pretrained(source: str | Path, device: str | None = None, revision: str | None = None, **model_overrides: Any):
    """A :class:`~prosper.modeling.encoder.SparseEncoder` for ``source`` (see the module docstring)."""
    spec = inspect_pretrained(source, revision)
    if spec.kind == "checkpoint":
        from prosper.modeling.checkpoint import load_checkpoint

        encoder = load_checkpoint(spec.checkpoint_dir, device=device, **model_overrides)
    else:
        from prosper.modeling.encoder import SparseEncoder

        encoder = SparseEncoder.from_settings(pretrained_settings(spec, **model_overrides), device=device)
    encoder.source = str(source)
    return encoder
