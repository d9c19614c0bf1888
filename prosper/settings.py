"""The validated settings model and its four sources.

Over 300 lines on purpose: the whole schema is one model, read by ``prosper config docs`` to
generate docs/configuration.md; the merging of sources is the other half.

Precedence, lowest first: the defaults below < ``--config FILE`` (YAML) < ``PROSPER_*``
environment variables (nested with ``__``, e.g. ``PROSPER_TRAIN__BATCH_SIZE=32``) < CLI
overrides written ``section.key=value`` (``model.pooling=max``). Components are written
``{name: <registered name>, ...params}``; their params are checked against the plugin's own
model by :func:`validate_components` right after plugins load. Defaults follow the paper
(see docs/method.md); ``conf/config.yaml`` spells them out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    SettingsConfigDict,
)

from prosper.errors import ConfigError, InputError
from prosper.registry import format_validation_error


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ComponentSpec(BaseModel):
    """``{name: <registered name>, ...params}``; params are validated by the plugin's model."""

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# -- model --------------------------------------------------------------------------------
class LRNSettings(Section):
    """Literal Residual Network (Eq. 8-9)."""

    enabled: bool = True  # Eq. 8-9: add the literal residual to the base vector
    sides: Literal["both", "query", "item"] = "both"  # apply the LRN to queries, items or both (paper ablation)
    mode: Literal["compensate", "add", "review"] = "compensate"  # compensate: w + I*(max(w')-w'); add: w + I*w'; review: w + I*(max(w)-w')
    # which hidden state feeds FC: auto = the last real token for causal LMs, the first ([CLS]) for MLMs
    hidden: Literal["auto", "last", "first"] = "auto"  # hidden state fed to the LRN: auto = last real token (causal) / first token (MLM)
    transform_hidden: bool = True  # Eq. 5: log(1+ReLU(.)) also applied to the hidden state before FC


class LFWSettings(Section):
    """Lexical Focusing Window (Eq. 10): keep the top-k terms when a vector has more."""

    enabled: bool = True  # Eq. 10: keep the top-k terms of vectors with more than k non-zeros
    k_query: int = Field(256, ge=1)  # k for queries (paper: 256)
    k_item: int = Field(512, ge=1)  # k for items (paper: 512)


class LoraSettings(Section):
    """LoRA adapters on the backbone (prosper.modeling.lora); needs peft: pip install prosper-retrieval[lora]."""

    r: int = Field(16, ge=1)  # adapter rank r: A is r x in, B is out x r
    alpha: float = Field(32.0, gt=0)  # the update is (alpha / r) * B A
    dropout: float = Field(0.05, ge=0, lt=1)  # dropout on each adapter's input
    target_modules: list[str] | Literal["all-linear"] = "all-linear"  # module names (or name suffixes) that get adapters; all-linear: every linear layer but the LM head


class ModelSettings(Section):
    backbone: ComponentSpec = ComponentSpec(name="qwen", path="Qwen/Qwen2.5-3B")
    pooling: Literal["auto", "last", "max", "mean", "sum"] = "auto"  # auto: last for causal, max for MLM
    max_length: int = Field(64, ge=2)  # tokens per text after truncation, special tokens included
    lrn: LRNSettings = LRNSettings()
    lfw: LFWSettings = LFWSettings()
    scoring: Literal["query_l2", "none", "query_l1", "both_l2", "item_l2"] = "query_l2"  # Eq. 11 normalisation: only the query L2-normalised by default
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # weights and compute dtype of the backbone (bf16 needs hardware support to be fast)
    quantization: Literal["none", "8bit", "4bit"] = "none"  # bitsandbytes 8/4-bit backbone loading (needs accelerate); the LRN stays fp32
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    echo: bool = False  # repeat the text and pool over the second copy (causal LMs)
    bidirectional: bool = False  # drop the causal mask where the backbone allows
    query_terms: Literal["all", "literal", "expansion"] = "all"  # analysis: keep only these terms
    item_terms: Literal["all", "literal", "expansion"] = "all"  # analysis: keep only literal or expansion terms of items
    query_encoder: Literal["model", "inference_free"] = "model"  # inference_free: query = literal indicator
    head_chunk_size: int = Field(256, ge=1)  # positions per LM-head chunk for max/mean/sum pooling (cache-sized on CPUs)
    head_screen: Literal["auto", "on", "off"] = "auto"  # max-pooling inference: screen the vocabulary with a bf16 head, recompute survivors in fp32 (same vectors); auto: on CPUs with bf16 units
    pool_special_tokens: bool | None = None  # None: MLM pools [CLS]/[SEP] (SPLADE), causal LMs never do
    lora: LoraSettings | None = None  # LoRA on the backbone {r, alpha, dropout, target_modules}, the LRN trained fully, merged on save; null: train every weight

    @field_validator("head_screen", mode="before")
    @classmethod
    def _yaml_on_off(cls, value):
        # YAML reads a bare on/off as a boolean: model.head_screen=off must mean "off"
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


# -- data ---------------------------------------------------------------------------------
class DataSettings(Section):
    path: str | None = None  # a BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv
    train_split: str = "train"  # qrels/<split>.tsv used for training
    dev_split: str = "dev"  # qrels/<split>.tsv used for validation; empty: no validation
    min_grade: int = 1  # qrels at or above this grade are positives
    triples: str | None = None  # JSONL/TSV/Parquet training triples instead of qrels
    negatives: Literal["bm25", "none"] = "bm25"  # hard negatives when training from qrels: mined with BM25, or random items
    max_dev_queries: int = Field(500, ge=1)  # validation queries (paper: 500)
    max_dev_items: int | None = Field(20000, ge=1)  # validation corpus: judged items + a seeded sample; None: all
    title_field: str = "title"  # corpus field joined before text_field
    text_field: str = "text"  # corpus field joined after title_field
    corpus: str | None = None  # corpus file when not <path>/corpus.jsonl (JSONL/TSV/Parquet)
    queries: str | None = None  # queries file when not <path>/queries.jsonl


# -- train --------------------------------------------------------------------------------
class OptimizerSettings(Section):
    name: Literal["adamw", "adamw8bit"] = "adamw"  # adamw, or adamw8bit (bitsandbytes)
    lr: float | None = Field(None, gt=0)  # peak learning rate; null: by backbone kind, 3e-5 for causal LMs (paper), 1e-4 for MLMs
    lrn_lr: float | None = Field(None, gt=0)  # peak learning rate of the new LRN layer; null: lr for causal LMs, 1e-3 for MLMs
    weight_decay: float = Field(0.1, ge=0)  # decoupled weight decay (paper: 0.1)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam betas
    eps: float = 1e-8  # Adam epsilon


class TargetTermsSettings(Section):
    """Term budgets (prosper.training.budget): λ is steered so the mean width meets them."""

    query: int | None = Field(None, ge=1)  # mean non-zero terms per query vector to reach; null: λ as configured
    item: int | None = Field(None, ge=1)  # mean non-zero terms per item vector to reach; null: λ as configured
    ramp: float = Field(0.3, gt=0, le=1)  # fraction of the run over which the target falls from the first batch's width
    rate: float = Field(0.1, gt=0, le=1)  # controller gain: log λ moves by rate * log(width / target) per step
    cap_factor: float = Field(2.0, ge=1)  # LFW k (training and inference) at most cap_factor * target
    min_scale: float = Field(1.0, gt=0, le=1)  # λ never falls below min_scale x the configured λ (no wind-up)
    probe: int = Field(256, ge=0)  # training items and queries encoded in eval mode (as indexed) and in training mode: their width ratio corrects the steered width; 0: training batches only
    probe_every: int = Field(50, ge=1)  # updates between two probes


class TrainSettings(Section):
    loss: ComponentSpec = ComponentSpec(name="in_batch_nll")  # ranking loss plugin (Eq. 12)
    regularizers: list[ComponentSpec] = [  # with target_terms, λ is where the budget controller starts
        ComponentSpec(name="flops", lambda_query=5e-3, lambda_item=1e-3, schedule="quadratic", ramp_steps=400)
    ]
    target_terms: TargetTermsSettings | None = TargetTermsSettings(query=12, item=48)  # term budgets; null: the λ as written
    optimizer: OptimizerSettings = OptimizerSettings()
    batch_size: int = Field(64, ge=1)  # queries per step and device (paper: 64)
    max_steps: int = Field(80000, ge=1)  # optimizer steps at most
    epochs: float | None = Field(None, gt=0)  # when set, caps training at this many epochs
    warmup_steps: int = Field(80, ge=0)  # linear warm-up steps, then linear decay to 0
    grad_accumulation: int = Field(1, ge=1)  # micro-batches per optimizer step
    max_grad_norm: float | None = 1.0  # gradient clipping norm; null: no clipping
    # autocast dtype (master weights stay fp32; fp16 adds loss scaling); auto: bf16 on GPUs that
    # have it, else none (bf16 on CPUs without bf16 units runs 20x slower than fp32)
    amp: Literal["auto", "none", "bf16", "fp16"] = "auto"  # auto: bf16 on GPUs with bf16 units, else none
    seed: int = 42  # seeds data order, initialisation and dropout
    output_dir: str = "runs/prosper"  # checkpoints/, best/, final/, metrics.jsonl and settings.yaml go here
    save_every: int = Field(500, ge=1)  # steps between atomic resume checkpoints
    eval_every: int = Field(500, ge=1)  # steps between validations (the best checkpoint is kept)
    log_every: int = Field(10, ge=1)  # steps between metrics.jsonl lines
    keep_last: int = Field(2, ge=1)  # resume checkpoints kept on disk
    hard_negatives: int = Field(0, ge=0)  # hard negatives per query, from the triples file
    eval_recall_k: int = Field(100, ge=1)  # validation reports Recall@K and MRR@10
    best_metric: Literal["mrr@10", "recall"] = "mrr@10"  # picks the best checkpoint
    eval_batch_size: int = Field(128, ge=1)  # texts per batch when encoding for validation
    collapse_dense_fraction: float = Field(0.9, gt=0, le=1)  # warn when avg nnz stays above this x cap after the ramp
    progress: bool = True  # rich progress bar (rank 0)
    find_unused_parameters: bool = False  # DistributedDataParallel option
    strategy: Literal["ddp", "fsdp"] = "ddp"  # under torchrun: ddp replicates the model; fsdp (fully_shard) shards weights, gradients and optimizer state


# -- infer / export / search --------------------------------------------------------------
class InferRaySettings(Section):
    """``infer.engine=ray``: a Ray Data actor pool, each actor loads the checkpoint once (docs/scaling.md)."""

    address: str | None = None  # Ray cluster to join (auto, host:6379, ray://host:10001); null: RAY_ADDRESS, else a local Ray
    num_actors: int | None = Field(None, ge=1)  # encoder actors; null: one per GPU of the cluster (CPUs / num_cpus_per_actor without GPUs)
    batch_size: int | None = Field(None, ge=1)  # texts per forward pass inside an actor; null: infer.batch_size
    num_cpus_per_actor: float = Field(1.0, gt=0)  # CPUs each actor reserves (and its torch threads)
    num_gpus_per_actor: float | None = Field(None, ge=0)  # GPUs each actor reserves (0.5: two per GPU); null: 1 when the cluster has GPUs, else 0


class InferSettings(Section):
    batch_size: int = Field(256, ge=1)  # at most this many texts per encoder batch
    batch_tokens: int | None = Field(8192, ge=1)  # at most this many padded tokens (texts x longest) per batch; null: batch_size texts whatever their length
    buffer_size: int = Field(8192, ge=1)  # texts read ahead and sorted by length
    shard_size: int = Field(100000, ge=1)  # items per output shard (resume granularity)
    on_error: Literal["fail", "skip"] = "fail"  # empty texts, duplicate ids, undecodable lines
    engine: Literal["local", "ray"] = "local"  # local: this process (torchrun-aware); ray: a Ray Data actor pool (pip install 'prosper-retrieval[ray]')
    ray: InferRaySettings = InferRaySettings()


class SearchSettings(Section):
    k: int = Field(1000, ge=1)  # items returned per query
    query_top_terms: int | None = Field(None, ge=1)  # the paper serves with 16
    searcher: ComponentSpec = ComponentSpec(name="exact")  # searcher plugin: exact (embedded index), seismic or milvus (a collection)
    # Eq. 11 normalisation at search time; None: the checkpoint's model.scoring (query_l2 without one)
    scoring: Literal["query_l2", "none", "query_l1", "both_l2", "item_l2"] | None = None  # null: the model's scoring
    mrr_rel: int = Field(2, ge=1)  # MRR@10 counts items of at least this grade (2 = highly relevant)
    rel: int = Field(1, ge=1)  # Recall@k / Hit@k count items of at least this grade
    channel_depth: int = Field(100, ge=1)  # multi-channel analysis looks at each channel's top-N
    fusion_rrf_k: int = Field(60, ge=0)  # --fusion rrf: score = sum of w / (fusion_rrf_k + rank) over the channels
    fusion_weights: dict[Literal["prosper", "bm25"], float] = {"prosper": 1.0, "bm25": 1.0}  # --fusion: weight per channel (>= 0; 0 leaves it out; a channel not named weighs 1)
    fusion_normalization: Literal["minmax", "zscore", "none"] = "minmax"  # --fusion combsum: per-query score normalisation of each channel

    @field_validator("fusion_weights")
    @classmethod
    def _non_negative(cls, weights: dict[str, float]) -> dict[str, float]:
        bad = {name: w for name, w in weights.items() if not w >= 0 or w == float("inf")}
        if bad:
            raise ValueError(f"fusion weights must be finite and >= 0, got {bad}")
        return weights


SECTION_MODELS = {
    "model": ModelSettings,
    "data": DataSettings,
    "train": TrainSettings,
    "infer": InferSettings,
    "export": ComponentSpec,
    "search": SearchSettings,
}


class ProsperSettings(BaseSettings):
    """The root of every run's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="PROSPER_", env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    model: ModelSettings = ModelSettings()
    data: DataSettings = DataSettings()
    train: TrainSettings = TrainSettings()
    infer: InferSettings = InferSettings()
    export: ComponentSpec = ComponentSpec(name="parquet")
    search: SearchSettings = SearchSettings()

    @model_validator(mode="after")
    def _check(self) -> ProsperSettings:
        if self.model.lfw.k_query < 1 or self.model.lfw.k_item < 1:
            raise ValueError("lfw k must be positive")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# Environment variables that belong to prosper but are not settings.
_NOT_SETTINGS = {"PROSPER_DEBUG", "PROSPER_DISABLE_PLUGINS"}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError("configuration file not found", path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        context = ""
        if exc.context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
            context = f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise ConfigError(f"{path}:{line}: invalid YAML: {exc.problem}{context}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the configuration must be a mapping of sections")
    return data


def yaml_line_locator(path: str | Path):
    """Return ``locate(dotted.path) -> 'file:line'`` using the YAML node marks."""
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"))
    except Exception:
        return lambda _path: None

    def locate(dotted: str) -> str | None:
        node, line = root, None
        for part in dotted.replace("[", ".[").split("."):
            if node is None:
                break
            if part.startswith("["):
                index = int(part[1:-1])
                if isinstance(node, yaml.SequenceNode) and index < len(node.value):
                    node = node.value[index]
                    line = node.start_mark.line + 1
                    continue
                break
            if not isinstance(node, yaml.MappingNode):
                break
            for key, value in node.value:
                if key.value == part:
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                break
        return f"{path}:{line}" if line else None

    return locate


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """``["train.batch_size=32", "model.lrn.enabled=false"]`` -> nested dict (YAML-typed values)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r}: write section.key=value, e.g. train.batch_size=32")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} was already given a value")
        node[parts[-1]] = value
    return tree


def _component_paths(model: type[BaseModel] | None = None, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Dotted paths of every ``{name: ..., ...params}`` component field (model.backbone, ...)."""
    model = model or ProsperSettings
    paths: set[tuple[str, ...]] = set()
    for name, info in model.model_fields.items():
        kind = info.annotation
        if kind is ComponentSpec:
            paths.add((*prefix, name))
        elif isinstance(kind, type) and issubclass(kind, Section):
            paths |= _component_paths(kind, (*prefix, name))
    return paths


def merge_settings(base: Mapping[str, Any], update: Mapping[str, Any], at: tuple[str, ...] = ()) -> dict[str, Any]:
    """``update`` over ``base``, deeply; at a component field a new ``name`` starts afresh.

    ``at`` is where ``base`` sits in the settings (``("model",)`` for a model section alone).

    ``model.backbone.path=...`` keeps the backbone's name and other parameters, while
    ``model.backbone.name=bert`` replaces the whole spec, so parameters meant for the old
    component never reach the new one (it starts from its own defaults). Lists are replaced.
    """
    merged = dict(base)
    for key, value in update.items():
        path = (*at, key)
        old = merged.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            renamed = path in _COMPONENT_PATHS and "name" in value and value["name"] != old.get("name")
            merged[key] = dict(value) if renamed else merge_settings(old, value, path)
        else:
            merged[key] = value
    return merged


def load_settings(
    config_file: str | Path | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    environ: Mapping[str, str] | None = None,
) -> ProsperSettings:
    """Resolve the settings from all four sources; raise :class:`ConfigError` on any problem.

    defaults < ``config_file`` < ``PROSPER_*`` environment < ``overrides``, merged by
    :func:`merge_settings` (partial component overrides keep the other parameters).
    """
    file_data = read_yaml(config_file) if config_file else {}
    override_data = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides)
    environ = os.environ if environ is None else environ
    env_data = _env_overrides(environ)
    merged = ProsperSettings.model_construct().model_dump(mode="json")
    for layer in (file_data, env_data, override_data):
        merged = merge_settings(merged, layer)
    try:
        return ProsperSettings.model_validate(merged)
    except ValidationError as exc:
        locate = yaml_line_locator(config_file) if config_file else None
        raise ConfigError(format_validation_error(exc, locate=locate)) from None


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``PROSPER_SECTION__KEY=value`` variables as a nested dict, values parsed as YAML/JSON."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith("PROSPER_") or name in _NOT_SETTINGS:
            continue
        path = name[len("PROSPER_") :].lower().split("__")
        if path[0] not in SECTION_MODELS or any(not p for p in path):
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


_COMPONENT_PATHS = _component_paths()


def validate_components(settings: ProsperSettings, registry=None) -> dict[str, BaseModel]:
    """Check every component spec against its plugin's params model (before anything heavy).

    Returns ``{"model.backbone": params, ...}``. Raises :class:`ConfigError` naming the field.
    """
    if registry is None:
        from prosper.plugins import get_registry

        registry = get_registry()
    checked: dict[str, BaseModel] = {}
    checked["model.backbone"] = registry.validate("backbone", settings.model.backbone, "model.backbone")
    checked["train.loss"] = registry.validate("loss", settings.train.loss, "train.loss")
    for i, spec in enumerate(settings.train.regularizers):
        where = f"train.regularizers[{i}]"
        checked[where] = registry.validate("regularizer", spec, where)
    checked["export"] = registry.validate("exporter", settings.export, "export")
    checked["search.searcher"] = registry.validate("searcher", settings.search.searcher, "search.searcher")
    return checked


def reference_config_text() -> str:
    """The reference configuration shipped in the package (``prosper/conf/config.yaml``)."""
    from importlib.resources import files

    return files("prosper").joinpath("conf", "config.yaml").read_text(encoding="utf-8")


def write_reference_config(path: str | Path, overwrite: bool = False) -> Path:
    """Write :func:`reference_config_text` to ``path`` (atomically); refuses to overwrite."""
    from prosper.fileio import atomic_write_text

    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError("already exists (pass --force to overwrite)", path)
    return atomic_write_text(path, reference_config_text())


def resolve(config_file=None, overrides=(), environ=None, registry=None) -> ProsperSettings:
    """Load the settings and validate the components: what every command starts with."""
    settings = load_settings(config_file, overrides, environ)
    validate_components(settings, registry)
    return settings
