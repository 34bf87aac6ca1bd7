import numpy as np
import pytest
import torch

from model_export.config import ViTConfig
from model_export.model import ViT
from model_export.pos_embed import resample_abs_pos_embed
from model_export.rollout import cls_rollout
from tests.reference import numpy_rollout


def tiny(**overrides) -> ViTConfig:
    values = dict(image_size=32, patch_size=8, num_classes=5, dim=32, depth=3, heads=4, mlp_dim=64)
    values.update(overrides)
    return ViTConfig(**values)


@pytest.mark.parametrize(
    ("preset", "patch", "classes", "expected"),
    [
        ("b", 16, 1000, 86_567_656),  # the paper's ViT-B/16 and timm's vit_base_patch16_224
        ("b", 32, 1000, 88_224_232),  # timm vit_base_patch32_224
        ("l", 16, 1000, 304_326_632),  # timm vit_large_patch16_224
        ("s", 16, 1000, 22_050_664),  # timm vit_small_patch16_224 / DeiT-S
        ("ti", 16, 1000, 5_717_416),  # DeiT-Ti
    ],
)
def test_parameter_counts_match_reference_libraries(preset, patch, classes, expected):
    config = ViTConfig.preset(preset, patch_size=patch, num_classes=classes)
    with torch.device("meta"):
        model = ViT(config)
    assert model.num_params() == expected


def test_huge_preset_shape():
    config = ViTConfig.preset("h", patch_size=14)
    assert (config.dim, config.depth, config.heads, config.mlp_dim) == (1280, 32, 16, 5120)
    with torch.device("meta"):
        assert ViT(config).num_params() == 632_045_800  # timm vit_huge_patch14_224


def test_forward_shapes_non_square_and_any_channels():
    config = tiny(image_size=(24, 40), patch_size=4, in_chans=1)
    model = ViT(config).eval()
    logits = model(torch.randn(2, 1, 24, 40))
    assert logits.shape == (2, 5)
    assert config.grid_size == (6, 10)
    assert model.pos_embed.shape == (1, 61, 32)


def test_attention_path_matches_fused_path():
    torch.manual_seed(0)
    model = ViT(tiny()).eval()
    x = torch.randn(3, 3, 32, 32)
    fused = model(x)
    explicit, attentions = model.forward_with_attention(x)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
    assert len(attentions) == 3
    assert attentions[0].shape == (3, 4, 17, 17)
    torch.testing.assert_close(attentions[1].sum(-1), torch.ones(3, 4, 17))


def test_distilled_model_averages_heads_at_inference():
    torch.manual_seed(0)
    model = ViT(tiny(distilled=True)).eval()
    x = torch.randn(2, 3, 32, 32)
    tokens, _ = model.forward_features(x)
    expected = (model.head(tokens[:, 0]) + model.head_dist(tokens[:, 1])) / 2
    torch.testing.assert_close(model(x), expected)
    assert model.pos_embed.shape[1] == 16 + 2


def test_tanh_gelu_is_selectable_and_differs():
    torch.manual_seed(0)
    exact = ViT(tiny()).eval()
    approx = ViT(tiny(gelu="tanh")).eval()
    approx.load_state_dict(exact.state_dict())
    x = torch.randn(1, 3, 32, 32)
    assert not torch.equal(exact(x), approx(x))
    torch.testing.assert_close(exact(x), approx(x), atol=1e-2, rtol=0)


def test_dropout_and_drop_path_only_while_training():
    torch.manual_seed(0)
    model = ViT(tiny(dropout=0.1, drop_path=0.2))
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_reset_head_is_zero_initialised():
    model = ViT(tiny())
    model.reset_head(7)
    assert model.config.num_classes == 7
    logits = model.eval()(torch.randn(1, 3, 32, 32))
    assert logits.shape == (1, 7)
    assert torch.count_nonzero(logits) == 0


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="not divisible by patch"):
        ViTConfig(image_size=30, patch_size=16)
    with pytest.raises(ValueError, match="heads"):
        ViTConfig(dim=30, heads=4)
    with pytest.raises(ValueError, match="unknown preset"):
        ViTConfig.preset("xl")


def test_config_round_trips_through_dict():
    config = tiny(image_size=(16, 32), distilled=True)
    assert ViTConfig.from_dict(config.to_dict()) == config


def test_flops_match_a_hand_count_for_b16():
    config = ViTConfig.preset("b", patch_size=16)
    with torch.device("meta"):
        flops = ViT(config).flops_per_image()
    # timm's results table lists vit_base_patch16_224 at 17.58 GMACs, i.e. about 35.2 GFLOPs.
    assert 2 * 17.5e9 < flops < 2 * 17.65e9


# -- position-embedding resampling ------------------------------------------------------------------


def test_resample_is_identity_at_same_grid():
    pos = torch.randn(1, 1 + 14 * 14, 8)
    assert resample_abs_pos_embed(pos, (14, 14)) is pos


def test_resample_keeps_prefix_tokens_and_reaches_new_grid():
    pos = torch.randn(1, 2 + 4 * 4, 8)
    out = resample_abs_pos_embed(pos, (6, 8), num_prefix_tokens=2)
    assert out.shape == (1, 2 + 48, 8)
    torch.testing.assert_close(out[:, :2], pos[:, :2])


def test_resample_non_square_source_grid():
    pos = torch.randn(1, 1 + 3 * 5, 4)
    out = resample_abs_pos_embed(pos, (6, 10), old_grid=(3, 5))
    assert out.shape == (1, 1 + 60, 4)
    with pytest.raises(ValueError, match="square"):
        resample_abs_pos_embed(pos, (6, 10))


def test_resample_preserves_smooth_fields():
    """A linear ramp over the grid stays (nearly) a linear ramp at the new resolution."""
    old, new = 14, 24
    ys, xs = torch.meshgrid(torch.linspace(0, 1, old), torch.linspace(0, 1, old), indexing="ij")
    field = torch.stack([xs, ys], dim=-1).reshape(1, old * old, 2)
    pos = torch.cat([torch.full((1, 1, 2), 7.0), field], dim=1)
    out = resample_abs_pos_embed(pos, (new, new))[:, 1:].reshape(new, new, 2)
    # interior of the ramp in x is monotonic and spans nearly the same range
    assert torch.all(out[new // 2, 1:, 0] > out[new // 2, :-1, 0])
    assert abs(out[..., 0].max().item() - 1) < 0.05 and abs(out[..., 0].min().item()) < 0.05


def test_loading_224_weights_at_384_gives_a_close_working_model():
    torch.manual_seed(0)
    small = ViTConfig(image_size=64, patch_size=16, num_classes=4, dim=32, depth=2, heads=2, mlp_dim=64)
    model = ViT(small).eval()
    # smooth position embeddings, as trained models have
    grid = torch.linspace(-1, 1, 4)
    ys, xs = torch.meshgrid(grid, grid, indexing="ij")
    smooth = torch.stack([xs, ys] * 16, dim=-1).reshape(1, 16, 32) * 0.1
    with torch.no_grad():
        model.pos_embed[:, 1:] = smooth
    big = ViT(ViTConfig(**{**small.to_dict(), "image_size": [96, 96]})).eval()
    big.load_state_dict_resampled(model.state_dict())
    assert big.pos_embed.shape == (1, 1 + 36, 32)
    smooth_image = torch.linspace(0, 1, 96).repeat(3, 96, 1).unsqueeze(0)
    small_image = torch.nn.functional.interpolate(smooth_image, size=64, mode="bilinear")
    with torch.no_grad():
        p_small = model(small_image).softmax(-1)
        p_big = big(smooth_image).softmax(-1)
    assert torch.isfinite(p_big).all()
    assert (p_small - p_big).abs().max() < 0.05


# -- rollout ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("distilled", [False, True])
def test_cls_rollout_matches_numpy_full_products(distilled):
    torch.manual_seed(0)
    config = tiny(distilled=distilled)
    model = ViT(config).eval()
    with torch.no_grad():
        _, attentions = model.forward_with_attention(torch.randn(2, 3, 32, 32))
        rollout = cls_rollout(attentions, config.num_prefix_tokens, config.grid_size)
    expected = numpy_rollout([a.numpy() for a in attentions], config.num_prefix_tokens, config.grid_size)
    np.testing.assert_allclose(rollout.numpy(), expected, atol=1e-6)
    assert rollout.shape == (2, 4, 4)
