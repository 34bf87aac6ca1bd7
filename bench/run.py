"""The whole benchmark: one plan, one machine, one run; every ratio compares figures from the same run.

python -m bench            # full run (make bench), < 20 min on 2 cores
python -m bench --quick    # smaller sweep (make bench-quick), < 3 min once the cache is warm
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import engine, machine
from bench.http import closed_sweep, open_sweep, run_loadgen
from bench.images import IMAGES, content_type, ensure_images
from bench.models import MODELS, PreparedModel, prepare
from bench.peers_spec import PEERS, peer_spec, service_spec
from bench.servers import RunningServer, ServerSpec
from bench.stats import interpolate, median
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
    duration_s: float = 5.0
    warmup_s: float = 1.5
    engine_batches: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    engine_min_time_s: float = 2.0
    gemm_n: int = 2048
    max_batch_size: int = 16
    max_batch_delay_ms: float = 5.0
    repetitions: int = 2  # rounds over the servers (each alone, order rotated); medians are reported
    # Extra configurations of this service run beside the peers (name -> VIT_* environment).
    service_variants: dict[str, dict[str, str]] = field(
        default_factory=lambda: {
            "service_fixed16": {"VIT_BATCH_AUTOTUNE": "false"},
            "service_nospin": {"VIT_ORT_SPINNING": "false"},
        }
    )
    engine_1thread_batches: list[int] = field(default_factory=lambda: [1, 8])
    extras_model: str = "vit-s16"  # explanations and preprocessing are measured on this model
    images: list[str] = field(default_factory=lambda: list(IMAGES))
    # ViT-B/16 runs ~4× slower than ViT-S/16: a lighter sweep keeps the full run inside its time budget.
    model_overrides: dict[str, dict] = field(
        default_factory=lambda: {
            "vit-b16": {"concurrencies": [1, 16], "rate_fractions": [0.9], "engine_batches": [1, 4, 16]}
        }
    )

    def for_model(self, name: str) -> Plan:
        """This plan with the model's overrides applied (levels the command line set explicitly win)."""
        return dataclasses.replace(self, **self.model_overrides.get(name, {}))

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
            repetitions=1,
            service_variants={},
            engine_1thread_batches=[1],
        )


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class EngineProbe:
    """The engine ceiling at one batch size, measured right after the HTTP level it belongs to, so that
    background load drifting between minutes does not leak into the efficiency ratio."""

    def __init__(self, model: PreparedModel, min_time_s: float) -> None:
        self.session = engine.open_session(model.graph_path())
        self.input_size = model.input_size
        self.min_time_s = min_time_s
        self.rng = np.random.default_rng(0)

    def img_per_s(self, batch: int) -> float:
        pixels = self.rng.integers(0, 256, size=(batch, *self.input_size, 3), dtype=np.uint8)
        times = engine.time_batch(self.session, pixels, self.min_time_s, min_reps=3, max_reps=50)
        return batch / median(times)


def _aggregate(runs: list[dict]) -> dict:
    """Repetitions of one level → medians of the rates and percentiles, sums of the counts."""
    out = dict(runs[-1])
    for key in ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "mean_batch",
                "engine_img_per_s_at_batch", "efficiency"):  # fmt: skip
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = median(values) if values else None
    for key in ("sent", "ok", "errors", "rejected_429", "client_dropped"):
        out[key] = sum(r.get(key, 0) for r in runs)
    out["repetitions"] = len(runs)
    out["throughput_rps_runs"] = [r["throughput_rps"] for r in runs]
    return out


def compare_closed(
    specs: dict[str, ServerSpec],
    image: Path,
    plan: Plan,
    probe: EngineProbe,
    ceiling: list[dict],
    logs: Path,
    model_name: str,
) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """Closed-loop levels on every server, each server running alone: started, taken through every level,
    stopped, so that no idle server (LitServe's polling worker, Ray's daemons) takes CPU from the one
    measured. Repetitions rotate the order to spread drift; after each of this service's levels the engine
    is probed at the batch size the batcher formed. Returns the rows and each server's start-up status."""
    names = list(specs)
    runs: dict[str, dict[int, list[dict]]] = {name: {c: [] for c in plan.concurrencies} for name in names}
    status: dict[str, dict] = {}
    points = [(row["batch"], row["img_per_s"]) for row in ceiling]
    for rep in range(plan.repetitions):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            if status.get(name, {}).get("status") == "failed":
                continue
            log_path = logs / f"{name}-{model_name}-{rep + 1}.log"
            try:
                server = RunningServer(specs[name], log_path, REPO).start()
            except Exception as exc:  # one server failing must not sink the run; the report says why
                log(f"{model_name}: {name} failed to start: {exc}")
                status[name] = {"status": "failed", "reason": str(exc)[-600:]}
                continue
            try:
                entry = status.setdefault(name, {"status": "ok", "startup_runs_s": []})
                entry["startup_runs_s"].append(server.startup_s)
                for concurrency in plan.concurrencies:
                    row = closed_sweep(server, image, [concurrency], plan.duration_s, plan.warmup_s)[0]
                    if name == "service":
                        batch = row.get("mean_batch") or 1.0
                        now = probe.img_per_s(max(1, round(batch)))
                        # Probed now at the rounded batch; the table (measured earlier) is kept beside it.
                        row["engine_img_per_s_at_batch"] = now
                        row["engine_table_img_per_s_at_batch"] = interpolate(points, batch)
                        row["efficiency"] = row["throughput_rps"] / now if now else None
                    runs[name][concurrency].append(row)
            finally:
                server.stop()
            log(
                f"{model_name}: {name} (run {rep + 1}): "
                + ", ".join(f"c={c} {runs[name][c][-1]['throughput_rps']:.1f}" for c in plan.concurrencies)
                + " req/s"
            )
    rows = {
        name: [_aggregate(runs[name][c]) for c in plan.concurrencies]
        for name in names
        if status.get(name, {}).get("status") == "ok"
    }
    for entry in status.values():
        if entry["status"] == "ok":
            entry["startup_s"] = median(entry["startup_runs_s"])
    return rows, status


def peer_specs(
    model: PreparedModel, plan: Plan, cache: Path, logs: Path
) -> tuple[dict[str, ServerSpec], dict]:
    """How to start every peer whose environment installs; the others with the reason they are missing."""
    specs: dict[str, ServerSpec] = {}
    status: dict[str, dict] = {}
    for peer in plan.peers:
        if peer == "fastapi_torch" and model.model_dir is None:
            status[peer] = {"status": "skipped", "reason": "no PyTorch model directory for this model"}
            continue
        try:
            log(f"{model.spec.name}: peer {peer}: environment")
            ensure_venv(cache / "venvs", peer, log=logs / f"venv-{peer}.log")
            specs[peer] = peer_spec(
                peer, model, cache / "venvs", plan.max_batch_size, plan.max_batch_delay_ms
            )
        except Exception as exc:
            log(f"{model.spec.name}: peer {peer} failed: {exc}")
            status[peer] = {"status": "failed", "reason": str(exc)[-600:]}
    return specs, status


def service_figures(
    model: PreparedModel,
    plan: Plan,
    images: dict[str, Path],
    cache: Path,
    logs: Path,
    ceiling: list[dict],
    with_peers: bool,
) -> tuple[dict, dict | None]:
    """This service (and, for the peer model, every peer, one at a time) under closed-loop load; then the
    service again: open loop, and on the extras model explanations and per-image request latency."""
    probe = EngineProbe(model, min_time_s=min(1.0, plan.engine_min_time_s))
    spec = service_spec(model, plan.max_batch_size, plan.max_batch_delay_ms)
    specs: dict[str, ServerSpec] = {"service": spec}
    peers: dict | None = None
    if with_peers:
        found, peers = peer_specs(model, plan, cache, logs)
        specs.update(found)
        for variant, env in plan.service_variants.items():
            extra = service_spec(model, plan.max_batch_size, plan.max_batch_delay_ms, env)
            extra.ready_timeout_s = 400  # warming up every bucket takes a while
            specs[variant] = extra
    log(f"{model.spec.name}: closed loop {plan.concurrencies} × {plan.repetitions} on {list(specs)}")
    closed, status = compare_closed(specs, images[LOAD_IMAGE], plan, probe, ceiling, logs, model.spec.name)
    if "service" not in closed:
        raise RuntimeError(f"the service did not start: {status.get('service')}")
    if peers is not None:
        for name, entry in status.items():
            if name == "service":
                continue
            peers[name] = dict(entry)
            if name in plan.service_variants:
                peers[name]["env"] = plan.service_variants[name]
            if name in closed:
                peers[name]["closed"] = closed[name]
    with RunningServer(spec, logs / f"service-{model.spec.name}.log", cwd=REPO) as server:
        log(f"{model.spec.name}: service up in {server.startup_s:.1f} s")
        saturated = max(row["throughput_rps"] for row in closed["service"])
        rates = [round(max(0.5, f * saturated), 2) for f in plan.rate_fractions]
        log(f"{model.spec.name}: open loop at {rates} req/s")
        open_rows = open_sweep(server, images[LOAD_IMAGE], rates, plan.duration_s, plan.warmup_s)
        for row, fraction in zip(open_rows, plan.rate_fractions, strict=True):
            row["fraction_of_saturation"] = fraction
        figures = {
            "startup_s": server.startup_s,
            "model_info": server.get("/v1/model").json(),
            "closed": closed["service"],
            "open": open_rows,
        }
        if model.spec.name == plan.extras_model:
            figures["explain"] = explain_figures(server, model, images[LOAD_IMAGE], plan)
            figures["request_by_image"] = {
                name: run_loadgen(server.spec.predict_url, path, "raw", content_type=content_type(name),
                                  concurrency=1, duration=plan.duration_s / 2, warmup=0.5)
                for name, path in images.items()
            }  # fmt: skip
    return figures, peers


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


def measure_model(name: str, plan: Plan, cache: Path, images: dict[str, Path], logs: Path) -> dict:
    """Everything measured on one model (its entry in results.json)."""
    log(f"{name}: preparing bundle")
    model = prepare(name, cache, REPO, build_default=not plan.quick)
    if model is None:
        return {"status": "skipped", "reason": "bundles/default missing (make bundle)"}
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
    if name == plan.peer_model and plan.engine_1thread_batches:
        entry["engine_1thread"] = engine.ceiling(
            model.graph_path(), model.input_size, plan.engine_1thread_batches,
            min_time_s=plan.engine_min_time_s, threads=1,
        )  # fmt: skip
    if name == plan.peer_model:
        from bench.profile import op_shares

        entry["engine_profile"] = op_shares(
            model.graph_path(), model.input_size, batch=min(8, plan.max_batch_size)
        )
    with_peers = name == plan.peer_model and bool(plan.peers)
    entry["service"], peers = service_figures(model, plan, images, cache, logs, entry["engine"], with_peers)
    if name == plan.extras_model:
        from bench import preprocess  # imports the service's imaging code

        log(f"{name}: preprocessing")
        entry["preprocessing"] = {
            img: preprocess.measure(path, model.manifest.preprocessing) for img, path in images.items()
        }
    if peers is not None:
        entry["peers"] = peers
    return entry


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
    base_plan = plan
    for name in base_plan.models:
        try:
            results["models"][name] = measure_model(name, base_plan.for_model(name), cache, images, logs)
        except Exception as exc:  # keep the other models' figures; the report says what failed
            log(f"{name}: failed: {exc!r}")
            results["models"][name] = {"status": "failed", "reason": repr(exc)[-600:]}
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.partial.json").write_text(json.dumps(results, indent=1) + "\n")
    results["gpu"] = {"measured": False, "reason": "no CUDA device on this machine; see bench/gpu.py"}
    results["machine"]["load_average_end"] = list(os.getloadavg())
    results["duration_s"] = time.perf_counter() - started
    from bench import report  # matplotlib only when writing

    report.write(results, out_dir, markdown)
    (out_dir / "results.partial.json").unlink(missing_ok=True)
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
    parser.add_argument("--repetitions", type=int, help="repetitions of each closed-loop level")
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
        for overrides in plan.model_overrides.values():
            overrides.pop("concurrencies", None)
    if args.batches:
        plan.engine_batches = ints(args.batches)
        for overrides in plan.model_overrides.values():
            overrides.pop("engine_batches", None)
    plan.duration_s = args.duration or plan.duration_s
    plan.warmup_s = args.warmup if args.warmup is not None else plan.warmup_s
    plan.gemm_n = args.gemm_n or plan.gemm_n
    plan.repetitions = args.repetitions or plan.repetitions
    if args.images:
        plan.images = [i for i in args.images.split(",") if i]
        unknown = sorted(set(plan.images) - set(IMAGES))
        if unknown:
            parser.error(f"unknown images {unknown}; choose from {list(IMAGES)}")
    run(plan, args.cache, args.out_dir, args.markdown)
    return 0
