"""The trainer end to end on a tiny random model: loss falls, outputs, AMP, 8-bit AdamW, guards."""

from __future__ import annotations

import pytest
import torch

from prosper.errors import CheckpointError, ConfigError
from prosper.settings import load_settings
from prosper.training.checkpointing import list_checkpoints
from tests.training_helpers import (
    StopTraining,
    build_backbone,
    build_shop,
    overrides,
    read_jsonl,
    same_weights,
    stop_at_checkpoint,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    build_shop(root)
    return root, build_backbone(root, "qwen")


def _train(root, backbone, out, resume=False, callbacks=(), **extra):
    from prosper.training.trainer import train

    settings = load_settings(overrides=overrides(root, backbone, out=out, **extra), environ={})
    return train(settings, resume=resume, callbacks=callbacks)


def test_loss_falls_and_outputs_are_written(tiny):
    root, backbone = tiny
    result = _train(root, backbone, "falls", train__max_steps=24, train__save_every=12, train__eval_every=12,
                    train__regularizers=[])
    logs = [r for r in read_jsonl(root / "falls" / "metrics.jsonl") if r["event"] == "train"]
    assert [r["step"] for r in logs] == list(range(1, 25))
    first = sum(r["loss"] for r in logs[:6]) / 6
    last = sum(r["loss"] for r in logs[-6:]) / 6
    assert last < first * 0.9, (first, last)
    record = logs[-1]
    for key in ("loss", "rank_loss", "nnz_query", "nnz_item", "lr", "grad_norm", "steps_per_s", "epoch"):
        assert key in record
    evals = [r for r in read_jsonl(root / "falls" / "metrics.jsonl") if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [12, 24] and "mrr@10" in evals[0] and "recall@100" in evals[0]
    assert (result.final_dir / "prosper.yaml").is_file() and (result.best_dir / "prosper.yaml").is_file()
    assert [step for step, _ in list_checkpoints(root / "falls")] == [12, 24]
    # the final model reloads and gives the weights the trainer ended with
    from prosper.modeling.encoder import SparseEncoder

    loaded = SparseEncoder.load(result.final_dir, device="cpu")
    assert loaded.vocab_size > 0
    assert same_weights(result.final_dir, root / "falls" / "checkpoints" / "step-000024")


def test_regularizer_values_are_logged_with_schedule(tiny):
    root, backbone = tiny
    _train(root, backbone, "reg", train__eval_every=100)
    logs = [r for r in read_jsonl(root / "reg" / "metrics.jsonl") if r["event"] == "train"]
    # quadratic ramp over 4 steps: λ_q (t/4)^2 at t = 1..4, then flat
    assert [round(r["lambda_flops_query"], 8) for r in logs] == pytest.approx(
        [5e-3 / 16, 5e-3 / 4, 5e-3 * 9 / 16, 5e-3, 5e-3, 5e-3]
    )
    assert all(r["flops_query"] > 0 and r["flops_item"] > 0 for r in logs)
    # lr: warm-up 1 step then linear decay to 0 at step 6
    assert [r["lr"] for r in logs] == pytest.approx([3e-3 * f for f in (1, 5 / 5, 4 / 5, 3 / 5, 2 / 5, 1 / 5)])


def test_existing_checkpoints_need_resume(tiny):
    root, backbone = tiny
    _train(root, backbone, "again", train__max_steps=2, train__eval_every=100)
    with pytest.raises(ConfigError, match="--resume"):
        _train(root, backbone, "again", train__max_steps=2)


def test_resume_rejects_changed_settings(tiny):
    root, backbone = tiny
    _train(root, backbone, "changed", train__max_steps=2, train__eval_every=100)
    with pytest.raises(ConfigError, match="train.optimizer.lr"):
        _train(root, backbone, "changed", resume=True, train__max_steps=2, train__optimizer={"name": "adamw", "lr": 1e-3})


def test_resume_in_process_matches_uninterrupted(tiny):
    """Stop after the step-2 checkpoint (an exception in a callback), resume, compare weights."""
    root, backbone = tiny
    full = _train(root, backbone, "full", train__eval_every=100)
    with pytest.raises(StopTraining):
        _train(root, backbone, "cut", train__eval_every=100, callbacks=[stop_at_checkpoint(2)])
    resumed = _train(root, backbone, "cut", resume=True, train__eval_every=100)
    assert same_weights(full.final_dir, resumed.final_dir)
    steps = [r["step"] for r in read_jsonl(root / "cut" / "metrics.jsonl") if r["event"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]  # the log reads like one run


def test_partial_checkpoint_is_ignored_and_cleaned(tiny):
    from prosper.training.trainer import Callback

    class Stop(Exception):
        pass

    class StopAt(Callback):
        def on_checkpoint(self, trainer, step, path):
            raise Stop()

    root, backbone = tiny
    with pytest.raises(Stop):
        _train(root, backbone, "partial", train__max_steps=4, train__eval_every=100, callbacks=[StopAt()])
    junk = root / "partial" / "checkpoints" / "step-000004.tmp-999"
    (junk / "trainer_state").mkdir(parents=True)
    (junk / "trainer_state" / "state.json").write_text("{")
    result = _train(root, backbone, "partial", resume=True, train__max_steps=4, train__eval_every=100)
    assert result.steps == 4 and not junk.exists()


def test_corrupt_state_is_a_checkpoint_error(tiny):
    root, backbone = tiny
    _train(root, backbone, "corrupt", train__max_steps=2, train__eval_every=100)
    (root / "corrupt" / "checkpoints" / "step-000002" / "trainer_state" / "optimizer.pt").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="optimizer.pt"):
        _train(root, backbone, "corrupt", resume=True, train__max_steps=2, train__eval_every=100)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_runs_or_says_why(tiny, amp):
    from prosper.errors import DeviceError

    root, backbone = tiny
    try:
        result = _train(root, backbone, f"amp-{amp}", train__amp=amp, train__max_steps=2, train__eval_every=100)
    except DeviceError as exc:
        assert "train.amp" in str(exc)
        return
    assert result.steps == 2


def test_adamw8bit_and_accumulation(tiny):
    root, backbone = tiny
    result = _train(
        root, backbone, "8bit", train__optimizer={"name": "adamw8bit", "lr": 1e-3}, train__grad_accumulation=2,
        train__max_steps=2, train__eval_every=100,
    )
    logs = [r for r in read_jsonl(root / "8bit" / "metrics.jsonl") if r["event"] == "train"]
    assert result.steps == 2 and logs[-1]["epoch"] > 0


def test_collapse_guard_messages():
    from prosper.training.collapse import CollapseGuard

    guard = CollapseGuard(1000, {"query": 10, "item": 20}, ramp_end=5, dense_fraction=0.9)
    assert guard.check(1, {"query": 10.0, "item": 20.0}) == []  # dense during the ramp is expected
    zero = guard.check(2, {"query": 0.0, "item": 5.0})
    assert len(zero) == 1 and "query vectors collapsed to all-zero" in zero[0]
    assert guard.check(3, {"query": 0.0, "item": 5.0}) == []  # once per episode
    dense = guard.check(6, {"query": 3.0, "item": 19.0})
    assert len(dense) == 1 and "item vectors stay dense" in dense[0]


def test_amp_auto_is_off_on_cpu_and_bf16_is_honoured():
    import contextlib

    import torch

    from prosper.settings import load_settings
    from prosper.training.trainer import Trainer

    trainer = Trainer.__new__(Trainer)  # only the settings matter to _amp
    trainer.settings = load_settings(environ={})
    assert trainer.settings.train.amp == "auto"
    context, scaler = trainer._amp(torch.device("cpu"))
    assert context is contextlib.nullcontext and scaler is None
    trainer.settings = load_settings(overrides=["train.amp=bf16"], environ={})
    context, scaler = trainer._amp(torch.device("cpu"))
    with context():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
