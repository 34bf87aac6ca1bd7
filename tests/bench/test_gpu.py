"""bench/gpu.py: skips cleanly without CUDA; on a CUDA host it measures and reports the four engines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import gpu


def test_peak_table_matches_device_names() -> None:
    assert (
        gpu.peak_for("NVIDIA H100 80GB HBM3 H100 SXM", None)["fp16_tflops"] == gpu.PEAK_TFLOPS["H100 SXM"][0]
    )
    assert gpu.peak_for("NVIDIA A100-SXM4-40GB", None)["fp32_tflops"] == gpu.PEAK_TFLOPS["A100"][1]
    assert gpu.peak_for("Mystery GPU", None)["fp16_tflops"] is None
    assert gpu.peak_for("Mystery GPU", 100.0)["fp16_tflops"] == 100.0


def test_without_cuda_it_writes_not_measured_and_succeeds(tmp_path: Path) -> None:
    available, _ = gpu.cuda_available()
    if available:
        pytest.skip("this host has CUDA; the skip path does not apply")
    out = tmp_path / "gpu.json"
    assert gpu.main(["--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["measured"] is False and "CUDA" in result["reason"]


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_engines_measure_on_a_cuda_host(tmp_path: Path) -> None:
    if not gpu.cuda_available()[0]:
        pytest.skip("needs a CUDA GPU")
    out = tmp_path / "gpu.json"
    assert gpu.main(["--out", str(out), "--batches", "1,8", "--reps", "3", "--skip-service"]) == 0
    result = json.loads(out.read_text())
    assert result["measured"] is True
    eager = result["engines"]["torch_eager_fp32"]
    assert eager["status"] == "ok" and [row["batch"] for row in eager["rows"]] == [1, 8]
    assert all(row["img_per_s"] > 0 for row in eager["rows"])
