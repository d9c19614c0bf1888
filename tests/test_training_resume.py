"""Fault tolerance: a run killed with SIGKILL after a checkpoint, then resumed with
``prosper train --resume``, ends with exactly the weights of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from tests.training_helpers import build_backbone, build_shop, one_thread, overrides, read_jsonl, state_dict_of, write_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from prosper.settings import load_settings
    from prosper.training.trainer import Callback, train

    class KillAfter(Callback):
        def on_checkpoint(self, trainer, step, path):
            if step == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    train(load_settings(sys.argv[1], environ={}), callbacks=[KillAfter()])
    """
)


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROSPER_")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=REPO, TOKENIZERS_PARALLELISM="false")
    return env


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, clean_env):
    build_shop(tmp_path)
    backbone = build_backbone(tmp_path, "qwen")
    extra = dict(train__max_steps=8, train__save_every=2, train__eval_every=4)
    killed_cfg = write_config(tmp_path / "killed.yaml", overrides(tmp_path, backbone, out="killed", **extra))
    full_cfg = write_config(tmp_path / "full.yaml", overrides(tmp_path, backbone, out="full", **extra))

    proc = subprocess.run([sys.executable, "-c", KILLER, str(killed_cfg), "4"], env=_env(), capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert (tmp_path / "killed" / "checkpoints" / "step-000004").is_dir()
    assert not (tmp_path / "killed" / "final").exists()

    # resume and the reference run in this process (one intra-op thread, like the child)
    from prosper.cli.app import main

    with one_thread():
        assert main(["train", "--config", str(killed_cfg), "--resume"]) == 0
        assert main(["train", "--config", str(full_cfg)]) == 0

    a, b = state_dict_of(tmp_path / "full" / "final"), state_dict_of(tmp_path / "killed" / "final")
    assert a.keys() == b.keys() and len(a) > 0
    assert all(torch.equal(a[k], b[k]) for k in a)
    full_log = [r for r in read_jsonl(tmp_path / "full" / "metrics.jsonl") if r["event"] == "train"]
    killed_log = [r for r in read_jsonl(tmp_path / "killed" / "metrics.jsonl") if r["event"] == "train"]
    assert [r["step"] for r in killed_log] == list(range(1, 9))
    assert [r["loss"] for r in killed_log] == [r["loss"] for r in full_log]
