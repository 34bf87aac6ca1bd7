"""GPU benchmark for a CUDA host: ViT-B/16 at 224 px, batch 1…256, four ways, then the service under load.

- PyTorch eager fp32 and bf16 (autocast), the project's ``ViT`` on ``cuda``;
- ONNX Runtime CUDA provider on the fp16 graph (``model_export.export.variants.to_fp16``);
- ONNX Runtime TensorRT provider on the fp32 graph with ``trt_fp16_enable`` (engines cached in ``.bench``);
- ``vit-serve`` with ``VIT_VARIANT=fp16`` on the GPU under closed-loop load (needs ``onnxruntime-gpu``).

Each figure is img/s and latency at the median of timed runs, and the fraction of the GPU's peak dense
tensor throughput (from a table of data-sheet figures by device name, or ``--peak-tflops``). On a machine
without CUDA it writes ``{"measured": false, ...}`` and exits 0, so ``make bench`` never needs a GPU.

    python -m bench.gpu --out docs/bench/gpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.stats import median

REPO = Path(__file__).resolve().parents[1]
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
# Data-sheet peak dense (no sparsity) TFLOP/s: (fp16/bf16 tensor cores, fp32 without tensor cores).
PEAK_TFLOPS = {
    "H200": (989.4, 66.9),
    "H100 SXM": (989.4, 66.9),
    "H100 NVL": (835.0, 60.0),
    "H100 PCIe": (756.0, 51.2),
    "H100": (756.0, 51.2),
    "A100": (312.0, 19.5),
    "L40S": (362.1, 91.6),
    "L4": (121.0, 30.3),
    "A10": (125.0, 31.2),
    "T4": (65.0, 8.1),
    "V100": (125.0, 15.7),
    "RTX 4090": (165.2, 82.6),
}


def cuda_available() -> tuple[bool, str]:
    try:
        import torch
    except ImportError:
        return False, "PyTorch is not installed"
    if not torch.cuda.is_available():
        return False, "no CUDA device (torch.cuda.is_available() is false)"
    return True, torch.cuda.get_device_name(0)


def peak_for(device: str, override: float | None) -> dict:
    if override:
        return {"fp16_tflops": override, "fp32_tflops": None, "source": "--peak-tflops"}
    for key, (fp16, fp32) in PEAK_TFLOPS.items():
        if key.lower() in device.lower():
            return {"fp16_tflops": fp16, "fp32_tflops": fp32, "source": f"data sheet ({key})"}
    return {"fp16_tflops": None, "fp32_tflops": None, "source": "unknown device; pass --peak-tflops"}


def _row(batch: int, times: list[float], flops: int, peak_tflops: float | None) -> dict:
    med = median(times)
    rate = batch / med
    return {
        "batch": batch,
        "latency_ms_p50": med * 1000.0,
        "img_per_s": rate,
        "tflops": rate * flops / 1e12,
        "fraction_of_peak": rate * flops / 1e12 / peak_tflops if peak_tflops else None,
    }


def torch_eager(
    model_dir: Path, batches: list[int], dtype: str, flops: int, peak: float | None, reps: int
) -> list[dict]:
    import torch

    from model_export.checkpoint import load_checkpoint

    model, _ = load_checkpoint(model_dir)
    model = model.cuda().eval()
    rows = []
    for batch in batches:
        x = torch.randn(batch, 3, 224, 224, device="cuda")
        times = []
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            for i in range(reps + 3):
                torch.cuda.synchronize()
                start = time.perf_counter()
                model(x)
                torch.cuda.synchronize()
                if i >= 3:
                    times.append(time.perf_counter() - start)
        rows.append(_row(batch, times, flops, peak))
    del model
    torch.cuda.empty_cache()
    return rows


def ort_gpu(
    graph: Path, providers: list, batches: list[int], flops: int, peak: float | None, reps: int
) -> list[dict]:
    """uint8 pixels from host memory, as the service feeds them (the copy is a quarter of fp32's)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=providers)
    if session.get_providers()[0] != (providers[0] if isinstance(providers[0], str) else providers[0][0]):
        raise RuntimeError(f"requested {providers[0]}, got {session.get_providers()}")
    rng = np.random.default_rng(0)
    rows = []
    for batch in batches:
        pixels = rng.integers(0, 256, size=(batch, 224, 224, 3), dtype=np.uint8)
        times = []
        for i in range(reps + 3):
            start = time.perf_counter()
            session.run(None, {"pixels": pixels})
            if i >= 3:
                times.append(time.perf_counter() - start)
        rows.append(_row(batch, times, flops, peak))
    return rows


def service_on_gpu(bundle: Path, concurrencies: list[int], duration: float) -> dict:
    from bench.http import closed_sweep
    from bench.images import ensure_images
    from bench.models import PreparedModel
    from bench.peers_spec import service_spec
    from bench.servers import RunningServer
    from service.bundle import Manifest

    model = PreparedModel(spec=None, bundle=bundle, model_dir=None, manifest=Manifest.read(bundle))  # type: ignore[arg-type]
    image = ensure_images(REPO / ".bench", ["photo.jpg"])["photo.jpg"]
    spec = service_spec(model, 64, 2.0, {"VIT_VARIANT": "fp16", "VIT_PROVIDERS": "cuda"})
    spec.ready_timeout_s = 600
    with RunningServer(spec, REPO / ".bench" / "logs" / "service-gpu.log", cwd=REPO) as server:
        closed = closed_sweep(server, image, concurrencies, duration, warmup=2.0)
    return {"startup_s": server.startup_s, "closed": closed, "settings": spec.env}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "bench" / "gpu.json")
    parser.add_argument("--cache", type=Path, default=REPO / ".bench")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--peak-tflops", type=float, help="the GPU's peak dense fp16 tensor TFLOP/s")
    parser.add_argument("--concurrency", default="1,16,64,256", help="service closed-loop levels")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--skip-service", action="store_true")
    args = parser.parse_args(argv)
    ok, device = cuda_available()
    result: dict = {"measured": False, "device": device}
    if not ok:
        result["reason"] = device
        print(f"GPU benchmark skipped: {device}", file=sys.stderr)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        return 0

    from bench.models import prepare
    from model_export.export.bundle import export_bundle
    from model_export.export.variants import to_fp16

    batches = [int(b) for b in args.batches.split(",") if b]
    model = prepare("vit-b16", args.cache, REPO)
    flops = model.flops_per_image()
    peak = peak_for(device, args.peak_tflops)
    fp16_graph = args.cache / "bundles" / "vit-b16-classify-fp16.onnx"
    if not fp16_graph.is_file():
        to_fp16(model.graph_path("classify"), fp16_graph)
    trt_cache = args.cache / "trt"
    trt_cache.mkdir(parents=True, exist_ok=True)
    shape = lambda b: f"pixels:{b}x224x224x3"  # noqa: E731
    trt = ("TensorrtExecutionProvider", {
        "trt_fp16_enable": "True", "trt_engine_cache_enable": "True", "trt_engine_cache_path": str(trt_cache),
        "trt_profile_min_shapes": shape(1), "trt_profile_opt_shapes": shape(max(batches) // 4 or 1),
        "trt_profile_max_shapes": shape(max(batches)),
    })  # fmt: skip
    runs = {
        "torch_eager_fp32": lambda: torch_eager(model.model_dir, batches, "fp32", flops, peak["fp32_tflops"],
                                                args.reps),
        "torch_eager_bf16": lambda: torch_eager(model.model_dir, batches, "bf16", flops, peak["fp16_tflops"],
                                                args.reps),
        "ort_cuda_fp16": lambda: ort_gpu(fp16_graph, ["CUDAExecutionProvider"], batches, flops,
                                         peak["fp16_tflops"], args.reps),
        "ort_tensorrt_fp16": lambda: ort_gpu(model.graph_path("classify"), [trt, "CUDAExecutionProvider"],
                                             batches, flops, peak["fp16_tflops"], args.reps),
    }  # fmt: skip
    result.update(measured=True, flops_per_image=flops, peak=peak, batches=batches, engines={})
    for name, run in runs.items():
        print(f"[gpu] {name}", file=sys.stderr, flush=True)
        try:
            result["engines"][name] = {"status": "ok", "rows": run()}
        except Exception as exc:  # e.g. no TensorRT libraries: report it, keep the other figures
            result["engines"][name] = {"status": "failed", "reason": str(exc)[-600:]}
    if not args.skip_service:
        bundle = args.cache / "bundles" / "vit-b16-fp16"
        try:
            if not (bundle / "manifest.json").is_file():
                export_bundle(model.model_dir, bundle, fp16=True, overwrite=True)
            levels = [int(c) for c in args.concurrency.split(",") if c]
            result["service"] = {"status": "ok", **service_on_gpu(bundle, levels, args.duration)}
        except Exception as exc:
            result["service"] = {"status": "failed", "reason": str(exc)[-600:]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
