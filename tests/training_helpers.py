"""Shared builders for the training tests: a tiny synthetic shop and a tiny random backbone."""

from __future__ import annotations

import json
from pathlib import Path


def build_shop(root: Path) -> Path:
    from prosper.demo.synth import generate

    return generate(root / "shop", seed=0, n_products=120, n_queries=90)


def build_backbone(root: Path, kind: str = "qwen") -> Path:
    from prosper.data.collections import load_texts
    from prosper.demo.scratch import build_random_causal_lm, build_random_masked_lm, train_tokenizer

    shop = root / "shop"
    texts = list(load_texts(shop, "item").values()) + list(load_texts(shop, "query").values())
    if kind == "qwen":
        tokenizer = train_tokenizer(texts, vocab_size=320, kind="bpe")
        return build_random_causal_lm(tokenizer, root / "qwen", hidden_size=32, layers=1, heads=2)
    tokenizer = train_tokenizer(texts, vocab_size=320, kind="wordpiece")
    return build_random_masked_lm(tokenizer, root / "bert", hidden_size=32, layers=1, heads=2)


def overrides(root: Path, backbone: Path, out: str = "run", name: str = "qwen", **extra) -> dict:
    """Settings for a few-second CPU training run."""
    settings = {
        "model": {
            "backbone": {"name": name, "path": str(backbone)},
            "max_length": 24,
            "lfw": {"k_query": 24, "k_item": 48},
            "precision": "fp32",
            "device": "cpu",
        },
        "data": {"path": str(root / "shop"), "max_dev_queries": 20, "max_dev_items": 60},
        "train": {
            "batch_size": 8,
            "max_steps": 6,
            "warmup_steps": 1,
            "optimizer": {"name": "adamw", "lr": 3e-3, "weight_decay": 0.1},
            "regularizers": [
                {"name": "flops", "lambda_query": 5e-3, "lambda_item": 1e-3, "schedule": "quadratic", "ramp_steps": 4}
            ],
            "target_terms": None,  # the λ as written (tests/test_budget.py covers the budgets)
            "amp": "none",
            "seed": 3,
            "output_dir": str(root / out),
            "save_every": 2,
            "eval_every": 3,
            "log_every": 1,
            "progress": False,
        },
    }
    for dotted, value in extra.items():
        node = settings
        parts = dotted.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return settings


def write_config(path: Path, settings: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(settings))
    return path


def state_dict_of(directory: Path):
    """Every tensor of a saved encoder (backbone + LRN), by name."""
    from safetensors.torch import load_file

    tensors = {}
    for file in sorted(Path(directory).rglob("*.safetensors")):
        for key, value in load_file(str(file)).items():
            tensors[f"{file.relative_to(directory)}::{key}"] = value
    return tensors


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def one_thread():
    """Context for tiny-model tests: one intra-op thread (tiny ops drown in thread hand-offs
    on a busy 2-core machine); restores the previous count."""
    import contextlib

    import torch

    @contextlib.contextmanager
    def _ctx():
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    return _ctx()


class StopTraining(Exception):
    """Raised by :func:`stop_at_checkpoint` to interrupt a run as a kill would."""


def stop_at_checkpoint(step: int):
    """A trainer callback that interrupts the run right after the checkpoint of ``step``."""
    from prosper.training.trainer import Callback

    class StopAt(Callback):
        def on_checkpoint(self, trainer, at_step, path):
            if at_step == step:
                raise StopTraining()

    return StopAt()


def same_weights(a: Path, b: Path) -> bool:
    """Whether two saved encoders hold exactly the same tensors."""
    import torch

    x, y = state_dict_of(a), state_dict_of(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
