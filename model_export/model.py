"""The Vision Transformer of "An Image is Worth 16x16 Words" (Dosovitskiy et al., 2021), in plain PyTorch.

Pre-LayerNorm encoder blocks (multi-head self-attention with fused QKV, GELU MLP, residuals), a learned
[CLS] token (plus DeiT's optional distillation token, Touvron et al. 2021), learned 1-D position
embeddings and a linear head on the final [CLS] state. Parameter names follow timm's layout, so foreign
checkpoints are converted at the edge (``model_export.importers``) and the model keeps one layout.

The default forward path uses fused ``scaled_dot_product_attention``; asking for attention
probabilities (for rollout and inspection) switches to an explicit softmax only for that call.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model_export.config import ViTConfig
from model_export.pos_embed import resample_abs_pos_embed


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop a residual branch per sample while training."""

    def __init__(self, prob: float) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: Tensor) -> Tensor:
        if self.prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class PatchEmbed(nn.Module):
    """Cut the image into P×P patches and embed each linearly (a strided convolution does both)."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        p = config.patch_size
        self.proj = nn.Conv2d(config.in_chans, config.dim, kernel_size=p, stride=p)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # [N, H/P * W/P, dim]


class Attention(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.head_dim = config.dim // config.heads
        self.qkv = nn.Linear(config.dim, 3 * config.dim, bias=config.qkv_bias)
        self.attn_drop = config.attn_dropout
        self.proj = nn.Linear(config.dim, config.dim)
        self.proj_drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, return_attn: bool = False) -> tuple[Tensor, Tensor | None]:
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [N, heads, T, head_dim]
        probs = None
        if return_attn:
            scores = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)
            probs = scores.softmax(dim=-1)
            out = F.dropout(probs, self.attn_drop, self.training) @ v
        else:
            drop = self.attn_drop if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        out = out.transpose(1, 2).reshape(n, t, d)
        return self.proj_drop(self.proj(out)), probs


class MLP(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.dim, config.mlp_dim)
        self.act = nn.GELU(approximate="tanh" if config.gelu == "tanh" else "none")
        self.fc2 = nn.Linear(config.mlp_dim, config.dim)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-LN encoder block: x + MSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: ViTConfig, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.dim, eps=config.ln_eps)
        self.attn = Attention(config)
        self.norm2 = nn.LayerNorm(config.dim, eps=config.ln_eps)
        self.mlp = MLP(config)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, return_attn: bool = False) -> tuple[Tensor, Tensor | None]:
        attn_out, probs = self.attn(self.norm1(x), return_attn)
        x = x + self.drop_path(attn_out)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, probs


class ViT(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, config.dim)) if config.distilled else None
        num_tokens = config.num_patches + config.num_prefix_tokens
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, config.dim))
        self.pos_drop = nn.Dropout(config.dropout)
        # deeper blocks drop more (linear rule of Huang et al.)
        rates = [config.drop_path * i / max(config.depth - 1, 1) for i in range(config.depth)]
        self.blocks = nn.ModuleList(Block(config, rate) for rate in rates)
        self.norm = nn.LayerNorm(config.dim, eps=config.ln_eps)
        self.pre_logits = (
            nn.Sequential(nn.Linear(config.dim, config.pre_logits_dim), nn.Tanh())
            if config.pre_logits_dim
            else nn.Identity()
        )
        head_in = config.pre_logits_dim or config.dim
        self.head = nn.Linear(head_in, config.num_classes)
        self.head_dist = nn.Linear(config.dim, config.num_classes) if config.distilled else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """timm/ViT-style init: truncated normal (std .02) for embeddings and linears, zero biases."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.dist_token is not None:
            nn.init.trunc_normal_(self.dist_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # Patch embedding as a linear layer on flattened patches (lecun normal, as in the JAX code).
        weight = self.patch_embed.proj.weight
        nn.init.trunc_normal_(weight, std=math.sqrt(1.0 / weight[0].numel()))
        nn.init.zeros_(self.patch_embed.proj.bias)

    def reset_head(self, num_classes: int) -> None:
        """A new zero-initialised head for fine-tuning on other classes (paper, Appendix B.1.1)."""
        self.config.num_classes = num_classes
        device = self.head.weight.device
        self.head = nn.Linear(self.head.in_features, num_classes, device=device)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        if self.head_dist is not None:
            self.head_dist = nn.Linear(self.config.dim, num_classes, device=device)
            nn.init.zeros_(self.head_dist.weight)
            nn.init.zeros_(self.head_dist.bias)

    def forward_features(self, pixels: Tensor, return_attn: bool = False) -> tuple[Tensor, list[Tensor]]:
        """Normalised pixels [N, C, H, W] -> final token states [N, T, dim] and, if asked, the
        attention probabilities of every layer ([N, heads, T, T] each)."""
        x = self.patch_embed(pixels)
        prefix = [self.cls_token.expand(x.shape[0], -1, -1)]
        if self.dist_token is not None:
            prefix.append(self.dist_token.expand(x.shape[0], -1, -1))
        x = self.pos_drop(torch.cat([*prefix, x], dim=1) + self.pos_embed)
        attentions: list[Tensor] = []
        for block in self.blocks:
            x, probs = block(x, return_attn)
            if probs is not None:
                attentions.append(probs)
        return self.norm(x), attentions

    def head_logits(self, tokens: Tensor) -> Tensor:
        logits = self.head(self.pre_logits(tokens[:, 0]))
        if self.head_dist is not None:
            dist_logits = self.head_dist(tokens[:, 1])
            if self.training:
                return (logits + dist_logits) / 2  # plain supervised training: both heads on the label
            logits = (logits + dist_logits) / 2  # DeiT inference: average the two heads
        return logits

    def forward(self, pixels: Tensor) -> Tensor:
        tokens, _ = self.forward_features(pixels)
        return self.head_logits(tokens)

    def forward_with_attention(self, pixels: Tensor) -> tuple[Tensor, list[Tensor]]:
        tokens, attentions = self.forward_features(pixels, return_attn=True)
        return self.head_logits(tokens), attentions

    # -- bookkeeping ---------------------------------------------------------------------------

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_image(self) -> int:
        """Forward FLOPs (2 per multiply-add) of the matrix products; norms and softmax excluded."""
        c = self.config
        tokens = c.num_patches + c.num_prefix_tokens
        patch = 2 * c.num_patches * (c.in_chans * c.patch_size**2) * c.dim
        per_block = (
            2 * tokens * c.dim * 3 * c.dim  # qkv
            + 2 * 2 * tokens * tokens * c.dim  # scores and weighted sum
            + 2 * tokens * c.dim * c.dim  # output projection
            + 2 * 2 * tokens * c.dim * c.mlp_dim  # MLP
        )
        head = 2 * (c.pre_logits_dim or c.dim) * c.num_classes
        return patch + c.depth * per_block + head

    def load_state_dict_resampled(self, state_dict: dict[str, Tensor], strict: bool = True):
        """Load weights, resampling position embeddings in 2-D when the checkpoint's grid differs."""
        state_dict = dict(state_dict)
        source = state_dict.get("pos_embed")
        if source is not None and source.shape != self.pos_embed.shape:
            state_dict["pos_embed"] = resample_abs_pos_embed(
                source,
                new_grid=self.config.grid_size,
                num_prefix_tokens=self.config.num_prefix_tokens,
            )
        return self.load_state_dict(state_dict, strict=strict)
