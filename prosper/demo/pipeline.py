"""The demo's eight steps, each a call into the library, writing into one output folder.

1. data: :func:`prosper.demo.synth.generate`;
2. backbone: :mod:`prosper.demo.scratch` (or ``--backbone``) and the settings
   (:func:`prosper.demo.presets.demo_settings_tree` < ``--config`` < overrides);
3. training: :func:`prosper.training.trainer.train`;
4. encoding and export: :func:`prosper.inference.driver.encode_collection` (items -> Parquet),
   the encoder (dev queries), the Parquet exporter and :func:`prosper.export.convert.convert`
   (Lucene files);
5. index: :func:`prosper.retrieval.api.build_index_from_file`, reopened memory-mapped;
6. search: the evaluation pipeline (:func:`prosper.evaluation.pipeline.run_pipeline`) runs prosper,
   BM25 and their fusions (:mod:`prosper.retrieval.fusion`) over the dev queries;
7. evaluation: the pipeline's per-query values, averaged per query kind (a query without hits
   counts as zero, as everywhere), and the multi-channel analysis (:mod:`prosper.demo.findings`);
8. explain: :func:`prosper.modeling.explain.explain`, terms shown decoded
   (:func:`prosper.modeling.terms.display_terms`).

Reports (tables, ``summary.md``, ``summary.json``, ``metrics.json``) are :mod:`prosper.demo.report`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from prosper.demo.findings import evaluate_kinds, explain_queries
from prosper.demo.presets import DISCLAIMER, FUSIONS, MEASURES, PRESETS, DemoPreset, backbone_spec, demo_settings_tree
from prosper.demo.report import DemoSummary, print_explanation, print_metrics, print_verdict, write_reports
from prosper.errors import ConfigError, InputError
from prosper.fileio import atomic_write_text


class Steps:
    """Numbered step headers (``with step(key, title):``), each timing its block into ``timings[key]``."""

    def __init__(self, console, total: int, timings: dict[str, float]):
        self.console, self.total, self.timings = console, total, timings
        self.n = 0

    def __call__(self, key: str, title: str):
        self.n += 1
        self.console.rule(f"[bold]{self.n}/{self.total}[/] {title}", align="left")
        self.key = key
        return self

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.timings[self.key] = round(time.perf_counter() - self.start, 2)
        return False


def run_demo(
    out_dir: str | Path,
    size: str = "small",
    backbone: str | Path | None = None,
    seed: int = 0,
    *,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    config_file: str | Path | None = None,
    overwrite: bool = False,
    console=None,
    progress: bool = True,
    threads: int | None = None,
) -> DemoSummary:
    """Run the demo pipeline into ``out_dir`` and return its summary (also ``summary.json``).

    ``size``: a key of :data:`~prosper.demo.presets.PRESETS` (``tiny`` for tests, ``small`` the
    default). ``backbone``: ``None`` builds and trains a tiny Qwen-architecture model from
    scratch; a hub id or folder fine-tunes that pretrained model instead. ``config_file`` and
    ``overrides`` (``section.key=value`` or a nested mapping) change the demo's settings, e.g.
    ``train.max_steps=300``. ``overwrite`` replaces an earlier demo's output folder.
    """
    if size not in PRESETS:
        raise ConfigError(f"demo size {size!r} is unknown; choose one of {', '.join(PRESETS)}")
    if console is None:
        from rich.console import Console

        console = Console(quiet=not progress)
    if threads is None and backbone is None:
        # The scratch model's matrices are too small for threads to pay off, and on a busy
        # machine extra threads thrash: one thread was 10x faster than two under load here.
        threads = 1
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))
    out = Path(out_dir).resolve()
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError("output folder exists and is not empty (pass overwrite=True to replace a demo folder)", out)
        check_demo_folder(out)
        console.print(f"replacing the earlier demo output in {out}", highlight=False)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    from transformers.utils import logging as hf_logging

    bars_were_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the demo draws its own progress; hide "Loading weights" bars
    try:
        return _run(out, size, PRESETS[size], backbone, seed, overrides, config_file, console)
    finally:
        if bars_were_enabled:
            hf_logging.enable_progress_bar()


def check_demo_folder(out: Path) -> None:
    """Refuse to delete a folder that does not look like a demo output."""
    if not (out / "summary.json").is_file() and not (out / "data" / "manifest.json").is_file():
        raise InputError("refusing to replace a folder that is not a prosper demo output", out)


def _run(out: Path, size: str, preset: DemoPreset, backbone, seed: int, overrides, config_file, console) -> DemoSummary:
    from prosper.demo.synth import generate, load_query_kinds

    started = time.perf_counter()
    summary = DemoSummary(out, size, "scratch" if backbone is None else str(backbone), seed)
    step = Steps(console, 8, summary.timings)
    if backbone is None:
        console.print(f"[bold yellow]Note:[/] {DISCLAIMER}.", highlight=False)
    else:
        console.print(f"fine-tuning the pretrained backbone [bold]{backbone}[/] with the PROSPER recipe", highlight=False)

    with step("data_s", "synthetic product-search data"):
        data_dir = generate(out / "data", seed=seed, n_products=preset.n_products, n_queries=preset.n_queries)
        _report_data(data_dir, summary, console)

    with step("backbone_s", "backbone" + (" (built from scratch)" if backbone is None else f" ({backbone})")):
        if backbone is None:
            spec = _build_scratch_backbone(preset, data_dir, out / "backbone-init", seed, console)
        else:
            spec = backbone_spec(backbone)
            console.print(f"using {spec['name']} backbone from {spec['path']}", highlight=False)
        settings = _settings(preset, out, spec, seed, backbone is not None, config_file, overrides)
        summary.settings = settings.model_dump(mode="json")
        atomic_write_text(out / "settings.yaml", settings.to_yaml())

    with step("train_s", f"training with the PROSPER recipe ({settings.train.max_steps} steps)"):
        checkpoint = _train(settings, summary, console)

    encoder, result = evaluate_on_dev(checkpoint, data_dir, out, settings, summary, console, step)

    with step("explain_s", "explain: literal and expansion terms of a few queries"):
        summary.explanations = explain_queries(encoder, result, load_query_kinds(data_dir), preset.explain_queries)
        for explanation in summary.explanations:
            print_explanation(console, explanation, result.evalset.item_text())

    summary.wall_s = round(time.perf_counter() - started, 1)
    write_reports(out, summary)
    console.rule("[bold]done", align="left")
    print_verdict(console, summary)
    console.print(f"wall time {summary.wall_s:.0f} s; everything is in {out} (summary.md, summary.json)", highlight=False)
    return summary


def evaluate_on_dev(checkpoint: Path, data_dir: Path, out: Path, settings, summary: DemoSummary, console, step=None):
    """Steps 4-7 for a trained checkpoint: encode and export, index, search (prosper, BM25,
    fusions) and evaluate per query kind, into ``out`` and ``summary``. Returns the encoder and
    the :class:`~prosper.evaluation.pipeline.Evaluation`."""
    from prosper.demo.synth import load_query_kinds

    step = step or Steps(console, 4, summary.timings)
    with step("encode_s", "encoding the catalog and the dev queries; exporting Parquet and Lucene files"):
        from prosper.evaluation.evalset import load_eval_set
        from prosper.modeling.encoder import SparseEncoder

        encoder = SparseEncoder.load(checkpoint, device="cpu")
        dev = load_eval_set(data_dir, "dev", title_field=settings.data.title_field, text_field=settings.data.text_field)
        query_vectors = _encode_and_export(encoder, settings, checkpoint, data_dir, dev, out, summary, console)

    with step("index_s", "building the embedded inverted index"):
        from prosper.retrieval.api import build_index_from_file
        from prosper.retrieval.index import InvertedIndex

        info = build_index_from_file(out / "vectors.parquet", out / "index", overwrite=True)
        index = InvertedIndex.open(out / "index")  # memory-mapped, as `prosper search` reads it
        summary.files["index"] = str(out / "index")
        summary.sizes["avg_item_nnz"] = round(info["avg_item_nnz"], 1)
        console.print(
            f"{info['items']:,} items, {info['nnz']:,} postings over a vocabulary of {info['vocab_size']:,}", highlight=False
        )

    with step("search_s", "searching the dev queries with prosper and with BM25; fusing the two"):
        from prosper.evaluation.pipeline import run_pipeline

        result = run_pipeline(
            dev, settings.search, encoder, queries=query_vectors, index=index, bm25=True, fusions=FUSIONS,
            measures=MEASURES, stats=False,
        )  # fmt: skip
        _save_runs(result, out, summary)

    with step("eval_s", "evaluating per query kind; multi-channel analysis"):
        evaluate_kinds(result, load_query_kinds(data_dir), summary, settings.search)
        print_metrics(console, summary)
    return encoder, result


def _report_data(data_dir: Path, summary: DemoSummary, console) -> None:
    import json

    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    train, dev = (manifest["splits"][name]["queries"] for name in ("train", "dev"))
    summary.sizes.update(products=manifest["n_products"], train_queries=train, dev_queries=dev)
    console.print(f"{manifest['n_products']:,} products, {train:,} train and {dev:,} dev queries in {data_dir}", highlight=False)


def _build_scratch_backbone(preset: DemoPreset, data_dir: Path, target: Path, seed: int, console) -> dict[str, str]:
    from prosper.demo.scratch import build_collection_backbone

    size, n_texts = build_collection_backbone(
        data_dir, target, vocab_size=preset.vocab_size, hidden_size=preset.hidden_size, layers=preset.layers,
        heads=preset.heads, seed=seed,
    )  # fmt: skip
    console.print(
        f"tokenizer: byte-level BPE, {size:,} tokens, trained on {n_texts:,} catalog and train-query texts; "
        f"model: Qwen2 architecture, {preset.layers} layers, hidden size {preset.hidden_size}, random weights -> {target}",
        highlight=False,
    )
    return {"name": "qwen", "path": str(target)}


def _settings(preset: DemoPreset, out: Path, spec: dict, seed: int, pretrained: bool, config_file, overrides):
    """The demo's tree < ``config_file`` < ``overrides``, validated; everything stays in ``out``."""
    from prosper.settings import load_settings, merge_settings, parse_overrides, read_yaml

    tree = demo_settings_tree(preset, out, spec, seed, pretrained=pretrained)
    if config_file is not None:
        tree = merge_settings(tree, read_yaml(config_file))
    tree = merge_settings(tree, overrides if isinstance(overrides, Mapping) else parse_overrides(overrides))
    tree["train"]["output_dir"] = str(out / "model")
    return load_settings(None, tree, environ={})


def _train(settings, summary: DemoSummary, console) -> Path:
    from prosper.settings import validate_components
    from prosper.training.trainer import train

    validate_components(settings)
    result = train(settings, console=console)
    summary.files["checkpoint"] = str(result.final_dir)
    logs = result.last_logs or {}
    if logs:
        console.print(
            f"final loss {logs.get('loss', float('nan')):.4f}, non-zeros per query {logs.get('nnz_query', 0):.1f}, "
            f"per item {logs.get('nnz_item', 0):.1f}",
            highlight=False,
        )
    return Path(result.final_dir)


def _encode_and_export(encoder, settings, checkpoint: Path, data_dir: Path, dev, out: Path, summary: DemoSummary, console):
    """Items through the inference driver (Parquet), the dev queries through the encoder; Lucene
    files converted from the Parquet ones. Returns the dev query vectors."""
    from prosper.export.base import build_exporter
    from prosper.export.convert import convert
    from prosper.inference.driver import encode_collection

    meta = {"checkpoint": str(checkpoint)}
    items = encode_collection(
        encoder, data_dir, "item", out / "vectors.parquet", {"name": "parquet"}, settings.infer, overwrite=True,
        metadata=meta, progress=console.is_terminal or not console.quiet,
    )  # fmt: skip
    queries = encoder.encode(dev.query_texts, side="query", batch_size=settings.infer.batch_size, ids=dev.query_ids)
    exporter, _ = build_exporter({"name": "parquet"})
    writer = exporter.open(out / "queries.parquet", encoder.vocabulary(), "query", {**meta, "tokenizer": str(checkpoint)})
    try:
        writer.write(queries)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    docs = convert(out / "vectors.parquet", {"name": "lucene"}, out / "lucene" / "docs.jsonl")
    convert(out / "queries.parquet", {"name": "lucene"}, out / "lucene" / "queries.tsv")
    summary.timings["items_per_s"] = round(items.items_per_s, 1)
    names = {"vectors": "vectors.parquet", "queries_vectors": "queries.parquet", "lucene_docs": "lucene/docs.jsonl",
             "lucene_queries": "lucene/queries.tsv"}  # fmt: skip
    summary.files.update({key: str(out / name) for key, name in names.items()})
    console.print(
        f"{items.rows:,} item vectors ({items.items_per_s:,.0f} items/s) -> vectors.parquet, lucene/docs.jsonl "
        f"({docs.get('rows', 0):,} documents); {len(queries):,} dev queries -> queries.parquet, lucene/queries.tsv",
        highlight=False,
    )
    return queries


def _save_runs(result, out: Path, summary: DemoSummary) -> None:
    """TREC runs of both channels and of the fusions; the BM25 channel for ``prosper search``."""
    result.bm25.save(out / "bm25", overwrite=True)
    summary.files["bm25"] = str(out / "bm25")
    paths = {"prosper": out / "runs" / "prosper.dev.trec", "bm25": out / "runs" / "bm25.dev.trec"}
    paths.update({spec["system"]: out / "runs" / f"{method}.dev.trec" for method, spec in result.fusion.items()})
    written = result.write_runs(paths)
    summary.files.update(run_prosper=written["prosper"], run_bm25=written["bm25"])
    summary.files.update({f"run_{method}": written[spec["system"]] for method, spec in result.fusion.items()})
