"""The training attention kernel: the math kernel is a drop-in for the fused one, and auto is recorded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from model_export.config import ViTConfig
from model_export.model import ViT
from model_export.training.attention import attention_kernel, resolve_attention, tokens_of
from model_export.training.config import TrainConfig


def test_auto_picks_math_only_for_short_cpu_bf16_sequences():
    assert resolve_attention("auto", "cpu", bf16=True, tokens=tokens_of(128, 16)) == "math"
    assert resolve_attention("auto", "cpu", bf16=True, tokens=tokens_of(176, 16)) == "math"  # 122 tokens
    assert resolve_attention("auto", "cpu", bf16=True, tokens=tokens_of(224, 16)) == "fused"  # 197 tokens
    assert resolve_attention("auto", "cpu", bf16=False, tokens=65) == "fused"
    assert resolve_attention("auto", "cuda", bf16=True, tokens=65) == "fused"
    assert resolve_attention("math", "cuda", bf16=False, tokens=197) == "math"
    with pytest.raises(ValueError, match="attention must be one of"):
        resolve_attention("flash", "cpu", bf16=True, tokens=65)


def test_config_refuses_an_unknown_kernel():
    with pytest.raises(ValueError, match="attention must be one of"):
        TrainConfig(attention="flash").validate()


def _loss_and_grads(model: ViT, x: torch.Tensor, y: torch.Tensor, kernel: str):
    model.zero_grad(set_to_none=True)
    with attention_kernel(kernel):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_math_kernel_gives_the_fused_kernels_loss_and_gradients():
    torch.manual_seed(0)
    model = ViT(ViTConfig(image_size=32, patch_size=8, dim=32, depth=2, heads=2, mlp_dim=64, num_classes=5))
    x, y = torch.randn(6, 3, 32, 32), torch.randint(0, 5, (6,))
    fused_loss, fused = _loss_and_grads(model, x, y, "fused")
    math_loss, math = _loss_and_grads(model, x, y, "math")
    assert abs(fused_loss - math_loss) < 1e-5
    for name, grad in fused.items():
        torch.testing.assert_close(math[name], grad, atol=1e-5, rtol=1e-4, msg=name)
