"""ONNX Runtime against PyTorch: the figures a bundle records at export and ``verify`` re-measures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from model_export.export.graphs import INPUT_NAME, PixelNormalize
from model_export.export.reference import numpy_rollout
from model_export.model import ViT
from service.bundle import Preprocessing

PARITY_SEED = 0
PARITY_BATCH = 8
EVAL_CHUNK = 64


@dataclass
class Reference:
    """PyTorch's answers for one batch: fused-path logits, and the NumPy rollout of its attention."""

    logits: np.ndarray
    rollout: np.ndarray


def random_pixels(
    image_size: tuple[int, int], count: int = PARITY_BATCH, seed: int = PARITY_SEED
) -> np.ndarray:
    """A fixed, seeded batch of uint8 RGB images, so every parity figure is reproducible."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, *image_size, 3), dtype=np.uint8)


def session(path: Path, providers: list[str] | None = None, threads: int = 2) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])


@torch.no_grad()
def torch_reference(model: ViT, preprocessing: Preprocessing, pixels: np.ndarray) -> Reference:
    x = PixelNormalize(preprocessing)(torch.from_numpy(pixels))
    logits = model(x)
    _, attentions = model.forward_with_attention(x)
    config = model.config
    rollout = numpy_rollout([a.numpy() for a in attentions], config.num_prefix_tokens, config.grid_size)
    return Reference(logits=logits.numpy(), rollout=rollout)


def run_graph(sess: ort.InferenceSession, pixels: np.ndarray) -> list[np.ndarray]:
    outputs = []
    for start in range(0, len(pixels), EVAL_CHUNK):
        outputs.append(sess.run(None, {INPUT_NAME: pixels[start : start + EVAL_CHUNK]}))
    return [np.concatenate([chunk[i] for chunk in outputs]) for i in range(len(outputs[0]))]


def compare(sess: ort.InferenceSession, pixels: np.ndarray, reference: Reference) -> dict[str, float]:
    """Max abs logit difference, top-1 agreement and (explain graphs) max abs rollout difference."""
    outputs = run_graph(sess, pixels)
    logits = outputs[0].astype(np.float64)
    figures = {
        "max_abs_logits": float(np.abs(logits - reference.logits).max()),
        "top1_agreement": float((logits.argmax(1) == reference.logits.argmax(1)).mean()),
    }
    if len(outputs) > 1:
        figures["max_abs_rollout"] = float(np.abs(outputs[1].astype(np.float64) - reference.rollout).max())
    return figures


def measure(
    sess: ort.InferenceSession, batches: dict[str, np.ndarray], references: dict[str, Reference]
) -> dict[str, float]:
    """Figures per named batch (``random``, ``test``), plus the worst case over all of them."""
    parity: dict[str, float] = {}
    for name, pixels in batches.items():
        for key, value in compare(sess, pixels, references[name]).items():
            parity[f"{key}_{name}"] = value
    for key in ("max_abs_logits", "max_abs_rollout"):
        values = [v for k, v in parity.items() if k.startswith(key + "_")]
        if values:
            parity[key] = max(values)
    agreements = [v for k, v in parity.items() if k.startswith("top1_agreement_")]
    parity["top1_agreement"] = min(agreements)
    return parity


def top1_accuracy(sess: ort.InferenceSession, images: np.ndarray, labels: np.ndarray) -> float:
    logits = run_graph(sess, images)[0]
    return float((logits.argmax(1) == labels).mean())
