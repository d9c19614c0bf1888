"""λ schedules (quadratic ramp of the paper, linear, constant) and the LR schedule."""

import math

import pytest

from prosper.training.optim import lr_factor
from prosper.training.schedules import ramp_factor, scheduled_weight


@pytest.mark.parametrize(
    "schedule, step, expected",
    [
        ("quadratic", 0, 0.0),
        ("quadratic", 100, 0.0625),  # (100/400)^2
        ("quadratic", 200, 0.25),
        ("quadratic", 400, 1.0),
        ("quadratic", 1000, 1.0),
        ("linear", 100, 0.25),
        ("linear", 300, 0.75),
        ("linear", 800, 1.0),
        ("constant", 0, 1.0),
        ("constant", 50, 1.0),
    ],
)
def test_ramp_factor(schedule, step, expected):
    assert ramp_factor(schedule, step, 400) == pytest.approx(expected)


def test_paper_lambdas_at_chosen_steps():
    # λ_q = 5e-3, T = 400: λ·min(1, t/T)^2
    assert scheduled_weight(5e-3, "quadratic", 40, 400) == pytest.approx(5e-3 * 0.01)
    assert scheduled_weight(1e-3, "quadratic", 300, 400) == pytest.approx(1e-3 * 0.5625)
    assert scheduled_weight(1e-3, "quadratic", 10_000, 400) == pytest.approx(1e-3)


def test_no_ramp_means_full_weight():
    assert ramp_factor("quadratic", 0, 0) == 1.0
    assert ramp_factor("linear", 3, 0) == 1.0


def test_unknown_schedule():
    with pytest.raises(ValueError, match="unknown schedule"):
        ramp_factor("cosine", 1, 10)


def test_lr_warmup_then_linear_decay():
    # warm-up 4 steps, 12 in all: 1/4, 2/4, 3/4, 4/4 then 8/8 ... 1/8
    factors = [lr_factor(s, 4, 12) for s in range(12)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4:] == pytest.approx([1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8])
    assert lr_factor(12, 4, 12) == 0.0
    assert math.isclose(lr_factor(0, 0, 10), 1.0)


def test_lrn_learning_rate_gets_groups_of_its_own():
    import torch

    from prosper.settings import OptimizerSettings
    from prosper.training.optim import build_optimizer

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Linear(3, 4)
            self.lrn = torch.nn.Module()
            self.lrn.fc = torch.nn.Linear(4, 5)

    model = Tiny()
    groups = build_optimizer(model, OptimizerSettings(lr=1e-4, lrn_lr=1e-2, weight_decay=0.1)).param_groups
    by_param = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert by_param[id(model.backbone.weight)] == (1e-4, 0.1) and by_param[id(model.backbone.bias)] == (1e-4, 0.0)
    assert by_param[id(model.lrn.fc.weight)] == (1e-2, 0.1) and by_param[id(model.lrn.fc.bias)] == (1e-2, 0.0)
    plain = build_optimizer(model, OptimizerSettings(lr=1e-4)).param_groups
    assert len(plain) == 2 and {g["lr"] for g in plain} == {1e-4}
