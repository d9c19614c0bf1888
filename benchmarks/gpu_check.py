"""One short GPU check: AMP training steps (bf16, fp16), bitsandbytes 8-bit loading, and the
memory and throughput of a random-init Qwen2.5-0.5B encoder (last pooling vs naive full logits).

Needs a CUDA machine, the Qwen2.5-0.5B config and a Qwen tokenizer folder::

    python benchmarks/gpu_check.py --config CONFIG.json --tokenizer TOKENIZER_DIR --out results.json

Each part is timed and guarded: a failure is recorded and the next part still runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

DEVICE = "cuda"


def _cuda() -> bool:
    return DEVICE.startswith("cuda")


def _sync():
    if _cuda():
        torch.cuda.synchronize()


def _reset():
    if _cuda():
        torch.cuda.reset_peak_memory_stats()


def _empty():
    if _cuda():
        torch.cuda.empty_cache()


def _peak() -> int:
    return torch.cuda.max_memory_allocated() if _cuda() else 0


def _alloc() -> int:
    return torch.cuda.memory_allocated() if _cuda() else 0


def build_model(config_path: Path, tokenizer_dir: Path, out: Path) -> Path:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(config_path.parent if config_path.is_dir() else str(config_path))
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(out)
    del model
    _empty()
    return out


def titles(n: int, seed: int = 0) -> list[str]:
    import random

    rng = random.Random(seed)
    words = "DEWALT 20V MAX cordless drill driver kit brushless Milwaukee M18 impact wrench Husky tool box stainless steel " \
        "LED light bulb 60W Samsung french door refrigerator white matte black 36 in. GE range hood Behr paint gal. " \
        "BX-3021 RX45 XR 5Ah battery charger pack outdoor patio sofa couch cushion".split()
    # about 64 Qwen tokens each
    return [" ".join(rng.choice(words) for _ in range(40)) for _ in range(n)]


def part_throughput(model_dir: Path, n: int, batch: int) -> dict:
    """prosper (LM head on the pooled position only) vs naive (full [B, L, V] logits)."""
    from prosper.modeling.encoder import SparseEncoder
    from prosper.settings import ModelSettings

    settings = ModelSettings(
        backbone={"name": "qwen", "path": str(model_dir)}, precision="bf16", device=DEVICE, max_length=64
    )
    encoder = SparseEncoder.from_settings(settings, device=DEVICE).eval()
    texts = titles(n)
    start = time.perf_counter()
    batches = [encoder.tokenize(texts[i : i + batch], "item") for i in range(0, n, batch)]
    result = {"tokenize_docs_per_s": round(n / (time.perf_counter() - start), 1)}
    def step(name, cpu_features):
        features = {k: v.to(DEVICE) for k, v in cpu_features.items()}
        if name == "prosper":
            return encoder(features, "item").vectors
        logits = encoder.model(**{k: features[k] for k in ("input_ids", "attention_mask")}).logits
        return torch.log1p(torch.relu(logits[:, -1, :].float()))  # left padded: last position

    for name in ("prosper", "naive"):
        with torch.inference_mode():
            step(name, batches[0])  # warm-up: kernel selection and allocator growth are not timed
        _sync()
        _reset()
        base = _alloc()
        times = []
        with torch.inference_mode():
            for cpu_features in batches:  # tokenisation is timed apart: this is the model's share
                start = time.perf_counter()
                out = step(name, cpu_features)
                _sync()
                times.append(time.perf_counter() - start)
                del out
        times.sort()
        result[name] = {
            "docs_per_s": round(n / sum(times), 1),
            "median_batch_ms": round(1000 * times[len(times) // 2], 2),
            "peak_activation_gib": round((_peak() - base) / 2**30, 3),
        }
    result["speedup"] = round(result["prosper"]["docs_per_s"] / result["naive"]["docs_per_s"], 2)
    result["memory_ratio"] = round(
        result["naive"]["peak_activation_gib"] / max(result["prosper"]["peak_activation_gib"], 1e-6), 2
    )
    result["batch"] = batch
    result["texts"] = n
    return result


def part_amp_training(model_dir: Path, work: Path, amp: str, steps: int) -> dict:
    from prosper.demo.synth import generate
    from prosper.settings import load_settings
    from prosper.training.trainer import train

    data = work / "synth"
    if not data.exists():
        generate(data, seed=0, n_products=400, n_queries=300)
    out = work / f"run-{amp}"
    settings = load_settings(
        overrides={
            "model": {"backbone": {"name": "qwen", "path": str(model_dir)}, "device": DEVICE, "max_length": 64},
            "data": {"path": str(data), "max_dev_queries": 20, "max_dev_items": 400},
            "train": {
                "amp": amp, "batch_size": 32, "max_steps": steps, "warmup_steps": 2, "eval_every": 10_000,
                "save_every": 10_000, "log_every": 1, "output_dir": str(out),
                "optimizer": {"name": "adamw", "lr": 3e-5},
            },
        },
        environ={},
    )
    _reset()
    start = time.perf_counter()
    result = train(settings)
    seconds = time.perf_counter() - start
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()] \
        if (out / "metrics.jsonl").exists() else []
    losses = [row["loss"] for row in logs if "loss" in row]
    return {
        "steps": result.steps,
        "seconds": round(seconds, 1),
        "steps_per_s_including_load": round(result.steps / seconds, 2),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "finite": all(map(lambda x: x == x and abs(x) != float("inf"), losses)),
        "peak_gib": round(_peak() / 2**30, 2),
        "last_logs": {k: v for k, v in result.last_logs.items() if isinstance(v, (int, float, str))},
    }


def part_8bit(model_dir: Path) -> dict:
    from prosper.modeling.encoder import SparseEncoder
    from prosper.settings import ModelSettings

    texts = titles(64, seed=1)
    out = {}
    vectors = {}
    for quant in ("none", "8bit", "4bit"):
        _empty()
        _reset()
        before = _alloc()
        settings = ModelSettings(
            backbone={"name": "qwen", "path": str(model_dir)}, precision="bf16", quantization=quant, device=DEVICE
        )
        encoder = SparseEncoder.from_settings(settings, device=DEVICE).eval()
        weights_gib = (_alloc() - before) / 2**30
        start = time.perf_counter()
        vectors[quant] = encoder.encode(texts, side="item", batch_size=32)
        _sync()
        out[quant] = {
            "model_gib": round(weights_gib, 3),
            "encode_s": round(time.perf_counter() - start, 2),
            "mean_nnz": float(vectors[quant].nnz.mean()),
            "lrn_dtype": str(next(encoder.lrn.parameters()).dtype) if getattr(encoder, "lrn", None) is not None else None,
        }
        del encoder
    import numpy as np

    for quant in ("8bit", "4bit"):
        a, b = vectors["none"].to_dense(), vectors[quant].to_dense()
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-9)
        out[quant]["cosine_to_bf16_median"] = round(float(np.median(cos)), 4)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--texts", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cuda", help="cpu for a dry run of the script with a tiny config")
    parser.add_argument("--parts", default="throughput,amp_bf16,amp_fp16,quantization")
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    report: dict = {"device": torch.cuda.get_device_name(0) if _cuda() else "cpu", "torch": torch.__version__}
    work = Path(tempfile.mkdtemp(prefix="prosper-gpu-"))

    def run(name, fn, *a):
        start = time.perf_counter()
        try:
            report[name] = fn(*a)
        except Exception as exc:
            report[name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-2000:]}
        report[name]["wall_s"] = round(time.perf_counter() - start, 1)
        print(name, json.dumps(report[name], indent=1)[:3000], flush=True)
        args.out.write_text(json.dumps(report, indent=2))

    model_dir = work / "qwen2.5-0.5b-random"
    parts = set(args.parts.split(","))
    run("build", lambda: {"dir": str(build_model(args.config, args.tokenizer, model_dir))})
    if "throughput" in parts:
        run("throughput", part_throughput, model_dir, args.texts, args.batch)
    for amp in ("bf16", "fp16"):
        if f"amp_{amp}" in parts:
            run(f"amp_{amp}", part_amp_training, model_dir, work, amp, args.steps)
    if "quantization" in parts:
        run("quantization", part_8bit, model_dir)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
