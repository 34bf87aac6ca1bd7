"""The real DeiT-Tiny from ../shared/data, imported as timm and as DeiT, classifying real photos with the
preprocessing recorded in model.json (implemented here with Pillow, as serving does)."""

from __future__ import annotations

import pytest
import torch

from model_export.checkpoint import load_checkpoint
from model_export.importers import import_checkpoint
from tests.model_export.importers.importer_helpers import DEIT_TINY, preprocess

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not DEIT_TINY.is_file(), reason=f"{DEIT_TINY} is absent"),
]
skimage_data = pytest.importorskip("skimage.data")

CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
COFFEE = {"cup", "espresso", "coffee mug"}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("deit")
    return {fmt: load_checkpoint(import_checkpoint(fmt, DEIT_TINY, root / fmt)) for fmt in ("timm", "deit")}


def top1(model, info, rgb) -> str:
    with torch.no_grad():
        logits = model(preprocess(rgb, info.preprocessing))
    return info.labels[int(logits.argmax())]


@pytest.mark.parametrize("fmt", ["timm", "deit"])
def test_real_deit_tiny_classifies_photos(imported, fmt):
    model, info = imported[fmt]
    assert model.num_params() == 5_717_416
    c, pre = info.config, info.preprocessing
    assert (c.dim, c.depth, c.heads, c.mlp_dim, c.patch_size, c.image_size) == (
        192,
        12,
        3,
        768,
        16,
        (224, 224),
    )
    assert (pre.resize, pre.resize_size, pre.interpolation) == ("shorter_side", 256, "bicubic")
    assert pre.mean == (0.485, 0.456, 0.406) and pre.std == (0.229, 0.224, 0.225)
    assert top1(model, info, skimage_data.chelsea()) in CATS
    assert top1(model, info, skimage_data.coffee()) in COFFEE


def test_timm_and_deit_imports_agree(imported):
    pixels = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(imported["timm"][0](pixels), imported["deit"][0](pixels), rtol=0, atol=0)
