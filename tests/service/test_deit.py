"""The real DeiT-Tiny (shared data), exported and served: photos get the same top-1 as PyTorch.

The PyTorch side is an independent evaluation: Pillow resize of the shorter side to 256 (bicubic),
centre crop 224, ImageNet mean/std, then the model in float32 — nothing from the service's imaging.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
WEIGHTS = DATA / "deit_tiny_patch16_224.safetensors"
SYNSETS = DATA / "imagenet_synset_words.txt"
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.shared_data,
    pytest.mark.skipif(not (WEIGHTS.is_file() and SYNSETS.is_file()), reason="shared DeiT-Tiny data absent"),
]


@pytest.fixture(scope="module")
def deit(tmp_path_factory: pytest.TempPathFactory):
    import torch
    from safetensors.torch import load_file

    from model_export.checkpoint import ModelInfo, save_checkpoint
    from model_export.config import ViTConfig
    from model_export.export.bundle import export_bundle
    from model_export.model import ViT
    from service.bundle import Preprocessing

    torch.set_num_threads(2)
    config = ViTConfig.preset("ti", patch_size=16, num_classes=1000)
    model = ViT(config)
    model.load_state_dict_resampled(load_file(str(WEIGHTS)))
    model.eval()
    labels = [line.split(" ", 1)[1].split(",")[0].strip() for line in SYNSETS.read_text().splitlines()]
    preprocessing = Preprocessing(
        input_size=(224, 224),
        resize="shorter_side",
        resize_size=256,
        interpolation="bicubic",
        mean=MEAN,
        std=STD,
    )
    root = tmp_path_factory.mktemp("deit")
    source = save_checkpoint(root / "model", model, ModelInfo(config, preprocessing, labels))
    bundle = export_bundle(source, root / "bundle", verify=False)
    return model, labels, bundle


def photo_png(name: str) -> bytes:
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(getattr(data, name)()).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def torch_top1(model, data: bytes) -> tuple[int, float]:
    import torch

    image = Image.open(io.BytesIO(data)).convert("RGB")
    scale = 256 / min(image.size)
    resized = image.resize(
        (max(256, int(image.width * scale)), max(256, int(image.height * scale))), Image.Resampling.BICUBIC
    )
    left, top = round((resized.width - 224) / 2), round((resized.height - 224) / 2)
    crop = np.asarray(resized.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255
    x = torch.from_numpy((crop - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).permute(2, 0, 1)[
        None
    ]
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    return int(probs.argmax()), float(probs.max())


def test_photos_get_the_pytorch_top1(deit, start_server):
    model, labels, bundle = deit
    server = start_server(bundle, env={"VIT_MAX_BATCH_SIZE": "4"})
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get("/v1/model").json()["num_classes"] == 1000
        for name in PHOTOS:
            data = photo_png(name)
            response = client.post(
                "/classify", params={"top_k": 3}, files={"file": (f"{name}.png", data, "image/png")}
            )
            assert response.status_code == 200, response.text
            served = response.json()["predictions"][0]
            index, score = torch_top1(model, data)
            assert served["index"] == index and served["label"] == labels[index], (
                name,
                served,
                labels[index],
            )
            assert served["score"] == pytest.approx(score, abs=2e-2)
