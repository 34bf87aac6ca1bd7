"""Classification metrics over a split: loss, top-1, top-5 (more than 5 classes), per-class accuracy and
the confusion matrix (rows: true class, columns: predicted)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model_export.training.transforms import to_model_input


@torch.no_grad()
def predict(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device,
    autocast: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits (float32) and labels for every batch of uint8 [N, H, W, 3] pixels."""
    was_training = model.training
    model.eval()
    logits, labels = [], []
    for pixels, target in batches:
        x = to_model_input(pixels.to(device), mean, std)
        context = torch.autocast(device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with context:
            out = model(x)
        logits.append(out.float().cpu())
        labels.append(target.cpu())
    model.train(was_training)
    return torch.cat(logits).numpy(), torch.cat(labels).numpy().astype(np.int64)


def classification_metrics(logits: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    num_classes = len(classes)
    loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)))
    predicted = logits.argmax(axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class_total = confusion.sum(axis=1)
    per_class = np.divide(
        np.diag(confusion), per_class_total, out=np.zeros(num_classes), where=per_class_total > 0
    )
    result: dict[str, Any] = {
        "count": len(labels),
        "loss": loss,
        "top1": float((predicted == labels).mean()) if len(labels) else 0.0,
    }
    if num_classes > 5:
        top5 = np.argsort(-logits, axis=1, kind="stable")[:, :5]
        result["top5"] = float((top5 == labels[:, None]).any(axis=1).mean())
    result["per_class_accuracy"] = {name: float(acc) for name, acc in zip(classes, per_class, strict=True)}
    result["confusion_matrix"] = confusion.tolist()
    return result
