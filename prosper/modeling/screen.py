"""Exact SPLADE max pooling at bf16 speed: screen the vocabulary in bf16, compute the survivors in fp32.

At inference the LM head (``hidden -> |V|`` logits at every position) is nearly all of an
encoder's work: for splade-tiny, 7.8 MFLOP per token against 0.4 for the backbone. Max pooling
needs only ``m_v = max_i x_i · w_v`` and then only where ``m_v + b_v > 0`` (Eq. 5 is zero
elsewhere), which is a few hundred of 30k-150k terms per text. So the head runs once in bf16
(where the CPU has bf16 dot-product units, 2-3.5x the fp32 rate) and only to *rule terms out*:
with rounding of both inputs (``2^-8`` each) and of the output (``2^-8``), the exact fp32 logit
obeys::

    x · w  <=  ỹ + 2^-8 |ỹ| + (2^-7 + 2^-16) ‖x‖ ‖w‖        (ỹ: the bf16 result)

(Cauchy-Schwarz bounds ``Σ |x_i w_i|``; fp32 accumulation adds ~1e-5 relative). The screen uses
twice each margin. A term whose bound, maximised over the text's positions, stays at or below
``-b_v`` is zero in fp32 too; every other term (about twice the vector's width on splade-tiny)
gets its maximum recomputed in fp32 from the text's own positions. The result equals the
full fp32 head to fp32 rounding (the order of the sums differs, as between two BLAS builds).

``model.head_screen``: ``auto`` screens on CPUs with bf16 units (AVX512-BF16 or AMX) when the
head is fp32; ``on`` screens anywhere (slow where bf16 is emulated); ``off`` never.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from prosper.modeling.pooling import position_blocks

EPS_INPUTS = 2.0**-6  # 2 x (2^-7 + 2^-16): both inputs rounded to bf16, doubled for safety
EPS_OUTPUT = 2.0**-7  # 2 x 2^-8: the bf16 result rounded, doubled for safety
_SHAPE_STEP = 32  # positions per screened block are padded to a multiple of this (few oneDNN shapes)


def bf16_units() -> bool:
    """Whether this CPU has bf16 dot-product instructions (where a bf16 matmul beats fp32)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def screen_applies(mode: str, device: torch.device, weight: torch.Tensor) -> bool:
    """Resolve ``model.head_screen`` for a head weight on ``device``."""
    if mode == "off":
        return False
    if mode == "on":
        return True
    return device.type == "cpu" and weight.dtype == torch.float32 and bf16_units()


@contextmanager
def onednn(enabled: bool):
    """oneDNN switched on or off for a block, the previous state restored after it."""
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


class HeadScreen:
    """The screened max of one head's logits; keeps a bf16 copy of the weight and its row norms.

    The copy is rebuilt when the weight changes (an optimizer step between validations, a
    reload), which :meth:`max_logits` checks on every call.
    """

    def __init__(self) -> None:
        self._key = None
        self._weight_bf16 = None
        self._norms = None

    def _prepared(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (weight.data_ptr(), weight._version, tuple(weight.shape), weight.device)
        if key != self._key:
            with torch.no_grad():
                self._weight_bf16 = weight.detach().to(torch.bfloat16).contiguous()
                self._norms = weight.detach().float().norm(dim=1)
            self._key = key
        return self._weight_bf16, self._norms

    @torch.no_grad()
    def max_logits(self, pre: torch.Tensor, pool_mask: torch.Tensor, weight: torch.Tensor, bias, chunk_size: int):
        """``max_i pre_i · w_v`` over the pooled positions ``i`` -> float32 ``[B, V]``, ``-inf``
        where the screen proves ``max + b_v <= 0``.

        ``pre`` is ``[B, L, H]`` (the head's input, after its transform); positions outside
        ``pool_mask`` must already hold copies of a pooled position (as :func:`pool_max` makes).
        """
        weight_bf16, norms = self._prepared(weight)
        batch = pre.shape[0]
        approx = self._approx_max(pre.to(torch.bfloat16), weight_bf16, chunk_size)  # [B, V]
        slack = EPS_INPUTS * pre.float().norm(dim=-1).amax(dim=1, keepdim=True) * norms  # [B, V]
        bound = approx + EPS_OUTPUT * approx.abs() + slack
        limit = -bias.float() if bias is not None else torch.zeros_like(norms)
        candidates = (bound > limit) & pool_mask.any(dim=1, keepdim=True)
        out = torch.full((batch, weight.shape[0]), float("-inf"), dtype=torch.float32, device=pre.device)
        rows, terms = torch.nonzero(candidates, as_tuple=True)
        if rows.numel() == 0:
            return out
        starts = torch.searchsorted(rows, torch.arange(batch + 1, device=rows.device)).tolist()
        for row in range(batch):
            a, b = starts[row], starts[row + 1]
            if a == b:
                continue
            ids = terms[a:b]
            positions = pre[row][pool_mask[row]]  # [n, H], the text's own pooled positions
            out[row, ids] = torch.matmul(weight[ids], positions.t().to(weight.dtype)).amax(dim=1).float()
        return out

    @staticmethod
    def _approx_max(pre_bf16: torch.Tensor, weight_bf16: torch.Tensor, chunk_size: int) -> torch.Tensor:
        """bf16 ``max_i pre_i · w_v`` per row, a block of at most ``chunk_size`` positions at a
        time, computed as ``W @ X^T`` (the maximum then runs along contiguous memory)."""
        batch, length, width = pre_bf16.shape
        maxima = []
        with onednn(True):  # bf16 matmuls are fast only through oneDNN, which fp32 CPU inference switches off
            for rows, spans in position_blocks(batch, length, chunk_size):
                running = None
                for cols in spans:
                    block = pre_bf16[rows, cols]
                    shape = block.shape[:2]
                    block = block.reshape(-1, width)
                    used = block.shape[0]
                    padded = -(-used // _SHAPE_STEP) * _SHAPE_STEP
                    if used < padded <= chunk_size:  # pad with copies; their columns are sliced off below
                        block = torch.cat([block, block[-1:].expand(padded - used, width)])
                    part = torch.matmul(weight_bf16, block.t())[:, :used].reshape(-1, *shape).amax(dim=2)  # [V, rows]
                    running = part if running is None else torch.maximum(running, part)
                maxima.append(running)
        return torch.cat(maxima, dim=1).t().float()
