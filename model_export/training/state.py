"""Resumable training state, without pickle: tensors in safetensors, everything else in JSON.

```
checkpoints/
  latest.json               {"epoch": N, "dir": "epoch-000N"}  (replaced atomically)
  epoch-000N/model.safetensors, optimizer.safetensors, state.json
```
state.json holds the epoch, the optimiser step, the optimiser's param groups and scalar state, and
metadata; the torch RNG state is a uint8 tensor in optimizer.safetensors. The data order and the
augmentation are functions of (seed, epoch), so they need no state of their own.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from model_export.atomic import atomic_directory

LATEST = "latest.json"
KEEP = 2


def save_state(
    checkpoints: Path, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer, meta: dict[str, Any]
) -> Path:
    """Write the state after ``epoch`` (1-based) and point latest.json at it; keep the last KEEP."""
    checkpoints = Path(checkpoints)
    name = f"epoch-{epoch:04d}"
    tensors, scalars = _flatten_optimizer(optimizer)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = state
    with atomic_directory(checkpoints / name, overwrite=True) as staging:
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(weights, str(staging / "model.safetensors"))
        save_file(
            {k: v.contiguous().cpu() for k, v in tensors.items()}, str(staging / "optimizer.safetensors")
        )
        state = {
            "epoch": epoch,
            "param_groups": optimizer.state_dict()["param_groups"],
            "optimizer_scalars": scalars,
            **meta,
        }
        (staging / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    pointer = checkpoints / (LATEST + ".tmp")
    pointer.write_text(json.dumps({"epoch": epoch, "dir": name}) + "\n")
    os.replace(pointer, checkpoints / LATEST)
    for old in sorted(checkpoints.glob("epoch-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return checkpoints / name


def latest_state(checkpoints: Path) -> Path | None:
    pointer = Path(checkpoints) / LATEST
    if not pointer.is_file():
        return None
    return Path(checkpoints) / json.loads(pointer.read_text())["dir"]


def load_state(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model, optimiser and RNG from ``directory``; returns state.json."""
    directory = Path(directory)
    state = json.loads((directory / "state.json").read_text())
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    tensors = load_file(str(directory / "optimizer.safetensors"))
    torch.set_rng_state(tensors.pop("rng.torch"))
    cuda_states = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors.pop(k) for k in cuda_states])
    for key in cuda_states:
        tensors.pop(key, None)
    optimizer.load_state_dict(
        _unflatten_optimizer(tensors, state["optimizer_scalars"], state["param_groups"])
    )
    return state


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for param_id, values in optimizer.state_dict()["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optim.{param_id}.{key}"] = value.detach().clone()
            else:
                scalars[f"{param_id}.{key}"] = value
    return tensors, scalars


def _unflatten_optimizer(
    tensors: dict[str, torch.Tensor], scalars: dict[str, Any], param_groups: list[dict[str, Any]]
) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, param_id, key = name.split(".", 2)
        state.setdefault(int(param_id), {})[key] = value
    for name, value in scalars.items():
        param_id, key = name.split(".", 1)
        state.setdefault(int(param_id), {})[key] = value
    # JSON turned tuples (AdamW's betas) into lists; give the optimiser back what it saved
    groups = [
        {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
        for g in param_groups
    ]
    return {"state": state, "param_groups": groups}
