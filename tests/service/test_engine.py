"""The ONNX Runtime engine alone: padding to buckets changes no result, providers are reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.bundle.loader import load_bundle
from service.engine import Engine, EngineOptions, choose_providers, provider_options


@pytest.fixture(scope="module")
def engines(tiny_bundle: Path):
    loaded = load_bundle(tiny_bundle)
    options = EngineOptions(buckets=(1, 4, 8), intra_op_threads=1)
    size = loaded.manifest.preprocessing.input_size
    return (
        Engine(loaded.graph_path(loaded.classify), loaded.classify, size, options),
        Engine(loaded.graph_path(loaded.explain), loaded.explain, size, options),
    )


def test_padded_batches_match_single_runs(engines):
    classify, explain = engines
    images = list(np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8))
    batched = classify.run(images)["logits"]  # padded from 5 to the bucket of 8
    assert batched.shape == (5, 5) and batched.dtype == np.float32
    for image, row in zip(images, batched, strict=True):
        np.testing.assert_allclose(classify.run([image])["logits"][0], row, atol=1e-5)
    outputs = explain.run(images[:3])
    assert outputs["rollout"].shape == (3, 4, 4)
    np.testing.assert_allclose(outputs["logits"], batched[:3], atol=1e-5)
    # The rollout's [CLS] row over patches is a part of a probability row: positive, below 1 in total.
    assert np.all(outputs["rollout"] > 0) and np.all(outputs["rollout"].sum(axis=(1, 2)) < 1)


def test_buckets_and_providers(engines):
    classify, _ = engines
    assert [classify.bucket_for(n) for n in (1, 2, 4, 5, 8)] == [1, 4, 4, 8, 8]
    with pytest.raises(ValueError, match="largest bucket"):
        classify.bucket_for(9)
    assert classify.providers == ["CPUExecutionProvider"]
    classify.warmup()


def test_provider_choice_and_options(tmp_path: Path):
    assert choose_providers(["NoSuchExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers([])[-1] == "CPUExecutionProvider"
    options = EngineOptions(buckets=(1, 2, 8), trt_cache_dir=tmp_path / "trt", gpu_mem_limit_mb=512)
    trt = provider_options("TensorrtExecutionProvider", options, (224, 224))
    assert trt["trt_profile_min_shapes"] == "pixels:1x224x224x3"
    assert trt["trt_profile_max_shapes"] == trt["trt_profile_opt_shapes"] == "pixels:8x224x224x3"
    assert trt["trt_engine_cache_enable"] == "True" and (tmp_path / "trt").is_dir()
    cuda = provider_options("CUDAExecutionProvider", options, (224, 224))
    assert cuda == {"arena_extend_strategy": "kSameAsRequested", "gpu_mem_limit": str(512 * 1024 * 1024)}


@pytest.mark.gpu
@pytest.mark.skipif(
    "CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers(),
    reason="no CUDA provider",
)
def test_cuda_engine_matches_cpu(tiny_bundle: Path, engines):
    loaded = load_bundle(tiny_bundle)
    options = EngineOptions(providers=("CUDAExecutionProvider",), buckets=(1, 4), gpu_mem_limit_mb=256)
    cuda = Engine(loaded.graph_path(loaded.classify), loaded.classify, (32, 32), options)
    assert cuda.providers[0] == "CUDAExecutionProvider"
    cuda.warmup()
    images = list(np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
    np.testing.assert_allclose(cuda.run(images)["logits"], engines[0].run(images)["logits"], atol=1e-3)


def test_cpu_runs_the_exact_batch_and_padding_changes_no_result(tiny_bundle: Path):
    """On CPU the padded rows would be computed for nothing, so by default they are not sent."""
    loaded = load_bundle(tiny_bundle)
    size = loaded.manifest.preprocessing.input_size
    make = lambda pad: Engine(  # noqa: E731
        loaded.graph_path(loaded.classify),
        loaded.classify,
        size,
        EngineOptions(buckets=(1, 4, 8), intra_op_threads=1, pad_batches=pad),
    )
    auto, padded = make("auto"), make("always")
    assert [auto.run_size(n) for n in (1, 3, 5, 8)] == [1, 3, 5, 8]
    assert [padded.run_size(n) for n in (1, 3, 5, 8)] == [1, 4, 8, 8]
    images = list(np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8))
    np.testing.assert_allclose(auto.run(images)["logits"], padded.run(images)["logits"], atol=1e-5)
    with pytest.raises(ValueError, match="pad_batches"):
        make("sometimes")
