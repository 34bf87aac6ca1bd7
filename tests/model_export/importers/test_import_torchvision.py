"""torchvision's VisionTransformer layout: a small replica with torchvision's exact module names, built on
``nn.MultiheadAttention`` (an implementation independent of ours), imported and compared."""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

import pytest
import torch
from torch import nn

from model_export.importers import CheckpointError, load_foreign

LayerNorm = partial(nn.LayerNorm, eps=1e-6)


class EncoderBlock(nn.Module):
    def __init__(self, heads: int, dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(dim)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(0.0), nn.Linear(mlp_dim, dim))

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.self_attention(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self, tokens: int, depth: int, heads: int, dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.randn(1, tokens, dim) * 0.2)
        self.layers = nn.Sequential(
            OrderedDict((f"encoder_layer_{i}", EncoderBlock(heads, dim, mlp_dim)) for i in range(depth))
        )
        self.ln = LayerNorm(dim)

    def forward(self, x):
        return self.ln(self.layers(x + self.pos_embedding))


class TorchvisionViT(nn.Module):
    """torchvision.models.VisionTransformer's structure and parameter names (no conv stem)."""

    def __init__(
        self, size=32, patch=8, depth=2, heads=4, dim=32, mlp_dim=64, classes=5, representation=None
    ):
        super().__init__()
        self.conv_proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.class_token = nn.Parameter(torch.randn(1, 1, dim) * 0.2)
        self.encoder = Encoder((size // patch) ** 2 + 1, depth, heads, dim, mlp_dim)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if representation:
            layers["pre_logits"] = nn.Linear(dim, representation)
            layers["act"] = nn.Tanh()
        layers["head"] = nn.Linear(representation or dim, classes)
        self.heads = nn.Sequential(layers)

    def forward(self, x):
        x = self.conv_proj(x).flatten(2).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.heads(self.encoder(x)[:, 0])


def randomised(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return model.eval()


@pytest.mark.parametrize("representation", [None, 12])
def test_torchvision_layout_matches_its_own_forward(tmp_path, representation):
    torch.manual_seed(0)
    source = randomised(TorchvisionViT(representation=representation))
    torch.save(source.state_dict(), tmp_path / "vit_b_16-c867db91.pth")

    ours, info = load_foreign("torchvision", tmp_path / "vit_b_16-c867db91.pth", heads=4)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), source(pixels), rtol=0, atol=1e-5)
    assert info.config.pre_logits_dim == representation and info.config.ln_eps == 1e-6
    pre = info.preprocessing
    assert (pre.resize, pre.resize_size, pre.interpolation) == ("shorter_side", int(32 / 0.875), "bilinear")
    assert pre.mean == (0.485, 0.456, 0.406)


def test_legacy_mlp_names_and_standard_width(tmp_path):
    torch.manual_seed(1)
    source = randomised(TorchvisionViT(size=32, patch=16, depth=1, heads=12, dim=768, mlp_dim=64, classes=3))
    state = {
        k.replace("mlp.0.", "mlp.linear_1.").replace("mlp.3.", "mlp.linear_2."): v
        for k, v in source.state_dict().items()
    }  # torchvision < 0.13 names
    torch.save(state, tmp_path / "old.pth")
    ours, info = load_foreign("torchvision", tmp_path / "old.pth")
    assert info.config.heads == 12  # ViT-B width -> 12 heads
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), source(pixels), rtol=0, atol=1e-4)


def test_conv_stem_variant_is_refused(tmp_path):
    state = TorchvisionViT().state_dict()
    state["conv_proj.conv_bn_relu_0.0.weight"] = torch.zeros(8, 3, 3, 3)
    torch.save(state, tmp_path / "stem.pth")
    with pytest.raises(CheckpointError, match="convolutional stem"):
        load_foreign("torchvision", tmp_path / "stem.pth", heads=4)
