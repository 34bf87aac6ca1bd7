"""The benchmark's models, exported once into the ``.bench/`` cache with the project's own bundle writer.

``vit-s16`` and ``vit-b16`` are the paper's ViT-S/16 and ViT-B/16 at 224 px with random weights (speed does
not depend on the values); ``digits`` is the embedded default bundle (``bundles/default``, ``make bundle``);
``tiny`` is a two-block ViT on 32 px images that exports in seconds, for the harness's own test.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

from model_export.checkpoint import ModelInfo, load_checkpoint, save_checkpoint
from model_export.config import ViTConfig
from model_export.model import ViT
from service.bundle import Manifest, Preprocessing

IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    title: str
    config: ViTConfig | None  # None: an existing bundle (the digits default)
    preprocessing: Preprocessing | None = None


def _imagenet_style(preset: str) -> ModelSpec:
    config = ViTConfig.preset(preset, patch_size=16, image_size=224, num_classes=1000)
    pre = Preprocessing(
        input_size=(224, 224), resize="shorter_side", resize_size=256, interpolation="bicubic", **IMAGENET
    )
    return ModelSpec(f"vit-{preset}16", f"ViT-{preset.upper()}/16, 224 px (random weights)", config, pre)


MODELS: dict[str, ModelSpec] = {
    "digits": ModelSpec("digits", "digits default bundle (bundles/default)", None),
    "vit-s16": _imagenet_style("s"),
    "vit-b16": _imagenet_style("b"),
    "tiny": ModelSpec(
        "tiny",
        "tiny ViT (2 blocks, dim 32, 32 px; harness test only)",
        ViTConfig(image_size=32, patch_size=8, dim=32, depth=2, heads=2, mlp_dim=64, num_classes=10),
        Preprocessing(input_size=(32, 32), resize="exact", interpolation="bilinear"),
    ),
}


@dataclass(frozen=True)
class PreparedModel:
    spec: ModelSpec
    bundle: Path
    model_dir: Path | None  # the PyTorch model directory (for the PyTorch peer); None when unknown
    manifest: Manifest

    @property
    def input_size(self) -> tuple[int, int]:
        return self.manifest.preprocessing.input_size

    def graph_path(self, purpose: str = "classify") -> Path:
        return self.bundle / self.manifest.graph(purpose).file

    def flops_per_image(self) -> int:
        if self.manifest.architecture.flops_per_image:
            return int(self.manifest.architecture.flops_per_image)
        return ViT(_config_of(self.manifest)).flops_per_image()


def _config_of(manifest: Manifest) -> ViTConfig:
    a = manifest.architecture
    return ViTConfig(
        image_size=a.image_size,
        patch_size=a.patch_size,
        in_chans=a.in_chans,
        num_classes=a.num_classes,
        dim=a.dim,
        depth=a.depth,
        heads=a.heads,
        mlp_dim=a.mlp_dim,
        distilled=a.num_prefix_tokens == 2,
    )


def _random_model(config: ViTConfig, seed: int = 0) -> ViT:
    torch.manual_seed(seed)
    model = ViT(config)
    torch.nn.init.normal_(model.head.weight, std=0.02)  # a zero head would make every class tie
    return model.eval()


def prepare(name: str, cache: Path, repo: Path, build_default: bool = True) -> PreparedModel | None:
    """The model's bundle (exporting it into ``cache`` on first use); None when the digits default is
    missing and may not be built here."""
    from model_export.export.bundle import export_bundle  # heavy: torch.onnx

    spec = MODELS[name]
    if spec.config is None:
        bundle = repo / "bundles" / "default"
        if not (bundle / "manifest.json").is_file():
            if not build_default:
                return None
            subprocess.run(["make", "bundle"], cwd=repo, check=True)
        model_dir = repo / "runs" / "default"
        return PreparedModel(spec, bundle, model_dir if model_dir.is_dir() else None, Manifest.read(bundle))
    model_dir = cache / "models" / name
    bundle = cache / "bundles" / name
    if not (model_dir / "model.json").is_file():
        labels = [f"class_{i}" for i in range(spec.config.num_classes)]
        save_checkpoint(
            model_dir,
            _random_model(spec.config),
            ModelInfo(spec.config, spec.preprocessing, labels),
            overwrite=True,
        )
    if not (bundle / "manifest.json").is_file():
        export_bundle(model_dir, bundle, overwrite=True)
    return PreparedModel(spec, bundle, model_dir, Manifest.read(bundle))


def load_torch(prepared: PreparedModel) -> ViT:
    if prepared.model_dir is None:
        raise FileNotFoundError(f"no PyTorch model directory for {prepared.spec.name}")
    model, _ = load_checkpoint(prepared.model_dir)
    return model
