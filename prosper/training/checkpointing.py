"""Atomic training checkpoints and the state ``--resume`` needs.

``<output_dir>/checkpoints/step-000500/`` holds the model exactly as ``SparseEncoder.save``
writes it (``backbone/``, ``lrn.safetensors``, ``prosper.yaml``: loadable for inference) plus
``trainer_state/``: ``optimizer.pt``, ``scheduler.pt``, ``scaler.pt``, ``rng-rank<r>.pt`` (torch,
CUDA, numpy, python RNG of each rank) and ``state.json`` (step, data position, best metric...).
Under ``train.strategy: fsdp`` the model is the gathered full state and ``optimizer.pt`` the full
optimizer state keyed by parameter name (:mod:`prosper.training.fsdp`); with ``model.lora`` the
model is merged and ``trainable.safetensors`` holds the adapters and the LRN layer to resume
from (:mod:`prosper.modeling.lora`).

Atomicity: everything is written under ``step-000500.tmp-<pid>`` and the folder is renamed into
place last (``os.replace``), so a folder named ``step-*`` is always complete; leftovers of a
killed write are removed on the next start. Loading uses ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

from prosper.errors import CheckpointError
from prosper.fileio import atomic_write_json, temp_path

STATE_DIR = "trainer_state"
PREFIX = "step-"


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:06d}"


def checkpoints_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        name = child.name
        if not name.startswith(PREFIX) or ".tmp-" in name or not child.is_dir():
            continue
        if not (child / STATE_DIR / "state.json").is_file():
            continue
        try:
            found.append((int(name[len(PREFIX) :]), child))
        except ValueError:
            continue
    return sorted(found)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def remove_partial(output_dir: str | Path) -> list[Path]:
    """Delete ``*.tmp-*`` folders/files left by a write that was killed."""
    removed = []
    for root in (checkpoints_dir(output_dir), Path(output_dir)):
        if not root.is_dir():
            continue
        for child in root.iterdir():
            if ".tmp-" in child.name:
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
                removed.append(child)
    return removed


def prune(output_dir: str | Path, keep_last: int) -> None:
    for _, path in list_checkpoints(output_dir)[:-keep_last]:
        shutil.rmtree(path, ignore_errors=True)


def rng_state() -> dict:
    import numpy as np
    import torch

    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype("int64")),
        "numpy_pos": int(np_state[2]),
        "numpy_gauss": [int(np_state[3]), float(np_state[4])],
        "python": [int(x) for x in random.getstate()[1]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    keys = state["numpy_keys"].numpy().astype("uint32")
    np.random.set_state(("MT19937", keys, state["numpy_pos"], state["numpy_gauss"][0], state["numpy_gauss"][1]))
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def torch_save(obj, path: Path) -> None:
    import torch

    tmp = temp_path(path)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def torch_load(path: Path):
    import torch

    if not path.is_file():
        raise CheckpointError(f"checkpoint file missing: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise CheckpointError(f"{path}: cannot be loaded safely ({type(exc).__name__}: {exc})") from None


def write_json(path: Path, data: dict) -> None:
    atomic_write_json(path, data)


def read_state(checkpoint: str | Path) -> dict:
    path = Path(checkpoint) / STATE_DIR / "state.json"
    if not path.is_file():
        raise CheckpointError(f"{checkpoint}: not a training checkpoint (no {STATE_DIR}/state.json)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: unreadable ({exc.msg})") from None
