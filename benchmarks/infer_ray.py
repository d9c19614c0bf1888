"""Ray Data encoding (``infer.engine=ray``) against the local path, measured in the same run.

Run under the shared lock (never as a timed test)::

    flock /tmp/prosper-bench.lock python benchmarks/infer_ray.py [--limit 20000] [--cpus 2]
    python benchmarks/infer_ray.py --smoke        # a tiny random model on 300 synthetic titles

Baseline: the local path (``prosper.inference.api.infer``, merge=False, Parquet) in a fresh
process with ``--cpus-per-actor`` torch threads, timed from process start to the last shard
(model load included). Then the Ray engine with 1 and 2 actors of ``--cpus-per-actor`` CPUs each
on a local Ray started for the run (``--cpus``), timed the same way (probe, plan, actor start
and model load included), and its output checked against the baseline's vectors. Reported:
items/s end to end and their ratio to the baseline, items/s inside the actors (encoding and
writing only), the plan pass in records/s, and peak memory per actor (RSS; GPU memory when
actors hold GPUs) next to the baseline process's peak RSS.

Data: ``../shared/models/splade-tiny`` on the Home Depot titles (``--limit`` of them) when
``../shared`` is present, else (and with ``--smoke``) a tiny random Qwen-style model on
synthetic titles. Results go to benchmarks/results/infer_ray.json (``--smoke``: printed only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROSPER_SHARED_DIR", REPO.parent / "shared"))
sys.path.insert(0, str(REPO))

LOCAL = """
import json, resource, sys, time
started = time.perf_counter()
import torch
torch.set_num_threads(int(sys.argv[6]))
from prosper.inference.api import infer
from prosper.settings import InferSettings
settings = InferSettings.model_validate_json(sys.argv[5])
limit = None if sys.argv[4] == "none" else int(sys.argv[4])
summary = infer(sys.argv[1], sys.argv[2], "item", sys.argv[3], "parquet", settings, merge=False, device="cpu",
                limit=limit)
print(json.dumps({"rows": summary.rows, "seconds": time.perf_counter() - started, "encode_seconds": summary.seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def tiny_setup(work: Path, items: int) -> tuple[Path, Path, str]:
    import numpy as np

    from prosper.demo.scratch import build_random_causal_lm, train_tokenizer
    from prosper.modeling.encoder import SparseEncoder
    from prosper.settings import ModelSettings

    words = ["cordless", "drill", "battery", "steel", "sink", "led", "bulb", "patio", "chair", "hose", "tile", "pipe"]
    rng = np.random.default_rng(0)
    titles = [" ".join(rng.choice(words, int(rng.integers(2, 14)))) for _ in range(items)]
    tokenizer = train_tokenizer(titles, vocab_size=400)
    backbone = build_random_causal_lm(tokenizer, work / "backbone", hidden_size=64, layers=2, heads=4)
    model = ModelSettings(backbone={"name": "qwen", "path": str(backbone)}, max_length=32)
    SparseEncoder.from_settings(model, device="cpu").save(work / "ckpt")
    source = work / "titles.jsonl"
    source.write_text("".join(json.dumps({"_id": f"p{i}", "title": t}) + "\n" for i, t in enumerate(titles)),
                      encoding="utf-8")
    return work / "ckpt", source, f"tiny random Qwen-style model on {items} synthetic titles"


def run_local(checkpoint: Path, source: Path, out: Path, limit, settings, threads: int) -> dict:
    command = [sys.executable, "-c", LOCAL, str(checkpoint), str(source), str(out), str(limit or "none"),
               settings.model_dump_json(), str(threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"local path failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_vectors(a: Path, b: Path) -> dict:
    import numpy as np

    from prosper.export.parquet import read_parquet_vectors

    x, y = read_parquet_vectors(a)[0], read_parquet_vectors(b)[0]
    ids = x.ids == y.ids and np.array_equal(x.offsets, y.offsets) and np.array_equal(x.term_ids, y.term_ids)
    diff = float(np.abs(x.weights - y.weights).max()) if ids and len(x.weights) else None
    return {"same_ids_and_terms": bool(ids), "max_weight_diff": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny random model, 300 titles, nothing written")
    parser.add_argument("--limit", type=int, default=20000, help="Home Depot titles encoded")
    parser.add_argument("--shard-size", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray")
    parser.add_argument("--cpus-per-actor", type=int, default=1, help="also the baseline's torch threads")
    parser.add_argument("--actors", default="1,2", help="actor counts to measure")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "infer_ray.json")
    args = parser.parse_args()
    import ray

    from prosper.inference.ray_engine import infer_ray
    from prosper.settings import InferSettings

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        splade, homedepot = SHARED / "models" / "splade-tiny", SHARED / "datasets" / "homedepot"
        if not args.smoke and splade.is_dir() and homedepot.is_dir():
            checkpoint, source, label, limit = splade, homedepot, f"splade-tiny on {args.limit} Home Depot titles", args.limit
        else:
            items = 300 if args.smoke else args.limit
            checkpoint, source, label = tiny_setup(work, items)
            limit = None
        shard_size = 50 if args.smoke else args.shard_size
        settings = InferSettings(batch_size=args.batch_size, shard_size=shard_size)
        report: dict = {
            "command": " ".join(["python", *sys.argv]),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                        "ray": ray.__version__},
            "model": label, "shard_size": shard_size, "batch_size": args.batch_size,
            "cpus_per_actor": args.cpus_per_actor,
        }
        local = run_local(checkpoint, source, work / "local", limit, settings, args.cpus_per_actor)
        local["items_per_s"] = round(local["rows"] / local["seconds"], 1)
        report["local"] = local
        print(f"local path: {local['items_per_s']:,.1f} items/s over {local['rows']} items "
              f"({local['seconds']:.1f} s, peak RSS {local['peak_rss_mb']:.0f} MB)", flush=True)
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        try:
            for count in (int(c) for c in args.actors.split(",")):
                out = work / f"ray-{count}"
                ray_settings = settings.model_copy(update={"ray": settings.ray.model_copy(
                    update={"num_actors": count, "num_cpus_per_actor": float(args.cpus_per_actor)})})
                started = time.perf_counter()
                summary = infer_ray(checkpoint, source, "item", out, "parquet", ray_settings, merge=False, limit=limit)
                seconds = time.perf_counter() - started
                actors = list(summary.actors.values())
                entry = {
                    "actors": summary.num_actors,
                    "rows": summary.rows,
                    "seconds": round(seconds, 2),
                    "items_per_s": round(summary.rows / seconds, 1),
                    "ratio_vs_local": round(summary.rows / seconds / local["items_per_s"], 3),
                    "timings": {k: round(v, 2) for k, v in summary.timings.items()},
                    "plan_records_per_s": round(summary.rows / max(summary.timings["plan_s"], 1e-9)),
                    "actor_items_per_s": [round(a["rows"] / a["seconds"], 1) for a in actors if a["seconds"]],
                    "peak_rss_mb_per_actor": [a["peak_rss_mb"] for a in actors],
                    "gpu_peak_mb_per_actor": [a["gpu_peak_mb"] for a in actors],
                    "check": same_vectors(out, work / "local"),
                }
                report[f"ray_{count}"] = entry
                print(f"ray x{count}: {entry['items_per_s']:,.1f} items/s (x{entry['ratio_vs_local']} the local path; "
                      f"inside actors {entry['actor_items_per_s']} items/s; plan {entry['plan_records_per_s']:,} "
                      f"records/s; peak RSS per actor {entry['peak_rss_mb_per_actor']} MB; {entry['check']})",
                      flush=True)
        finally:
            ray.shutdown()
        if "ray_1" in report and "ray_2" in report:
            report["ratio_2_vs_1_actors"] = round(report["ray_2"]["items_per_s"] / report["ray_1"]["items_per_s"], 3)
    if args.smoke:
        print(json.dumps(report, indent=1))
        return
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
