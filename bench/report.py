"""Results → ``docs/benchmarks.md`` (tables), ``docs/bench/*.png`` (plots) and ``docs/bench/results.json``.

Everything in the document is computed from the results of one run; the hand-written findings (what limits
each figure, from profiling) live in ``bench/findings.md`` and are copied in verbatim.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.peers_spec import PEER_TITLES

FINDINGS = Path(__file__).with_name("findings.md")
BATCHING_PEERS = ("litserve", "rayserve")


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _shares(shares: dict[str, float] | None) -> str:
    return " · ".join(f"{k} {100 * v:.0f}%" for k, v in shares.items()) if shares else "–"


def _inverse(value: float | None) -> float | None:
    return 1 / value if value else None


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _ok_models(results: dict) -> dict[str, dict]:
    return {k: v for k, v in results["models"].items() if v.get("status") == "ok"}


def _saturated(closed: list[dict]) -> dict:
    return max(closed, key=lambda row: row["concurrency"])


def peer_ratios(entry: dict) -> dict[str, list[dict]]:
    """Per peer and concurrency: its throughput and p99 as ratios to this service's in the same run."""
    ours = {row["concurrency"]: row for row in entry["service"]["closed"]}
    ratios: dict[str, list[dict]] = {}
    for peer, data in entry.get("peers", {}).items():
        if data.get("status") != "ok":
            continue
        rows = []
        for row in data["closed"]:
            mine = ours.get(row["concurrency"])
            if mine is None:
                continue
            rows.append({
                "concurrency": row["concurrency"],
                "throughput_ratio": (
                        row["throughput_rps"] / mine["throughput_rps"] if mine["throughput_rps"] else None
                    ),
                "p99_ratio": row["p99_ms"] / mine["p99_ms"] if row["p99_ms"] and mine["p99_ms"] else None,
            })  # fmt: skip
        ratios[peer] = rows
    return ratios


def targets(results: dict) -> list[list[str]]:
    """The three targets, each with the figure measured in this run and whether it was met."""
    rows = []
    for name, entry in _ok_models(results).items():
        sat = _saturated(entry["service"]["closed"])
        eff = sat.get("efficiency")
        rows.append(
            [
                f"{name}: service keeps ≥ 85% of the engine ceiling at saturation (c={sat['concurrency']})",
                _pct(eff),
                "–" if eff is None else ("yes" if eff >= 0.85 else "**no**"),
            ]
        )
    for name, entry in _ok_models(results).items():
        ratios = peer_ratios(entry)
        torch_peer = entry.get("peers", {}).get("fastapi_torch", {})
        if torch_peer.get("status") == "ok":
            ours_best = max(r["throughput_rps"] for r in entry["service"]["closed"])
            theirs_best = max(r["throughput_rps"] for r in torch_peer["closed"])
            gain = ours_best / theirs_best if theirs_best else float("inf")
            rows.append(
                [
                    f"{name}: ≥ 1.4× the FastAPI + PyTorch throughput (best level of each)",
                    f"{gain:.2f}× ({ours_best:.1f} vs {theirs_best:.1f} req/s)",
                    "yes" if gain >= 1.4 else "**no**",
                ]
            )
        for peer in (*BATCHING_PEERS, "kserve"):
            high = [r for r in ratios.get(peer, []) if r["concurrency"] >= 16]
            if not high:
                continue
            beats = all(r["throughput_ratio"] is not None and r["throughput_ratio"] < 1 for r in high)
            p99_ok = all(r["p99_ratio"] is None or r["p99_ratio"] >= 1 for r in high)
            figures = ", ".join(
                f"c={r['concurrency']}: throughput ours ÷ theirs {_f(_inverse(r['throughput_ratio']), 2)}×, "
                f"p99 theirs ÷ ours {_f(r['p99_ratio'], 2)}×"
                for r in high
            )
            rows.append(
                [
                    f"{name}: beats {PEER_TITLES[peer]} at c ≥ 16 without worse p99",
                    figures,
                    "yes" if beats and p99_ok else "**no**",
                ]
            )
    return rows


def _cap(service: dict) -> str:
    """The batch cap the service chose at start-up and the engine speeds it chose it from, if reported."""
    info = service.get("model_info") or {}
    rates = info.get("engine_images_per_second") or {}
    if not rates:
        return ""
    shown = ", ".join(f"{size}: {rate:.1f}" for size, rate in rates.items())
    return f"; batches capped at {info['max_batch_size']} from its start-up timing, img/s by batch {shown}"


# -- plots ----------------------------------------------------------------------------------------------


def _save(fig, axes: list, out: Path, file: str) -> str:
    """Grid every axis, write the figure as a PNG into ``out`` and return its path relative to docs/."""
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / file, dpi=110)
    plt.close(fig)
    return f"bench/{file}"


def _plot_engine(results: dict, out: Path) -> str:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, entry in _ok_models(results).items():
        rows = entry["engine"]
        ax.plot([r["batch"] for r in rows], [r["img_per_s"] for r in rows], marker="o", label=name)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="batch size",
        ylabel="images / s",
        title="Engine ceiling (ORT, in process)",
    )
    ax.legend()
    return _save(fig, [ax], out, "engine.png")


def _plot_peers(name: str, entry: dict, out: Path) -> str:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    series = {"service": entry["service"]["closed"]}
    series.update({p: d["closed"] for p, d in entry.get("peers", {}).items() if d.get("status") == "ok"})
    for key, rows in series.items():
        x = [r["concurrency"] for r in rows]
        left.plot(x, [r["throughput_rps"] for r in rows], marker="o", label=PEER_TITLES.get(key, key))
        right.plot(
            x, [r["p99_ms"] or float("nan") for r in rows], marker="o", label=PEER_TITLES.get(key, key)
        )
    left.set(xscale="log", xlabel="concurrent clients", ylabel="requests / s", title=f"{name}: throughput")
    right.set(
        xscale="log",
        yscale="log",
        xlabel="concurrent clients",
        ylabel="p99 latency (ms)",
        title=f"{name}: p99 latency",
    )
    left.legend(fontsize=8)
    return _save(fig, [left, right], out, f"peers-{name}.png")


def _plot_open(results: dict, out: Path) -> str:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, entry in _ok_models(results).items():
        rows = entry["service"]["open"]
        ax.plot(
            [r["fraction_of_saturation"] for r in rows],
            [r["p99_ms"] or float("nan") for r in rows],
            marker="o",
            label=name,
        )
    ax.set(
        yscale="log",
        xlabel="offered rate / closed-loop saturation throughput",
        ylabel="p99 latency (ms)",
        title="Service, open loop (Poisson arrivals)",
    )
    ax.legend()
    return _save(fig, [ax], out, "open-loop.png")


# -- document ---------------------------------------------------------------------------------------------


def render(results: dict, plots: dict[str, str]) -> str:
    m = results["machine"]
    hw = results["hardware"]
    load0, load1 = m["load_average_start"][0], m.get("load_average_end", [None])[0]
    parts = [
        "# Benchmarks\n",
        f"Generated by `make bench{'-quick' if results['mode'] == 'quick' else ''}` (`python -m bench`) on "
        f"{results['started_utc']} in {results['duration_s'] / 60:.1f} min. Every ratio compares figures "
        "measured in this same run; latencies and rates are medians over repetitions (engine) or over all "
        "requests in a timed window (HTTP). Raw figures: [`bench/results.json`](bench/results.json).\n",
        f"**Machine:** {m['cpu_model']}, {m['cores']} cores ({', '.join(m['simd']) or 'no AVX'}), "
        f"{m['platform']}; Python {m['python']}, ONNX Runtime {m['onnxruntime']}, NumPy {m['numpy']}, "
        f"PyTorch {m['torch']}. Load average (1 min) {load0:.2f} at the start, {_f(load1, 2)} at the end"
        # The end figure includes the benchmark's own load; only the start says whether other work ran.
        + (
            " — **the machine was shared with other work while this ran (background load), so absolute "
            "figures are noisy; ratios between servers measured back to back are less so.**"
            if load0 > 1.0
            else " (the end figure includes the benchmark's own load)."
        )
        + "\n",
        "The load generator (`bench/loadgen.py`, asyncio + httpx) runs in its own process on the same "
        "cores as the server under test, for every server alike, so its CPU use is part of every figure. "
        "All servers bind 127.0.0.1.\n",
    ]
    missing = {k: v for k, v in results["models"].items() if v.get("status") != "ok"}
    if missing:
        parts.append(
            "Not measured in this run: "
            + "; ".join(
                f"**{k}** ({v.get('status')}: {v.get('reason', '')[:200]})" for k, v in missing.items()
            )
            + "\n"
        )
    rows = targets(results)
    if rows:
        parts += ["## Targets\n", _table(["target", "measured", "met"], rows)]
    if FINDINGS.is_file():
        parts += ["## Findings\n", FINDINGS.read_text().strip() + "\n"]

    parts += [
        "## Hardware limit\n",
        f"fp32 GEMM ({hw['n']}×{hw['n']} numpy matmul, median of {hw['repeats']}): "
        f"**{_f(hw['gflops_median'])} GFLOP/s** (best {_f(hw['gflops_max'])}). FLOPs count multiply-adds "
        "as 2 (matrix products only, `ViT.flops_per_image`).\n",
    ]
    hw_rows = []
    for name, entry in _ok_models(results).items():
        flops = entry["flops_per_image"]
        best = max(entry["engine"], key=lambda r: r["img_per_s"])
        sat = max(entry["service"]["closed"], key=lambda r: r["throughput_rps"])
        for what, rate in (
            (f"engine, batch {best['batch']}", best["img_per_s"]),
            (f"service, c={sat['concurrency']}", sat["throughput_rps"]),
        ):
            gflops = rate * flops / 1e9
            hw_rows.append(
                [name, _f(flops / 1e9, 2), what, _f(rate), _f(gflops), _pct(gflops / hw["gflops_median"])]
            )
    parts.append(_table(["model", "GFLOP / image", "where", "img/s", "GFLOP/s", "of GEMM limit"], hw_rows))

    parts += [
        "## Engine ceiling\n",
        "The bundle's `classify.onnx` in ONNX Runtime (CPU provider, default session options), in "
        "process, random uint8 pixels, no HTTP and no decoding.\n",
        f"![engine]({plots['engine']})\n",
    ]
    for name, entry in _ok_models(results).items():
        parts.append(f"**{name}** — {entry['title']}, {entry['input_size'][0]}×{entry['input_size'][1]}\n")
        parts.append(_table(["batch", "img/s", "p50 latency (ms)", "p95 (ms)", "runs"], [
            [str(r["batch"]), _f(r["img_per_s"]), _f(r["latency_ms_p50"]), _f(r["latency_ms_p95"]),
             str(r["reps"])]
            for r in entry["engine"]]))  # fmt: skip
        profile = entry.get("engine_profile")
        if profile:
            shares = ", ".join(f"{op} {100 * v:.0f}%" for op, v in profile["shares"].items())
            parts.append(
                f"ONNX Runtime's profiler on **{name}** at batch {profile['batch']} "
                f"({_f(profile['kernel_ms_per_run'])} ms of kernels per run), share of kernel time by "
                f"operator: {shares}.\n"
            )
        if entry.get("engine_1thread"):
            parts.append(f"**{name}** with one intra-op thread (`intra_op_num_threads=1`), same run\n")
            parts.append(_table(["batch", "img/s", "p50 latency (ms)", "p95 (ms)", "runs"], [
                [str(r["batch"]), _f(r["img_per_s"]), _f(r["latency_ms_p50"]), _f(r["latency_ms_p95"]),
                 str(r["reps"])]
                for r in entry["engine_1thread"]]))  # fmt: skip

    plan = results["plan"]
    parts += [
        "## This service over HTTP\n",
        f"`vit-serve` with `VIT_MAX_BATCH_SIZE={plan['max_batch_size']}`, "
        f"`VIT_MAX_BATCH_DELAY_MS={plan['max_batch_delay_ms']}`, other settings default; requests are "
        "the same 600×400 JPEG photo as a raw `image/jpeg` body to `POST /classify`. *Mean batch* is read "
        "from the service's `vit_batch_size` histogram before and after each level; *engine img/s at that "
        "batch* is measured in process right after the level, at the mean batch rounded to a whole "
        "number (so drifting background load hits both figures alike), and *efficiency* is the throughput "
        f"over it. Closed-loop levels ran {plan.get('repetitions', 1)}× each (medians shown); a level "
        "lasts at least its nominal seconds and until as many answers as clients arrived.\n",
        f"![open loop]({plots['open']})\n",
    ]
    for name, entry in _ok_models(results).items():
        svc = entry["service"]
        parts.append(
            f"**{name}**, closed loop (service ready {svc['startup_s']:.1f} s after start{_cap(svc)})\n"
        )
        parts.append(
            _table(
                [
                    "clients",
                    "req/s",
                    "p50 (ms)",
                    "p95 (ms)",
                    "p99 (ms)",
                    "errors",
                    "429",
                    "mean batch",
                    "engine img/s at that batch",
                    "efficiency",
                    "engine runs by batch size",
                ],
                [
                    [
                        str(r["concurrency"]),
                        _f(r["throughput_rps"]),
                        _f(r["p50_ms"]),
                        _f(r["p95_ms"]),
                        _f(r["p99_ms"]),
                        str(r["errors"]),
                        str(r["rejected_429"]),
                        _f(r.get("mean_batch"), 2),
                        _f(r.get("engine_img_per_s_at_batch")),
                        _pct(r.get("efficiency")),
                        _shares(r.get("batch_shares")),
                    ]
                    for r in svc["closed"]
                ],
            )
        )
        parts.append(f"**{name}**, open loop (Poisson arrivals)\n")
        parts.append(_table(
            ["offered req/s", "of saturation", "completed req/s", "p50 (ms)", "p99 (ms)", "429", "errors",
             "mean batch"],
            [[_f(r["offered_rps"]), _pct(r["fraction_of_saturation"]), _f(r["throughput_rps"]),
              _f(r["p50_ms"]),
              _f(r["p99_ms"]), str(r["rejected_429"]), str(r["errors"]), _f(r.get("mean_batch"), 2)]
             for r in svc["open"]]))  # fmt: skip

    for name, entry in _ok_models(results).items():
        if "peers" not in entry:
            continue
        parts += [
            f"## Peers ({name})\n",
            "Each peer runs in its own virtual environment (`.bench/venvs/<peer>`) set up as its docs "
            "recommend, serves the same bundle (the ONNX Runtime peers open the same `classify.onnx`; the "
            "PyTorch peer loads the same weights) with the same batch limits, receives the same JPEG bytes "
            "and preprocesses them with Pillow to the same manifest (`bench/peers/common.py`). Differences: "
            "LitServe and KServe take the image base64-encoded in JSON (their documented image input; "
            "decoding base64 costs well under 1 ms); KServe's v1 server has no dynamic batching without "
            "its Kubernetes sidecar; the peers decode JPEGs at full size while the service uses draft "
            "decoding (see Preprocessing). Ratios are the peer's figure over this service's at the same "
            "concurrency: throughput < 1 and p99 > 1 mean the service is ahead. Each server ran alone "
            "(started, taken through every level, stopped: an idle LitServe worker polls for about 0.08 "
            "of a core and Ray's daemons take some too), in rotating order, and the whole round was "
            "repeated, so slow drifts in background load hit all servers alike.\n",
            f"![peers]({plots.get('peers-' + name, '')})\n",
        ]
        ours = {r["concurrency"]: r for r in entry["service"]["closed"]}
        ratios = peer_ratios(entry)
        rows = [
            [
                PEER_TITLES["service"],
                str(c),
                _f(r["throughput_rps"]),
                _f(r["p50_ms"]),
                _f(r["p99_ms"]),
                str(r["errors"] + r["rejected_429"]),
                "1.00",
                "1.00",
            ]
            for c, r in ours.items()
        ]
        for peer, data in entry["peers"].items():
            if data.get("status") != "ok":
                rows.append(
                    [
                        PEER_TITLES.get(peer, peer),
                        "–",
                        "–",
                        "–",
                        "–",
                        "–",
                        f"{data['status']}: {data.get('reason', '')[:120]}".replace("|", "/").replace(
                            "\n", " "
                        ),
                        "",
                    ]
                )
                continue
            by_c = {r["concurrency"]: r for r in ratios.get(peer, [])}
            for r in data["closed"]:
                ratio = by_c.get(r["concurrency"], {})
                rows.append(
                    [
                        PEER_TITLES.get(peer, peer),
                        str(r["concurrency"]),
                        _f(r["throughput_rps"]),
                        _f(r["p50_ms"]),
                        _f(r["p99_ms"]),
                        str(r["errors"] + r["rejected_429"]),
                        _f(ratio.get("throughput_ratio"), 2),
                        _f(ratio.get("p99_ratio"), 2),
                    ]
                )
        parts.append(
            _table(
                [
                    "server",
                    "clients",
                    "req/s",
                    "p50 (ms)",
                    "p99 (ms)",
                    "failed",
                    "throughput ÷ ours",
                    "p99 ÷ ours",
                ],
                rows,
            )
        )

    for name, entry in _ok_models(results).items():
        explain = entry["service"].get("explain")
        if not explain:
            continue
        http = explain["http"]
        base = http["classify"]["p50_ms"]
        parts += [
            f"## Explanations ({name})\n",
            "One client, sequential requests, same image. The rollout's share is the extra latency over "
            "a plain `/classify`, as a share of the explaining request.\n",
        ]
        rows = []
        for key, label in (
            ("classify", "POST /classify"),
            ("classify_explain", "POST /classify?explain=true"),
            ("explain", "POST /explain"),
        ):
            r = http[key]
            share = (r["p50_ms"] - base) / r["p50_ms"] if r["p50_ms"] and base and key != "classify" else None
            rows.append(
                [
                    label,
                    _f(r["p50_ms"]),
                    _f(r["p99_ms"]),
                    _f(r["throughput_rps"]),
                    str(r["errors"]),
                    _pct(share),
                ]
            )
        parts.append(_table(["route", "p50 (ms)", "p99 (ms)", "req/s", "errors", "rollout share"], rows))
        g = explain["engine_batch1"]
        parts.append(
            f"In process at batch 1: `classify.onnx` {_f(g['classify']['latency_ms_p50'])} ms, "
            f"`explain.onnx` {_f(g['explain']['latency_ms_p50'])} ms "
            f"({_f(g['explain']['latency_ms_p50'] / g['classify']['latency_ms_p50'], 2)}×: explicit softmax "
            "attention in every block plus the rollout's matrix products).\n"
        )

    for name, entry in _ok_models(results).items():
        pre = entry.get("preprocessing")
        if not pre:
            continue
        by_image = entry["service"].get("request_by_image", {})
        parts += [
            f"## Preprocessing ({name})\n",
            "Decode + resize + crop with the service's own code (`service.imaging`), median per image; "
            "*draft* lets libjpeg decode at 1/2, 1/4 or 1/8 scale when the result stays at least as large as "
            "the resize needs (JPEG only; PNGs decode in full either way). Normalisation happens inside the "
            "graph. The share is of the same image's sequential `/classify` latency through the service.\n",
        ]
        rows = []
        for img, r in pre.items():
            req = by_image.get(img, {}).get("p50_ms")
            rows.append(
                [
                    img,
                    f"{r['bytes'] / 1024:,.0f} KiB",
                    _f(r["draft_ms"]),
                    _f(r["full_decode_ms"]),
                    _f(r["draft_speedup"], 2) + "×",
                    _f(req),
                    _pct(r["draft_ms"] / req if req else None),
                ]
            )
        parts.append(
            _table(
                [
                    "image",
                    "size",
                    "draft (ms)",
                    "full decode (ms)",
                    "draft speed-up",
                    "request p50 (ms)",
                    "share of request",
                ],
                rows,
            )
        )

    gpu = results.get("gpu", {})
    parts += [
        "## GPU\n",
        "GPU figures were **not measured**: " + gpu.get("reason", "no GPU") + ". `bench/gpu.py` measures, "
        "on a CUDA host, ViT-B/16 at 224 px for batch 1…256 — PyTorch eager fp32 and bf16, ONNX Runtime "
        "CUDA fp16 and TensorRT fp16 — in img/s, latency and fraction of the GPU's peak dense tensor "
        "throughput, then the service on the GPU under load "
        "(`python -m bench.gpu --out docs/bench/gpu.json`). No figure here is estimated.\n",
    ]
    return "\n".join(parts)


def write(results: dict, out_dir: Path, markdown: Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    plots = {"engine": _plot_engine(results, out_dir), "open": _plot_open(results, out_dir)}
    for name, entry in _ok_models(results).items():
        if "peers" in entry:
            plots[f"peers-{name}"] = _plot_peers(name, entry, out_dir)
    # Image links are relative to the markdown file.
    rel = os.path.relpath(out_dir, Path(markdown).parent)
    plots = {k: f"{rel}/{Path(v).name}" for k, v in plots.items()}
    text = render(results, plots).replace("(bench/results.json)", f"({rel}/results.json)")
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(text)


def main(argv: list[str] | None = None) -> int:
    """Re-render the document from a results.json (e.g. after editing bench/findings.md)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.report", description=main.__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--markdown", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)
    write(json.loads(args.results.read_text()), args.results.parent, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
