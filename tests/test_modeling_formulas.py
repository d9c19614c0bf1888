"""Each formula of the encoder against a hand-computed tensor (Eq. 5-11)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from prosper.modeling.lfw import focusing_window  # noqa: E402
from prosper.modeling.lrn import LiteralResidual, literal_residual  # noqa: E402
from prosper.modeling.pooling import pool  # noqa: E402
from prosper.modeling.scoring import score  # noqa: E402
from prosper.modeling.transforms import keep_terms, literal_indicator, log_saturation  # noqa: E402

L1 = math.log(2.0)  # log(1 + 1)
L3 = math.log(4.0)  # log(1 + 3)


def close(a, b, tol=1e-6):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32), atol=tol)


# -- Eq. 5 ------------------------------------------------------------------------------------
def test_log_saturation_eq5():
    x = torch.tensor([-2.0, 0.0, 1.0, 3.0])
    assert close(log_saturation(x), [0.0, 0.0, L1, L3])


# -- Eq. 6-7, pooling with an identity "head" so logits are the hidden states ----------------
HIDDEN = torch.tensor(
    [
        [[1.0, -1.0, 0.0], [3.0, 0.0, -2.0], [9.0, 9.0, 9.0]],  # last position is padding
        [[0.0, 1.0, 3.0], [-1.0, 0.0, 1.0], [2.0, -5.0, 0.0]],
    ]
)
MASK = torch.tensor([[True, True, False], [True, True, True]])
LAST = torch.tensor([1, 2])


def identity(x):
    return x


def test_pool_last_uses_only_the_last_real_position():
    out = pool("last", HIDDEN, identity, MASK, LAST)
    assert close(out, [[L3, 0.0, 0.0], [math.log(3.0), 0.0, 0.0]])


@pytest.mark.parametrize("chunk", [1, 2, 4, 100])
def test_pool_max_ignores_masked_positions_at_any_chunk_size(chunk):
    out = pool("max", HIDDEN, identity, MASK, LAST, chunk_size=chunk)
    # row 0: max(1,3)=3, max(-1,0)=0, max(0,-2)=0 ; padding (9s) ignored
    # row 1: max(0,-1,2)=2, max(1,0,-5)=1, max(3,1,0)=3
    assert close(out, [[L3, 0.0, 0.0], [math.log(3.0), L1, L3]])


def test_pool_sum_and_mean():
    s = pool("sum", HIDDEN, identity, MASK, LAST, chunk_size=2)
    m = pool("mean", HIDDEN, identity, MASK, LAST, chunk_size=2)
    row0 = [L1 + L3, 0.0, 0.0]
    row1 = [math.log(3.0), L1 + 0.0, L3 + L1]
    assert close(s, [row0, row1])
    assert close(m, [[v / 2 for v in row0], [v / 3 for v in row1]])


def test_pool_row_without_positions_is_zero():
    mask = torch.tensor([[False, False, False], [True, True, True]])
    for mode in ("last", "max", "mean", "sum"):
        out = pool(mode, HIDDEN, identity, mask, LAST)
        assert torch.all(out[0] == 0), mode


def test_pool_max_matches_naive_full_logits_with_a_linear_head_and_its_gradient():
    torch.manual_seed(0)
    head = torch.nn.Linear(4, 11)
    hidden = torch.randn(3, 5, 4, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0]], dtype=torch.bool)
    naive = (log_saturation(head(hidden)) * mask[..., None]).amax(dim=1)
    lean = pool("max", hidden, head, mask, LAST, chunk_size=3)  # chunks of rows and positions
    assert torch.allclose(lean, naive, atol=1e-6)
    g_naive = torch.autograd.grad(naive.sum(), [hidden, head.weight])
    g_lean = torch.autograd.grad(lean.sum(), [hidden, head.weight])
    for a, b in zip(g_naive, g_lean):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("shift", [-3.0, 3.0])  # mostly inactive terms (sparse backward) / dense backward
def test_pool_max_split_head_matches_naive_values_and_gradients(shift):
    torch.manual_seed(1)
    transform = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU(), torch.nn.LayerNorm(4))
    decoder = torch.nn.Linear(4, 13)
    with torch.no_grad():
        decoder.bias += shift
    hidden = torch.randn(3, 6, 4, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0]], dtype=torch.bool)

    def head(h):
        return decoder(transform(h))

    params = [hidden, decoder.weight, decoder.bias, *transform.parameters()]
    naive = (log_saturation(head(hidden)) * mask[..., None]).amax(dim=1)
    lean = pool("max", hidden, head, mask, LAST, chunk_size=6, head_split=(transform, decoder.weight, decoder.bias))
    assert torch.allclose(lean, naive, atol=1e-6)
    weights = torch.rand_like(naive)  # a non-uniform upstream gradient
    g_naive = torch.autograd.grad((naive * weights).sum(), params)
    g_lean = torch.autograd.grad((lean * weights).sum(), params)
    for a, b in zip(g_naive, g_lean):
        assert torch.allclose(a, b, atol=1e-5)


# -- literal indicator and analysis filters ---------------------------------------------------
def test_literal_indicator_excludes_masked_positions():
    ids = torch.tensor([[0, 3, 3, 1], [2, 4, 0, 0]])
    lit = torch.tensor([[False, True, True, True], [True, True, False, False]])
    assert close(literal_indicator(ids, lit, 5), [[0, 1, 0, 1, 0], [0, 0, 1, 0, 1]])


def test_keep_terms_literal_and_expansion_partition_the_vector():
    w = torch.tensor([[0.5, 2.0, 0.0, 1.5]])
    i = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    assert close(keep_terms(w, i, "literal"), [[0.5, 0, 0, 0]])
    assert close(keep_terms(w, i, "expansion"), [[0, 2.0, 0, 1.5]])
    assert close(keep_terms(w, i, "all"), w)


# -- Eq. 8-9 LRN ------------------------------------------------------------------------------
W_BASE = torch.tensor([[0.5, 2.0, 0.0, 1.0]])
W_PRIME = torch.tensor([[1.0, -1.0, 3.0, 0.5]])
IND = torch.tensor([[1.0, 0.0, 1.0, 1.0]])


def test_lrn_compensate_eq9():
    # max(w') = 3 -> residual = [2, 4, 0, 2.5]; literal terms 0, 2, 3 get it
    assert close(literal_residual(W_BASE, W_PRIME, IND, "compensate"), [[2.5, 2.0, 0.0, 3.5]])


def test_lrn_simple_addition():
    assert close(literal_residual(W_BASE, W_PRIME, IND, "add"), [[1.5, 2.0, 3.0, 1.5]])


def test_lrn_review_code_variant_uses_max_of_w():
    # max(w) = 2 -> residual = [1, 3, -1, 1.5] -> [1.5, 2, -1 -> 0 (clamped), 2.5]
    assert close(literal_residual(W_BASE, W_PRIME, IND, "review"), [[1.5, 2.0, 0.0, 2.5]])


def test_lrn_layer_applies_fc_to_the_saturated_hidden_state():
    layer = LiteralResidual(hidden_size=2, vocab_size=3)
    with torch.no_grad():
        layer.fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        layer.fc.bias.copy_(torch.tensor([0.0, 0.5, -1.0]))
    h = torch.tensor([[math.e - 1.0, -3.0]])  # log(1+ReLU(h)) = [1, 0]
    w = torch.tensor([[0.2, 0.0, 0.1]])
    ind = torch.tensor([[0.0, 1.0, 1.0]])
    # w' = [1, 0.5, 0]; max = 1 -> residual [0, 0.5, 1]
    assert close(layer(w, h, ind, "compensate", transform_hidden=True), [[0.2, 0.5, 1.1]])
    # without the transform: w' = [e-1, -2.5, e-5]; max = e-1
    e = math.e
    expect = [[0.2, 0.0 + (e - 1 + 2.5), 0.1 + (e - 1 - (e - 5))]]
    assert close(layer(w, h, ind, "compensate", transform_hidden=False), expect, tol=1e-5)


def test_lrn_init_is_xavier_with_zero_bias():
    layer = LiteralResidual(16, 64)
    bound = math.sqrt(6.0 / (16 + 64))
    assert layer.fc.weight.abs().max() <= bound and torch.all(layer.fc.bias == 0)
    assert layer.fc.weight.dtype == torch.float32


# -- Eq. 10 LFW -------------------------------------------------------------------------------
def test_lfw_keeps_top_k_only_when_more_than_k_nonzeros():
    w = torch.tensor([[0.1, 0.9, 0.0, 0.5, 0.3], [0.0, 0.0, 0.7, 0.2, 0.0]])
    out = focusing_window(w, 2)
    assert close(out, [[0.0, 0.9, 0.0, 0.5, 0.0], [0.0, 0.0, 0.7, 0.2, 0.0]])
    assert close(focusing_window(w, 5), w)


def test_lfw_gradient_flows_through_kept_weights_only():
    w = torch.tensor([[0.1, 0.9, 0.5]], requires_grad=True)
    focusing_window(w, 2).sum().backward()
    assert close(w.grad, [[0.0, 1.0, 1.0]])


# -- Eq. 11 scoring ---------------------------------------------------------------------------
Q = torch.tensor([[3.0, 4.0, 0.0]])
D = torch.tensor([[1.0, 0.0, 2.0], [0.0, 2.0, 0.0]])


@pytest.mark.parametrize(
    "scoring, expected",
    [
        ("query_l2", [[3 / 5, 8 / 5]]),
        ("none", [[3.0, 8.0]]),
        ("query_l1", [[3 / 7, 8 / 7]]),
        ("both_l2", [[3 / (5 * math.sqrt(5)), 8 / 10]]),
        ("item_l2", [[3 / math.sqrt(5), 8 / 2]]),
    ],
)
def test_scoring_eq11_and_variants(scoring, expected):
    assert close(score(Q, D, scoring), expected)


def test_scoring_zero_query_gives_zero_not_nan():
    assert torch.all(score(torch.zeros(1, 3), D, "query_l2") == 0)
