"""Per-process memory of training under FSDP (``train.strategy: fsdp``) against DDP (the baseline).

A randomly initialised Qwen2.5 (architecture from ../shared/models/qwen2.5-configs, |V| =
151,936, tied embeddings) with prosper's LRN layer trains a few steps of in-batch InfoNCE under
two processes, once replicated (``DistributedDataParallel``) and once sharded (``fully_shard``),
through the trainer's own pieces: :func:`prosper.training.distributed.wrap_model`, the trainer's
two-sided module and :func:`prosper.training.optim.build_optimizer` (AdamW, fp32 master weights).

Default size: Qwen2.5-0.5B cut to 12 of its 24 layers (451M parameters with the LRN layer: 7.2 GB
of weights, gradients and AdamW moments per DDP process), so both processes fit 24 GiB of host
memory on a CPU machine; ``--layers 24`` is the whole 0.5B, ``--config qwen2.5-3b`` the 3B (a GPU
machine). Per rank it reports:

* model state: the bytes of the parameters, gradients and optimizer state the rank holds,
  counted on the live tensors after the last step (its local shard under FSDP);
* peak memory: CUDA ``max_memory_allocated`` on GPUs; on CPUs the peak resident set (VmHWM),
  which for FSDP includes the whole model each rank loads before sharding it, and the resident
  set at the end (after sharding);
* seconds per step after the first.

Run it alone (it uses every core), under the benchmark lock::

    flock /tmp/prosper-bench.lock python benchmarks/fsdp_memory.py                  # CPU, 0.5B x 12 layers
    flock /tmp/prosper-bench.lock python benchmarks/fsdp_memory.py --device cuda --layers 24 --amp bf16
    python benchmarks/fsdp_memory.py --smoke        # a tiny random config and tokenizer: seconds, no ../shared

Writes benchmarks/results/fsdp_memory.json (``--smoke``: prints only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROSPER_SHARED_DIR", ROOT.parent / "shared"))
CONFIGS = SHARED / "models" / "qwen2.5-configs"
TOKENIZER = SHARED / "models" / "qwen3-tokenizer"
GIB = 2**30


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _config(args):
    from transformers import Qwen2Config

    if args.smoke:
        return Qwen2Config(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    path = CONFIGS / f"{args.config}.json"
    if not path.is_file():
        raise SystemExit(f"needs {path} (or --smoke)")
    data = json.loads(path.read_text())
    data = {k: v for k, v in data.items() if k not in ("architectures", "model_type", "torch_dtype", "transformers_version")}
    if args.layers:
        data["num_hidden_layers"] = args.layers
    return Qwen2Config(**data)


def _tokenizer(args):
    if not args.smoke and TOKENIZER.is_dir():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(TOKENIZER))
    from prosper.demo.scratch import train_tokenizer

    return train_tokenizer(vocab_size=512)


def _local_bytes(tensor) -> int:
    tensor = tensor.to_local() if hasattr(tensor, "to_local") else tensor  # a DTensor's own shard
    return tensor.numel() * tensor.element_size()


def worker(args) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from prosper.modeling.backbones.base import LoadedBackbone, find_head, split_head
    from prosper.modeling.encoder import SparseEncoder
    from prosper.settings import LoraSettings, ModelSettings, OptimizerSettings
    from prosper.training.distributed import env_info, init_distributed, resolve_device, wrap_model
    from prosper.training.optim import build_optimizer
    from prosper.training.trainer import _DualEncoder  # the training forward, for a like-for-like memory figure

    device = resolve_device(args.device, env_info())
    info = init_distributed(device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // info.world_size))
    start_rss = _status_kib("VmRSS")
    config = _config(args)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    tokenizer = _tokenizer(args)
    head = find_head(model, model.base_model)
    loaded = LoadedBackbone(model=model, body=model.base_model, head=head, tokenizer=tokenizer, kind="causal",
                            hidden_size=config.hidden_size, vocab_size=config.vocab_size, head_split=split_head(head))
    settings = ModelSettings(backbone={"name": "qwen", "path": "random-init"}, max_length=args.length, device="cpu")
    encoder = SparseEncoder(settings, loaded)  # the LRN layer is made here, on the CPU, like the model
    if args.lora:
        from prosper.modeling.lora import add_adapters

        add_adapters(encoder, LoraSettings())
    if args.strategy == "ddp":
        encoder.to(device)  # FSDP moves each rank's shard itself
    encoder.train()
    parallel = wrap_model(_DualEncoder.wrap(encoder), encoder, args.strategy, info, device)
    optimizer = build_optimizer(encoder, OptimizerSettings(lr=1e-5), "causal")
    params = [p for p in encoder.parameters() if p.requires_grad]

    special = set(tokenizer.all_special_ids)
    vocab = min(len(tokenizer), config.vocab_size)
    generator = torch.Generator().manual_seed(1 + info.rank)

    def features():
        rows = torch.randint(0, vocab, (args.batch_size, args.length), generator=generator).tolist()
        rows = [[t for t in row if t not in special] for row in rows]
        return {k: v.to(device) for k, v in encoder._collate(rows).items()}

    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.amp == "bf16" else None
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times, state = [], {}
    labels = torch.arange(args.batch_size, device=device)
    for step in range(args.steps):
        began = time.perf_counter()
        qf, df = features(), features()
        with amp() if amp else nullcontext():
            _, q, _, d = parallel.forward(qf, df)
        loss = torch.nn.functional.cross_entropy(encoder.score(q.float(), d.float()), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step == args.steps - 1:  # what the rank holds at its fullest: weights, gradients, moments
            state = {
                "params": sum(_local_bytes(p) for p in encoder.parameters()),
                "grads": sum(_local_bytes(p.grad) for p in encoder.parameters() if p.grad is not None),
                "optimizer": sum(_local_bytes(v) for s in optimizer.state.values() for v in s.values()
                                 if torch.is_tensor(v) and v.dim() > 0),
            }
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - began)
    result = {
        "rank": info.rank, "world_size": info.world_size, "strategy": args.strategy, "device": str(device),
        "parameters": sum(p.numel() for p in encoder.parameters()) if args.strategy == "ddp" else None,
        "model_state_gib": {k: v / GIB for k, v in state.items()},
        "model_state_total_gib": sum(state.values()) / GIB,
        "seconds_per_step": sum(times[1:]) / max(1, len(times) - 1),
        "peak_rss_gib": _status_kib("VmHWM") / 2**20,
        "end_rss_gib": _status_kib("VmRSS") / 2**20,
        "start_rss_gib": start_rss / 2**20,
    }
    if device.type == "cuda":
        result["cuda_peak_allocated_gib"] = torch.cuda.max_memory_allocated() / GIB
    Path(args.out, f"{args.strategy}-rank{info.rank}.json").write_text(json.dumps(result))
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _peak(r: dict) -> float:
    return r.get("cuda_peak_allocated_gib", r["peak_rss_gib"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="qwen2.5-0.5b", help="a file of ../shared/models/qwen2.5-configs, without .json")
    parser.add_argument("--layers", type=int, default=12, help="decoder layers kept (0: all of the config's)")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="none", choices=["none", "bf16"])
    parser.add_argument("--lora", action="store_true", help="LoRA adapters (peft) on the backbone, r=16 all-linear")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny random config, 2 steps: seconds, no ../shared")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "fsdp_memory.json"))
    parser.add_argument("--strategy", choices=["ddp", "fsdp"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.batch_size, args.length = 2, 2, 16
    if args.strategy:
        worker(args)
        return
    forwarded = ["--config", args.config, "--layers", str(args.layers), "--device", args.device, "--amp", args.amp,
                 "--batch-size", str(args.batch_size), "--length", str(args.length), "--steps", str(args.steps)]
    forwarded += ["--smoke"] if args.smoke else []
    forwarded += ["--lora"] if args.lora else []
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(ROOT))
    if args.device == "cpu":
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // args.nproc))
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in ("ddp", "fsdp"):  # DDP first: the baseline
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc),
                   __file__, "--strategy", strategy, "--out", tmp, *forwarded]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise SystemExit(f"{strategy} failed:\n{proc.stderr[-3000:]}")
            results[strategy] = [json.loads(Path(tmp, f"{strategy}-rank{r}.json").read_text()) for r in range(args.nproc)]
    ddp, fsdp = results["ddp"], results["fsdp"]
    size = "smoke config" if args.smoke else f"{args.config}, {args.layers or 'all'} layers"
    unit, scale = ("MiB", 1024) if args.smoke else ("GiB", 1)  # the results file is in GiB either way
    print(f"{size}: {ddp[0]['parameters'] / 1e6:.2f}M parameters (LRN included), {args.nproc} processes on "
          f"{ddp[0]['device']}, batch {args.batch_size} x {args.length} tokens, amp {args.amp}"
          + (", LoRA" if args.lora else ""))
    peak_name = "CUDA peak allocated" if "cuda_peak_allocated_gib" in ddp[0] else "peak RSS"
    print(f"{unit} per process: params, grads, optimizer state, their total; {peak_name}; resident set at the end")
    print(f"{'':<6} {'rank':>4} {'params':>8} {'grads':>8} {'optim':>8} {'state':>8} {'peak':>9} {'end RSS':>8} {'s/step':>7}")
    for name, ranks in results.items():
        for r in ranks:
            m = {k: v * scale for k, v in r["model_state_gib"].items()}
            print(f"{name:<6} {r['rank']:>4} {m['params']:8.3f} {m['grads']:8.3f} {m['optimizer']:8.3f} "
                  f"{r['model_state_total_gib'] * scale:8.3f} {_peak(r) * scale:9.1f} {r['end_rss_gib'] * scale:8.1f} "
                  f"{r['seconds_per_step']:7.2f}")
    worst = {name: max(ranks, key=lambda r: r["model_state_total_gib"]) for name, ranks in results.items()}
    ratios = {
        "model_state": worst["fsdp"]["model_state_total_gib"] / worst["ddp"]["model_state_total_gib"],
        "peak": max(map(_peak, fsdp)) / max(map(_peak, ddp)),
        "end_rss": max(r["end_rss_gib"] for r in fsdp) / max(r["end_rss_gib"] for r in ddp),
        "seconds_per_step": max(r["seconds_per_step"] for r in fsdp) / max(r["seconds_per_step"] for r in ddp),
    }
    print(f"fsdp / ddp per process: model state x{ratios['model_state']:.3f}, {peak_name} x{ratios['peak']:.3f}, "
          f"end RSS x{ratios['end_rss']:.3f}, time per step x{ratios['seconds_per_step']:.2f}")
    if args.smoke:
        return
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"args": vars(args), "results": results, "ratios": ratios}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
