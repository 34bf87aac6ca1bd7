"""The training loop: one function, :func:`run_training`, for CPU, CUDA (bf16 autocast) and DDP under
``torchrun`` (a DistributedSampler shards each epoch; rank 0 evaluates, checkpoints and writes files).

A run directory is written in this order: config.json, command.txt, data.json and checkpoints/ first
(what ``--resume`` needs), metrics.jsonl as epochs finish, and at the very end weights, labels,
metrics.json and, last of all, model.json, so a directory with model.json is a finished run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from model_export.checkpoint import LABELS_FILE, MODEL_FILE, WEIGHTS_FILE, ModelInfo, write_model_files
from model_export.training.attention import attention_kernel, resolve_attention, tokens_of
from model_export.training.config import TrainConfig
from model_export.training.data import Dataset, DatasetError, Split, load_dataset, write_data_json
from model_export.training.metrics import classification_metrics, predict
from model_export.training.modeling import build_model, eval_preprocessing, resolve_model_config
from model_export.training.recipes import build_optimizer, clip_gradients, lr_at, set_lr
from model_export.training.state import latest_state, load_state, save_state
from model_export.training.transforms import (
    eval_transform,
    random_affine,
    random_flip,
    random_resized_crop,
    to_model_input,
)

CONFIG_FILE = "config.json"
DATA_FILE = "data.json"
METRICS_LOG = "metrics.jsonl"
METRICS_FILE = "metrics.json"
CHECKPOINTS = "checkpoints"


class ImageDataset(torch.utils.data.Dataset):
    """A split as (uint8 [H, W, 3] tensor, label); augmented per (seed, epoch, index) when training."""

    def __init__(self, split: Split, transform: Any, augment: Any = None, seed: int = 0) -> None:
        self.split, self.transform, self.augment, self.seed = split, transform, augment, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.split.image(index)
        if self.augment is not None:
            pixels = self.augment(image, np.random.default_rng((self.seed, self.epoch, index)))
        else:
            pixels = self.transform(image)
        return torch.from_numpy(np.array(pixels, dtype=np.uint8)), int(self.split.labels[index])


def run_training(config: TrainConfig, out_dir: Path, resume: bool = False) -> Path:
    """Train (or resume) a run in ``out_dir`` and return it; see the module docstring for the layout.

    With ``resume`` the run continues with its own config.json; ``config`` is not used."""
    out_dir = Path(out_dir)
    rank, world = _init_distributed()
    if resume:
        config = _config_to_resume(out_dir)
    else:
        _check_fresh(out_dir)
        config = config.resolve_recipe()
    dataset = load_dataset(config)
    if not resume:
        config = _resolve_runtime(resolve_model_config(config), dataset, world)
    else:
        _check_same_data(out_dir, dataset)
    device = _device(config, rank)
    torch.set_num_threads(config.threads or 1)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(config.seed)
    model, source = build_model(config, len(dataset.classes))
    model.to(device)
    optimizer = build_optimizer(config, model)
    _barrier(world)  # every process has checked the directory before rank 0 creates it
    if rank == 0 and not resume:
        _start_run_dir(out_dir, config, dataset)
    _barrier(world)
    try:
        _train(config, dataset, model, optimizer, out_dir, rank, world, device)
        replicas = _replica_digests(model, world)
        if rank == 0:
            _finish_run(out_dir, config, dataset, model, source, device, replicas)
        _barrier(world)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return out_dir


# -- setup -------------------------------------------------------------------------------------------


def _init_distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if world > 1:
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def _device(config: TrainConfig, rank: int) -> torch.device:
    if config.device != "auto":
        return torch.device(config.device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    return torch.device("cpu")


def _check_fresh(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):
        hint = " (an unfinished run: pass --resume)" if (out_dir / CONFIG_FILE).exists() else ""
        if (out_dir / MODEL_FILE).exists():
            hint = " (a finished run)"
        raise FileExistsError(f"{out_dir} already exists and is not empty{hint}")


def _config_to_resume(out_dir: Path) -> TrainConfig:
    if (out_dir / MODEL_FILE).exists():
        raise FileExistsError(f"{out_dir} is a finished run; nothing to resume")
    if not (out_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"cannot resume: {out_dir / CONFIG_FILE} not found")
    return TrainConfig.read(out_dir / CONFIG_FILE)


def _check_same_data(out_dir: Path, dataset: Dataset) -> None:
    recorded = json.loads((out_dir / DATA_FILE).read_text()).get("fingerprint")
    if recorded != dataset.fingerprint:
        raise DatasetError(
            f"cannot resume: the dataset changed (fingerprint {recorded} -> {dataset.fingerprint})"
        )


def _resolve_runtime(config: TrainConfig, dataset: Dataset, world: int) -> TrainConfig:
    """Record workers and threads, and check the batch arithmetic before anything is written."""
    values = config.to_dict()
    if values["workers"] is None:
        on_disk = dataset.splits["train"].paths is not None
        values["workers"] = max(1, min(4, (os.cpu_count() or 2) // 2)) if on_disk else 0
    if values["threads"] is None:
        # leave one core to data loading and the system: on a small shared machine, oversubscribed
        # torch threads spin and run several times slower than one thread
        values["threads"] = max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - 1))
    device = _device(config, rank=0)
    values["attention"] = resolve_attention(
        config.attention,
        device.type,
        bf16=_use_autocast(config, device),
        tokens=tokens_of(config.image_size or 0, config.patch_size or 1),
    )
    if values["augment"] == "auto":
        values["augment"] = "digits" if dataset.kind == "digits" else "photo"
    resolved = TrainConfig.from_dict(values)
    _batch_plan(resolved, world, len(dataset.splits["train"]))
    eval_preprocessing(resolved)  # raises on an impossible preprocessing (e.g. crop larger than resize)
    return resolved


def _batch_plan(config: TrainConfig, world: int, train_size: int) -> tuple[int, int, int]:
    """(per-process batch, micro-batch, optimiser steps per epoch)."""
    assert config.batch_size and config.micro_batch_size
    if config.batch_size % world:
        raise ValueError(f"batch size {config.batch_size} is not divisible by {world} processes")
    per_rank = config.batch_size // world
    micro = min(config.micro_batch_size, per_rank)
    if per_rank % micro:
        raise ValueError(f"per-process batch {per_rank} is not a multiple of micro-batch size {micro}")
    steps = (train_size // world) // per_rank
    if steps == 0:
        raise ValueError(
            f"the training set ({train_size} images) is smaller than one batch ({config.batch_size})"
        )
    return per_rank, micro, steps


def _start_run_dir(out_dir: Path, config: TrainConfig, dataset: Dataset) -> None:
    (out_dir / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    config.write(out_dir / CONFIG_FILE)
    (out_dir / "command.txt").write_text(shlex.join(sys.argv) + "\n")
    write_data_json(out_dir / DATA_FILE, dataset.describe(config))
    (out_dir / METRICS_LOG).write_text("")


def _log(message: str, rank: int = 0) -> None:
    if rank == 0:
        tqdm.write(message, file=sys.stderr)


# -- training ----------------------------------------------------------------------------------------


def _augmentation(config: TrainConfig):
    preprocessing = eval_preprocessing(config)
    if config.augment == "digits":
        return random_affine(preprocessing, rotate=10.0, translate=0.125)
    if config.augment == "photo":
        return random_resized_crop(preprocessing, scale_min=0.35 if config.recipe == "scratch" else 0.6)
    if config.augment == "flip":
        return random_flip(preprocessing)
    return None


def _use_autocast(config: TrainConfig, device: torch.device) -> bool:
    """bf16 autocast: by default on CUDA; on CPU when asked (``--amp bf16``; fast with AMX)."""
    if device.type == "cuda":
        return config.amp in ("auto", "bf16")
    return config.amp == "bf16"


def _eval_loader(config: TrainConfig, split: Split) -> DataLoader:
    dataset = ImageDataset(split, eval_transform(eval_preprocessing(config)))
    return DataLoader(dataset, batch_size=config.eval_batch_size, num_workers=config.workers or 0)


def _train(
    config: TrainConfig,
    dataset: Dataset,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    out_dir: Path,
    rank: int,
    world: int,
    device: torch.device,
) -> None:
    train_split = dataset.splits["train"]
    per_rank, micro, steps_per_epoch = _batch_plan(config, world, len(train_split))
    assert config.epochs is not None and config.lr is not None
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = round((config.warmup_epochs or 0.0) * steps_per_epoch)
    start_epoch, step = 0, 0
    state_dir = latest_state(out_dir / CHECKPOINTS)
    if state_dir is not None:
        state = load_state(state_dir, model, optimizer)
        start_epoch, step = state["epoch"], state["step"]
        if rank == 0:
            _truncate_log(out_dir / METRICS_LOG, start_epoch)
        _log(f"resuming {out_dir} after epoch {start_epoch} (step {step})", rank)

    train_data = ImageDataset(
        train_split, eval_transform(eval_preprocessing(config)), _augmentation(config), config.seed
    )
    sampler = DistributedSampler(
        train_data, num_replicas=world, rank=rank, shuffle=True, seed=config.seed, drop_last=True
    )
    loader = DataLoader(
        train_data, batch_size=per_rank, sampler=sampler, drop_last=True, num_workers=config.workers or 0
    )
    val_loader = _eval_loader(config, dataset.splits["val"]) if "val" in dataset.splits else None
    autocast = _use_autocast(config, device)
    wrapped: nn.Module = DistributedDataParallel(model) if world > 1 else model
    mean, std = config.mean or [0.5] * 3, config.std or [0.5] * 3
    if rank == 0:
        _log(
            f"training {model.num_params():,} parameters on {len(train_split)} images "  # type: ignore[operator]
            f"({dataset.spec}), {config.epochs} epochs × {steps_per_epoch} steps, batch {config.batch_size} "
            f"(micro {micro}, {world} process(es)), device {device}, {config.threads} thread(s)"
        )

    for epoch in range(start_epoch, config.epochs):
        sampler.set_epoch(epoch)
        train_data.epoch = epoch
        wrapped.train()
        started = time.perf_counter()
        totals = torch.zeros(4, dtype=torch.float64)  # loss sum, correct, count, grad-norm sum
        bar = tqdm(
            total=steps_per_epoch, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
            disable=rank != 0, mininterval=1.0, file=sys.stderr,
        )  # fmt: skip
        for pixels, labels in loader:
            lr = lr_at(step, total_steps, warmup_steps, config.lr, config.min_lr)
            set_lr(optimizer, lr)
            optimizer.zero_grad(set_to_none=True)
            chunks = list(zip(pixels.split(micro), labels.split(micro), strict=True))
            for index, (x_chunk, y_chunk) in enumerate(chunks):
                last = index == len(chunks) - 1
                sync = contextlib.nullcontext() if last or world == 1 else wrapped.no_sync()  # type: ignore[operator]
                with sync:
                    x = to_model_input(x_chunk.to(device, non_blocking=True), mean, std)
                    y = y_chunk.to(device)
                    amp = (
                        torch.autocast(device.type, dtype=torch.bfloat16)
                        if autocast
                        else contextlib.nullcontext()
                    )
                    with amp, attention_kernel(config.attention):
                        logits = wrapped(x)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing or 0.0)
                    (loss * (len(y) / len(labels))).backward()
                totals += torch.tensor(
                    [
                        float(loss.detach()) * len(y),
                        float((logits.detach().argmax(1) == y).sum()),
                        len(y),
                        0.0,
                    ],
                    dtype=torch.float64,
                )
            totals[3] += clip_gradients(model, config.grad_clip)
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", lr=f"{lr:.2e}", refresh=False)
        bar.close()
        if world > 1:
            dist.all_reduce(totals)
        seconds = time.perf_counter() - started
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": step,
            "lr": lr_at(step - 1, total_steps, warmup_steps, config.lr, config.min_lr),
            "train_loss": float(totals[0] / totals[2]),
            "train_top1": float(totals[1] / totals[2]),
            "grad_norm": float(totals[3] / world / steps_per_epoch),
            "seconds": round(seconds, 3),
            "images_per_second": round(float(totals[2]) / seconds, 1),
        }
        if rank == 0:
            if val_loader is not None:
                logits, labels_np = predict(model, val_loader, mean, std, device, autocast)
                val = classification_metrics(logits, labels_np, dataset.classes)
                record.update(val_loss=val["loss"], val_top1=val["top1"])
            with open(out_dir / METRICS_LOG, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            save_state(out_dir / CHECKPOINTS, epoch + 1, model, optimizer, {"step": step, "metrics": record})
            _log(_format_record(record, config.epochs))
        _barrier(world)


def _format_record(record: dict[str, Any], epochs: int) -> str:
    text = (
        f"epoch {record['epoch']}/{epochs}  loss {record['train_loss']:.4f}  "
        f"train {record['train_top1']:.2%}  lr {record['lr']:.2e}"
    )
    if "val_top1" in record:
        text += f"  val {record['val_top1']:.2%} (loss {record['val_loss']:.4f})"
    return text + f"  {record['seconds']:.1f}s ({record['images_per_second']:.0f} img/s)"


def _truncate_log(path: Path, epochs_done: int) -> None:
    """Drop log lines of epochs after the checkpoint we resume from (they will be redone)."""
    lines = [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    kept = [line for line in lines if json.loads(line)["epoch"] <= epochs_done]
    path.write_text("".join(line + "\n" for line in kept))


def read_log(path: Path) -> Iterator[dict[str, Any]]:
    for line in Path(path).read_text().splitlines():
        if line.strip():
            yield json.loads(line)


# -- the end of a run --------------------------------------------------------------------------------


def weights_digest(model: nn.Module) -> str:
    """sha256 over the state dict (sorted names, raw bytes): equal digests mean bitwise-equal weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + b"\0")
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _replica_digests(model: nn.Module, world: int) -> list[str]:
    """Every process's weight digest (DDP replicas must stay identical); recorded in metrics.json."""
    own = weights_digest(model)
    if world == 1:
        return [own]
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, own)
    return [str(d) for d in gathered]


def _finish_run(
    out_dir: Path,
    config: TrainConfig,
    dataset: Dataset,
    model: nn.Module,
    source: dict[str, Any],
    device: torch.device,
    replicas: list[str],
) -> None:
    mean, std = config.mean or [0.5] * 3, config.std or [0.5] * 3
    # in float32, as `vit-export evaluate` and the exported graphs compute it
    logits, labels = predict(model, _eval_loader(config, dataset.splits["test"]), mean, std, device)
    metrics = {"split": "test", **classification_metrics(logits, labels, dataset.classes)}
    log = list(read_log(out_dir / METRICS_LOG))
    metrics.update(
        epochs=config.epochs,
        train_seconds=round(sum(r["seconds"] for r in log), 2),
        dataset=dataset.spec,
        fingerprint=dataset.fingerprint,
        replicas={"world_size": len(replicas), "weights_sha256": replicas},
    )
    if log and "val_top1" in log[-1]:
        metrics["val"] = {"top1": log[-1]["val_top1"], "loss": log[-1]["val_loss"]}
    model.cpu().eval()
    info = ModelInfo(
        config=model.config,  # type: ignore[arg-type]
        preprocessing=eval_preprocessing(config),
        labels=list(dataset.classes),
        source={**source, "run": str(out_dir), "dataset": dataset.spec, "fingerprint": dataset.fingerprint,
                "test_top1": metrics["top1"]},
    )  # fmt: skip
    staging = out_dir / ".final.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    write_model_files(staging, model, info)  # type: ignore[arg-type]
    (staging / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    for name in (LABELS_FILE, WEIGHTS_FILE, METRICS_FILE, MODEL_FILE):  # model.json last: marks completion
        os.replace(staging / name, out_dir / name)
    staging.rmdir()
    _log(f"test top-1 {metrics['top1']:.2%} on {metrics['count']} images; run written to {out_dir}")
