"""``vit-export regenerate``: retrain from the code and configuration inside a bundle, then compare.

The training runs in a separate interpreter whose import path is the bundle's ``training/src`` only
(``-s`` drops user site-packages, ``-P`` the working directory, ``PYTHONPATH`` puts the bundle's copy
ahead of the installed project), so what is tested is the code that shipped, not the code checked out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safetensors.numpy import load_file

from model_export.export import archive
from model_export.export.provenance import TRAINING_DIR
from service.bundle import Manifest

TOP1_TOLERANCE = 0.005  # half a percentage point
WEIGHTS_TOLERANCE = 1e-3  # max abs difference of any weight
REPORT_FILE = "regenerate_report.json"
CODE_MARKER = "regenerate: model_export from "
BOOT = (
    "import sys, model_export; "
    f"print({CODE_MARKER!r} + model_export.__file__, file=sys.stderr, flush=True); "
    "from model_export.cli import app; app(sys.argv[1:], prog_name='vit-export')"
)


class RegenerateError(RuntimeError):
    """The bundle cannot be regenerated (imported, incomplete) or training failed."""


@dataclass
class RegenerateReport:
    bundle: str
    run: str
    code_used: str  # model_export.__file__ as the training interpreter saw it
    weights_max_abs_diff: float
    weights_mismatched: list[str]
    top1_bundle: float | None
    top1_regenerated: float | None
    top1_diff: float | None
    weights_tolerance: float
    top1_tolerance: float
    ok: bool
    problems: list[str] = field(default_factory=list)


def training_environment(src: Path) -> dict[str, str]:
    """The current environment without Python's own variables, and the bundle's sources as the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(src)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def run_bundled_training(src: Path, config: Path, out: Path, log: Path) -> str:
    """Train with the bundle's code; returns the path the training interpreter imported it from."""
    command = [sys.executable, "-s", "-P", "-c", BOOT, "train", "--config", str(config), "--out", str(out)]
    with open(log, "w") as handle:
        result = subprocess.run(
            command, env=training_environment(src), cwd=src, stdout=handle, stderr=subprocess.STDOUT
        )
    text = Path(log).read_text()
    if result.returncode != 0:
        tail = "\n".join(text.splitlines()[-15:])
        raise RegenerateError(f"training from the bundle's code failed (exit {result.returncode}):\n{tail}")
    for line in text.splitlines():
        if line.startswith(CODE_MARKER):
            return line.removeprefix(CODE_MARKER).strip()
    raise RegenerateError("the training interpreter did not report which code it ran")


def compare_weights(a: Path, b: Path) -> tuple[float, list[str]]:
    """Largest absolute difference over all tensors; names whose shapes or presence differ."""
    left, right = load_file(str(a)), load_file(str(b))
    mismatched = sorted(set(left) ^ set(right))
    worst = 0.0
    for name in sorted(set(left) & set(right)):
        if left[name].shape != right[name].shape:
            mismatched.append(name)
            continue
        if left[name].size:
            diff = abs(left[name].astype("float64") - right[name].astype("float64")).max()
            worst = max(worst, float(diff))
    return worst, mismatched


def _origin(manifest: Manifest) -> str:
    checkpoint = manifest.source.get("checkpoint") or {}
    return f"format {checkpoint.get('format', '?')} from {checkpoint.get('path', '?')}"


def _top1(metrics: dict[str, Any]) -> float | None:
    value = metrics.get("top1")
    return float(value) if isinstance(value, int | float) else None


def regenerate(
    bundle: Path,
    out: Path,
    *,
    weights_tolerance: float = WEIGHTS_TOLERANCE,
    top1_tolerance: float = TOP1_TOLERANCE,
) -> RegenerateReport:
    """Retrain into ``out`` from the bundle alone; the report (also in ``out``) says whether it matched."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; regenerate writes a fresh run directory")
    with archive.opened(Path(bundle)) as root:
        manifest = Manifest.read(root)
        manifest.verify_files(root)
        training = root / TRAINING_DIR
        if manifest.training.get("kind") != "run" or not (training / "config.json").is_file():
            raise RegenerateError(
                f"{bundle} holds an imported checkpoint ({_origin(manifest)}); "
                "it has no training code or configuration to regenerate it from"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        log = out.parent / f"{out.name}.regenerate.log"
        code_used = run_bundled_training(
            (training / "src").resolve(), (training / "config.json").resolve(), out.resolve(), log
        )
        worst, mismatched = compare_weights(root / "weights.safetensors", out / "weights.safetensors")
    regenerated = json.loads((out / "metrics.json").read_text())
    top1_bundle, top1_new = _top1(manifest.metrics), _top1(regenerated)
    top1_diff = None if top1_bundle is None or top1_new is None else top1_new - top1_bundle
    problems = []
    if mismatched:
        problems.append(f"weights differ in layout: {mismatched[:5]}")
    if worst > weights_tolerance:
        problems.append(f"weights differ by up to {worst:.3g} (tolerance {weights_tolerance:g})")
    if top1_diff is None:
        problems.append("test top-1 missing from the bundle's or the new run's metrics")
    elif abs(top1_diff) > top1_tolerance:
        problems.append(
            f"test top-1 moved by {top1_diff * 100:+.2f} points (tolerance {top1_tolerance * 100:g})"
        )
    report = RegenerateReport(
        bundle=str(bundle),
        run=str(out),
        code_used=code_used,
        weights_max_abs_diff=worst,
        weights_mismatched=mismatched,
        top1_bundle=top1_bundle,
        top1_regenerated=top1_new,
        top1_diff=top1_diff,
        weights_tolerance=weights_tolerance,
        top1_tolerance=top1_tolerance,
        ok=not problems,
        problems=problems,
    )
    (out / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2) + "\n")
    log.replace(out / "regenerate.log")
    return report
