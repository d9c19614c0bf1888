"""Distributed helpers: the same ``prosper train`` under ``torchrun --nproc_per_node N``.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; we then join the process group
(gloo on CPU, nccl on CUDA) and wrap the encoder in ``DistributedDataParallel``
(:class:`Replicated`), or shard it with ``train.strategy: fsdp`` (:mod:`prosper.training.fsdp`).
Each rank encodes its own slice of every global batch (``train.batch_size`` is per process, as in
the paper's "batch 64 per device"); rank 0 alone logs, validates and writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_info() -> DistInfo:
    """What ``torchrun`` (or any launcher setting the same variables) asked for."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return DistInfo(rank, world, local)


def resolve_device(requested: str, info: DistInfo):
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is present, else ``cpu``."""
    import torch

    from prosper.errors import DeviceError

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"model.device: {requested!r} requested but CUDA is not available")
        if requested == "cuda":
            requested = f"cuda:{info.local_rank if info.enabled else torch.cuda.current_device()}"
        torch.cuda.set_device(torch.device(requested))
    return torch.device(requested)


def init_distributed(device) -> DistInfo:
    """Join the process group when launched by ``torchrun``; no-op for one process."""
    import torch.distributed as dist

    info = env_info()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return info


class Replicated:
    """Every rank holds the whole model: one process, or ``DistributedDataParallel``.

    The interface the trainer drives for either strategy (:class:`prosper.training.fsdp.Sharded`
    is the other): ``forward`` (the module to call), ``evaluation()`` (a context for validation),
    ``gradient_sync(enabled)`` (a context for each micro-batch's backward),
    ``model_state()``/``optimizer_state()`` (what a checkpoint saves; ``None`` model state: the
    live modules; collective under FSDP), ``load_optimizer_state`` and ``every_rank_evaluates``.
    """

    every_rank_evaluates = False  # rank 0 alone can run the whole model

    def __init__(self, module, encoder, info: DistInfo, device, find_unused_parameters: bool = False):
        self.encoder = encoder
        self.ddp = None
        if info.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp = DistributedDataParallel(
                module,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=find_unused_parameters,
            )
        self.forward = self.ddp if self.ddp is not None else module

    def evaluation(self):
        from contextlib import nullcontext

        return nullcontext()

    def gradient_sync(self, enabled: bool):
        from contextlib import nullcontext

        return self.ddp.no_sync() if self.ddp is not None and not enabled else nullcontext()

    def model_state(self):
        return None

    def optimizer_state(self, optimizer):
        return optimizer.state_dict()

    def load_optimizer_state(self, optimizer, path) -> None:
        from prosper.training.checkpointing import torch_load

        optimizer.load_state_dict(torch_load(path))


def wrap_model(module, encoder, strategy: str, info: DistInfo, device, find_unused_parameters: bool = False):
    """``train.strategy``: ``fsdp`` shards the encoder across the ranks (more than one process);
    ``ddp``, or any single process, replicates it."""
    if strategy == "fsdp" and info.enabled:
        from prosper.training.fsdp import Sharded

        return Sharded(module, encoder, info, device)
    return Replicated(module, encoder, info, device, find_unused_parameters)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def all_reduce_mean(values: list[float], info: DistInfo, device) -> list[float]:
    """Average a few scalars over ranks (for the metrics log)."""
    if not info.enabled:
        return values
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return (tensor / info.world_size).tolist()


def broadcast_object(obj, info: DistInfo):
    if not info.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
