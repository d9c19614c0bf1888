"""Ranking losses against hand-computed values."""

import math

import pytest
import torch

from prosper.plugins import get_registry
from prosper.components import TrainingBatch
from prosper.training.losses.in_batch_nll import InBatchNLLLoss
from prosper.training.losses.margin_mse import MarginMSELoss
from prosper.training.losses.params import InBatchNLLParams

Q = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]])  # norms 5 and 2
D = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]])


def test_unbound_loss_scores_with_eq11():
    # q0/5 = [.6,.8,0]; q1/2 = [0,0,1]: the paper's rule until the trainer binds the model's
    expected = torch.tensor([[1.4, 1.6], [0.0, 1.0]])
    assert torch.allclose(InBatchNLLLoss().score(Q, D), expected)


def _nll(scores, target):
    return -scores[target] + math.log(sum(math.exp(s) for s in scores))


def test_in_batch_nll_hand_computed():
    loss = InBatchNLLLoss()(Q, D, TrainingBatch())
    expected = (_nll([1.4, 1.6], 0) + _nll([0.0, 1.0], 1)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_temperature_divides_scores():
    loss = InBatchNLLLoss(InBatchNLLParams(temperature=0.5))(Q, D, TrainingBatch())
    expected = (_nll([2.8, 3.2], 0) + _nll([0.0, 2.0], 1)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_hard_negatives_join_the_denominator():
    negs = torch.tensor([[0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])  # rows 2, 3: hard negatives of q0, q1
    items = torch.cat([D, negs])
    loss = InBatchNLLLoss()(Q, items, TrainingBatch(num_negatives=1))
    # every query sees all 4 items: q0 scores [1.4, 1.6, 0, 0.6]; q1 [0, 1, 3, 0]
    expected = (_nll([1.4, 1.6, 0.0, 0.6], 0) + _nll([0.0, 1.0, 3.0, 0.0], 1)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_false_negatives_are_masked():
    # item 1 (index 11) is also relevant to query 0: it leaves q0's denominator
    batch = TrainingBatch(item_index=torch.tensor([10, 11]), positive_index=torch.tensor([[10, 11], [11, -1]]))
    loss = InBatchNLLLoss()(Q, D, batch)
    expected = (_nll([1.4], 0) + _nll([0.0, 1.0], 1)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    unmasked = InBatchNLLLoss(InBatchNLLParams(mask_false_negatives=False))(Q, D, batch)
    assert unmasked.item() == pytest.approx((_nll([1.4, 1.6], 0) + _nll([0.0, 1.0], 1)) / 2, rel=1e-6)


def test_custom_score_fn_is_used():
    loss = InBatchNLLLoss()
    loss.score_fn = lambda q, d: q @ d.T  # no normalisation
    value = loss(Q, D, TrainingBatch()).item()
    expected = (_nll([7.0, 8.0], 0) + _nll([0.0, 2.0], 1)) / 2
    assert value == pytest.approx(expected, rel=1e-6)


def test_margin_mse_hand_computed():
    negs = torch.tensor([[0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    items = torch.cat([D, negs])
    teacher = torch.tensor([[5.0, 4.0], [2.0, 1.5]])
    value = MarginMSELoss()(Q, items, TrainingBatch(num_negatives=1, teacher_scores=teacher)).item()
    # own negatives: q0 . [0,0,3] = 0, q1 . [1,0,0] = 0
    # student margins: q0: 1.4 - 0 = 1.4 vs teacher 1.0; q1: 1.0 - 0 = 1.0 vs teacher 0.5
    expected = ((1.4 - 1.0) ** 2 + (1.0 - 0.5) ** 2) / 2
    assert value == pytest.approx(expected, rel=1e-6)


def test_margin_mse_needs_teacher():
    from prosper.errors import ConfigError

    with pytest.raises(ConfigError, match="teacher"):
        MarginMSELoss()(Q, D, TrainingBatch(num_negatives=0))


def test_losses_registered_and_gradients_flow():
    registry = get_registry()
    assert {"in_batch_nll", "margin_mse"} <= set(registry.names("loss"))
    loss = registry.build("loss", {"name": "in_batch_nll", "temperature": 0.1})
    q = Q.clone().requires_grad_(True)
    loss(q, D, TrainingBatch()).backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()
