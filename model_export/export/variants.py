"""Reduced-precision copies of the fp32 graphs: fp16 for GPUs, dynamically quantised int8 for CPUs."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import onnx

# Kept in fp32: normalisation statistics, softmax and the reductions of the rollout overflow or lose
# too many digits in half precision.
FP16_KEEP_FP32 = [
    "LayerNormalization",
    "Softmax",
    "ReduceMean",
    "ReduceSum",
    "Pow",
    "Sqrt",
    "Erf",
]


def to_fp16(source: Path, target: Path) -> Path:
    """Half-precision weights and activations; uint8 input and float32 outputs stay as they are."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source))
    half = convert_float_to_float16(model, keep_io_types=True, op_block_list=FP16_KEEP_FP32)
    topological_sort(half.graph)  # the converter appends its Cast nodes at the end
    del half.graph.value_info[:]  # stale intermediate types; shape inference redoes them
    onnx.save(half, str(target))
    onnx.checker.check_model(str(target), full_check=True)
    return Path(target)


def topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder nodes so each comes after the producers of its inputs (the ONNX checker requires it)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        ready = [n for n in pending if all(name in available for name in n.input)]
        if not ready:
            raise ValueError("graph has a cycle or an input no node produces")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def to_int8(source: Path, target: Path) -> Path:
    """Dynamic quantisation (int8 weights, activations quantised per batch) of MatMul/Gemm."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser warns that the uint8 input is not quantisable
    try:
        with tempfile.TemporaryDirectory() as scratch:
            prepared = Path(scratch) / "prepared.onnx"
            quant_pre_process(str(source), str(prepared))
            quantize_dynamic(
                str(prepared),
                str(target),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Gemm"],
            )
    finally:
        root.setLevel(level)
    onnx.checker.check_model(str(target))
    return Path(target)
