"""Fine-tune splade-tiny on Home Depot with the PROSPER recipe; compare with BM25, the zero-shot
model and sentence-transformers' SparseEncoderTrainer (same model, batch, data and step budget).

Run (under the benchmark lock, ~30-40 min on 2 CPU cores at the default 400 steps)::

    flock /tmp/prosper-bench.lock python benchmarks/train.py --steps 400

Reports dev nDCG@10, MRR@10 (grade 2), Recall@100 and Recall@1000 (exact search over all 54,667
titles), average non-zeros of query and item vectors, and the training speed (steps/s) of
``prosper`` against ``SparseEncoderTrainer`` measured in this run. Systems:

* BM25 (bm25s, English stemmer and stop words: :mod:`prosper.retrieval.bm25`);
* zero-shot splade-tiny (our encoder with LRN and LFW off and dot-product scoring = SPLADE);
* sentence-transformers: SpladeLoss(SparseMultipleNegativesRankingLoss, FLOPS q/d) — in-batch
  negatives, the same λ, lr, warm-up, weight decay, clipping and quadratic λ ramp;
* PROSPER recipe (LRN, LFW k 256/512, query-L2 scoring, InfoNCE + scheduled FLOPS on w);
* ablations: PROSPER with LRN off; PROSPER with LFW off.

Writes ``benchmarks/results/train.json``. Needs ``../shared`` (skips with a message otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROSPER_SHARED_DIR", REPO.parent / "shared"))
HOMEDEPOT = SHARED / "datasets" / "homedepot"
SPLADE_TINY = SHARED / "models" / "splade-tiny"
MEASURES = ("nDCG@10", "MRR@10", "Recall@100", "Recall@1000")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=400, help="optimizer steps for every trainer (same budget)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--lambda-query", type=float, default=5e-3)
    p.add_argument("--lambda-item", type=float, default=1e-3)
    p.add_argument("--min-grade", type=int, default=1, help="train qrels grade that counts as positive")
    p.add_argument("--k-query", type=int, default=256, help="LFW k for queries (paper: 256)")
    p.add_argument("--k-item", type=int, default=512, help="LFW k for items (paper: 512)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--work-dir", default="/tmp/prosper-bench-train")
    p.add_argument(
        "--skip", nargs="*", default=[], help="parts to skip: bm25 zero_shot st prosper no_lrn no_lfw speed"
    )
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--speed-runs", type=int, default=3, help="alternating short runs per trainer for steps/s")
    p.add_argument("--speed-steps", type=int, default=20)
    p.add_argument(
        "--corpus-sample",
        type=int,
        default=None,
        help="search a subset: every item judged for a dev query plus a seeded random sample up to N "
        "(default: the whole corpus, comparable with the README anchors)",
    )
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "train.json"))
    return p.parse_args()


# -- evaluation ---------------------------------------------------------------------------
def evaluate_run(results, query_ids, qrels):
    from prosper.evaluation.metrics import evaluate

    run = {qid: {str(d): float(s) for d, s in zip(r.ids, r.scores)} for qid, r in zip(query_ids, results)}
    return evaluate(run, qrels, MEASURES)


def evaluate_encoder(checkpoint_or_encoder, corpus, dev_queries, qrels, batch_size, **overrides):
    """Encode every title and the dev queries with a SparseEncoder; exact search (Eq. 11)."""
    import torch

    from prosper.modeling.encoder import SparseEncoder
    from prosper.retrieval.index import InvertedIndex

    encoder = (
        SparseEncoder.load(checkpoint_or_encoder, device="cpu", **overrides)
        if isinstance(checkpoint_or_encoder, (str, Path))
        else checkpoint_or_encoder
    )
    encoder.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        items = encoder.encode(list(corpus.values()), side="item", batch_size=batch_size, ids=list(corpus))
        queries = encoder.encode(list(dev_queries.values()), side="query", batch_size=batch_size, ids=list(dev_queries))
    encode_s = time.perf_counter() - t0
    index = InvertedIndex.build(items)
    results = index.search(queries, k=1000, scoring=encoder.settings.scoring)
    metrics = evaluate_run(results, list(dev_queries), qrels)
    metrics["nnz_query"] = float(queries.nnz.mean())
    metrics["nnz_item"] = float(items.nnz.mean())
    metrics["encode_docs_per_s"] = len(corpus) / encode_s
    return metrics


# -- the trainers -------------------------------------------------------------------------
def prosper_settings(args, out_dir, **model_overrides):
    from prosper.settings import load_settings

    ramp = max(1, args.steps // 3)
    overrides = {
        "model": {
            "backbone": {"name": "bert", "path": str(SPLADE_TINY)},
            "max_length": 64,
            "device": "cpu",
            "precision": "fp32",
            "lfw": {"enabled": True, "k_query": args.k_query, "k_item": args.k_item},
            **model_overrides,
        },
        "data": {"path": str(HOMEDEPOT), "min_grade": args.min_grade, "dev_split": ""},
        "train": {
            "batch_size": args.batch_size,
            "max_steps": args.steps,
            "warmup_steps": max(1, args.steps // 10),
            "optimizer": {"name": "adamw", "lr": args.lr, "weight_decay": args.weight_decay},
            "regularizers": [
                {
                    "name": "flops",
                    "lambda_query": args.lambda_query,
                    "lambda_item": args.lambda_item,
                    "schedule": "quadratic",
                    "ramp_steps": ramp,
                }
            ],
            "amp": "none",
            "seed": args.seed,
            "output_dir": str(out_dir),
            "save_every": args.steps,
            "eval_every": args.steps,
            "log_every": 10,
            "progress": sys.stderr.isatty(),
        },
    }
    return load_settings(overrides=overrides, environ={})


def run_prosper(args, name, callbacks=(), **model_overrides):
    from prosper.training.metrics_log import read_metrics
    from prosper.training.trainer import train

    out = Path(args.work_dir) / name
    shutil.rmtree(out, ignore_errors=True)
    settings = prosper_settings(args, out, **model_overrides)
    if callbacks:
        settings.train.log_every = 1
    t0 = time.perf_counter()
    result = train(settings, callbacks=callbacks)
    wall = time.perf_counter() - t0
    logs = [r for r in read_metrics(out / "metrics.jsonl") if r.get("event") == "train"]
    # steps/s of the loop alone (the last log covers every step since the start)
    steps_per_s = logs[-1]["steps_per_s"]
    return result.final_dir, {
        "steps": result.steps,
        "steps_per_s": steps_per_s,
        "wall_s": wall,
        "final_loss": logs[-1]["loss"],
        "first_loss": logs[0]["loss"],
    }


def st_pairs(args):
    """The same (query, positive) pairs our data pipeline draws, in the same order."""
    from prosper.data.training import BatchPlan, load_training_data, make_batch
    from prosper.settings import DataSettings

    data = load_training_data(DataSettings(path=str(HOMEDEPOT), min_grade=args.min_grade))
    plan = BatchPlan(len(data), args.batch_size, args.seed)
    anchors, positives = [], []
    for position in range(args.steps):
        batch = make_batch(data, plan.indices(position), position, args.seed, 0)
        anchors += batch.query_texts
        positives += batch.item_texts
    return anchors, positives


def run_st(args, callbacks=()):
    import torch
    from datasets import Dataset
    from sentence_transformers import SparseEncoder as STSparseEncoder
    from sentence_transformers.sparse_encoder import SparseEncoderTrainer, SparseEncoderTrainingArguments, losses
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling
    from sentence_transformers.training_args import BatchSamplers

    out = Path(args.work_dir) / "st"
    shutil.rmtree(out, ignore_errors=True)
    torch.manual_seed(args.seed)
    model = STSparseEncoder(
        modules=[MLMTransformer(str(SPLADE_TINY), max_seq_length=64), SpladePooling(pooling_strategy="max")],
        device="cpu",
    )
    anchors, positives = st_pairs(args)
    dataset = Dataset.from_dict({"anchor": anchors, "positive": positives})
    loss = losses.SpladeLoss(
        model,
        loss=losses.SparseMultipleNegativesRankingLoss(model),
        query_regularizer_weight=args.lambda_query,
        document_regularizer_weight=args.lambda_item,
    )
    training_args = SparseEncoderTrainingArguments(
        output_dir=str(out),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=max(1, args.steps // 10),
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        seed=args.seed,
        batch_sampler=BatchSamplers.BATCH_SAMPLER,
        save_strategy="no",
        logging_steps=50,
        report_to="none",
        use_cpu=True,
        dataloader_drop_last=True,
        disable_tqdm=not sys.stderr.isatty(),
    )
    trainer = SparseEncoderTrainer(
        model=model, args=training_args, train_dataset=dataset, loss=loss, callbacks=list(callbacks)
    )
    t0 = time.perf_counter()
    output = trainer.train()
    wall = time.perf_counter() - t0
    final = out / "final"
    model.save_pretrained(str(final))
    return final, {
        "steps": output.global_step,
        "steps_per_s": output.metrics.get("train_steps_per_second"),
        "wall_s": wall,
        "final_loss": output.training_loss,
    }


def speed_phase(args, runs: int, steps: int) -> dict:
    """Alternate short runs of both trainers (same load on average); steps/s from step 2 to the
    last, so model loading, data reading and the first (allocation) step are left out."""
    import copy

    from transformers import TrainerCallback

    from prosper.training.trainer import Callback

    stamps: list[float] = []

    class Ours(Callback):
        def on_log(self, trainer, step, logs):
            stamps.append(time.perf_counter())

    class Theirs(TrainerCallback):
        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())

    short = copy.copy(args)
    short.steps = steps
    short.work_dir = str(Path(args.work_dir) / "speed")
    rates: dict[str, list[float]] = {"prosper": [], "st": []}
    for _ in range(runs):
        for name in ("st", "prosper"):
            stamps.clear()
            if name == "st":
                run_st(short, callbacks=[Theirs()])
            else:
                run_prosper(short, "speed-prosper", callbacks=[Ours()])
            rates[name].append((len(stamps) - 2) / (stamps[-1] - stamps[1]))
            print("speed", name, f"{rates[name][-1]:.3f} steps/s", flush=True)
    out = {name: {"runs": r, "median": statistics.median(r)} for name, r in rates.items()}
    out["ratio_median"] = out["prosper"]["median"] / out["st"]["median"]
    out["steps_per_run"] = steps
    return out


def main() -> int:
    args = parse_args()
    if not HOMEDEPOT.is_dir() or not SPLADE_TINY.is_dir():
        print(f"skipped: {HOMEDEPOT} or {SPLADE_TINY} is absent")
        return 0
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from prosper.data.collections import load_texts
    from prosper.data.qrels import read_qrels, split_path

    corpus = load_texts(HOMEDEPOT, "item")
    queries = load_texts(HOMEDEPOT, "query")
    qrels = read_qrels(split_path(HOMEDEPOT, "dev"))
    if args.corpus_sample is not None and args.corpus_sample < len(corpus):
        import random

        judged = {d for judged in qrels.values() for d in judged if d in corpus}
        others = sorted(set(corpus) - judged)
        random.Random(args.seed).shuffle(others)
        keep = judged | set(others[: max(0, args.corpus_sample - len(judged))])
        corpus = {i: t for i, t in corpus.items() if i in keep}
    dev_queries = {q: queries[q] for q in sorted(qrels) if q in queries}
    report: dict = {
        "config": vars(args) | {"dev_queries": len(dev_queries), "corpus": len(corpus)},
        "systems": {},
        "training": {},
        "torch_threads": torch.get_num_threads(),
    }
    systems, training = report["systems"], report["training"]
    plain = {"lrn": {"enabled": False}, "lfw": {"enabled": False}, "scoring": "none"}

    def save():
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(args.out).with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(report, indent=2))
        os.replace(tmp, args.out)

    if "bm25" not in args.skip:
        from prosper.retrieval.bm25 import BM25Channel

        channel = BM25Channel.build(list(corpus), list(corpus.values()))
        results = channel.search(list(dev_queries.values()), k=1000)
        systems["bm25"] = evaluate_run(results, list(dev_queries), qrels)
        print("bm25", systems["bm25"], flush=True)
        save()
    if "zero_shot" not in args.skip:
        from prosper.modeling.encoder import SparseEncoder

        settings = prosper_settings(args, Path(args.work_dir) / "zero", **plain)
        encoder = SparseEncoder.from_settings(settings.model, device="cpu")
        systems["zero_shot"] = evaluate_encoder(encoder, corpus, dev_queries, qrels, args.eval_batch_size)
        print("zero_shot", systems["zero_shot"], flush=True)
        del encoder
        save()
    if "st" not in args.skip:
        final, stats = run_st(args)
        training["st"] = stats
        print("st training", stats, flush=True)
        from prosper.modeling.encoder import SparseEncoder

        settings = prosper_settings(args, Path(args.work_dir) / "st-eval", **plain)
        model_settings = settings.model.model_copy(
            update={"backbone": settings.model.backbone.model_copy(update={"path": str(final)})}
        )
        encoder = SparseEncoder.from_settings(model_settings, device="cpu")
        systems["st"] = evaluate_encoder(encoder, corpus, dev_queries, qrels, args.eval_batch_size)
        print("st", systems["st"], flush=True)
        save()
    variants = {
        "prosper": {},
        "no_lrn": {"lrn": {"enabled": False}},
        "no_lfw": {"lfw": {"enabled": False, "k_query": args.k_query, "k_item": args.k_item}},
    }
    for name, overrides in variants.items():
        if name in args.skip:
            continue
        final, stats = run_prosper(args, name, **overrides)
        training[name] = stats
        print(name, "training", stats, flush=True)
        systems[name] = evaluate_encoder(final, corpus, dev_queries, qrels, args.eval_batch_size)
        print(name, systems[name], flush=True)
        save()

    if "speed" not in args.skip and args.speed_runs > 0:
        report["speed"] = speed_phase(args, args.speed_runs, args.speed_steps)
        report["speedup_vs_st"] = report["speed"]["ratio_median"]
    save()
    print_table(report)
    return 0


def print_table(report):
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Home Depot dev ({report['config']['dev_queries']} queries, {report['config']['corpus']} items)")
    for column in ("system", *MEASURES, "nnz q", "nnz d", "steps/s"):
        table.add_column(column, justify="right" if column != "system" else "left")
    for name, m in report["systems"].items():
        speed = report["training"].get(name, {}).get("steps_per_s")
        table.add_row(
            name,
            *(f"{m[k]:.3f}" for k in MEASURES),
            f"{m['nnz_query']:.1f}" if "nnz_query" in m else "-",
            f"{m['nnz_item']:.1f}" if "nnz_item" in m else "-",
            f"{speed:.2f}" if speed else "-",
        )
    console = Console()
    console.print(table)
    if "speedup_vs_st" in report:
        speed = report["speed"]
        console.print(
            f"steps/s, median of {len(speed['st']['runs'])} alternating runs of {speed['steps_per_run']} steps: "
            f"prosper {speed['prosper']['median']:.3f}, SparseEncoderTrainer {speed['st']['median']:.3f} "
            f"-> {report['speedup_vs_st']:.2f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
