"""A digits training run end to end: export with accuracy figures, then regenerate from the bundle alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from model_export.cli import app
from model_export.export.bundle import export_bundle
from model_export.export.regenerate import RegenerateError, regenerate
from service.bundle import Manifest, file_sha256

pytestmark = pytest.mark.slow
runner = CliRunner()
TRAIN_FLAGS = [
    "--dataset", "digits", "--image-size", "16", "--patch-size", "4", "--dim", "32", "--depth", "2",
    "--heads", "2", "--mlp-dim", "64", "--epochs", "3", "--train-limit", "300", "--threads", "1",
    "--workers", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def run_bundle(tmp_path_factory) -> tuple[Path, Path]:
    """Train in a subprocess (training sets process-wide torch flags), export with an int8 graph."""
    root = tmp_path_factory.mktemp("digits")
    command = [sys.executable, "-m", "model_export.cli", "train", *TRAIN_FLAGS, "--out", str(root / "run")]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    return root / "run", export_bundle(root / "run", root / "bundle", int8=True)


def test_run_bundle_records_accuracy_and_real_image_parity(run_bundle):
    run, bundle = run_bundle
    manifest = Manifest.read(bundle)
    metrics = json.loads((run / "metrics.json").read_text())
    fp32 = manifest.graph("classify")
    # the graph re-measures on the same test split the training loop evaluated
    assert fp32.accuracy["test_images"] == metrics["count"]
    assert abs(fp32.accuracy["test_top1"] - metrics["top1"]) <= 2 / metrics["count"]
    assert "max_abs_logits_test" in fp32.parity and fp32.parity["max_abs_logits_test"] <= 1e-4
    assert manifest.graph("explain").parity["max_abs_rollout_test"] <= 1e-5
    int8 = manifest.graph("classify", "int8")
    assert int8.accuracy["delta_top1_vs_fp32"] == pytest.approx(
        int8.accuracy["test_top1"] - fp32.accuracy["test_top1"]
    )
    assert manifest.training["data_fingerprint"] == metrics["fingerprint"]
    assert "digits" in (bundle / "MODEL_CARD.md").read_text()


def test_regenerate_uses_the_bundled_code_and_reproduces_the_weights(run_bundle, tmp_path):
    _, bundle = run_bundle
    result = runner.invoke(app, ["regenerate", str(bundle), "--out", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "again" / "regenerate_report.json").read_text())
    code = Path(report["code_used"]).resolve()
    assert code.is_relative_to((bundle / "training" / "src").resolve())  # not the installed package
    assert report["ok"] and report["weights_max_abs_diff"] <= 1e-3
    assert abs(report["top1_diff"]) <= 0.005


def test_regenerate_fails_when_the_recorded_recipe_no_longer_gives_the_weights(run_bundle, tmp_path):
    """Change the bundled config (and re-sign it): the retrained weights differ and the exit is non-zero."""
    import shutil

    _, bundle = run_bundle
    copy = Path(shutil.copytree(bundle, tmp_path / "bundle"))
    config_path = copy / "training" / "config.json"
    config = json.loads(config_path.read_text())
    config["seed"] = int(config.get("seed") or 0) + 1
    config_path.write_text(json.dumps(config))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["training/config.json"] = file_sha256(config_path)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["regenerate", str(copy), "--out", str(tmp_path / "again")])
    assert result.exit_code != 0
    assert "weights differ" in result.output
    assert not json.loads((tmp_path / "again" / "regenerate_report.json").read_text())["ok"]


def test_regenerate_refuses_an_imported_checkpoint(bundle, tmp_path):
    with pytest.raises(RegenerateError, match="imported checkpoint"):
        regenerate(bundle, tmp_path / "run")
    assert not (tmp_path / "run").exists()
