"""TensorRT provider options (everywhere) and engine building (CUDA hosts with TensorRT only)."""

from __future__ import annotations

import pytest

from model_export.export.tensorrt import batch_buckets, build_engines, provider_options


def test_buckets_are_powers_of_two_then_the_maximum():
    assert batch_buckets(1) == [1]
    assert batch_buckets(16) == [1, 2, 4, 8, 16]
    assert batch_buckets(12) == [1, 2, 4, 8, 12]


def test_provider_options_cache_engines_and_span_the_batch_range(tmp_path):
    options = provider_options((224, 224), tmp_path, fp16=True, max_batch=8)
    assert options["trt_engine_cache_enable"] == "True"
    assert options["trt_engine_cache_path"] == str(tmp_path)
    assert options["trt_timing_cache_enable"] == "True"
    assert options["trt_fp16_enable"] == "True"
    assert options["trt_profile_min_shapes"] == "pixels:1x224x224x3"
    assert options["trt_profile_max_shapes"] == "pixels:8x224x224x3"


def test_options_agree_with_the_service_so_its_cache_hits(tmp_path):
    """The server builds its own options; the engine cache is only reused when the profiles agree."""
    engine = pytest.importorskip("service.engine")
    ours = provider_options((32, 32), tmp_path, fp16=True, max_batch=16)
    service_options = engine.EngineOptions(buckets=batch_buckets(16), trt_cache_dir=tmp_path, trt_fp16=True)
    theirs = engine.provider_options("TensorrtExecutionProvider", service_options, (32, 32))
    for key in (
        "trt_profile_min_shapes",
        "trt_profile_opt_shapes",
        "trt_profile_max_shapes",
        "trt_fp16_enable",
    ):
        assert ours[key] == theirs[key]


@pytest.mark.gpu
def test_engines_are_built_and_cached(bundle, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        pytest.skip("needs onnxruntime-gpu with TensorRT on a CUDA host")
    reports = build_engines(bundle, tmp_path / "cache", fp16=True, max_batch=4)
    assert {r.file for r in reports} == {"classify.onnx", "explain.onnx"}
    assert all(r.providers[0] == "TensorrtExecutionProvider" for r in reports)
    assert any((tmp_path / "cache").glob("*.engine"))
