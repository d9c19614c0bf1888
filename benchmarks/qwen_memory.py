"""Peak memory and throughput of last-token pooling: prosper's lean head vs full logits.

A randomly initialised Qwen2.5-0.5B (architecture from ../shared/models/qwen2.5-configs,
|V| = 151,936) encodes batches of 64-token titles two ways, each in its own subprocess:

* ``prosper``: :class:`prosper.SparseEncoder` with last pooling (LRN and LFW off, to compare
  the heads alone): the body runs on all positions, the LM head on the last position only;
* ``naive``: ``model(...).logits`` (a ``[B, 64, |V|]`` tensor), ``log(1+ReLU(.))``, then the
  last position — what a straightforward implementation does.

Run it under the shared lock (CPU by default; the lead may run it on a GPU)::

    flock /tmp/prosper-bench.lock python benchmarks/qwen_memory.py
    flock /tmp/prosper-bench.lock python benchmarks/qwen_memory.py --device cuda --batch-size 64 --precision bf16

Reports peak memory (CPU: peak RSS and its rise above the loaded model; CUDA: peak allocated
above the loaded model), docs/s and the ratios; writes benchmarks/results/qwen_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROSPER_SHARED_DIR", ROOT.parent / "shared"))
CONFIG = SHARED / "models" / "qwen2.5-configs" / "qwen2.5-0.5b.json"
TOKENIZER = SHARED / "models" / "qwen3-tokenizer"


def rss_kib(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def build_model(precision: str, device: str):
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    data = json.loads(CONFIG.read_text())
    data.pop("architectures", None)
    data.pop("model_type", None)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    config = Qwen2Config(**{k: v for k, v in data.items() if k not in ("torch_dtype", "transformers_version")})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.to(device).eval(), config


def tokenizer_for(vocab_size: int):
    if TOKENIZER.is_dir():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(TOKENIZER))
    from prosper.demo.scratch import train_tokenizer

    return train_tokenizer(vocab_size=512)


def worker(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, config = build_model(args.precision, args.device)
    tokenizer = tokenizer_for(config.vocab_size)
    from prosper.modeling.backbones.base import LoadedBackbone, find_head
    from prosper.modeling.encoder import SparseEncoder
    from prosper.settings import ModelSettings

    settings = ModelSettings(
        backbone={"name": "qwen", "path": "random-init"}, pooling="last", lrn={"enabled": False},
        lfw={"enabled": False}, max_length=args.length, precision=args.precision, device=args.device,
    )
    loaded = LoadedBackbone(
        model=model, body=model.base_model, head=find_head(model, model.base_model), tokenizer=tokenizer,
        kind="causal", hidden_size=config.hidden_size, vocab_size=config.vocab_size,
    )
    encoder = SparseEncoder(settings, loaded)
    special = set(tokenizer.all_special_ids)
    generator = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(args.batches + 1):  # +1 warm-up
        rows = torch.randint(0, min(len(tokenizer), config.vocab_size), (args.batch_size, args.length), generator=generator)
        rows = [[t for t in row.tolist() if t not in special][: args.length] for row in rows]
        batches.append(encoder._collate(rows))

    def lean(features):
        return encoder(features, "item").vectors

    def naive(features):
        f = {k: v.to(device) for k, v in features.items()}
        logits = model(input_ids=f["input_ids"], attention_mask=f["attention_mask"], position_ids=f["position_ids"],
                       use_cache=False).logits  # [B, L, V]
        saturated = torch.log1p(torch.relu(logits.float()))
        return saturated[torch.arange(saturated.shape[0], device=device), f["last_index"]]

    run = lean if args.worker == "prosper" else naive
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.synchronize()
        base_alloc = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    base_rss = rss_kib()
    outputs = []
    with torch.inference_mode():
        run(batches[0])  # warm-up (counted in peak memory, not in time)
        sync()
        start = time.perf_counter()
        for features in batches[1:]:
            outputs.append(run(features)[:, :8].float().cpu())
        sync()
        seconds = time.perf_counter() - start
    docs = args.batch_size * args.batches
    result = {
        "system": args.worker, "device": str(device), "precision": args.precision,
        "batch_size": args.batch_size, "length": args.length, "docs": docs,
        "seconds": seconds, "docs_per_s": docs / seconds,
        "peak_rss_gib": rss_kib("VmHWM") / 2**20,
        "rss_model_loaded_gib": base_rss / 2**20,
        "rise_above_model_gib": (rss_kib("VmHWM") - base_rss) / 2**20,
        "checksum": float(torch.cat(outputs).sum()),
    }
    if device.type == "cuda":
        result["cuda_peak_above_model_gib"] = (torch.cuda.max_memory_allocated() - base_alloc) / 2**30
        result["cuda_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "qwen_memory.json"))
    parser.add_argument("--worker", choices=["prosper", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not CONFIG.is_file():
        raise SystemExit(f"needs {CONFIG}")
    if args.worker:
        print(json.dumps(worker(args)))
        return
    results = {}
    for kind in ("naive", "prosper"):
        cmd = [sys.executable, __file__, "--worker", kind] + [
            a for pair in (("--device", args.device), ("--precision", args.precision),
                           ("--batch-size", str(args.batch_size)), ("--batches", str(args.batches)),
                           ("--length", str(args.length)), ("--threads", str(args.threads))) for a in pair
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
        if proc.returncode != 0:
            raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
        results[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[kind]
        print(f"{kind:<8} {r['docs_per_s']:8.2f} docs/s  peak RSS {r['peak_rss_gib']:.2f} GiB "
              f"(+{r['rise_above_model_gib']:.2f} above the loaded model)"
              + (f"  CUDA peak +{r['cuda_peak_above_model_gib']:.2f} GiB" if "cuda_peak_above_model_gib" in r else ""),
              flush=True)
    lean, naive = results["prosper"], results["naive"]
    ratios = {
        "speed": lean["docs_per_s"] / naive["docs_per_s"],
        "peak_rss": lean["peak_rss_gib"] / naive["peak_rss_gib"],
        "rise_above_model": lean["rise_above_model_gib"] / max(naive["rise_above_model_gib"], 1e-9),
        "same_vectors_checksum": abs(lean["checksum"] - naive["checksum"]) <= 1e-3 * max(1.0, abs(naive["checksum"])),
    }
    if "cuda_peak_above_model_gib" in lean:
        ratios["cuda_peak_above_model"] = lean["cuda_peak_above_model_gib"] / max(naive["cuda_peak_above_model_gib"], 1e-9)
    print(f"prosper vs naive: {ratios['speed']:.2f}x docs/s, peak RSS x{ratios['peak_rss']:.3f}, "
          f"memory above the model x{ratios['rise_above_model']:.3f}; same vectors: {ratios['same_vectors_checksum']}")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"results": results, "ratios": ratios}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
