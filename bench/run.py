"""The whole benchmark: one plan, one machine, one run; every ratio compares figures from the same run.

python -m bench            # full run (make bench), < 20 min on 2 cores
python -m bench --quick    # smaller sweep (make bench-quick), < 3 min once the cache is warm
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import engine, machine
from bench.http import closed_sweep, open_sweep, run_loadgen
from bench.images import IMAGES, content_type, ensure_images
from bench.models import MODELS, PreparedModel, prepare
from bench.peers_spec import PEERS, peer_spec, service_spec
from bench.servers import RunningServer
from bench.stats import interpolate
from bench.venvs import ensure_venv

REPO = Path(__file__).resolve().parents[1]
LOAD_IMAGE = "photo.jpg"


@dataclass
class Plan:
    quick: bool = False
    models: list[str] = field(default_factory=lambda: ["digits", "vit-s16", "vit-b16"])
    peer_model: str = "vit-s16"
    peers: list[str] = field(default_factory=lambda: list(PEERS))
    concurrencies: list[int] = field(default_factory=lambda: [1, 4, 16, 64])
    rate_fractions: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75, 0.9, 1.2])
    duration_s: float = 6.0
    warmup_s: float = 2.0
    engine_batches: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    engine_min_time_s: float = 2.0
    gemm_n: int = 2048
    max_batch_size: int = 16
    max_batch_delay_ms: float = 5.0
    extras_model: str = "vit-s16"  # explanations and preprocessing are measured on this model
    images: list[str] = field(default_factory=lambda: list(IMAGES))

    @classmethod
    def quick_plan(cls) -> Plan:
        return cls(
            quick=True,
            models=["vit-s16"],
            peers=["litserve"],
            concurrencies=[1, 16],
            rate_fractions=[0.5, 1.2],
            duration_s=3.0,
            warmup_s=1.0,
            engine_batches=[1, 4, 16],
            engine_min_time_s=0.5,
            gemm_n=1024,
        )


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def service_figures(
    model: PreparedModel, plan: Plan, images: dict[str, Path], logs: Path, ceiling: list[dict]
) -> dict:
    """Closed and open loop against this service, its efficiency, and (on the extras model) explanations
    and per-image-type request latency."""
    spec = service_spec(model, plan.max_batch_size, plan.max_batch_delay_ms)
    with RunningServer(spec, logs / f"service-{model.spec.name}.log", cwd=REPO) as server:
        log(f"{model.spec.name}: service up in {server.startup_s:.1f} s; closed loop {plan.concurrencies}")
        closed = closed_sweep(server, images[LOAD_IMAGE], plan.concurrencies, plan.duration_s, plan.warmup_s)
        points = [(row["batch"], row["img_per_s"]) for row in ceiling]
        for row in closed:
            batch = row.get("mean_batch")
            row["engine_img_per_s_at_batch"] = interpolate(points, batch) if batch else None
            row["efficiency"] = (
                row["throughput_rps"] / row["engine_img_per_s_at_batch"]
                if row["engine_img_per_s_at_batch"]
                else None
            )
        saturated = max(row["throughput_rps"] for row in closed)
        rates = [round(max(0.5, f * saturated), 2) for f in plan.rate_fractions]
        log(f"{model.spec.name}: open loop at {rates} req/s")
        open_rows = open_sweep(server, images[LOAD_IMAGE], rates, plan.duration_s, plan.warmup_s)
        for row, fraction in zip(open_rows, plan.rate_fractions, strict=True):
            row["fraction_of_saturation"] = fraction
        figures = {"startup_s": server.startup_s, "closed": closed, "open": open_rows}
        if model.spec.name == plan.extras_model:
            figures["explain"] = explain_figures(server, model, images[LOAD_IMAGE], plan)
            figures["request_by_image"] = {
                name: run_loadgen(
                    server.spec.predict_url,
                    path,
                    "raw",
                    content_type=content_type(name),
                    concurrency=1,
                    duration=plan.duration_s / 2,
                    warmup=0.5,
                )
                for name, path in images.items()
            }
    return figures


def explain_figures(server: RunningServer, model: PreparedModel, image: Path, plan: Plan) -> dict:
    """Sequential latency of /classify, /classify?explain=true and /explain, plus the graphs in process."""
    log(f"{model.spec.name}: explanations")
    routes = {"classify": "/classify", "classify_explain": "/classify?explain=true", "explain": "/explain"}
    http = {
        key: run_loadgen(
            server.spec.base_url + path, image, "raw", concurrency=1, duration=plan.duration_s / 2, warmup=0.5
        )
        for key, path in routes.items()
    }
    graphs = {}
    for purpose in ("classify", "explain"):
        rows = engine.ceiling(
            model.graph_path(purpose), model.input_size, [1], min_time_s=plan.engine_min_time_s
        )
        graphs[purpose] = rows[0]
    return {"http": http, "engine_batch1": graphs}


def peer_figures(model: PreparedModel, plan: Plan, images: dict[str, Path], cache: Path, logs: Path) -> dict:
    peers: dict[str, dict] = {}
    for peer in plan.peers:
        if peer == "fastapi_torch" and model.model_dir is None:
            peers[peer] = {"status": "skipped", "reason": "no PyTorch model directory for this model"}
            continue
        try:
            log(f"{model.spec.name}: peer {peer}: environment")
            ensure_venv(cache / "venvs", peer, log=logs / f"venv-{peer}.log")
            spec = peer_spec(peer, model, cache / "venvs", plan.max_batch_size, plan.max_batch_delay_ms)
            with RunningServer(spec, logs / f"peer-{peer}-{model.spec.name}.log", cwd=REPO) as server:
                log(f"{model.spec.name}: peer {peer} up in {server.startup_s:.1f} s")
                closed = closed_sweep(
                    server, images[LOAD_IMAGE], plan.concurrencies, plan.duration_s, plan.warmup_s
                )
            peers[peer] = {"status": "ok", "startup_s": server.startup_s, "closed": closed}
        except Exception as exc:  # one peer failing must not sink the run; the report says why
            log(f"{model.spec.name}: peer {peer} failed: {exc}")
            peers[peer] = {"status": "failed", "reason": str(exc)[-600:]}
    return peers


def run(plan: Plan, cache: Path, out_dir: Path, markdown: Path) -> dict:
    started = time.perf_counter()
    cache = cache.resolve()
    logs = cache / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "schema": 1,
        "mode": "quick" if plan.quick else "full",
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "plan": asdict(plan),
        "machine": machine.describe(),
        "models": {},
    }
    log("fp32 GEMM limit")
    results["hardware"] = machine.gemm_gflops(plan.gemm_n)
    images = ensure_images(cache, sorted(set(plan.images) | {LOAD_IMAGE}))
    results["images"] = {name: {"bytes": path.stat().st_size} for name, path in images.items()}
    for name in plan.models:
        log(f"{name}: preparing bundle")
        model = prepare(name, cache, REPO, build_default=not plan.quick)
        if model is None:
            results["models"][name] = {"status": "skipped", "reason": "bundles/default missing (make bundle)"}
            continue
        entry: dict = {
            "status": "ok",
            "title": model.spec.title,
            "input_size": list(model.input_size),
            "params": model.manifest.architecture.params,
            "flops_per_image": model.flops_per_image(),
        }
        log(f"{name}: engine ceiling at batches {plan.engine_batches}")
        entry["engine"] = engine.ceiling(
            model.graph_path(), model.input_size, plan.engine_batches, min_time_s=plan.engine_min_time_s
        )
        entry["service"] = service_figures(model, plan, images, logs, entry["engine"])
        if name == plan.extras_model:
            from bench import preprocess  # imports the service's imaging code

            log(f"{name}: preprocessing")
            entry["preprocessing"] = {
                img: preprocess.measure(path, model.manifest.preprocessing) for img, path in images.items()
            }
        if name == plan.peer_model and plan.peers:
            entry["peers"] = peer_figures(model, plan, images, cache, logs)
        results["models"][name] = entry
    results["gpu"] = {"measured": False, "reason": "no CUDA device on this machine; see bench/gpu.py"}
    results["machine"]["load_average_end"] = list(os.getloadavg())
    results["duration_s"] = time.perf_counter() - started
    from bench import report  # matplotlib only when writing

    report.write(results, out_dir, markdown)
    log(f"done in {results['duration_s']:.0f} s: {markdown}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small sweep for development (< 3 min)")
    parser.add_argument("--models", help=f"comma list from {sorted(MODELS)}")
    parser.add_argument("--peers", help=f"comma list from {list(PEERS)}, or 'none'")
    parser.add_argument("--peer-model", help="the model the peers serve")
    parser.add_argument("--extras-model", help="the model for explanations and preprocessing")
    parser.add_argument("--concurrency", help="comma list of closed-loop client counts")
    parser.add_argument("--duration", type=float, help="seconds measured per load level")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per load level")
    parser.add_argument("--batches", help="comma list of engine batch sizes")
    parser.add_argument("--gemm-n", type=int, help="matrix size of the GEMM limit")
    parser.add_argument("--images", help=f"comma list from {list(IMAGES)} for the preprocessing figures")
    parser.add_argument(
        "--cache", type=Path, default=REPO / ".bench", help="bundles, images, peer venvs, logs"
    )
    parser.add_argument(
        "--out-dir", type=Path, default=REPO / "docs" / "bench", help="results.json and plots"
    )
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    plan = Plan.quick_plan() if args.quick else Plan()
    ints = lambda text: [int(v) for v in text.split(",") if v]  # noqa: E731
    if args.models:
        plan.models = [m for m in args.models.split(",") if m]
        unknown = sorted(set(plan.models) - set(MODELS))
        if unknown:
            parser.error(f"unknown models {unknown}; choose from {sorted(MODELS)}")
    if args.peers:
        plan.peers = [] if args.peers == "none" else [p for p in args.peers.split(",") if p]
        unknown = sorted(set(plan.peers) - set(PEERS))
        if unknown:
            parser.error(f"unknown peers {unknown}; choose from {list(PEERS)}")
    plan.peer_model = args.peer_model or (
        plan.peer_model if plan.peer_model in plan.models else plan.models[0]
    )
    plan.extras_model = args.extras_model or (
        plan.extras_model if plan.extras_model in plan.models else plan.models[0]
    )
    if args.concurrency:
        plan.concurrencies = ints(args.concurrency)
    if args.batches:
        plan.engine_batches = ints(args.batches)
    plan.duration_s = args.duration or plan.duration_s
    plan.warmup_s = args.warmup if args.warmup is not None else plan.warmup_s
    plan.gemm_n = args.gemm_n or plan.gemm_n
    if args.images:
        plan.images = [i for i in args.images.split(",") if i]
        unknown = sorted(set(plan.images) - set(IMAGES))
        if unknown:
            parser.error(f"unknown images {unknown}; choose from {list(IMAGES)}")
    run(plan, args.cache, args.out_dir, args.markdown)
    return 0
