"""The exported graphs compute what the PyTorch model computes, at any batch size."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from model_export.export.graphs import PixelNormalize, export_graph, read_signature
from model_export.export.variants import topological_sort
from model_export.model import ViT
from service.bundle import Manifest, Preprocessing
from tests.model_export.export.conftest import tiny_config
from tests.reference import numpy_rollout


def torch_outputs(model: ViT, preprocessing: Preprocessing, pixels: np.ndarray):
    with torch.no_grad():
        x = PixelNormalize(preprocessing)(torch.from_numpy(pixels))
        logits, attentions = model.forward_with_attention(x)
    return logits.numpy(), [a.numpy() for a in attentions]


def manual_normalise(pixels: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    x = pixels.astype(np.float64) / 255.0
    x = (x - np.array(preprocessing.mean)) / np.array(preprocessing.std)
    return x.transpose(0, 3, 1, 2)


def test_pixel_normalisation_matches_the_manifest_formula():
    preprocessing = Preprocessing(input_size=(4, 4), mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.2))
    pixels = np.random.default_rng(1).integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    got = PixelNormalize(preprocessing)(torch.from_numpy(pixels)).double().numpy()
    np.testing.assert_allclose(got, manual_normalise(pixels, preprocessing), atol=1e-6)


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_graphs_match_pytorch_for_any_batch_size(bundle, batch):
    manifest = Manifest.read(bundle)
    from model_export.checkpoint import load_checkpoint

    model, info = load_checkpoint(bundle)
    pixels = np.random.default_rng(batch).integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8)
    logits, attentions = torch_outputs(model, info.preprocessing, pixels)
    expected_rollout = numpy_rollout(attentions, 1, model.config.grid_size)

    classify = ort.InferenceSession(str(bundle / manifest.graph("classify").file))
    (got_logits,) = classify.run(None, {"pixels": pixels})
    assert got_logits.shape == (batch, 5)
    assert np.abs(got_logits - logits).max() <= 1e-4

    explain = ort.InferenceSession(str(bundle / manifest.graph("explain").file))
    got_logits, rollout = explain.run(None, {"pixels": pixels})
    assert rollout.shape == (batch, 4, 4)
    assert np.abs(got_logits - logits).max() <= 1e-4
    assert np.abs(rollout - expected_rollout).max() <= 1e-5
    np.testing.assert_allclose(rollout.sum(axis=(1, 2)), 1 - expected_rollout_prefix(attentions), atol=1e-5)


def expected_rollout_prefix(attentions) -> np.ndarray:
    """Rollout mass that stays on the [CLS] token itself (rows sum to 1 over all tokens)."""
    batch, _, tokens, _ = attentions[0].shape
    masses = []
    for n in range(batch):
        rollout = np.eye(tokens)
        for layer in attentions:
            a = layer[n].astype(np.float64).mean(0) + np.eye(tokens)
            rollout = (a / a.sum(-1, keepdims=True)) @ rollout
        masses.append(rollout[0, :1].sum())
    return np.array(masses)


@pytest.mark.slow
def test_distilled_model_rollout_skips_both_prefix_tokens(tmp_path):
    torch.manual_seed(0)
    config = tiny_config(distilled=True)
    model = ViT(config).eval()
    preprocessing = Preprocessing(input_size=(32, 32))
    path = export_graph("explain", model, preprocessing, tmp_path / "explain.onnx")
    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    logits, attentions = torch_outputs(model, preprocessing, pixels)
    got_logits, rollout = ort.InferenceSession(str(path)).run(None, {"pixels": pixels})
    assert np.abs(got_logits - logits).max() <= 1e-4
    assert np.abs(rollout - numpy_rollout(attentions, 2, (4, 4))).max() <= 1e-5


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_reference_rollout_closed_forms(depth):
    """Uniform attention: each layer is (J/T + I)/2, so L layers give (1 - 2^-L) J/T + 2^-L I and every
    patch gets (1 - 2^-L)/T from [CLS]. Attention to self only: the rollout stays on [CLS]."""
    tokens, heads = 5, 3
    uniform = [np.full((2, heads, tokens, tokens), 1 / tokens) for _ in range(depth)]
    expected = (1 - 2.0**-depth) / tokens
    np.testing.assert_allclose(numpy_rollout(uniform, 1, (2, 2)), np.full((2, 2, 2), expected), atol=1e-15)
    identity = [np.broadcast_to(np.eye(tokens), (2, heads, tokens, tokens)) for _ in range(depth)]
    np.testing.assert_array_equal(numpy_rollout(identity, 1, (2, 2)), np.zeros((2, 2, 2)))


def test_signature_is_read_from_the_file(bundle):
    inputs, outputs = read_signature(bundle / "explain.onnx")
    assert [(s.name, s.dtype) for s in inputs] == [("pixels", "uint8")]
    assert isinstance(inputs[0].shape[0], str) and inputs[0].shape[1:] == (32, 32, 3)
    assert [(s.name, s.dtype, s.shape[1:]) for s in outputs] == [
        ("logits", "float32", (5,)),
        ("rollout", "float32", (4, 4)),
    ]


def test_variants_keep_uint8_input_and_float32_outputs_and_record_parity(bundle):
    manifest = Manifest.read(bundle)
    assert sorted(manifest.variants("classify")) == ["fp16", "fp32", "int8"]
    for spec in manifest.graphs:
        inputs, outputs = read_signature(bundle / spec.file)
        assert inputs[0].dtype == "uint8"
        assert {s.dtype for s in outputs} == {"float32"}
        assert 0.0 <= spec.parity["max_abs_logits"] < 0.1
        assert 0.0 <= spec.parity["top1_agreement"] <= 1.0
    half = manifest.graph("classify", "fp16")
    session = ort.InferenceSession(str(bundle / half.file))
    pixels = np.random.default_rng(5).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    (fp32,) = ort.InferenceSession(str(bundle / "classify.onnx")).run(None, {"pixels": pixels})
    (fp16,) = session.run(None, {"pixels": pixels})
    assert np.abs(fp16 - fp32).max() < 1e-2


def test_topological_sort_orders_nodes_after_their_producers():
    import onnx
    from onnx import helper

    nodes = [helper.make_node("Relu", ["b"], ["c"]), helper.make_node("Neg", ["a"], ["b"])]
    tensor = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes, "g", [tensor("a", onnx.TensorProto.FLOAT, [1])], [tensor("c", onnx.TensorProto.FLOAT, [1])]
    )
    topological_sort(graph)
    assert [n.op_type for n in graph.node] == ["Neg", "Relu"]
