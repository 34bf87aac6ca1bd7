"""Bad input through the CLI: a clear message naming the problem, a non-zero exit, nothing at --out."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import typer
from safetensors.torch import save_file
from typer.testing import CliRunner

from model_export.importers.cli import register
from tests.model_export.importers.importer_helpers import random_vit, tiny_config


@pytest.fixture
def run():
    app = typer.Typer()

    @app.callback()
    def _group() -> None:
        """Keep `import` a subcommand, as on the real vit-export app."""

    register(app)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["import", *map(str, args)])

    return invoke


def tiny_state():
    return {k: v.contiguous() for k, v in random_vit(tiny_config()).state_dict().items()}


def assert_refused(result, out, *fragments):
    assert result.exit_code != 0, result.output
    message = result.output
    for fragment in fragments:
        assert fragment in message, message
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]  # no staging left


def test_a_good_import_works_and_reports(run, tmp_path):
    save_file(tiny_state(), str(tmp_path / "ok.safetensors"))
    result = run("--format", "timm", tmp_path / "ok.safetensors", "--out", tmp_path / "out", "--heads", "4")
    assert result.exit_code == 0, result.output
    assert "heads 4" in result.output
    assert json.loads((tmp_path / "out" / "labels.json").read_text()) == [f"class_{i}" for i in range(5)]


def test_text_file(run, tmp_path):
    (tmp_path / "notes.pth").write_text("these are not weights\n")
    out = tmp_path / "out"
    result = run("--format", "timm", tmp_path / "notes.pth", "--out", out)
    assert_refused(result, out, "neither a safetensors nor a PyTorch checkpoint")
    (tmp_path / "notes.txt").write_text("these are not weights\n")
    assert_refused(run("-f", "deit", tmp_path / "notes.txt", "--out", out), out, "neither a safetensors nor")


def test_non_vit_state_dict_names_missing_keys(run, tmp_path):
    torch.save(
        {"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.weight": torch.zeros(10, 8)}, tmp_path / "resnet.pth"
    )
    out = tmp_path / "out"
    result = run("--format", "timm", tmp_path / "resnet.pth", "--out", out)
    assert_refused(result, out, "missing keys", "patch_embed.proj.weight")


def test_truncated_files(run, tmp_path):
    save_file(tiny_state(), str(tmp_path / "full.safetensors"))
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert_refused(run("--format", "timm", tmp_path / "cut.safetensors", "--out", out), out, "truncated")

    torch.save({"model": tiny_state()}, tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    assert_refused(run("--format", "deit", tmp_path / "cut.pth", "--out", out), out, "truncated")

    np.savez(tmp_path / "full.npz", a=np.zeros(1000, np.float32))
    data = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    assert_refused(run("--format", "npz", tmp_path / "cut.npz", "--out", out), out, "not a readable .npz")


def test_mismatched_shape_is_named(run, tmp_path):
    state = tiny_state()
    state["blocks.1.mlp.fc1.weight"] = torch.zeros(48, 32)  # block 0 says mlp_dim 64
    save_file(state, str(tmp_path / "bad.safetensors"))
    out = tmp_path / "out"
    result = run("--format", "timm", tmp_path / "bad.safetensors", "--out", out, "--heads", "4")
    assert_refused(result, out, "blocks.1.mlp.fc1.weight", "(48, 32)", "(64, 32)")


def test_missing_and_unexpected_keys_are_listed(run, tmp_path):
    state = tiny_state()
    del state["blocks.1.norm2.bias"]
    state["blocks.1.attn.extra_scale"] = torch.ones(4)
    save_file(state, str(tmp_path / "odd.safetensors"))
    out = tmp_path / "out"
    result = run("--format", "timm", tmp_path / "odd.safetensors", "--out", out, "--heads", "4")
    assert_refused(
        result, out, "missing keys: ['blocks.1.norm2.bias']", "unexpected keys: ['blocks.1.attn.extra_scale']"
    )


def test_unknown_width_asks_for_heads(run, tmp_path):
    save_file(tiny_state(), str(tmp_path / "w32.safetensors"))
    out = tmp_path / "out"
    assert_refused(run("--format", "timm", tmp_path / "w32.safetensors", "--out", out), out, "pass --heads")


def test_wrong_labels_count_and_bad_size(run, tmp_path):
    save_file(tiny_state(), str(tmp_path / "ok.safetensors"))
    (tmp_path / "labels.txt").write_text("a\nb\n")
    out = tmp_path / "out"
    args = ("--format", "timm", tmp_path / "ok.safetensors", "--out", out, "--heads", "4")
    assert_refused(run(*args, "--labels", tmp_path / "labels.txt"), out, "2 labels", "5 classes")
    assert_refused(run(*args, "--image-size", "30"), out, "not divisible by patch size")
    assert_refused(run(*args, "--image-size", "big"), out, "bad image size")


def test_existing_output_is_kept_without_overwrite(run, tmp_path):
    save_file(tiny_state(), str(tmp_path / "ok.safetensors"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run("--format", "timm", tmp_path / "ok.safetensors", "--out", out, "--heads", "4")
    assert result.exit_code != 0 and "already exists" in result.output
    assert (out / "keep.txt").read_text() == "mine"
    result = run("--format", "timm", tmp_path / "ok.safetensors", "--out", out, "--heads", "4", "--overwrite")
    assert (
        result.exit_code == 0 and not (out / "keep.txt").exists() and (out / "weights.safetensors").is_file()
    )


def test_pickled_objects_are_never_loaded(run, tmp_path):
    import argparse  # a DeiT training checkpoint keeps its argparse.Namespace next to the weights

    torch.save({"model": tiny_state(), "args": argparse.Namespace(lr=1e-3)}, tmp_path / "train.pth")
    out = tmp_path / "out"
    result = run("--format", "deit", tmp_path / "train.pth", "--out", out, "--heads", "4")
    assert_refused(result, out, "never unpickled", "argparse.Namespace")
