"""Pooling with a memory-lean LM head: Eq. 5-7 without a ``[B, L, |V|]`` tensor.

The base vector is ``w = Pool_i log(1 + ReLU(head(h_i)))`` over the pooled positions ``i``.
The head (hidden -> |V| logits) dominates time and memory, so it runs only where needed:

* ``last``: the head is applied to the one pooled position of each sequence: ``[B, V]``.
* ``max``: ``log(1 + ReLU(.))`` is monotone, so ``max_i log(1+ReLU(x_i)) = log(1+ReLU(max_i x_i))``.
  The head runs on chunks of at most ``chunk_size`` positions; each chunk is reduced to its
  running maximum of raw logits at once, and Eq. 5 is applied to the final ``[B, V]`` only.
  Positions that must not count (padding, special tokens) are replaced by a copy of a pooled
  position of the same sequence before the head, which leaves the maximum unchanged and needs
  no masking pass over the logits (and the gradient of duplicated maxima sums back to the
  original position).
* ``mean`` / ``sum``: the same chunks, saturated and masked, summed into ``[B, V]``.

Activation memory is ``O(B × V + chunk_size × V)`` at inference. In training each chunk is
wrapped in activation checkpointing, so autograd keeps only the chunk's hidden states and
recomputes its logits in the backward pass: the same bound holds for training.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint

from prosper.modeling.transforms import log_saturation

POOLINGS = ("last", "max", "mean", "sum")


def position_blocks(batch: int, length: int, chunk_size: int):
    """The blocks a chunked head runs on: ``(rows, spans)`` pairs of slices over a ``[batch,
    length]`` grid, at most ``chunk_size`` positions per ``(rows, span)`` block (whole rows
    together when they fit, else one row at a time in spans)."""
    rows_per_block = max(1, chunk_size // length)
    cols_per_block = min(length, max(1, chunk_size))
    spans = [slice(l0, min(length, l0 + cols_per_block)) for l0 in range(0, length, cols_per_block)]
    for b0 in range(0, batch, rows_per_block):
        yield slice(b0, min(batch, b0 + rows_per_block)), spans


def _head_fn(head: Callable, postprocess: Callable | None) -> Callable:
    if postprocess is None:
        return head
    return lambda h: postprocess(head(h))


def _maybe_checkpoint(fn: Callable, *args: torch.Tensor) -> torch.Tensor:
    # With autograd on, keep only the chunk's inputs and recompute its logits in backward.
    if torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def pool_last(hidden: torch.Tensor, head: Callable, last_index: torch.Tensor, postprocess=None) -> torch.Tensor:
    """Eq. 6-7, last-token pooling: the head on one position per sequence -> ``[B, V]`` float32."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    logits = _head_fn(head, postprocess)(hidden[rows, last_index])
    return log_saturation(logits.float())


class _SparseGradMaxHead(torch.autograd.Function):
    """``max_i (pre_i @ W^T)`` over positions, with a backward that touches only what matters.

    Forward computes each row chunk's ``[rows, L, V]`` logits once and keeps the maximum and its
    position per (row, term). The gradient of a maximum flows to that one position, so backward
    needs no logits at all: for the (row, term) pairs with a non-zero gradient (terms whose
    maximum logit is positive, far fewer than ``L x V``) it adds ``g * pre`` into ``dW`` and
    ``g * W`` into ``dpre`` at the saved positions. Where most pairs are active (dense vectors
    early in training) a chunk falls back to scattering ``g`` into a ``[rows, L, V]`` tensor and
    two matmuls. Both are exact; neither recomputes the forward, unlike activation checkpointing.
    """

    @staticmethod
    def forward(ctx, pre: torch.Tensor, weight: torch.Tensor, rows_per_chunk: int) -> torch.Tensor:
        values, positions = [], []
        for b0 in range(0, pre.shape[0], rows_per_chunk):
            chunk_max = torch.matmul(pre[b0 : b0 + rows_per_chunk], weight.t()).max(dim=1)
            values.append(chunk_max.values)
            positions.append(chunk_max.indices)
        ctx.save_for_backward(pre, weight, torch.cat(positions))
        ctx.rows_per_chunk = rows_per_chunk
        return torch.cat(values)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        pre, weight, positions = ctx.saved_tensors
        dtype = weight.dtype
        grad_pre = torch.zeros(pre.shape, dtype=dtype, device=pre.device) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros_like(weight) if ctx.needs_input_grad[1] else None
        rows_per_chunk = ctx.rows_per_chunk
        vocab = weight.shape[0]
        for b0 in range(0, pre.shape[0], rows_per_chunk):
            g = grad[b0 : b0 + rows_per_chunk].to(dtype)
            p = pre[b0 : b0 + rows_per_chunk].to(dtype)
            pos = positions[b0 : b0 + rows_per_chunk]
            rows, terms = torch.nonzero(g, as_tuple=True)
            if rows.numel() * 4 > g.numel():  # dense gradient: two matmuls beat index arithmetic
                full = torch.zeros(g.shape[0], p.shape[1], vocab, dtype=dtype, device=g.device)
                full.scatter_(1, pos.unsqueeze(1), g.unsqueeze(1))
                if grad_weight is not None:
                    grad_weight += torch.einsum("blv,blh->vh", full, p)
                if grad_pre is not None:
                    grad_pre[b0 : b0 + rows_per_chunk] = torch.matmul(full, weight)
                continue
            values = g[rows, terms].unsqueeze(1)
            at = pos[rows, terms]
            if grad_weight is not None:
                grad_weight.index_add_(0, terms, values * p[rows, at])
            if grad_pre is not None:
                grad_pre[b0 : b0 + rows_per_chunk].index_put_((rows, at), values * weight[terms], accumulate=True)
        if grad_pre is not None:
            grad_pre = grad_pre.to(pre.dtype)
        return grad_pre, grad_weight, None


def pool_max(
    hidden: torch.Tensor,
    head: Callable,
    pool_mask: torch.Tensor,
    chunk_size: int = 2048,
    postprocess=None,
    head_split=None,
    screen=None,
) -> torch.Tensor:
    """SPLADE max pooling, chunked over sequences and positions -> ``[B, V]`` float32.

    With ``head_split = (transform, weight, bias)`` the bias is added once after the maximum
    (``max_i(x_i + b) = max_i(x_i) + b``): a plain matmul then skips writing the bias into
    every position's logits, a full extra pass over ``[chunk, V]`` on CPUs. At inference such a
    head computes ``W @ X^T`` (the maximum then runs along contiguous memory, ~1.3x faster), or,
    with a :class:`prosper.modeling.screen.HeadScreen`, a bf16 screen and exact fp32 survivors.
    """
    batch, length, width = hidden.shape
    bias = None
    if head_split is not None and postprocess is None:
        transform, weight, bias = head_split

        def fn(h: torch.Tensor) -> torch.Tensor:
            return torch.matmul(transform(h), weight.t())

    else:
        fn = _head_fn(head, postprocess)
    positions = torch.arange(length, device=hidden.device).expand(batch, length)
    first = pool_mask.to(torch.int8).argmax(dim=1, keepdim=True)  # a pooled position per row
    source = torch.where(pool_mask, positions, first)
    if head_split is not None and postprocess is None:
        if torch.is_grad_enabled():  # training: one forward pass over the logits, sparse backward
            pre = transform(hidden)
            pre = pre.gather(1, source.unsqueeze(-1).expand(-1, -1, pre.shape[-1]))
            logits = _SparseGradMaxHead.apply(pre, weight, max(1, chunk_size // length))
            if bias is not None:
                logits = logits + bias
            return log_saturation(logits.float()) * pool_mask.any(dim=1, keepdim=True)

        if screen is not None:
            pre = transform(hidden).gather(1, source.unsqueeze(-1).expand(-1, -1, weight.shape[1]))
            logits = screen.max_logits(pre, pool_mask, weight, bias, chunk_size)
            return _saturate(logits, bias, pool_mask)

        # one logits buffer for every block: blocks of varying size, allocated afresh, fragment
        # glibc's heap (its mmap threshold adapts up to 32 MB) and doubled the peak on long texts
        buffer = torch.empty(weight.shape[0] * min(chunk_size, batch * length), dtype=weight.dtype, device=hidden.device)

        def chunk_max(h: torch.Tensor) -> torch.Tensor:
            pre = transform(h)
            rows, cols = pre.shape[:2]
            logits = buffer[: weight.shape[0] * rows * cols].view(weight.shape[0], rows * cols)
            torch.matmul(weight, pre.reshape(-1, pre.shape[-1]).t().to(weight.dtype), out=logits)
            return logits.view(-1, rows, cols).amax(dim=2).t()

    else:

        def chunk_max(h: torch.Tensor) -> torch.Tensor:
            return fn(h).amax(dim=1)

    pooled = []
    for rows, spans in position_blocks(batch, length, chunk_size):
        running = None
        for cols in spans:
            if bool(pool_mask[rows, cols].all()):
                h = hidden[rows, cols]
            else:
                h = hidden[rows].gather(1, source[rows, cols].unsqueeze(-1).expand(-1, -1, width))
            part = _maybe_checkpoint(chunk_max, h)
            running = part if running is None else torch.maximum(running, part)
        pooled.append(running)
    logits = torch.cat(pooled, dim=0) if len(pooled) > 1 else pooled[0]
    return _saturate(logits, bias, pool_mask)


def _saturate(logits: torch.Tensor, bias, pool_mask: torch.Tensor) -> torch.Tensor:
    """Eq. 5 on pooled raw logits: add the bias, saturate, zero the rows with nothing pooled."""
    if bias is not None:
        logits = logits + bias
    has_any = pool_mask.any(dim=1, keepdim=True)
    out = log_saturation(logits.float())
    if torch.is_grad_enabled() or not bool(has_any.all()):  # inference: skip a pass when every row pools
        out = out * has_any
    return out


def pool_sum(hidden: torch.Tensor, head: Callable, pool_mask: torch.Tensor, chunk_size: int = 2048, mean: bool = False, postprocess=None) -> torch.Tensor:
    """Sum (or mean) of saturated logits over pooled positions, chunked -> ``[B, V]`` float32."""
    batch, length, _ = hidden.shape
    fn = _head_fn(head, postprocess)
    weights = pool_mask.to(torch.float32)

    def chunk_sum(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return (log_saturation(fn(h).float()) * m.unsqueeze(-1)).sum(dim=1)

    pooled = []
    for rows, spans in position_blocks(batch, length, chunk_size):
        total = None
        for cols in spans:
            part = _maybe_checkpoint(chunk_sum, hidden[rows, cols], weights[rows, cols])
            total = part if total is None else total + part
        pooled.append(total)
    out = torch.cat(pooled, dim=0) if len(pooled) > 1 else pooled[0]
    if mean:
        out = out / weights.sum(dim=1, keepdim=True).clamp_min(1.0)
    return out


def pool(
    mode: str,
    hidden: torch.Tensor,
    head: Callable,
    pool_mask: torch.Tensor,
    last_index: torch.Tensor,
    chunk_size: int = 2048,
    postprocess=None,
    head_split=None,
    screen=None,
) -> torch.Tensor:
    """Dispatch on the pooling name (``last | max | mean | sum``); ``screen`` applies to ``max``."""
    if mode == "last":
        out = pool_last(hidden, head, last_index, postprocess)
        return out * pool_mask.any(dim=1, keepdim=True)
    if mode == "max":
        return pool_max(hidden, head, pool_mask, chunk_size, postprocess, head_split, screen)
    if mode in ("mean", "sum"):
        return pool_sum(hidden, head, pool_mask, chunk_size, mean=mode == "mean", postprocess=postprocess)
    raise ValueError(f"unknown pooling {mode!r} ({' | '.join(POOLINGS)})")
