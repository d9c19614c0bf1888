"""Regularizers against hand-computed values, and their scheduled weights."""

import math

import pytest
import torch

from prosper.plugins import get_registry
from prosper.training.regularizers.flops import FlopsRegularizer
from prosper.training.regularizers.l0 import L0Params, L0Regularizer
from prosper.training.regularizers.l1 import L1Regularizer

W = torch.tensor([[1.0, 0.0, 2.0, 0.0], [3.0, 0.0, 0.0, 0.5]])


def test_flops_hand_computed():
    # column means of |w|: [2, 0, 1, 0.25] -> 4 + 0 + 1 + 0.0625
    assert FlopsRegularizer().penalty(W).item() == pytest.approx(5.0625)


def test_flops_gradient():
    w = W.clone().requires_grad_(True)
    FlopsRegularizer().penalty(w).backward()
    # d/dw_ij Σ_k (mean_i |w_ik|)^2 = 2 * mean_j / B * sign(w_ij); means [2, 0, 1, .25], B = 2
    expected = torch.tensor([[2.0, 0.0, 1.0, 0.0], [2.0, 0.0, 0.0, 0.25]])
    assert torch.allclose(w.grad, expected)


def test_l1_hand_computed():
    # row sums 3 and 3.5 -> mean 3.25
    assert L1Regularizer().penalty(W).item() == pytest.approx(3.25)


def test_l0_surrogate_hand_computed():
    eps = 0.1
    reg = L0Regularizer(L0Params(epsilon=eps))
    norm = math.log(1 + 1 / eps)
    row0 = math.log(1 + 1 / eps) + math.log(1 + 2 / eps)
    row1 = math.log(1 + 3 / eps) + math.log(1 + 0.5 / eps)
    assert reg.penalty(W).item() == pytest.approx((row0 + row1) / 2 / norm, rel=1e-6)


def test_l0_counts_unit_weights_and_ignores_zeros():
    w = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    assert L0Regularizer(L0Params(epsilon=0.01)).penalty(w).item() == pytest.approx(3.0)


def test_registered_and_scheduled():
    registry = get_registry()
    assert {"flops", "l0", "l1"} <= set(registry.names("regularizer"))
    reg = registry.build(
        "regularizer", {"name": "flops", "lambda_query": 5e-3, "lambda_item": 1e-3, "schedule": "quadratic", "ramp_steps": 400}
    )
    assert reg.weight(200, "query") == pytest.approx(5e-3 * 0.25)
    assert reg.weight(200, "item") == pytest.approx(1e-3 * 0.25)
    assert reg.weight(800, "item") == pytest.approx(1e-3)
    lin = registry.build("regularizer", {"name": "l1", "lambda_query": 1.0, "lambda_item": 2.0, "schedule": "linear", "ramp_steps": 10})
    assert lin.weight(5, "item") == pytest.approx(1.0)
    const = registry.build("regularizer", {"name": "l0", "lambda_query": 0.3, "schedule": "constant"})
    assert const.weight(0, "query") == pytest.approx(0.3)
    with pytest.raises(ValueError):
        const.weight(1, "doc")


def test_bad_params_name_the_field():
    from prosper.errors import ConfigError

    with pytest.raises(ConfigError, match="lambda_query"):
        get_registry().validate("regularizer", {"name": "flops", "lambda_query": -1}, "train.regularizers[0]")
