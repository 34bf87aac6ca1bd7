"""Recipes checked numerically: warmup, cosine decay, gradient clipping, optimiser set-up, fine-tune head,
and the resumable state round trip."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from model_export.checkpoint import ModelInfo, save_checkpoint
from model_export.config import ViTConfig
from model_export.model import ViT
from model_export.training.config import TrainConfig
from model_export.training.modeling import CheckpointMismatch, build_model, resolve_model_config
from model_export.training.recipes import build_optimizer, clip_gradients, lr_at, parameter_groups
from model_export.training.state import latest_state, load_state, save_state
from service.bundle import Preprocessing


def test_linear_warmup_then_cosine_to_min():
    base, low, total, warmup = 0.1, 0.001, 110, 10
    rates = [lr_at(s, total, warmup, base, low) for s in range(total)]
    # warmup: equal increments reaching the peak on the last warmup step
    steps = [b - a for a, b in itertools.pairwise(rates[:warmup])]
    assert all(math.isclose(d, base / warmup) for d in steps)
    assert math.isclose(rates[warmup - 1], base)
    # cosine: starts at the peak, halfway is the midpoint, decreases monotonically, ends at the floor
    assert math.isclose(rates[warmup], base)
    assert math.isclose(rates[warmup + 50], (base + low) / 2)
    assert all(b <= a for a, b in itertools.pairwise(rates[warmup:]))
    assert math.isclose(lr_at(total, total, warmup, base, low), low)
    for step in (25, 70, 95):
        progress = (step - warmup) / (total - warmup)
        assert math.isclose(rates[step], low + (base - low) * (1 + math.cos(math.pi * progress)) / 2)


def _model_with_grads(scale: float) -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    generator = torch.Generator().manual_seed(0)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=generator)
    total = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters()]))
    for p in model.parameters():
        p.grad *= scale / total
    return model


def test_global_norm_clipping_scales_all_gradients_together():
    model = _model_with_grads(scale=5.0)
    before = [p.grad.clone() for p in model.parameters()]
    norm = clip_gradients(model, 1.0)
    assert math.isclose(norm, 5.0, rel_tol=1e-5)
    after = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert math.isclose(float(torch.linalg.vector_norm(after)), 1.0, rel_tol=1e-4)
    for old, p in zip(before, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, old / 5.0, rtol=1e-4, atol=1e-6)  # same direction, one factor
    small = _model_with_grads(scale=0.5)
    kept = [p.grad.clone() for p in small.parameters()]
    assert math.isclose(clip_gradients(small, 1.0), 0.5, rel_tol=1e-5)
    for old, p in zip(kept, small.parameters(), strict=True):
        assert torch.equal(p.grad, old)


def _tiny_vit(classes: int = 5) -> ViT:
    return ViT(
        ViTConfig(image_size=16, patch_size=4, num_classes=classes, dim=16, depth=2, heads=2, mlp_dim=32)
    )


def test_weight_decay_only_on_matrices():
    model = _tiny_vit()
    decay, no_decay = parameter_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in no_decay["params"]} >= {
        "cls_token",
        "pos_embed",
        "norm.weight",
        "head.bias",
    }
    assert all(p.ndim >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.05
    assert no_decay["weight_decay"] == 0.0


def test_recipes_choose_their_optimisers():
    model = _tiny_vit()
    finetune = TrainConfig(recipe="finetune", from_checkpoint="x").resolve_recipe()
    sgd = build_optimizer(finetune, model)
    assert isinstance(sgd, torch.optim.SGD)
    assert all(g["momentum"] == 0.9 and g["weight_decay"] == 0.0 for g in sgd.param_groups)
    assert finetune.grad_clip == 1.0
    scratch = TrainConfig().resolve_recipe()
    adamw = build_optimizer(scratch, model)
    assert isinstance(adamw, torch.optim.AdamW) and scratch.label_smoothing > 0


def _checkpoint(tmp_path: Path, **arch) -> Path:
    config = ViTConfig(
        **{**dict(image_size=16, patch_size=4, num_classes=7, dim=16, depth=2, heads=2, mlp_dim=32), **arch}
    )
    preprocessing = Preprocessing((16, 16), "exact", mean=(0.4, 0.4, 0.4), std=(0.2, 0.3, 0.2))
    info = ModelInfo(config, preprocessing, [str(i) for i in range(config.num_classes)])
    return save_checkpoint(tmp_path / "ckpt", ViT(config), info)


def test_finetune_gets_zero_head_resampled_positions_and_checkpoint_normalisation(tmp_path):
    source = _checkpoint(tmp_path)
    config = resolve_model_config(
        TrainConfig(recipe="finetune", from_checkpoint=str(source), image_size=24).resolve_recipe()
    )
    assert config.mean == [0.4, 0.4, 0.4] and config.std == [0.2, 0.3, 0.2]
    model, record = build_model(config, num_classes=3)
    assert model.head.out_features == 3
    assert torch.count_nonzero(model.head.weight) == 0 and torch.count_nonzero(model.head.bias) == 0
    assert model.pos_embed.shape == (1, 1 + 6 * 6, 16)
    assert record["from"] == str(source)


def test_finetune_rejects_a_checkpoint_that_does_not_match_the_preset(tmp_path):
    source = _checkpoint(tmp_path)
    with pytest.raises(CheckpointMismatch, match="preset 'ti'"):
        resolve_model_config(TrainConfig(recipe="finetune", from_checkpoint=str(source), preset="ti"))
    with pytest.raises(CheckpointMismatch, match="--dim 32"):
        resolve_model_config(TrainConfig(recipe="finetune", from_checkpoint=str(source), dim=32))


def test_training_state_round_trip_restores_optimizer_and_rng(tmp_path):
    model = _tiny_vit()
    optimizer = build_optimizer(TrainConfig().resolve_recipe(), model)
    model(torch.randn(4, 3, 16, 16)).sum().backward()
    optimizer.step()
    save_state(tmp_path, 1, model, optimizer, {"step": 1})
    expected_rng = torch.rand(3)

    other = _tiny_vit()
    other_optimizer = build_optimizer(TrainConfig().resolve_recipe(), other)
    torch.manual_seed(123)
    state = load_state(latest_state(tmp_path), other, other_optimizer)
    assert state["epoch"] == 1 and state["step"] == 1
    assert torch.equal(torch.rand(3), expected_rng)
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    saved, loaded = optimizer.state_dict(), other_optimizer.state_dict()
    assert saved["param_groups"] == loaded["param_groups"]
    for key, values in saved["state"].items():
        for name, tensor in values.items():
            assert torch.equal(tensor, loaded["state"][key][name])
