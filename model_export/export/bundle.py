"""Write a model bundle: graphs, weights, labels, manifest, model card and the training record.

The bundle is also a model directory (``model.json`` + ``labels.json`` + ``weights.safetensors``), so
``verify`` and ``inspect`` rebuild the PyTorch model from the bundle alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from model_export.atomic import atomic_directory
from model_export.checkpoint import LABELS_FILE, MODEL_FILE, WEIGHTS_FILE, load_checkpoint
from model_export.config import PRESETS
from model_export.export import archive, graphs, model_card, parity, provenance, variants
from model_export.export.evaluation import EvalSplit, load_test_split, sample_photos
from model_export.model import ViT
from service.bundle import Architecture, GraphSpec, Manifest, Preprocessing, file_sha256

LOGITS_TOLERANCE = 1e-4  # fp32 ORT vs PyTorch, max abs
ROLLOUT_TOLERANCE = 1e-5  # in-graph rollout vs NumPy float64 rollout of PyTorch's attention
REAL_PARITY_IMAGES = 16
CARD_FILE = "MODEL_CARD.md"


class ExportError(RuntimeError):
    """The export could not produce a bundle that meets its own checks."""


def architecture_of(model: ViT) -> Architecture:
    c = model.config
    shape = (c.dim, c.depth, c.heads, c.mlp_dim)
    preset = next((name for name, dims in PRESETS.items() if dims == shape), None)
    return Architecture(
        patch_size=c.patch_size,
        dim=c.dim,
        depth=c.depth,
        heads=c.heads,
        mlp_dim=c.mlp_dim,
        image_size=c.image_size,
        num_classes=c.num_classes,
        in_chans=c.in_chans,
        num_prefix_tokens=c.num_prefix_tokens,
        preset=preset,
        params=model.num_params(),
        flops_per_image=model.flops_per_image(),
    )


def check_parity(file: str, figures: dict[str, float]) -> None:
    if figures.get("max_abs_logits", 0.0) > LOGITS_TOLERANCE:
        raise ExportError(f"{file}: logits differ from PyTorch by {figures['max_abs_logits']:.3g}")
    if figures.get("max_abs_rollout", 0.0) > ROLLOUT_TOLERANCE:
        raise ExportError(f"{file}: rollout differs from NumPy by {figures['max_abs_rollout']:.3g}")


def parity_batches(model: ViT, preprocessing: Preprocessing, split: EvalSplit) -> dict[str, np.ndarray]:
    """Seeded random images, plus real ones: the run's test split, or sample photos without one."""
    batches = {"random": parity.random_pixels(model.config.image_size)}
    if split.available:
        assert split.images is not None
        batches["test"] = split.images[:REAL_PARITY_IMAGES]
    else:
        with contextlib.suppress(ImportError):  # scikit-image is optional at export time
            batches["photos"] = sample_photos(preprocessing)
    return batches


class _GraphWriter:
    """Exports and measures the graphs of one bundle; collects their GraphSpecs."""

    def __init__(self, staging: Path, model: ViT, preprocessing: Preprocessing, split: EvalSplit, opset: int):
        self.staging, self.model, self.preprocessing, self.split, self.opset = (
            staging,
            model,
            preprocessing,
            split,
            opset,
        )
        self.batches = parity_batches(model, preprocessing, split)
        self.references = {
            name: parity.torch_reference(model, preprocessing, pixels)
            for name, pixels in self.batches.items()
        }
        self.specs: list[GraphSpec] = []
        self.fp32_top1: float | None = None
        self.notes: dict[str, str] = {}

    def add(self, purpose: str, variant: str, file: str, source: str | None = None) -> None:
        path = self.staging / file
        if variant == "fp32":
            graphs.export_graph(purpose, self.model, self.preprocessing, path, self.opset)
        elif variant == "fp16":
            variants.to_fp16(self.staging / str(source), path)
        else:
            variants.to_int8(self.staging / str(source), path)
        session = parity.session(path)
        figures = parity.measure(session, self.batches, self.references)
        if variant == "fp32":
            check_parity(file, figures)
        inputs, outputs = graphs.read_signature(path)
        self.specs.append(
            GraphSpec(
                file=file,
                purpose=purpose,
                variant=variant,
                inputs=inputs,
                outputs=outputs,
                parity=figures,
                accuracy=self.accuracy(session, purpose, variant),
            )
        )

    def accuracy(self, session: Any, purpose: str, variant: str) -> dict[str, Any]:
        if not self.split.available:
            return {}  # numbers only (the service reports them as floats); metrics.export says why
        if purpose == "explain" and variant == "fp32":
            return {"test_top1": self.fp32_top1, "delta_top1_vs_fp32": 0.0}
        assert self.split.images is not None and self.split.labels is not None
        top1 = parity.top1_accuracy(session, self.split.images, self.split.labels)
        if variant == "fp32":
            self.fp32_top1 = top1
        delta = None if self.fp32_top1 is None else top1 - self.fp32_top1
        return {"test_top1": top1, "delta_top1_vs_fp32": delta, "test_images": len(self.split.images)}


def write_bundle_files(
    staging: Path,
    source: Path,
    *,
    name: str,
    version: str | None,
    opset: int,
    fp16: bool,
    int8: bool,
) -> Manifest:
    """Everything but the atomic rename: graphs, copies, training record, card, manifest."""
    model, info = load_checkpoint(source)
    if tuple(info.preprocessing.input_size) != tuple(info.config.image_size):
        raise ExportError(
            f"preprocessing input_size {info.preprocessing.input_size} != model image_size "
            f"{info.config.image_size}"
        )
    for file in (MODEL_FILE, LABELS_FILE, WEIGHTS_FILE):
        shutil.copy2(source / file, staging / file)
    split = load_test_split(source, info.config.image_size)
    writer = _GraphWriter(staging, model, info.preprocessing, split, opset)
    writer.add("classify", "fp32", "classify.onnx")
    writer.add("explain", "fp32", "explain.onnx")
    if fp16:
        writer.add("classify", "fp16", "classify.fp16.onnx", source="classify.onnx")
        writer.add("explain", "fp16", "explain.fp16.onnx", source="explain.onnx")
    if int8:
        writer.add("classify", "int8", "classify.int8.onnx", source="classify.onnx")
        try:
            writer.add("explain", "int8", "explain.int8.onnx", source="explain.onnx")
        except Exception as exc:  # an optional extra: the int8 classify graph is the one that matters
            (staging / "explain.int8.onnx").unlink(missing_ok=True)
            writer.notes["explain_int8"] = f"not written: {type(exc).__name__}: {exc}"
    training = provenance.write_training_dir(staging, source)
    metrics: dict[str, Any] = dict(provenance.read_json(source / "metrics.json"))
    metrics["export"] = {
        "parity_batches": {k: len(v) for k, v in writer.batches.items()},
        "parity_seed": parity.PARITY_SEED,
        "parity_provider": "CPUExecutionProvider",
        "tolerances": {"max_abs_logits": LOGITS_TOLERANCE, "max_abs_rollout": ROLLOUT_TOLERANCE},
        "accuracy_data": split.note,
        **writer.notes,
    }
    weights_sha = file_sha256(staging / WEIGHTS_FILE)
    created = datetime.now(UTC)
    manifest = Manifest(
        name=name,
        version=version or f"{created:%Y.%m.%d}+{weights_sha[:8]}",
        created=created.isoformat(timespec="seconds"),
        architecture=architecture_of(model),
        preprocessing=info.preprocessing,
        graphs=tuple(writer.specs),
        files={},
        training=training,
        metrics=metrics,
        source={
            "kind": training["kind"],
            "path": str(Path(source).resolve()),
            "weights_sha256": weights_sha,
            "checkpoint": info.source,
        },
    )
    (staging / CARD_FILE).write_text(model_card.render(manifest))
    files = {
        path.relative_to(staging).as_posix(): file_sha256(path)
        for path in sorted(staging.rglob("*"))
        if path.is_file()
    }
    manifest = dataclasses.replace(manifest, files=files)
    manifest.write(staging)
    return manifest


def export_bundle(
    source: Path,
    out: Path,
    *,
    name: str | None = None,
    version: str | None = None,
    opset: int = 18,
    fp16: bool = False,
    int8: bool = False,
    overwrite: bool = False,
    verify: bool = True,
) -> Path:
    """Model directory (import or training run) -> bundle directory, or ``.tar`` when ``out`` ends so.

    Fails, leaving nothing behind, when the fp32 graphs miss the parity tolerances; with ``verify`` the
    finished bundle is also re-read and checked the way ``vit-export verify`` does.
    """
    source, out = Path(source), Path(out)
    if not (source / MODEL_FILE).is_file():
        raise ExportError(f"{source} is not a model directory or training run: no {MODEL_FILE}")
    bundle_name = name or out.name.removesuffix(".tar")
    options: dict[str, Any] = dict(name=bundle_name, version=version, opset=opset, fp16=fp16, int8=int8)
    if archive.is_tar(out):
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} already exists (pass --overwrite to replace it)")
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as scratch:
            staging = Path(scratch)
            write_bundle_files(staging, source, **options)
            if verify:
                _verify(staging)
            return archive.write_tar(staging, out, overwrite=overwrite)
    with atomic_directory(out, overwrite=overwrite) as staging:
        write_bundle_files(staging, source, **options)
        if verify:
            _verify(staging)
    return out


def _verify(staging: Path) -> None:
    from model_export.export.verify import verify_bundle

    verify_bundle(staging)


def describe(manifest: Manifest) -> str:
    """One line per graph for the command line."""
    rows = []
    for g in manifest.graphs:
        accuracy = g.accuracy.get("test_top1")
        delta = g.parity.get("max_abs_logits", 0.0)
        rows.append(
            f"  {g.file:<22} {g.purpose:<8} {g.variant:<5} max|Δlogits|={delta:.2e}"
            f" top1-agree={g.parity.get('top1_agreement', 0):.3f}"
            + (f" test-top1={accuracy:.4f}" if accuracy is not None else "")
        )
    return "\n".join(rows)


def read_manifest_json(bundle: Path) -> dict[str, Any]:
    return json.loads((Path(bundle) / "manifest.json").read_text())
