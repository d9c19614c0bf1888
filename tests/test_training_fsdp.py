"""``train.strategy: fsdp`` with two processes on the CPU (gloo), FSDP2's ``fully_shard``: the
same trajectory as DDP, an exact resume, single-process checkpoints.

One launch runs ten trainings in a row (a launch costs more than a tiny run): DDP, FSDP,
FSDP stopped after its step-2 checkpoint and resumed, LoRA + FSDP (whole, stopped and resumed)
and LoRA + DDP, then a BERT backbone both ways. The Qwen has tied embeddings (like
Qwen2.5-0.5B/3B) and two layers; BERT ties its MLM decoder to the embeddings (which then stay in
the root unit) and has a head bias; max pooling and two accumulated micro-batches exercise the
directly applied LM head and the unsynchronised backward.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from prosper.errors import ConfigError
from prosper.settings import load_settings
from tests.training_helpers import (
    build_backbone,
    build_shop,
    overrides,
    read_jsonl,
    same_weights,
    state_dict_of,
    write_config,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Each rank runs the plan in order. fit() leaves its process group at the end; the next run
# rendezvouses on a port of its own (a group re-made on the same store would wait forever).
WORKER = textwrap.dedent(
    """
    import json, os, sys
    from prosper.settings import load_settings
    from prosper.training.trainer import Trainer
    from tests.training_helpers import StopTraining, stop_at_checkpoint

    base = int(os.environ["MASTER_PORT"])
    for i, (config, stop, resume) in enumerate(json.loads(sys.argv[1])):
        os.environ["MASTER_PORT"] = str(base + i)
        callbacks = [stop_at_checkpoint(stop)] if stop else []
        try:
            Trainer(load_settings(config, environ={}), resume=resume, callbacks=callbacks).fit()
        except StopTraining:
            pass
    """
)


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports nobody listens on."""
    import socket

    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count >= 65536:
            continue
        try:
            sockets = []
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free ports")


def _launch(script: Path, plan: list, world_size: int = 2, timeout: int = 600) -> None:
    """What ``torchrun --standalone`` does for the trainer: the same environment variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROSPER_")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=REPO, TOKENIZERS_PARALLELISM="false", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(_free_ports(len(plan))), WORLD_SIZE=str(world_size))
    procs = [
        subprocess.Popen([sys.executable, str(script), json.dumps(plan)], env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for r in range(world_size)
    ]
    try:
        errors = [p.communicate(timeout=timeout)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, err in zip(procs, errors):
        assert p.returncode == 0, err.decode()[-4000:]


def _backbone(root: Path) -> Path:
    from prosper.data.collections import load_texts
    from prosper.demo.scratch import build_random_causal_lm, train_tokenizer

    shop = root / "shop"
    texts = list(load_texts(shop, "item").values()) + list(load_texts(shop, "query").values())
    tokenizer = train_tokenizer(texts, vocab_size=320, kind="bpe")
    return build_random_causal_lm(tokenizer, root / "qwen-tied", hidden_size=32, layers=2, heads=2,
                                  tie_word_embeddings=True)


def _config(root: Path, backbone: Path, out: str, strategy: str, name: str = "qwen", **extra) -> str:
    settings = overrides(
        root, backbone, out=out, name=name, train__max_steps=4, train__save_every=2, train__eval_every=3, train__batch_size=4,
        train__grad_accumulation=2, train__strategy=strategy, model__pooling="max",
        train__loss={"name": "in_batch_nll", "gather": True}, **extra,
    )
    return str(write_config(root / f"{out}.yaml", settings))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp")
    build_shop(root)
    backbone = _backbone(root)
    bert = build_backbone(root, "bert")
    lora = {"r": 4, "alpha": 8.0, "dropout": 0.1, "target_modules": ["q_proj", "v_proj", "down_proj"]}
    plan = [
        (_config(root, backbone, "ddp", "ddp"), 0, False),
        (_config(root, backbone, "fsdp", "fsdp"), 0, False),
        (_config(root, backbone, "cut", "fsdp"), 2, False),
        (_config(root, backbone, "cut", "fsdp"), 0, True),
        (_config(root, backbone, "lora", "fsdp", model__lora=lora), 0, False),
        (_config(root, backbone, "lora-ddp", "ddp", model__lora=lora), 0, False),
        (_config(root, backbone, "lora-cut", "fsdp", model__lora=lora), 2, False),
        (_config(root, backbone, "lora-cut", "fsdp", model__lora=lora), 0, True),
        (_config(root, bert, "bert-ddp", "ddp", name="bert"), 0, False),
        (_config(root, bert, "bert-fsdp", "fsdp", name="bert"), 0, False),
    ]
    script = root / "worker.py"
    script.write_text(WORKER)
    _launch(script, plan)
    return root, backbone


@pytest.mark.slow
def test_fsdp_follows_ddp(runs):
    """Sharded and replicated training are the same maths: equal losses, near-equal weights
    (reduce-scatter sums in another order than all-reduce), the same checkpoint files."""
    root, _ = runs
    ddp, fsdp = state_dict_of(root / "ddp" / "final"), state_dict_of(root / "fsdp" / "final")
    assert ddp.keys() == fsdp.keys() and len(ddp) > 10  # tied embeddings stored once, as DDP does
    for key in ddp:
        assert torch.allclose(ddp[key], fsdp[key], rtol=1e-4, atol=1e-6), key
    q = "model.safetensors::model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(fsdp[f"backbone/{q}"], state_dict_of(root / "qwen-tied")[q])  # it trained
    logs = {name: [r for r in read_jsonl(root / name / "metrics.jsonl") if r["event"] == "train"] for name in ("ddp", "fsdp")}
    assert [r["loss"] for r in logs["fsdp"]] == pytest.approx([r["loss"] for r in logs["ddp"]], rel=1e-5)
    assert [r["grad_norm"] for r in logs["fsdp"]] == pytest.approx([r["grad_norm"] for r in logs["ddp"]], rel=1e-4)
    evals = [r for r in read_jsonl(root / "fsdp" / "metrics.jsonl") if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [3, 4]  # validation ran (on every rank) and was logged once
    assert (root / "fsdp" / "best" / "prosper.yaml").is_file()
    ckpt = root / "fsdp" / "checkpoints" / "step-000004" / "trainer_state"
    assert {p.name for p in ckpt.iterdir()} >= {"optimizer.pt", "scheduler.pt", "state.json", "rng-rank0.pt", "rng-rank1.pt"}
    optimizer = torch.load(ckpt / "optimizer.pt", weights_only=True)
    assert "lrn.fc.weight" in optimizer["state"]  # the full optimizer state, keyed by parameter name
    assert optimizer["state"]["lrn.fc.weight"]["exp_avg"].shape == (320, 32)


@pytest.mark.slow
def test_fsdp_trains_a_masked_lm_like_ddp(runs):
    root, _ = runs
    ddp, fsdp = state_dict_of(root / "bert-ddp" / "final"), state_dict_of(root / "bert-fsdp" / "final")
    assert ddp.keys() == fsdp.keys() and len(ddp) > 10
    for key in ddp:
        assert torch.allclose(ddp[key], fsdp[key], rtol=1e-4, atol=1e-6), key
    logs = {n: [r["loss"] for r in read_jsonl(root / n / "metrics.jsonl") if r["event"] == "train"]
            for n in ("bert-ddp", "bert-fsdp")}
    assert logs["bert-fsdp"] == pytest.approx(logs["bert-ddp"], rel=1e-5)


@pytest.mark.slow
def test_fsdp_resume_is_exact(runs):
    root, _ = runs
    assert same_weights(root / "fsdp" / "final", root / "cut" / "final")
    full = [r for r in read_jsonl(root / "fsdp" / "metrics.jsonl") if r["event"] == "train"]
    cut = [r for r in read_jsonl(root / "cut" / "metrics.jsonl") if r["event"] == "train"]
    assert [r["step"] for r in cut] == [1, 2, 3, 4]
    assert [r["loss"] for r in cut] == [r["loss"] for r in full]


@pytest.mark.slow
def test_fsdp_checkpoint_loads_in_one_process(runs):
    """The gathered checkpoint is the single-process format: ``SparseEncoder.load`` gives the
    vectors of the DDP model (to float tolerance)."""
    from prosper.modeling.encoder import SparseEncoder

    root, _ = runs
    texts = ["cordless drill with battery", "white ceramic tile", "garden hose"]
    a = SparseEncoder.load(root / "fsdp" / "final", device="cpu").encode(texts, side="item")
    b = SparseEncoder.load(root / "ddp" / "final", device="cpu").encode(texts, side="item")
    assert a.to_dense().shape == b.to_dense().shape and a.nnz.min() > 0
    assert torch.allclose(torch.as_tensor(a.to_dense()), torch.as_tensor(b.to_dense()), atol=1e-4)


@pytest.mark.slow
def test_lora_under_fsdp_saves_a_merged_model(runs):
    root, backbone = runs
    final = state_dict_of(root / "lora" / "final")
    assert final.keys() == state_dict_of(root / "ddp" / "final").keys()  # merged: no adapter tensors
    base = state_dict_of(backbone)
    embed = "model.safetensors::model.embed_tokens.weight"
    assert torch.equal(final[f"backbone/{embed}"], base[embed])  # frozen
    q = "model.safetensors::model.layers.0.self_attn.q_proj.weight"
    k = "model.safetensors::model.layers.0.self_attn.k_proj.weight"
    assert not torch.equal(final[f"backbone/{q}"], base[q])  # adapted
    assert torch.equal(final[f"backbone/{k}"], base[k])  # not targeted
    trainable = state_dict_of(root / "lora" / "checkpoints" / "step-000004" / "trainer_state")
    names = {key.split("::")[1] for key in trainable}
    assert "lrn.fc.weight" in names and any(".lora_A." in n for n in names)
    assert not any("embed_tokens" in n or "base_layer" in n for n in names)
    assert same_weights(root / "lora" / "final", root / "lora-cut" / "final")  # exact resume
    replicated = state_dict_of(root / "lora-ddp" / "final")
    assert replicated.keys() == final.keys()
    for key in final:
        assert torch.allclose(final[key], replicated[key], rtol=1e-4, atol=1e-6), key


def test_fsdp_refuses_what_cannot_shard(clean_env):
    from prosper.training.fsdp import check_settings

    fp16 = load_settings(overrides=["train.strategy=fsdp", "train.amp=fp16"], environ={})
    with pytest.raises(ConfigError, match="train.amp"):
        check_settings(fp16.train)
    eight = load_settings(overrides=["train.strategy=fsdp", "train.optimizer.name=adamw8bit"], environ={})
    with pytest.raises(ConfigError, match="train.optimizer.name"):
        check_settings(eight.train)
    with pytest.raises(ConfigError, match="train.strategy"):
        load_settings(overrides=["train.strategy=zero3"], environ={})
