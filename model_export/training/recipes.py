"""Optimisers and schedules of the two recipes.

``finetune`` follows the ViT paper (Appendix B.1.1): SGD with momentum 0.9, no weight decay, cosine decay
after a linear warmup, global gradient-norm clipping at 1. ``scratch`` uses AdamW with decoupled weight
decay on the weight matrices only (not on biases, norms, tokens or position embeddings), the same schedule
and clipping. The learning rate is a pure function of the optimiser step, so resuming needs only the step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from model_export.training.config import TrainConfig


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float = 0.0) -> float:
    """Learning rate for optimiser step ``step`` (0-based): linear warmup to ``base_lr`` over
    ``warmup_steps``, then half a cosine down to ``min_lr`` at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / decay_steps, 1.0)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices and convolution kernels only; 1-D parameters and the learned tokens and
    position embeddings are not decayed (as in DeiT/timm)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = param.ndim < 2 or name.endswith(("cls_token", "dist_token", "pos_embed"))
        (no_decay if skip else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    assert config.lr is not None and config.weight_decay is not None
    groups = parameter_groups(model, config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum or 0.0)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.999))
    raise ValueError(f"unknown optimizer {config.optimizer!r}")


def clip_gradients(model: nn.Module, max_norm: float | None) -> float:
    """Scale all gradients together so their global L2 norm is at most ``max_norm``; returns the norm
    before clipping (logged: a clipped run shows norms above the limit)."""
    params = [p for p in model.parameters() if p.grad is not None]
    if max_norm is None or max_norm <= 0:
        norms = [p.grad.detach().norm(2) for p in params]
        return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
