"""The bundle loader refuses anything tampered with, with a message that says what."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.bundle.loader import load_bundle
from service.bundle.manifest import BundleError
from service.cli import cli
from service.engine import Engine, EngineOptions


@pytest.fixture
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def edit_manifest(bundle: Path, edit) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_loads_a_good_bundle_and_its_tarball(tiny_bundle: Path, tmp_path: Path):
    loaded = load_bundle(tiny_bundle)
    assert loaded.classify.purpose == "classify" and loaded.explain is not None
    assert len(loaded.labels) == loaded.manifest.architecture.num_classes
    assert len(loaded.digest) == 64
    archive = tmp_path / "bundle.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tiny_bundle, arcname="tiny")
    from_tar = load_bundle(archive)
    assert from_tar.digest == loaded.digest


def test_tampered_graph_is_refused(bundle_copy: Path):
    graph = bundle_copy / "classify.onnx"
    data = bytearray(graph.read_bytes())
    data[-1] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"checksum mismatch for classify\.onnx"):
        load_bundle(bundle_copy)


def test_missing_file_and_wrong_schema_are_refused(bundle_copy: Path):
    (bundle_copy / "explain.onnx").unlink()
    with pytest.raises(BundleError, match=r"missing: explain\.onnx"):
        load_bundle(bundle_copy)
    edit_manifest(bundle_copy, lambda d: d.update(schema_version=99))
    with pytest.raises(BundleError, match="schema version 99"):
        load_bundle(bundle_copy)


def test_declared_signature_must_match_the_contract(bundle_copy: Path):
    def float_input(data):
        data["graphs"][0]["inputs"][0]["dtype"] = "float32"

    edit_manifest(bundle_copy, float_input)
    with pytest.raises(BundleError, match="must be uint8"):
        load_bundle(bundle_copy)


def test_real_graph_must_match_the_manifest(bundle_copy: Path):
    """A manifest that claims a different output shape than the graph has is caught at session build."""
    loaded = load_bundle(bundle_copy)
    spec = loaded.explain
    assert spec is not None
    import dataclasses

    from service.bundle.manifest import TensorSpec

    wrong = dataclasses.replace(spec, outputs=(TensorSpec("logits", "float32", ("N", 7)),))
    with pytest.raises(BundleError, match="output logits has shape"):
        Engine(loaded.graph_path(spec), wrong, loaded.manifest.preprocessing.input_size, EngineOptions())
    swapped = dataclasses.replace(loaded.classify, outputs=(TensorSpec("rollout", "float32", ("N", 4, 4)),))
    with pytest.raises(BundleError, match="has no output 'rollout'"):
        Engine(loaded.graph_path(loaded.classify), swapped, (32, 32), EngineOptions())


def test_vit_serve_exits_non_zero_with_a_clear_message(bundle_copy: Path):
    (bundle_copy / "labels.json").write_text('["only one"]')
    result = CliRunner().invoke(cli, ["--bundle", str(bundle_copy), "--port", "0"])
    assert result.exit_code == 2
    assert "checksum mismatch for labels.json" in result.output
    result = CliRunner().invoke(cli, ["--bundle", str(bundle_copy / "nope")])
    assert result.exit_code == 2 and "bundle not found" in result.output
