"""Term budgets (train.target_terms): the controller's arithmetic, its closed loop on a simulated
plant, the LFW cap, and a real training run that resumes exactly with the controller's state."""

from __future__ import annotations

import math

import pytest

from prosper.settings import LFWSettings, TargetTermsSettings, load_settings
from prosper.training.budget import TermBudget, capped_window
from prosper.training.regularizers.flops import FlopsParams, FlopsRegularizer
from tests.training_helpers import (
    StopTraining,
    build_backbone,
    build_shop,
    overrides,
    read_jsonl,
    same_weights,
    stop_at_checkpoint,
)


def _flops(lq=5e-3, ld=1e-3, ramp=100):
    return FlopsRegularizer(FlopsParams(lambda_query=lq, lambda_item=ld, schedule="quadratic", ramp_steps=ramp))


def test_weight_is_the_peak_lambda_times_the_multiplier_and_free_sides_keep_their_schedule():
    budget = TermBudget(TargetTermsSettings(item=64), total_steps=100)
    reg = _flops()
    assert budget.weight(reg, 1, "item") == pytest.approx(1e-3)  # no ramp: the budget ramps instead
    assert budget.weight(reg, 10, "query") == pytest.approx(5e-3 * (10 / 100) ** 2)  # untouched side
    budget.observe(1, {"query": 999.0, "item": 128.0})  # first batch: the target starts at 128
    assert budget.start == {"item": 128.0}
    assert budget.target(1, "item") == pytest.approx(128 * (64 / 128) ** (1 / 30))
    assert budget.target(30, "item") == pytest.approx(64.0) and budget.target(90, "item") == 64.0
    # 128 against a target just below 128: λ grows by rate (0.1) * log(128 / target(1))
    assert budget.multipliers()["item"] == pytest.approx(math.exp(0.1 * math.log(128 / budget.target(1, "item"))))


def test_too_narrow_lowers_lambda_down_to_the_floor_only():
    for floor in (1.0, 1e-2):
        budget = TermBudget(TargetTermsSettings(query=16, min_scale=floor), total_steps=10)
        budget.observe(1, {"query": 40.0, "item": 1.0})
        for step in range(2, 200):
            budget.observe(step, {"query": 40.0, "item": 1.0})  # too wide: λ grows
        assert budget.multipliers()["query"] > 10
        for step in range(200, 5000):
            budget.observe(step, {"query": 0.0, "item": 1.0})  # collapsed: all-zero vectors
        assert budget.multipliers()["query"] == pytest.approx(floor)
    for step in range(5000, 9000):
        budget.observe(step, {"query": 1e6, "item": 1.0})
    assert budget.multipliers()["query"] == pytest.approx(1e4)  # and bounded above


def test_closed_loop_meets_the_target_on_a_simulated_plant():
    """Width falls smoothly as λ grows, with a lag (as the optimiser's momentum gives)."""
    budget = TermBudget(TargetTermsSettings(query=16, item=64), total_steps=900)
    reg = _flops()
    width = {"query": 120.0, "item": 480.0}
    for step in range(1, 901):
        for side, free in (("query", 120.0), ("item", 480.0)):
            lam = budget.weight(reg, step, side)
            equilibrium = free / (1 + lam * (200 if side == "query" else 400))
            width[side] += 0.1 * (equilibrium - width[side])
        budget.observe(step, width)
    assert width["query"] == pytest.approx(16, rel=0.05) and width["item"] == pytest.approx(64, rel=0.05)


def test_probe_ratio_moves_the_steered_width_to_eval_mode():
    """The index sees eval-mode vectors, 20% wider here than in training mode: with the probe's
    ratio the loop meets the target in eval mode, without it it misses by 20%."""
    for probe in (0, 64):
        budget = TermBudget(TargetTermsSettings(item=64, probe=probe, probe_every=25), total_steps=900)
        assert budget.probe_due(25) == (probe > 0) and not budget.probe_due(26)
        reg = _flops()
        width = 480.0
        for step in range(1, 901):
            equilibrium = 480.0 / (1 + budget.weight(reg, step, "item") * 400)
            width += 0.1 * (equilibrium - width)
            budget.observe(step, {"query": 1.0, "item": width})
            if budget.probe_due(step):
                budget.calibrate({"item": (1.2 * width, width), "query": (1.0, 1.0)})
        eval_width = 1.2 * width
        assert eval_width == pytest.approx(64 * (1.2 if probe == 0 else 1.0), rel=0.03)
    assert budget.ratios() == {"item": pytest.approx(1.2)}  # the query side is not budgeted
    state = budget.state_dict()
    again = TermBudget(TargetTermsSettings(item=64, probe=64, probe_every=25), total_steps=900)
    again.load_state_dict(state)
    assert again.ratios() == budget.ratios() and again.state_dict() == state


def test_probe_is_a_fixed_seeded_sample_of_training_texts():
    from types import SimpleNamespace

    data = SimpleNamespace(item_texts=[f"item {i}" for i in range(100)], query_texts=["q a", "q b", "q a"] * 5)
    budget = TermBudget(TargetTermsSettings(query=4, item=8, probe=10), total_steps=10)
    budget.sample_probe(data, seed=3)
    items = budget.probe_texts["item"]
    assert len(items) == 10 == len(set(items)) and set(items) <= set(data.item_texts)
    assert sorted(budget.probe_texts["query"]) == ["q a", "q b"]  # distinct queries, at most all of them
    other = TermBudget(TargetTermsSettings(query=4, item=8, probe=10), total_steps=10)
    other.sample_probe(data, seed=3)
    assert other.probe_texts == budget.probe_texts


def test_capped_window():
    lfw = LFWSettings(k_query=256, k_item=512)
    capped = capped_window(lfw, TargetTermsSettings(query=16, item=64))
    assert (capped.k_query, capped.k_item) == (32, 128)
    assert capped_window(lfw, TargetTermsSettings(item=300)).k_item == 512  # never looser than the window
    assert not capped_window(LFWSettings(enabled=False), TargetTermsSettings(query=10)).enabled


def test_target_terms_settings_from_overrides():
    settings = load_settings(overrides=["train.target_terms={query: 16, item: 64}"], environ={})
    assert settings.train.target_terms.query == 16 and settings.train.target_terms.cap_factor == 2.0
    from prosper.errors import ConfigError

    with pytest.raises(ConfigError, match="target_terms"):
        load_settings(overrides=["train.target_terms={query: 0}"], environ={})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("budget")
    build_shop(root)
    return root, build_backbone(root, "bert")


def _train(root, backbone, out, resume=False, callbacks=(), **extra):
    from prosper.training.trainer import train

    extra.setdefault("train__target_terms", {"query": 6, "item": 12, "probe": 8, "probe_every": 2})
    settings = load_settings(overrides=overrides(root, backbone, out=out, name="bert", **extra), environ={})
    return train(settings, resume=resume, callbacks=callbacks)


@pytest.mark.usefixtures("one_torch_thread")
def test_training_steers_and_resumes_with_the_controller_state(tiny):
    from prosper.modeling.encoder import SparseEncoder

    root, backbone = tiny
    full = _train(root, backbone, "full", train__eval_every=100)
    logs = [r for r in read_jsonl(root / "full" / "metrics.jsonl") if r["event"] == "train"]
    assert all("target_item" in r and "lambda_flops_item" in r for r in logs)
    assert all("width_ratio_item" in r for r in logs)
    assert logs[0]["lambda_flops_item"] == pytest.approx(1e-3)  # starts at the peak λ, unramped
    assert logs[-1]["lambda_flops_item"] != pytest.approx(1e-3)  # and is steered from there
    saved = SparseEncoder.load(full.final_dir, device="cpu").settings.lfw
    assert (saved.k_query, saved.k_item) == (12, 24)  # cap_factor 2 x budget, kept for inference
    with pytest.raises(StopTraining):
        _train(root, backbone, "cut", train__eval_every=100, callbacks=[stop_at_checkpoint(2)])
    resumed = _train(root, backbone, "cut", resume=True, train__eval_every=100)
    assert same_weights(full.final_dir, resumed.final_dir)
    cut = [r for r in read_jsonl(root / "cut" / "metrics.jsonl") if r["event"] == "train"]
    assert [r["lambda_flops_item"] for r in cut] == [r["lambda_flops_item"] for r in logs]
    assert [r["width_ratio_item"] for r in cut] == [r["width_ratio_item"] for r in logs]



@pytest.mark.usefixtures("one_torch_thread")
def test_the_probe_measures_eval_mode_widths(tiny):
    """Without the LFW cap the random model's widths move with dropout: the run logs the probe's
    ratio from the first probe on."""
    root, backbone = tiny
    _train(root, backbone, "probe", train__eval_every=100, model__lfw__enabled=False,
           train__target_terms={"query": 6, "item": 12, "probe": 16, "probe_every": 3}, train__log_every=1)
    logs = [r for r in read_jsonl(root / "probe" / "metrics.jsonl") if r["event"] == "train"]
    ratios = [r["width_ratio_item"] for r in logs]
    assert ratios[:2] == [1.0, 1.0] and ratios[2] != 1.0 and 0.2 < ratios[2] < 5  # first probe after update 3


def test_probe_widths_are_eval_and_training_mode_widths_of_the_same_texts(tiny):
    import torch

    from prosper.contracts.fixtures import model_settings
    from prosper.modeling.encoder import SparseEncoder

    root, backbone = tiny
    base = model_settings(backbone, "bert")
    settings = base.model_copy(update={"lfw": base.lfw.model_copy(update={"enabled": False})})
    encoder = SparseEncoder.from_settings(settings, device="cpu")
    budget = TermBudget(TargetTermsSettings(item=12, probe=20), total_steps=10)  # the query side is free
    budget.probe_texts = {"item": [f"cordless drill {i} volt kit" for i in range(20)], "query": ["drill"]}
    encoder.train()
    state = torch.random.get_rng_state()
    widths = budget.probe_widths(encoder, batch_size=8)
    assert encoder.training and list(widths) == ["item"]
    eval_width, train_width = widths["item"]
    assert eval_width == pytest.approx(float(encoder.encode(budget.probe_texts["item"]).nnz.mean()))
    torch.random.set_rng_state(state)  # the same dropout masks: the same training-mode width
    assert budget.probe_widths(encoder, batch_size=8)["item"][1] == pytest.approx(train_width)
    assert train_width != pytest.approx(eval_width)  # dropout changes the width
