"""``train.strategy: fsdp``: shard the encoder's training state across the ranks (FSDP2).

Under DDP every process holds the whole model, its gradients and AdamW's two moments: 16 bytes
a parameter in fp32, 54 GB for Qwen2.5-3B with its LRN layer (3.09B + 2048 × 151,936
parameters) before any activation. PyTorch's ``fully_shard`` (FSDP2, ``torch.distributed.fsdp``;
Zhao et al., 2023, "PyTorch FSDP", arXiv:2304.11277) splits every parameter along its first
dimension into one shard per rank; each rank keeps its shard of the weights, gradients and
optimizer state and all-gathers one *unit* at a time for forward and backward, reduce-scattering
the gradients after, so the model state per process is about ``16·N / world_size`` bytes plus
the largest unit gathered.

Units: every module whose class Hugging Face lists in ``_no_split_modules`` (the decoder or
encoder layers; not one holding a tied weight), the LRN layer (hidden × |V|, as large as the LM
head), and the encoder itself as the root (embeddings, final norm, LM head, tied or not). The
root is the encoder, not the trainer's two-sided wrapper, so ``encoder.encode`` works too (see
:meth:`Sharded.evaluation`); as it all-gathers, every rank runs validation (rank 0 alone would
wait for the others forever) and the writing of ``best/``.

The encoder applies the LM head's weight directly in max pooling (``head_split``); FSDP swaps a
module's parameters between their shard and the gathered tensor, so that triple is re-pointed to
read the module's current weight at each use (:class:`_LiveHeadSplit`).

Checkpoints keep the single-process format: the full state dict is gathered to rank 0's CPU
(``get_model_state_dict(full_state_dict=True, cpu_offload=True)``) and written by the normal
writer, so ``SparseEncoder.load`` reads them; the optimizer state is gathered the same way, keyed
by parameter name, and on resume rank 0 reads it and ``set_optimizer_state_dict`` sends each rank
its shard (``broadcast_from_rank0``). The same shards come back, so resuming is exact.

Not supported with FSDP (one-line errors): fp16 loss scaling (the scaler's inf checks would see
only local shards; use bf16) and 8-bit AdamW (bitsandbytes does not take sharded tensors).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

from prosper.errors import ConfigError


def check_settings(train_settings) -> None:
    """Refuse what cannot run sharded, naming the setting, before any model is built."""
    if train_settings.amp == "fp16":
        raise ConfigError("train.amp: fp16 loss scaling is not supported with train.strategy=fsdp; use bf16 or none")
    if train_settings.optimizer.name == "adamw8bit":
        raise ConfigError("train.optimizer.name: adamw8bit does not take FSDP's sharded tensors; use adamw")


def units(encoder) -> list:
    """The modules sharded as units of their own, innermost first (the encoder is the root).

    A module holding a weight tied to one outside it (BERT's embeddings, whose word embeddings
    are the MLM decoder's weight) stays in the root: a parameter belongs to one unit only.
    """
    names = set(getattr(encoder.model, "_no_split_modules", None) or ())
    tied = {id(encoder.get_parameter(name)) for name in _aliases(encoder)}
    found = [
        m for m in encoder.model.modules()
        if type(m).__name__ in names and not any(id(p) in tied for p in m.parameters())
    ]
    if encoder.lrn is not None:
        found.append(encoder.lrn)
    return found


class _LiveHeadSplit:
    """``(transform, weight, bias)`` of the LM head, read from the owning modules at each use."""

    def __init__(self, split, model):
        self.transform = split[0]
        self.weight_at = _owner(model, split[1])
        self.bias_at = _owner(model, split[2]) if split[2] is not None else None

    def __iter__(self):
        yield self.transform
        yield getattr(*self.weight_at)
        yield getattr(*self.bias_at) if self.bias_at is not None else None

    def __getitem__(self, index):
        return tuple(self)[index]


def _aliases(encoder) -> dict[str, str]:
    """``{second name: first name}`` of parameters shared under two names (tied embeddings)."""
    first: dict[int, str] = {}
    aliases = {}
    for name, param in encoder.named_parameters(remove_duplicate=False):
        if id(param) in first:
            aliases[name] = first[id(param)]
        else:
            first[id(param)] = name
    return aliases


def _owner(model, tensor) -> tuple:
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if param is tensor:
                return module, name
    raise ConfigError("train.strategy: fsdp cannot find the module owning the LM head's weight")


class Sharded:
    """The encoder sharded with ``fully_shard`` over all ranks; see the module docstring."""

    every_rank_evaluates = True  # forward all-gathers: every rank must run it

    def __init__(self, module, encoder, info, device):
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        self.encoder = encoder
        self.info = info
        self.aliases = _aliases(encoder)
        split = encoder._parts.head_split
        live = _LiveHeadSplit(split, encoder.model) if split is not None else None
        mesh = init_device_mesh(device.type, (info.world_size,))
        for unit in units(encoder):
            fully_shard(unit, mesh=mesh)
        fully_shard(encoder, mesh=mesh)
        encoder._parts.head_split = live
        self.forward = module

    @contextmanager
    def evaluation(self):
        """Validation calls ``encoder.encode``, which runs ``encoder.forward`` without the module
        call FSDP hooks into: gather the root's parameters for its duration (the layers and the
        LRN layer, called as modules, gather their own)."""
        self.encoder.unshard()
        try:
            yield
        finally:
            self.encoder.reshard()

    def gradient_sync(self, enabled: bool):
        # Micro-batches before the last accumulate unsharded gradients without reduce-scatter.
        self.encoder.set_requires_gradient_sync(enabled)
        return nullcontext()

    def _options(self, **extra):
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        return StateDictOptions(full_state_dict=True, cpu_offload=True, **extra)

    def model_state(self):
        """The full state dict on rank 0's CPU (``None`` on the others); every rank must call it."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        state = get_model_state_dict(self.encoder, options=self._options())
        if not self.info.is_main:
            return None
        for alias, name in self.aliases.items():  # tied weights: one tensor, as the model holds them,
            if name in state:  # so save_pretrained writes it once, as a single process does
                state[alias] = state[name]
        return state

    def optimizer_state(self, optimizer):
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        state = get_optimizer_state_dict(self.encoder, optimizer, options=self._options())
        return state if self.info.is_main else None

    def load_optimizer_state(self, optimizer, path) -> None:
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        from prosper.training.checkpointing import torch_load

        state = torch_load(path) if self.info.is_main else {}
        set_optimizer_state_dict(
            self.encoder, optimizer, optim_state_dict=state, options=self._options(broadcast_from_rank0=True)
        )
