"""Encoding throughput and peak memory: prosper vs sentence-transformers SparseEncoder.

Encodes the titles of ../shared/datasets/homedepot with ../shared/models/splade-tiny (max
pooling, LRN and LFW off: the two produce the same vectors) and, in the same run, with
sentence-transformers' ``SparseEncoder.encode_document``. Each system runs in its own
subprocess so that peak resident memory (``VmHWM``) is measured per system.

Run it under the shared benchmark lock::

    flock /tmp/prosper-bench.lock python benchmarks/encode.py            # full run
    flock /tmp/prosper-bench.lock python benchmarks/encode.py --limit 5000 --repeat 3

Prints docs/s and peak RSS of both and the ratios; writes benchmarks/results/encode.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROSPER_SHARED_DIR", ROOT.parent / "shared"))
MODEL = SHARED / "models" / "splade-tiny"
CORPUS = SHARED / "datasets" / "homedepot" / "corpus.jsonl"


def rss_kib(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def load_titles(limit: int | None) -> list[str]:
    titles = []
    with CORPUS.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            titles.append(" ".join(x for x in (record.get("title"), record.get("text")) if x))
            if limit and len(titles) >= limit:
                break
    return titles


def matmul_speed(dtype_name: str) -> float:
    """Seconds for a head-sized matmul in this dtype (probe for 'fastest precision')."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    a = torch.randn(512, 128).to(dtype)
    w = torch.randn(128, 30522).to(dtype)
    a @ w
    start = time.perf_counter()
    for _ in range(3):
        a @ w
    return (time.perf_counter() - start) / 3


# -- workers (one per subprocess) -------------------------------------------------------------
def worker_prosper(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from prosper.modeling.encoder import SparseEncoder
    from prosper.settings import ModelSettings

    titles = load_titles(args.limit)
    settings = ModelSettings(
        backbone={"name": "bert", "path": str(MODEL)},
        pooling="max", lrn={"enabled": False}, lfw={"enabled": False},
        max_length=512, precision=args.precision, device="cpu", head_chunk_size=args.chunk,
    )
    encoder = SparseEncoder.from_settings(settings)
    encoder.encode(titles[:64], batch_size=args.batch_size)  # warm-up
    rss_loaded = rss_kib()
    samples = []
    start = time.perf_counter()
    parts = []
    for part in encoder.encode_batches(titles, batch_size=args.batch_size, buffer_size=4096):
        parts.append(part)
        samples.append(rss_kib())
    from prosper.sparse import SparseVectors

    vectors = SparseVectors.concat(parts)
    seconds = time.perf_counter() - start
    return {
        "system": f"prosper-{args.precision}",
        "docs": len(titles),
        "seconds": seconds,
        "docs_per_s": len(titles) / seconds,
        "peak_rss_gib": rss_kib("VmHWM") / 2**20,
        "rss_after_load_gib": rss_loaded / 2**20,
        "rss_after_first_buffer_gib": samples[0] / 2**20,
        "rss_at_end_gib": samples[-1] / 2**20,
        "mean_nnz": float(vectors.nnz.mean()),
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
    }


def worker_st(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from sentence_transformers import SparseEncoder

    titles = load_titles(args.limit)
    model = SparseEncoder(str(MODEL), device="cpu")
    model.encode_document(titles[:64])  # warm-up
    rss_loaded = rss_kib()
    start = time.perf_counter()
    out = model.encode_document(titles)
    seconds = time.perf_counter() - start
    nnz = out.coalesce().indices().shape[1] / len(titles) if out.is_sparse else float((out > 0).sum()) / len(titles)
    return {
        "system": "sentence-transformers",
        "docs": len(titles),
        "seconds": seconds,
        "docs_per_s": len(titles) / seconds,
        "peak_rss_gib": rss_kib("VmHWM") / 2**20,
        "rss_after_load_gib": rss_loaded / 2**20,
        "mean_nnz": nnz,
        "batch_size": 32,
        "threads": torch.get_num_threads(),
        "max_seq_length": model.max_seq_length,
    }


def run_worker(kind: str, args, precision: str = "fp32") -> dict:
    cmd = [
        sys.executable, __file__, "--worker", kind, "--precision", precision,
        "--threads", str(args.threads), "--batch-size", str(args.batch_size), "--chunk", str(args.chunk),
    ]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_result(runs: list[dict]) -> dict:
    out = dict(runs[len(runs) // 2])
    for key in ("docs_per_s", "seconds", "peak_rss_gib"):
        out[key] = statistics.median(r[key] for r in runs)
    out["runs"] = len(runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="encode only the first N titles")
    parser.add_argument("--repeat", type=int, default=1, help="runs per system; medians are reported")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=256, help="model.head_chunk_size")
    parser.add_argument("--precisions", default="auto", help="comma list (fp32,bf16) or auto: fp32 + bf16 when bf16 matmul is faster here")
    parser.add_argument("--skip-st", action="store_true", help="do not run the sentence-transformers baseline")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "encode.json"))
    parser.add_argument("--worker", choices=["prosper", "st"], help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        result = worker_prosper(args) if args.worker == "prosper" else worker_st(args)
        print(json.dumps(result))
        return
    if not MODEL.is_dir() or not CORPUS.is_file():
        raise SystemExit(f"needs {MODEL} and {CORPUS}")

    import torch

    torch.set_num_threads(args.threads)
    probe = {name: matmul_speed(name) for name in ("fp32", "bf16")}
    bf16_speedup = probe["fp32"] / probe["bf16"]
    if args.precisions == "auto":
        precisions = ["fp32"] + (["bf16"] if bf16_speedup > 1.0 else [])
    else:
        precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    print(f"threads={args.threads}  bf16 matmul vs fp32 on this CPU: {bf16_speedup:.2f}x "
          f"({'bf16 has fast units' if bf16_speedup > 1 else 'no bf16 matrix units: fp32 is the fastest precision'})")

    results: dict[str, dict] = {}
    for rep in range(args.repeat):
        for precision in precisions:
            r = run_worker("prosper", args, precision)
            results.setdefault(r["system"], []).append(r)
            print(f"  run {rep + 1}: {r['system']}: {r['docs_per_s']:.1f} docs/s, peak {r['peak_rss_gib']:.2f} GiB", flush=True)
        if not args.skip_st:
            r = run_worker("st", args)
            results.setdefault(r["system"], []).append(r)
            print(f"  run {rep + 1}: {r['system']}: {r['docs_per_s']:.1f} docs/s, peak {r['peak_rss_gib']:.2f} GiB", flush=True)

    summary = {name: median_result(runs) for name, runs in results.items()}
    base = summary.get("sentence-transformers")
    fastest = max((v for k, v in summary.items() if k.startswith("prosper")), key=lambda v: v["docs_per_s"])
    print()
    print(f"{'system':<24}{'docs':>8}{'docs/s':>10}{'peak GiB':>10}{'speed x':>9}{'memory x':>10}")
    for name, r in summary.items():
        speed = f"{r['docs_per_s'] / base['docs_per_s']:.2f}" if base else "-"
        memory = f"{r['peak_rss_gib'] / base['peak_rss_gib']:.3f}" if base else "-"
        print(f"{name:<24}{r['docs']:>8}{r['docs_per_s']:>10.1f}{r['peak_rss_gib']:>10.2f}{speed:>9}{memory:>10}")
    for name, r in summary.items():
        if name.startswith("prosper"):
            print(f"{name}: RSS after first buffer {r['rss_after_first_buffer_gib']:.2f} GiB, at end {r['rss_at_end_gib']:.2f} GiB")
    document = {
        "limit": args.limit, "threads": args.threads, "repeat": args.repeat,
        "bf16_matmul_speedup_vs_fp32": bf16_speedup, "fastest_prosper": fastest["system"],
        "results": summary, "all_runs": results,
    }
    if base:
        document["ratios"] = {
            name: {"speed": r["docs_per_s"] / base["docs_per_s"], "memory": r["peak_rss_gib"] / base["peak_rss_gib"]}
            for name, r in summary.items() if name != "sentence-transformers"
        }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
