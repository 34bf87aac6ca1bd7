"""The bundle on disk: manifest, checksums, training record, tar form, verification and its failures."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from model_export.cli import app
from model_export.export.bundle import ExportError, export_bundle
from model_export.export.verify import verify_bundle
from model_export.model import ViT
from service.bundle import BundleError, Manifest, file_sha256
from tests.model_export.export.conftest import LABELS, make_checkpoint, make_run, tiny_config

runner = CliRunner()


def test_manifest_describes_every_file_and_the_model(bundle):
    manifest = Manifest.read(bundle)
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert set(manifest.files) == on_disk - {"manifest.json"}
    for relative, digest in manifest.files.items():
        assert file_sha256(bundle / relative) == digest
    manifest.verify_files(bundle)
    assert manifest.read_labels(bundle) == LABELS
    arch = manifest.architecture
    assert (arch.patch_size, arch.dim, arch.depth, arch.heads, arch.num_classes) == (8, 32, 2, 2, 5)
    model = ViT(tiny_config())
    assert arch.params == model.num_params() and arch.flops_per_image == model.flops_per_image()
    assert manifest.preprocessing.mean == (0.485, 0.456, 0.406)
    assert manifest.name == "tiny" and manifest.created


def test_imported_checkpoint_records_that_it_has_no_training_recipe(bundle, checkpoint):
    manifest = Manifest.read(bundle)
    assert manifest.training["kind"] == "imported"
    record = json.loads((bundle / "training" / "IMPORTED.json").read_text())
    assert record["weights_sha256"] == file_sha256(checkpoint / "weights.safetensors")
    assert record["source"] == {"format": "test", "seed": 0}
    assert manifest.graph("classify").accuracy == {}
    assert "imported" in manifest.metrics["export"]["accuracy_data"]
    card = (bundle / "MODEL_CARD.md").read_text()
    for heading in ("## Architecture", "## Data and provenance", "## Intended use", "## Limitations"):
        assert heading in card
    assert record["weights_sha256"] in card


@pytest.mark.slow
def test_training_run_carries_code_pins_config_and_command(tmp_path):
    run = make_run(tmp_path / "run", tiny_config())
    out = export_bundle(run, tmp_path / "b")
    training = out / "training"
    assert (training / "src" / "model_export" / "model.py").is_file()
    assert (training / "src" / "service" / "bundle" / "manifest.py").is_file()
    assert not list(training.rglob("__pycache__"))
    assert json.loads((training / "config.json").read_text()) == json.loads((run / "config.json").read_text())
    assert (training / "data.json").is_file()
    pins = (training / "requirements.txt").read_text()
    import torch

    assert f"torch=={torch.__version__}" in pins and "numpy==" in pins
    assert "model_export.cli train --config" in (training / "command.txt").read_text()
    manifest = Manifest.read(out)
    assert manifest.training["kind"] == "run"
    assert manifest.training["data_fingerprint"] == "abc123" and manifest.training["seed"] == 3
    assert manifest.metrics["top1"] == 0.5
    assert "training/src/model_export/model.py" in manifest.files


def test_verify_passes_on_a_fresh_bundle_and_remeasures_parity(bundle):
    report = verify_bundle(bundle)
    assert set(report.graphs) == {"classify.onnx", "explain.onnx"}
    assert report.graphs["explain.onnx"]["max_abs_rollout"] <= 1e-5


@pytest.mark.parametrize(
    "victim", ["classify.onnx", "weights.safetensors", "labels.json", "training/IMPORTED.json"]
)
def test_verify_names_a_tampered_file(bundle_copy, victim):
    path = bundle_copy / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=victim):
        verify_bundle(bundle_copy)


def test_verify_cli_fails_loudly_on_a_truncated_graph(bundle_copy):
    graph = bundle_copy / "explain.onnx"
    graph.write_bytes(graph.read_bytes()[:1000])
    result = runner.invoke(app, ["verify", str(bundle_copy)])
    assert result.exit_code != 0
    assert "explain.onnx" in result.output


def test_verify_rejects_a_swapped_graph_even_with_fixed_checksums(bundle_copy):
    """classify.onnx replaced by explain.onnx and the checksum rewritten: the signature gives it away."""
    (bundle_copy / "classify.onnx").write_bytes((bundle_copy / "explain.onnx").read_bytes())
    manifest_path = bundle_copy / "manifest.json"
    data = json.loads(manifest_path.read_text())
    data["files"]["classify.onnx"] = file_sha256(bundle_copy / "classify.onnx")
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"classify\.onnx"):
        verify_bundle(bundle_copy)


def test_verify_rejects_an_architecture_that_does_not_describe_the_weights(bundle_copy):
    manifest_path = bundle_copy / "manifest.json"
    data = json.loads(manifest_path.read_text())
    data["architecture"]["depth"] = 12
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="architecture"):
        verify_bundle(bundle_copy)


def test_verify_rejects_a_wrong_schema_version(bundle_copy):
    manifest_path = bundle_copy / "manifest.json"
    data = json.loads(manifest_path.read_text())
    data["schema_version"] = 99
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="schema version"):
        verify_bundle(bundle_copy)


@pytest.mark.slow
def test_tar_output_holds_the_bundle_at_its_root_and_verifies(checkpoint, tmp_path):
    result = runner.invoke(app, ["export", str(checkpoint), "--out", str(tmp_path / "b.tar"), "--name", "x"])
    assert result.exit_code == 0, result.output
    with tarfile.open(tmp_path / "b.tar") as archive:
        names = archive.getnames()
    assert "manifest.json" in names and "classify.onnx" in names
    assert verify_bundle(tmp_path / "b.tar").name == "x"
    assert runner.invoke(app, ["verify", str(tmp_path / "b.tar")]).exit_code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["b.tar"]


def test_existing_output_is_refused_without_overwrite(bundle, checkpoint):
    before = file_sha256(bundle / "manifest.json")
    result = runner.invoke(app, ["export", str(checkpoint), "--out", str(bundle)])
    assert result.exit_code != 0 and "already exists" in result.output
    assert file_sha256(bundle / "manifest.json") == before


def test_a_failed_export_leaves_nothing_behind(tmp_path):
    source = make_checkpoint(tmp_path / "ckpt", tiny_config())
    meta = json.loads((source / "model.json").read_text())
    meta["preprocessing"]["input_size"] = [64, 64]
    (source / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ExportError, match="input_size"):
        export_bundle(source, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_export_cli_rejects_a_non_model_directory(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path), "--out", str(tmp_path / "b")])
    assert result.exit_code != 0 and "model.json" in result.output


def test_build_engine_fails_clearly_without_tensorrt(bundle):
    import onnxruntime as ort

    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("TensorRT is available here")
    result = runner.invoke(app, ["build-engine", str(bundle), "--cache-dir", str(Path(bundle).parent / "c")])
    assert result.exit_code != 0 and "TensorRT execution provider is not available" in result.output
