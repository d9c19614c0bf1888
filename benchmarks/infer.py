"""Inference and export throughput: items/s end to end and vectors/s for each exporter.

Run under the shared lock (never as a timed test)::

    flock /tmp/prosper-bench.lock python benchmarks/infer.py [--vectors 100000] [--limit 5000]

Export-only: ``--vectors`` synthetic item vectors over a BERT-sized vocabulary (30,522 terms,
~128 terms per vector, SPLADE-like weights) are written by the Parquet, Lucene and JSONL
exporters; the baseline is the obvious per-row Python writer measured in the same run
(``pyarrow.Table.from_pylist`` for Parquet, ``json.dumps`` of a dict per row for the JSON
formats). The Parquet reader is timed too. Figures are medians of ``--repeats`` runs; peak
memory is the tracemalloc peak of one extra (untimed) run per exporter, plus the process RSS.

End to end (read, encode, write): ``../shared/models/splade-tiny`` on the Home Depot titles
(``--limit`` of them) when ``../shared`` is present, else a tiny random BERT built with
``prosper.demo.scratch`` on synthetic titles. Results go to benchmarks/results/infer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROSPER_SHARED_DIR", REPO.parent / "shared"))
sys.path.insert(0, str(REPO))

from prosper.export.jsonl import JsonlExporter  # noqa: E402
from prosper.export.lucene import LuceneExporter  # noqa: E402
from prosper.export.parquet import ParquetExporter, read_parquet_vectors  # noqa: E402
from prosper.sparse import SparseVectors  # noqa: E402


def synthetic_vectors(n: int, vocab_size: int = 30522, mean_terms: int = 128, seed: int = 0) -> SparseVectors:
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.poisson(mean_terms, n), 1, 512)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # Zipf-ish term ids, unique and sorted per row (rows built in one vectorised pass)
    raw = (rng.zipf(1.3, int(offsets[-1])) % vocab_size).astype(np.int64)
    rows = np.repeat(np.arange(n), lengths)
    key = rows * vocab_size + raw
    key = np.unique(key)
    rows, terms = key // vocab_size, key % vocab_size
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    weights = rng.gamma(1.5, 0.6, len(terms)).astype(np.float32) + np.float32(0.01)
    return SparseVectors([f"item-{i}" for i in range(n)], offsets, terms.astype(np.int32), weights, vocab_size)


def vocabulary(size: int) -> list[str]:
    return [f"term{i}" if i % 7 else f"wörd{i}" for i in range(size)]


# -- baselines: the per-row Python writers one would write first -----------------------------
def baseline_parquet(vectors: SparseVectors, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for i in range(len(vectors)):
        terms, weights = vectors.row(i)
        rows.append({"id": vectors.ids[i], "term_ids": terms.tolist(), "weights": weights.tolist()})
    schema = pa.schema([("id", pa.string()), ("term_ids", pa.list_(pa.int32())), ("weights", pa.list_(pa.float32()))])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, compression="zstd")


def baseline_jsonl(vectors: SparseVectors, vocab: list[str], path: Path, scale: float | None) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(len(vectors)):
            terms, weights = vectors.row(i)
            if scale is None:
                vec = {vocab[t]: float(w) for t, w in zip(terms.tolist(), weights.tolist())}
                handle.write(json.dumps({"id": vectors.ids[i], "vector": vec}, ensure_ascii=False) + "\n")
            else:
                vec = {vocab[t]: round(w * scale) for t, w in zip(terms.tolist(), weights.tolist()) if round(w * scale) > 0}
                handle.write(json.dumps({"id": vectors.ids[i], "contents": "", "vector": vec}, ensure_ascii=False) + "\n")


def write_with(exporter, vectors: SparseVectors, vocab: list[str], path: Path, side: str = "item", batch: int = 8192):
    writer = exporter.open(path, vocab, side, {"tokenizer": "synthetic"})
    for start in range(0, len(vectors), batch):
        writer.write(vectors.slice(start, min(len(vectors), start + batch)))
    return writer.close()


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def traced_peak(fn) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def export_benchmarks(n: int, repeats: int, work: Path) -> dict:
    vectors = synthetic_vectors(n)
    vocab = vocabulary(vectors.vocab_size)
    queries = synthetic_vectors(max(1, n // 10), mean_terms=16, seed=1)
    ours = {
        "parquet": lambda: write_with(ParquetExporter(), vectors, vocab, work / "v.parquet"),
        "lucene_items": lambda: write_with(LuceneExporter(), vectors, vocab, work / "v.lucene.jsonl"),
        "lucene_queries": lambda: write_with(LuceneExporter(), queries, vocab, work / "q.tsv", side="query"),
        "jsonl": lambda: write_with(JsonlExporter(), vectors, vocab, work / "v.jsonl"),
    }
    baselines = {
        "parquet": lambda: baseline_parquet(vectors, work / "b.parquet"),
        "lucene_items": lambda: baseline_jsonl(vectors, vocab, work / "b.lucene.jsonl", 100.0),
        "jsonl": lambda: baseline_jsonl(vectors, vocab, work / "b.jsonl", None),
    }
    results: dict = {"vectors": n, "terms_per_vector": round(len(vectors.term_ids) / n, 1), "vocab_size": vectors.vocab_size}
    for name, fn in ours.items():
        rows = len(queries) if name == "lucene_queries" else n
        fn()  # warm-up (vocabulary caches, page cache)
        seconds = median_time(fn, repeats)
        entry = {"seconds": round(seconds, 4), "vectors_per_s": round(rows / seconds), "peak_traced_mb": round(traced_peak(fn) / 2**20, 1)}
        if name in baselines:
            base = median_time(baselines[name], 1 if n > 20000 else repeats)
            entry["baseline_seconds"] = round(base, 4)
            entry["baseline_vectors_per_s"] = round(rows / base)
            entry["speedup_vs_baseline"] = round(base / seconds, 2)
        path = {"parquet": "v.parquet", "lucene_items": "v.lucene.jsonl", "lucene_queries": "q.tsv", "jsonl": "v.jsonl"}[name]
        entry["file_mb"] = round((work / path).stat().st_size / 2**20, 1)
        results[name] = entry
        print(f"export {name:15s} {entry['vectors_per_s']:>10,} vectors/s"
              + (f"  (baseline {entry['baseline_vectors_per_s']:,}/s, x{entry['speedup_vs_baseline']})" if name in baselines else "")
              + f"  peak {entry['peak_traced_mb']} MB", flush=True)
    seconds = median_time(lambda: read_parquet_vectors(work / "v.parquet"), repeats)
    results["parquet_read"] = {"seconds": round(seconds, 4), "vectors_per_s": round(n / seconds)}
    print(f"read   parquet         {round(n / seconds):>10,} vectors/s", flush=True)
    back, _ = read_parquet_vectors(work / "v.parquet")
    assert back.equals(vectors), "parquet round trip changed the vectors"
    return results


def end_to_end(limit: int, work: Path) -> dict:
    try:
        from prosper.inference.driver import encode_collection
        from prosper.modeling.encoder import SparseEncoder
        from prosper.settings import InferSettings, ModelSettings
    except ImportError as exc:
        print(f"end to end: skipped ({exc})")
        return {"skipped": str(exc)}
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    homedepot = SHARED / "datasets" / "homedepot"
    splade = SHARED / "models" / "splade-tiny"
    if homedepot.is_dir() and splade.is_dir():
        source, model_path, label = homedepot, splade, "splade-tiny on homedepot titles"
    else:
        from prosper.demo.synth import generate
        from prosper.demo.scratch import build_random_masked_lm, train_tokenizer

        generate(work / "synth", seed=0)
        tok = train_tokenizer(None, vocab_size=1000, kind="wordpiece")
        model_path = build_random_masked_lm(tok, work / "tiny-bert")
        source, label = work / "synth", "tiny random BERT on synthetic titles"
    model = ModelSettings(backbone={"name": "bert", "path": str(model_path)}, pooling="max", max_length=64,
                          lrn={"enabled": False})
    encoder = SparseEncoder.from_settings(model, device="cpu")
    results = {"model": label, "limit": limit}
    # baseline: the encoder alone on the same texts already in memory (no reading, no writing)
    from itertools import islice

    from prosper.data.collections import iter_collection

    records = list(islice(iter_collection(source, "item"), limit))
    start = time.perf_counter()
    encoder.encode([r.text for r in records], side="item", batch_size=64, ids=[r.id for r in records])
    seconds = time.perf_counter() - start
    results["encoder_only"] = {"items": len(records), "seconds": round(seconds, 2), "items_per_s": round(len(records) / seconds, 1)}
    print(f"encoder only ({label}): {len(records) / seconds:,.1f} items/s over {len(records)} items", flush=True)
    del records
    for fmt in ("parquet", "lucene"):
        out = work / f"e2e.{fmt}"
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        summary = encode_collection(encoder, source, "item", out, fmt, InferSettings(batch_size=64, buffer_size=2048),
                                    limit=limit, overwrite=True)
        results[fmt] = {
            "items": summary.rows,
            "seconds": round(summary.seconds, 2),
            "items_per_s": round(summary.items_per_s, 1),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "max_rss_mb_before": round(rss_before / 1024, 1),
            "ratio_vs_encoder_only": round(summary.items_per_s / results["encoder_only"]["items_per_s"], 3),
        }
        print(f"end to end ({label}, {fmt}): {summary.items_per_s:,.1f} items/s over {summary.rows} items", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=5000, help="items encoded end to end")
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "infer.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report = {
            "command": " ".join(["python", *sys.argv]),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "export": export_benchmarks(args.vectors, args.repeats, work),
        }
        if not args.skip_e2e:
            report["end_to_end"] = end_to_end(args.limit, work)
    report["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
