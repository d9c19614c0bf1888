"""``torchrun --nproc_per_node 2`` on the CPU (gloo): both ranks end with identical weights."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from tests.training_helpers import build_backbone, build_shop, overrides, read_jsonl, write_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = textwrap.dedent(
    """
    import os, sys, torch
    from prosper.settings import load_settings
    from prosper.training.trainer import Trainer

    trainer = Trainer(load_settings(sys.argv[1], environ={}))
    trainer.fit()
    state = {k: v.detach().clone() for k, v in trainer.encoder.state_dict().items()}
    torch.save(state, os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.pt"))
    """
)


@pytest.mark.slow
def test_two_processes_stay_in_sync(tmp_path):
    build_shop(tmp_path)
    backbone = build_backbone(tmp_path, "qwen")
    settings = overrides(tmp_path, backbone, out="ddp", train__max_steps=3, train__save_every=3, train__eval_every=100,
                         train__batch_size=4, train__loss={"name": "in_batch_nll", "gather": True})
    config = write_config(tmp_path / "ddp.yaml", settings)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROSPER_")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=REPO, TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(config), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=180)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    start = [r for r in read_jsonl(tmp_path / "ddp" / "metrics.jsonl") if r["event"] == "start"]
    assert start[0]["world_size"] == 2
    assert (tmp_path / "ddp" / "final" / "prosper.yaml").is_file()
    assert (tmp_path / "ddp" / "checkpoints" / "step-000003" / "trainer_state" / "rng-rank1.pt").is_file()
