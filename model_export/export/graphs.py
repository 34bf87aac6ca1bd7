"""The two ONNX graphs of a bundle and how they are exported.

Both take resized uint8 RGB pixels [N, H, W, 3] and do the cast, the /255 scaling, mean/std and the
NHWC→NCHW transpose themselves, so serving moves a quarter of the bytes and cannot drift from export.
``classify`` runs the fused-attention path (no probabilities materialised); ``explain`` also returns the
attention rollout of the [CLS] token over the patch grid.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch
from torch import Tensor, nn

from model_export.model import ViT
from model_export.rollout import cls_rollout
from service.bundle import Preprocessing, TensorSpec

INPUT_NAME = "pixels"
BATCH_DIM = "N"
ONNX_DTYPES = {
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.INT64: "int64",
}


class PixelNormalize(nn.Module):
    """uint8 NHWC pixels -> normalised float NCHW, exactly as the manifest's preprocessing says."""

    def __init__(self, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(preprocessing.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(preprocessing.std).view(1, 3, 1, 1))

    def forward(self, pixels: Tensor) -> Tensor:
        x = pixels.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        return (x - self.mean) / self.std


class ClassifyGraph(nn.Module):
    """pixels -> logits, on the fused attention path."""

    def __init__(self, model: ViT, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.normalize = PixelNormalize(preprocessing)
        self.model = model

    def forward(self, pixels: Tensor) -> Tensor:
        return self.model(self.normalize(pixels))


class ExplainGraph(nn.Module):
    """pixels -> (logits, rollout [N, H/P, W/P]); the rollout is the [CLS] row, unscaled."""

    def __init__(self, model: ViT, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.normalize = PixelNormalize(preprocessing)
        self.model = model

    def forward(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        logits, attentions = self.model.forward_with_attention(self.normalize(pixels))
        config = self.model.config
        return logits, cls_rollout(attentions, config.num_prefix_tokens, config.grid_size)


def graph_module(purpose: str, model: ViT, preprocessing: Preprocessing) -> nn.Module:
    modules = {"classify": ClassifyGraph, "explain": ExplainGraph}
    return modules[purpose](model, preprocessing).eval()


def output_names(purpose: str) -> list[str]:
    return ["logits"] if purpose == "classify" else ["logits", "rollout"]


def expected_signature(
    purpose: str, model: ViT, float_dtype: str = "float32"
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The inputs and outputs a graph of this purpose must have (what the manifest records)."""
    config = model.config
    height, width = config.image_size
    inputs = (TensorSpec(INPUT_NAME, "uint8", (BATCH_DIM, height, width, 3)),)
    outputs = [TensorSpec("logits", float_dtype, (BATCH_DIM, config.num_classes))]
    if purpose == "explain":
        outputs.append(TensorSpec("rollout", float_dtype, (BATCH_DIM, *config.grid_size)))
    return inputs, tuple(outputs)


def export_graph(purpose: str, model: ViT, preprocessing: Preprocessing, path: Path, opset: int = 18) -> Path:
    """Export with torch's dynamo exporter (the supported one in torch 2.x), batch axis dynamic, checked."""
    module = graph_module(purpose, model, preprocessing)
    height, width = model.config.image_size
    example = torch.randint(0, 256, (2, height, width, 3), dtype=torch.uint8)
    batch = torch.export.Dim(BATCH_DIM, min=1, max=4096)
    with _quiet():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=output_names(purpose),
            opset_version=opset,
            dynamo=True,
            external_data=False,
            dynamic_shapes={INPUT_NAME: {0: batch}},
            verbose=False,
        )
    onnx.checker.check_model(str(path), full_check=True)
    return Path(path)


def read_signature(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Names, dtypes and shapes of an ONNX file's graph inputs and outputs (symbolic dims as strings)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}

    def spec(value: onnx.ValueInfoProto) -> TensorSpec:
        tensor = value.type.tensor_type
        dims: list[int | str] = [d.dim_param or d.dim_value or "?" for d in tensor.shape.dim]
        return TensorSpec(value.name, ONNX_DTYPES.get(tensor.elem_type, str(tensor.elem_type)), tuple(dims))

    inputs = tuple(spec(v) for v in graph.input if v.name not in initializers)
    return inputs, tuple(spec(v) for v in graph.output)


def signature_mismatches(actual: tuple[TensorSpec, ...], expected: tuple[TensorSpec, ...]) -> list[str]:
    """Differences between two signatures; any symbolic dim matches any other symbolic dim."""
    problems = []
    if [s.name for s in actual] != [s.name for s in expected]:
        return [f"names {[s.name for s in actual]} != {[s.name for s in expected]}"]
    for got, want in zip(actual, expected, strict=True):
        if got.dtype != want.dtype:
            problems.append(f"{got.name}: dtype {got.dtype} != {want.dtype}")
        same_rank = len(got.shape) == len(want.shape)
        dims_match = same_rank and all(
            (isinstance(a, str) and isinstance(b, str)) or a == b
            for a, b in zip(got.shape, want.shape, strict=True)
        )
        if not dims_match:
            problems.append(f"{got.name}: shape {list(got.shape)} != {list(want.shape)}")
    return problems


@contextlib.contextmanager
def _quiet():
    """The exporter narrates every stage on stdout and warns about optional torchvision ops."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
