"""The bundle's ``training/`` folder: the code, pins, configuration and data fingerprint behind the weights.

A training run (a model directory with ``config.json``) gets a copy of the ``model_export`` sources and of
``service/bundle`` (which they import) under ``training/src``, so ``vit-export regenerate`` can retrain from
the bundle alone. An imported checkpoint has no training recipe; its ``training/`` says so.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import model_export
import service.bundle
from service.bundle import file_sha256

TRAINING_DIR = "training"
RUN_FILES = ("config.json", "metrics.json", "data.json")
PINNED = (
    "torch",
    "numpy",
    "safetensors",
    "scikit-learn",
    "pillow",
    "onnx",
    "onnxscript",
    "onnxruntime",
    "typer",
    "tqdm",
    "rich",
    "matplotlib",
    "scikit-image",
)
SERVICE_INIT = '"""Only the bundle schema is carried here; the HTTP service is not part of training."""\n'


def is_training_run(source: Path) -> bool:
    return (Path(source) / "config.json").is_file()


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text()) if Path(path).is_file() else {}


def requirements() -> str:
    """Exact versions of what trained and exported the weights, from the running interpreter."""
    lines = [f"# python {sys.version.split()[0]}"]
    for name in PINNED:
        try:
            lines.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return "\n".join(lines) + "\n"


def copy_sources(target: Path) -> None:
    """``model_export`` and ``service/bundle`` as plain sources (no caches, no compiled files)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")
    shutil.copytree(Path(model_export.__file__).parent, target / "model_export", ignore=ignore)
    shutil.copytree(Path(service.bundle.__file__).parent, target / "service" / "bundle", ignore=ignore)
    (target / "service" / "__init__.py").write_text(SERVICE_INIT)


def train_command(config_file: str = "config.json") -> str:
    return f"PYTHONPATH=src python -m model_export.cli train --config {config_file} --out OUT_DIR\n"


def write_training_dir(bundle: Path, source: Path) -> dict[str, Any]:
    """Fill ``bundle/training`` and return the manifest's ``training`` summary."""
    target = Path(bundle) / TRAINING_DIR
    target.mkdir()
    source = Path(source)
    weights_sha = file_sha256(source / "weights.safetensors")
    if not is_training_run(source):
        model_meta = read_json(source / "model.json")
        record = {
            "kind": "imported",
            "source": model_meta.get("source", {}),
            "weights_sha256": weights_sha,
            "note": "imported checkpoint: no training code or data recipe; regenerate is not possible",
        }
        (target / "IMPORTED.json").write_text(json.dumps(record, indent=2) + "\n")
        return record
    for name in RUN_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    copy_sources(target / "src")
    (target / "requirements.txt").write_text(requirements())
    recorded = (source / "command.txt").read_text() if (source / "command.txt").is_file() else ""
    command = train_command()
    if recorded:
        command = f"# originally: {recorded.strip()}\n{command}"
    (target / "command.txt").write_text(command)
    data = read_json(source / "data.json")
    config = read_json(source / "config.json")
    return {
        "kind": "run",
        "config": f"{TRAINING_DIR}/config.json",
        "code": f"{TRAINING_DIR}/src",
        "command": f"{TRAINING_DIR}/command.txt",
        "requirements": f"{TRAINING_DIR}/requirements.txt",
        "dataset": data.get("dataset", config.get("dataset")),
        "data_fingerprint": data.get("fingerprint"),
        "seed": data.get("seed", config.get("seed")),
        "epochs": config.get("epochs"),
        "weights_sha256": weights_sha,
    }
