"""Tiny models and data the contract checks build (seconds on a CPU, nothing downloaded)."""

from __future__ import annotations

from pathlib import Path


def tiny_shop(root: Path) -> Path:
    """A synthetic BEIR folder of 120 products and 90 queries (built once per ``root``)."""
    from prosper.demo.synth import generate

    shop = root / "shop"
    if not (shop / "corpus.jsonl").exists():
        generate(shop, seed=0, n_products=120, n_queries=90)
    return shop


def tiny_backbone(root: Path, kind: str = "causal") -> Path:
    """A random 1-layer Qwen2 (``causal``) or BERT (``mlm``) with a tokenizer trained on the shop."""
    from prosper.data.collections import load_texts
    from prosper.demo.scratch import build_random_causal_lm, build_random_masked_lm, train_tokenizer

    out = root / f"tiny-{kind}"
    if (out / "config.json").exists():
        return out
    shop = tiny_shop(root)
    texts = list(load_texts(shop, "item").values()) + list(load_texts(shop, "query").values())
    if kind == "causal":
        tokenizer = train_tokenizer(texts, vocab_size=320, kind="bpe")
        return build_random_causal_lm(tokenizer, out, hidden_size=32, layers=1, heads=2)
    tokenizer = train_tokenizer(texts, vocab_size=320, kind="wordpiece")
    return build_random_masked_lm(tokenizer, out, hidden_size=32, layers=1, heads=2)


def model_settings(backbone: Path, name: str = "qwen"):
    from prosper.settings import ModelSettings

    return ModelSettings.model_validate(
        {
            "backbone": {"name": name, "path": str(backbone)},
            "max_length": 24,
            "lfw": {"k_query": 24, "k_item": 48},
            "precision": "fp32",
            "device": "cpu",
        }
    )


def training_settings(root: Path, backbone: Path, loss: dict, regularizers: list[dict], out: str):
    """Settings of a 4-step CPU training run on the tiny shop."""
    from prosper.settings import load_settings

    return load_settings(
        overrides={
            "model": model_settings(backbone).model_dump(mode="json"),
            "data": {"path": str(tiny_shop(root)), "max_dev_queries": 10, "max_dev_items": 40},
            "train": {
                "loss": loss,
                "regularizers": regularizers,
                "batch_size": 8,
                "max_steps": 4,
                "warmup_steps": 1,
                "optimizer": {"name": "adamw", "lr": 3e-3},
                "target_terms": None,
                "amp": "none",
                "seed": 0,
                "output_dir": str(root / out),
                "save_every": 4,
                "eval_every": 4,
                "log_every": 1,
                "progress": False,
            },
        },
        environ={},
    )


def sample_texts() -> tuple[list[str], list[str]]:
    """(queries, items): one small batch, item i relevant to query i."""
    queries = ["oak nightstand", "cordless drill 18v", "white paint", "led bulb 60w", "garden hose", "door knob"]
    items = [
        "Oak Nightstand with 2 Drawers",
        "18V Cordless Drill Kit",
        "Interior White Paint 1 gal",
        "LED Bulb 60W Soft White",
        "Expandable Garden Hose 50 ft",
        "Brushed Nickel Door Knob",
    ]
    return queries, items
