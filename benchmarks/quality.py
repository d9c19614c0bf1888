"""Retrieval quality at a fixed training budget: prosper's recipe against the obvious alternative.

Fine-tunes ``../shared/models/splade-tiny`` on the Home Depot train qrels and evaluates every
system on the **full** dev split against the **full** corpus (54,667 titles, exact search)::

    flock /tmp/prosper-bench.lock python benchmarks/quality.py             # the full preset
    python benchmarks/quality.py --preset quick                            # iteration: 300 steps, 12k items
    python benchmarks/quality.py --systems prosper st                      # a subset
    python benchmarks/quality.py --variant 'mine=train.optimizer.lr=5e-5;model.lfw.k_item=128'

Systems (``--systems`` picks, default: all of the preset):

* ``bm25`` (bm25s, English stemmer and stop words) and ``zero_shot`` (splade-tiny as is);
* ``st``: sentence-transformers' ``SparseEncoderTrainer`` with ``SpladeLoss`` around
  ``SparseMultipleNegativesRankingLoss``, FLOPS λ 5e-3/1e-3, lr 3e-5, on the same pairs in the
  same order for the same steps; ``st_lambda_x4`` / ``st_lambda_x16``: the same with λ × 4 / × 16
  (its quality-versus-terms curve);
* ``prosper``: ``prosper train`` with nothing set but the backbone, the data and the budget (the
  defaults for a BERT backbone: term budget 12/48, Eq. 11 query-L2 scoring, lr 1e-4, LRN lr 1e-3);
* ``paper``: the paper's recipe as in conf/config.yaml (LRN, LFW 256/512, query-L2 scoring, FLOPS
  5e-3/1e-3 ramped over 400 steps, lr 3e-5) — prosper 0.1's defaults;
* ablations of the default recipe: ``no_lrn``, ``no_lfw``, ``bm25_negatives`` (one mined BM25
  negative per query), and ``dot_*``: the dot product instead of Eq. 11 (with its budget curve);
* ``target_8_32``, ``target_16_64``, ``target_32_128``: other ``train.target_terms`` budgets
  (with ``prosper``'s 12/48, the prosper quality-versus-terms curve);
* ``prosper_fused``, ``st_fused``: those models fused with BM25 (RRF and CombSUM, the multi-channel
  setting the paper deploys in).

Every system records nDCG@10, MRR@10 (grade 2), Recall@100, Recall@1000, mean terms per query and
per item, postings touched per query (Σ df over the query's terms) and the wall time of its
training run. Results go to ``benchmarks/results/quality[_quick].json`` after every system; a
rerun skips finished systems (``--force NAME`` redoes one) and an interrupted training resumes
from its last checkpoint. Needs ``../shared`` (prints ``skipped`` otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROSPER_SHARED_DIR", REPO.parent / "shared"))
HOMEDEPOT = SHARED / "datasets" / "homedepot"
SPLADE_TINY = SHARED / "models" / "splade-tiny"
MEASURES = ("nDCG@10", "MRR@10", "Recall@100", "Recall@1000")

PRESETS = {
    "full": {"steps": 900, "corpus_sample": None, "out": "quality.json"},
    "quick": {"steps": 300, "corpus_sample": 12000, "out": "quality_quick.json"},
}
PAPER = [  # conf/config.yaml's recipe at this budget (prosper 0.1's defaults)
    "model.lrn.enabled=true",
    "model.lfw.k_query=256",
    "model.lfw.k_item=512",
    "model.scoring=query_l2",
    "train.regularizers=[{name: flops, lambda_query: 5.0e-3, lambda_item: 1.0e-3, schedule: quadratic, ramp_steps: 400}]",
    "train.target_terms=null",
    "train.optimizer.lr=3e-5",
    "train.optimizer.lrn_lr=3e-5",
    "train.hard_negatives=0",
    "train.warmup_steps=80",
]
DOT = "model.scoring=none"
PROSPER_SYSTEMS = {
    "prosper": [],
    "paper": PAPER,
    "no_lrn": ["model.lrn.enabled=false"],
    "no_lfw": ["model.lfw.enabled=false"],
    "bm25_negatives": ["train.hard_negatives=1"],
    "target_8_32": ["train.target_terms={query: 8, item: 32}"],
    "target_16_64": ["train.target_terms={query: 16, item: 64}"],
    "target_32_128": ["train.target_terms={query: 32, item: 128}"],
    # the dot product instead of Eq. 11 (the first recipe tried; its budget curve)
    "dot_product": [DOT],
    "dot_no_lrn": [DOT, "model.lrn.enabled=false"],
    "dot_target_8_32": [DOT, "train.target_terms={query: 8, item: 32}"],
    "dot_target_16_64": [DOT, "train.target_terms={query: 16, item: 64}"],
}
ST_SYSTEMS = {"st": 1.0, "st_lambda_x4": 4.0, "st_lambda_x16": 16.0}
DEFAULT_ORDER = ["bm25", "zero_shot", "st", "st_lambda_x4", "st_lambda_x16", "prosper", "no_lrn", "dot_product",
                 "dot_no_lrn", "dot_target_8_32", "dot_target_16_64", "target_8_32", "target_16_64", "target_32_128",
                 "no_lfw", "bm25_negatives", "paper", "st_fused", "dot_product_fused", "prosper_fused"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="full")
    p.add_argument("--systems", nargs="*", default=None, help="systems to run (default: all)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=K=V;K=V",
                   help="an extra prosper system: its name, then ';'-separated overrides")
    p.add_argument("--force", nargs="*", default=[], help="rerun these systems even if finished")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the preset's)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-5, help="the peer's learning rate (prosper uses its default)")
    p.add_argument("--lambda-query", type=float, default=5e-3, help="the peer's FLOPS λ for queries")
    p.add_argument("--lambda-item", type=float, default=1e-3, help="the peer's FLOPS λ for items")
    p.add_argument("--min-grade", type=int, default=1, help="train qrels grade that counts as positive (both trainers)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--work-dir", default="/tmp/prosper-bench-quality")
    p.add_argument("--out", default=None, help="results JSON (default: benchmarks/results/<preset file>)")
    p.add_argument("--markdown", action="store_true", help="print the results file as a Markdown table and exit")
    args = p.parse_args(argv)
    preset = PRESETS[args.preset]
    args.steps = args.steps or preset["steps"]
    args.corpus_sample = preset["corpus_sample"]
    args.out = Path(args.out or REPO / "benchmarks" / "results" / preset["out"])
    args.work_dir = Path(args.work_dir) / args.preset
    return args


# -- data and evaluation --------------------------------------------------------------------
class Bench:
    """The dev queries, the corpus searched and the qrels, loaded once."""

    def __init__(self, args):
        from prosper.data.collections import load_texts
        from prosper.data.qrels import read_qrels, split_path

        self.args = args
        corpus = load_texts(HOMEDEPOT, "item")
        queries = load_texts(HOMEDEPOT, "query")
        self.qrels = read_qrels(split_path(HOMEDEPOT, "dev"))
        if args.corpus_sample is not None and args.corpus_sample < len(corpus):
            import random

            judged = {d for judged in self.qrels.values() for d in judged if d in corpus}
            others = sorted(set(corpus) - judged)
            random.Random(args.seed).shuffle(others)
            keep = judged | set(others[: max(0, args.corpus_sample - len(judged))])
            corpus = {i: t for i, t in corpus.items() if i in keep}
        self.corpus = corpus
        self.queries = {q: queries[q] for q in sorted(self.qrels) if q in queries}

    def metrics(self, run) -> dict:
        from prosper.evaluation.metrics import evaluate

        return evaluate(run, self.qrels, MEASURES)

    def bm25_run(self):
        if not hasattr(self, "_bm25_run"):
            from prosper.retrieval.bm25 import BM25Channel
            from prosper.retrieval.runs import results_to_run

            channel = BM25Channel.build(list(self.corpus), list(self.corpus.values()))
            self._bm25_run = results_to_run(list(self.queries), channel.search(list(self.queries.values()), k=1000))
        return self._bm25_run

    def evaluate_encoder(self, encoder, fusion: bool = False) -> dict:
        """Encode all items and dev queries, exact search with the encoder's scoring (Eq. 11);
        with ``fusion``, also the RRF and CombSUM fusions with BM25 (the keyword channel)."""
        import torch

        from prosper.evaluation.metrics import sparsity_stats
        from prosper.retrieval.index import InvertedIndex
        from prosper.retrieval.runs import results_to_run

        encoder.eval()
        bs = self.args.eval_batch_size
        t0 = time.perf_counter()
        with torch.no_grad():
            items = encoder.encode(list(self.corpus.values()), side="item", batch_size=bs, ids=list(self.corpus))
            queries = encoder.encode(list(self.queries.values()), side="query", batch_size=bs, ids=list(self.queries))
        encode_s = time.perf_counter() - t0
        index = InvertedIndex.build(items)
        results = index.search(queries, k=1000, scoring=encoder.settings.scoring)
        run = results_to_run(list(self.queries), results)
        out = self.metrics(run)
        if fusion:
            from prosper.retrieval.fusion import fuse

            for method in ("rrf", "combsum"):
                fused = fuse({"prosper": run, "bm25": self.bm25_run()}, method=method, k=1000)
                out[f"fused_{method}"] = self.metrics(fused)
        stats = sparsity_stats(queries, index)
        out.update(terms_query=stats["query_nnz"], terms_item=stats["item_nnz"],
                   postings_per_query=stats["postings_per_query"], encode_s=encode_s)
        return out


# -- the systems ----------------------------------------------------------------------------
def base_overrides(args, out_dir: Path) -> list[str]:
    """What every prosper system sets: the backbone, the data, the budget, the machine."""
    return [
        "model.backbone.name=bert",
        f"model.backbone.path={SPLADE_TINY}",
        "model.device=cpu",
        f"data.path={HOMEDEPOT}",
        f"data.min_grade={args.min_grade}",
        "data.dev_split=''",
        f"train.batch_size={args.batch_size}",
        f"train.max_steps={args.steps}",
        f"train.seed={args.seed}",
        f"train.output_dir={out_dir}",
        f"train.save_every={max(50, args.steps // 6)}",
        f"train.progress={'true' if sys.stderr.isatty() else 'false'}",
    ]


def run_prosper(args, bench, name: str, overrides: list[str]) -> dict:
    from prosper.modeling.encoder import SparseEncoder
    from prosper.settings import resolve
    from prosper.training.trainer import train

    out = args.work_dir / name
    settings = resolve(overrides=base_overrides(args, out) + overrides, environ={})
    done = out / "final" / "prosper.yaml"
    record = {"overrides": overrides, "settings": settings.model_dump(mode="json")}
    if not done.exists():
        t0 = time.perf_counter()
        train(settings, resume=(out / "checkpoints").is_dir())
        record["train_wall_s"] = time.perf_counter() - t0
        (out / "wall.json").write_text(json.dumps({"train_wall_s": record["train_wall_s"]}))
    elif (out / "wall.json").exists():
        record.update(json.loads((out / "wall.json").read_text()))
    record["train_log"] = _last_train_log(out / "metrics.jsonl")
    record.update(bench.evaluate_encoder(SparseEncoder.load(out / "final", device="cpu")))
    return record


def _last_train_log(path: Path) -> dict:
    from prosper.training.metrics_log import read_metrics

    logs = [r for r in read_metrics(path) if r.get("event") == "train"]
    keep = ("step", "loss", "rank_loss", "nnz_query", "nnz_item", "steps_per_s")
    return {k: logs[-1].get(k) for k in keep} if logs else {}


def run_st(args, bench, name: str, factor: float) -> dict:
    """sentence-transformers' SparseEncoderTrainer, then the same evaluation (a plain SPLADE model)."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SparseEncoder as STSparseEncoder
    from sentence_transformers.sparse_encoder import SparseEncoderTrainer, SparseEncoderTrainingArguments, losses
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling
    from sentence_transformers.training_args import BatchSamplers
    from train import st_pairs  # benchmarks/train.py: prosper's (query, positive) pairs, in its order

    out = args.work_dir / name
    final = out / "final"
    record = {"lambda_query": args.lambda_query * factor, "lambda_item": args.lambda_item * factor, "lr": args.lr}
    if not (final / "config.json").exists():
        shutil.rmtree(out, ignore_errors=True)
        torch.manual_seed(args.seed)
        model = STSparseEncoder(
            modules=[MLMTransformer(str(SPLADE_TINY), max_seq_length=64), SpladePooling(pooling_strategy="max")],
            device="cpu",
        )
        anchors, positives = st_pairs(args)
        loss = losses.SpladeLoss(
            model,
            loss=losses.SparseMultipleNegativesRankingLoss(model),
            query_regularizer_weight=record["lambda_query"],
            document_regularizer_weight=record["lambda_item"],
        )
        training_args = SparseEncoderTrainingArguments(
            output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr, weight_decay=0.1, warmup_steps=max(1, args.steps // 10),
            lr_scheduler_type="linear", max_grad_norm=1.0, seed=args.seed,
            batch_sampler=BatchSamplers.BATCH_SAMPLER, save_strategy="no", logging_steps=50,
            report_to="none", use_cpu=True, dataloader_drop_last=True, disable_tqdm=not sys.stderr.isatty(),
        )
        trainer = SparseEncoderTrainer(
            model=model, args=training_args,
            train_dataset=Dataset.from_dict({"anchor": anchors, "positive": positives}), loss=loss,
        )
        t0 = time.perf_counter()
        trainer.train()
        record["train_wall_s"] = time.perf_counter() - t0
        model.save_pretrained(str(final))
        (out / "wall.json").write_text(json.dumps({"train_wall_s": record["train_wall_s"]}))
    elif (out / "wall.json").exists():
        record.update(json.loads((out / "wall.json").read_text()))
    record.update(bench.evaluate_encoder(plain_splade(final)))
    return record


def plain_splade(path) -> object:
    """A plain masked-LM SPLADE model (max pooling, dot product, no LRN or LFW) as a prosper encoder,
    truncated at 64 tokens like the prosper systems (``from_pretrained`` alone would take the
    model's own 512)."""
    from prosper.modeling.encoder import SparseEncoder

    return SparseEncoder.from_pretrained(path, device="cpu", max_length=64)


def run_bm25(args, bench) -> dict:
    return bench.metrics(bench.bm25_run())


def run_fused(args, bench, name: str) -> dict:
    """``<system>_fused``: a trained system's model fused with BM25 (RRF and CombSUM)."""
    from prosper.modeling.encoder import SparseEncoder

    base = name[: -len("_fused")]
    final = args.work_dir / base / "final"
    if not final.is_dir():
        raise SystemExit(f"error: {name} needs the trained {base} (run it first)")
    encoder = plain_splade(final) if base in ST_SYSTEMS else SparseEncoder.load(final, device="cpu")
    return bench.evaluate_encoder(encoder, fusion=True)


# -- driver ---------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.markdown:
        print(markdown_table(json.loads(args.out.read_text())))
        return 0
    if not HOMEDEPOT.is_dir() or not SPLADE_TINY.is_dir():
        print(f"skipped: {HOMEDEPOT} or {SPLADE_TINY} is absent")
        return 0
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    prosper_systems = dict(PROSPER_SYSTEMS)
    for spec in args.variant:
        name, _, rest = spec.partition("=")
        prosper_systems[name] = [o for o in rest.split(";") if o]
    order = args.systems or DEFAULT_ORDER + [v.partition("=")[0] for v in args.variant]
    known = set(prosper_systems) | set(ST_SYSTEMS) | {"bm25", "zero_shot"}
    unknown = [s for s in order if s not in known and not (s.endswith("_fused") and s[: -len("_fused")] in known)]
    if unknown:
        print(f"error: unknown system {unknown[0]!r}", file=sys.stderr)
        return 2

    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    systems = report.setdefault("systems", {})
    bench = Bench(args)
    report["config"].update(dev_queries=len(bench.queries), corpus=len(bench.corpus))

    def save():
        """Merge this run's systems into the file: several runs may fill one report side by side."""
        import fcntl

        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = json.loads(args.out.read_text()) if args.out.exists() else {}
            current.setdefault("systems", {}).update({name: systems[name] for name in ran})
            current["config"] = report["config"]
            tmp = args.out.with_suffix(f".tmp-{os.getpid()}")
            tmp.write_text(json.dumps(current, indent=2))
            os.replace(tmp, args.out)

    ran: list[str] = []  # what this run measured: the only entries it writes back
    for name in order:
        if name in systems and name not in args.force:
            continue
        ran.append(name)
        if name in args.force:
            shutil.rmtree(args.work_dir / name, ignore_errors=True)
        print(f"== {name}", flush=True)
        if name == "bm25":
            systems[name] = run_bm25(args, bench)
        elif name == "zero_shot":
            systems[name] = bench.evaluate_encoder(plain_splade(SPLADE_TINY))
        elif name.endswith("_fused"):
            systems[name] = run_fused(args, bench, name)
        elif name in ST_SYSTEMS:
            systems[name] = run_st(args, bench, name, ST_SYSTEMS[name])
        else:
            systems[name] = run_prosper(args, bench, name, prosper_systems[name])
        print(name, {k: v for k, v in systems[name].items() if k not in ("settings", "overrides")}, flush=True)
        save()
    print_table(report)
    return 0


def _rows(report):
    """(name, metrics) per system, each fused run after its system."""
    for name, m in report["systems"].items():
        base = name[: -len("_fused")] if name.endswith("_fused") else None
        if base is None:  # a fused system's own row repeats its base system's
            yield m.get("label", name), m
        for method in ("rrf", "combsum"):
            if f"fused_{method}" in m:
                yield f"{base or name} + bm25 ({method})", m[f"fused_{method}"]


def markdown_table(report) -> str:
    def num(m, key, fmt):
        return format(m[key], fmt) if m.get(key) is not None else ""

    head = ["system", *MEASURES, "terms q", "terms d", "postings/q", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for name, m in _rows(report):
        cells = [name, *(num(m, k, ".4f") for k in MEASURES), num(m, "terms_query", ".1f"),
                 num(m, "terms_item", ".1f"), num(m, "postings_per_query", ",.0f"), num(m, "train_wall_s", ".0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_table(report) -> None:
    from rich.console import Console
    from rich.table import Table

    cfg = report["config"]
    table = Table(title=f"Home Depot dev: {cfg['dev_queries']} queries, {cfg['corpus']:,} items, {cfg['steps']} steps")
    for column in ("system", *MEASURES, "terms q", "terms d", "postings/q", "train s"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for name, m in _rows(report):
        def num(key, fmt):
            return format(m[key], fmt) if m.get(key) is not None else "-"

        table.add_row(name, *(num(k, ".3f") for k in MEASURES), num("terms_query", ".1f"), num("terms_item", ".1f"),
                      num("postings_per_query", ",.0f"), num("train_wall_s", ".0f"))
    Console().print(table)


if __name__ == "__main__":
    sys.exit(main())
