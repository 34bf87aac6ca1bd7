"""Commands of this stage: export, verify, regenerate, inspect, build-engine (on the `vit-export` app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def export(
    source: Annotated[Path, typer.Argument(help="A training run or imported model directory.")],
    out: Annotated[Path, typer.Option("--out", help="Bundle directory, or a path ending in .tar.")],
    name: Annotated[str | None, typer.Option(help="Bundle name (default: the output's name).")] = None,
    version: Annotated[str | None, typer.Option(help="Bundle version (default: date+digest).")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 18,
    fp16: Annotated[bool, typer.Option("--fp16", help="Also write half-precision graphs (GPU).")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Also write int8 graphs (CPU).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")] = False,
) -> None:
    """Export a model to a verified bundle (ONNX graphs, manifest, labels, weights, training record)."""
    from model_export.export.bundle import ExportError, describe, export_bundle
    from service.bundle import BundleError, Manifest

    try:
        path = export_bundle(
            source, out, name=name, version=version, opset=opset, fp16=fp16, int8=int8, overwrite=overwrite
        )
    except (ExportError, BundleError, FileExistsError, FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    from model_export.export import archive

    with archive.opened(path) as root:
        manifest = Manifest.read(root)
    typer.echo(f"wrote {path} ({manifest.name} {manifest.version})")
    typer.echo(describe(manifest))


def verify(bundle: Annotated[Path, typer.Argument(help="Bundle directory or .tar.")]) -> None:
    """Check checksums, schema, graph signatures and ONNX-vs-PyTorch parity; non-zero exit on any fault."""
    from model_export.export.verify import verify_bundle
    from service.bundle import BundleError

    try:
        report = verify_bundle(bundle)
    except BundleError as exc:
        raise _fail(f"{bundle}: {exc}") from exc
    typer.echo(f"{bundle}: OK ({report.name} {report.version}, {report.files_checked} files checked)")
    for file, figures in report.graphs.items():
        rollout = figures.get("max_abs_rollout")
        typer.echo(
            f"  {file}: max|Δlogits|={figures['max_abs_logits']:.2e}"
            + (f" max|Δrollout|={rollout:.2e}" if rollout is not None else "")
        )


def build_engine(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory.")],
    cache_dir: Annotated[Path, typer.Option("--cache-dir", help="Engine and timing cache.")] = Path(
        ".trt-cache"
    ),
    fp16: Annotated[bool, typer.Option("--fp16", help="Let TensorRT use fp16 kernels.")] = False,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="Largest batch of the profile.")] = 16,
) -> None:
    """Build and cache TensorRT engines for the bundle's graphs (needs onnxruntime-gpu with TensorRT)."""
    from model_export.export.tensorrt import EngineBuildError, build_engines
    from service.bundle import BundleError

    if not bundle.is_dir():
        raise _fail(f"{bundle} is not a bundle directory (unpack a .tar bundle first)")
    try:
        reports = build_engines(bundle, cache_dir, fp16=fp16, max_batch=max_batch)
    except (EngineBuildError, BundleError) as exc:
        raise _fail(str(exc)) from exc
    for report in reports:
        typer.echo(f"{report.file}: engine ready in {report.seconds:.1f} s ({', '.join(report.providers)})")
    typer.echo(
        f"cache: {cache_dir} (serve with VIT_TRT_CACHE_DIR={cache_dir} VIT_MAX_BATCH_SIZE={max_batch})"
    )


def inspect(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory or .tar.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the PNGs and inspection.json.")],
    components: Annotated[int, typer.Option(min=1, help="Principal components of the filters.")] = 28,
    images: Annotated[int, typer.Option(min=1, help="Images for the attention distances.")] = 6,
) -> None:
    """The paper's inspection figures: embedding filters, position similarity, attention distance."""
    from model_export.inspection.inspect_bundle import inspect_bundle
    from service.bundle import BundleError

    try:
        result = inspect_bundle(bundle, out, components=components, images=images)
    except BundleError as exc:
        raise _fail(f"{bundle}: {exc}") from exc
    distance = result["attention_distance"]["mean_distance"]
    typer.echo(f"wrote {out}: embedding_filters.png position_similarity.png attention_distance.png")
    typer.echo(
        f"mean attention distance (px), first layer {min(distance[0]):.1f}-{max(distance[0]):.1f}, "
        f"last layer {min(distance[-1]):.1f}-{max(distance[-1]):.1f}"
    )


def regenerate(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory or .tar of a training run.")],
    out: Annotated[Path, typer.Option("--out", help="Run directory to create, e.g. runs/NAME.")],
    weights_tolerance: Annotated[float, typer.Option(help="Largest allowed abs weight difference.")] = 1e-3,
    top1_tolerance: Annotated[float, typer.Option(help="Largest allowed test top-1 change.")] = 0.005,
) -> None:
    """Retrain from the bundle's own code and config (not the installed package) and compare the results."""
    from model_export.export.regenerate import RegenerateError
    from model_export.export.regenerate import regenerate as run
    from service.bundle import BundleError

    try:
        report = run(bundle, out, weights_tolerance=weights_tolerance, top1_tolerance=top1_tolerance)
    except (RegenerateError, BundleError, FileExistsError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"trained with {report.code_used}")
    typer.echo(
        f"weights: max |Δ| = {report.weights_max_abs_diff:.3g} (tolerance {report.weights_tolerance:g})"
    )
    if report.top1_diff is not None:
        typer.echo(
            f"test top-1: bundle {report.top1_bundle:.4f}, regenerated {report.top1_regenerated:.4f} "
            f"({report.top1_diff * 100:+.2f} points, tolerance {report.top1_tolerance * 100:g})"
        )
    typer.echo(f"report: {out}/regenerate_report.json")
    if not report.ok:
        raise _fail("regenerated run differs from the bundle: " + "; ".join(report.problems))
    typer.echo("OK: the bundle's weights were reproduced from its training record")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("verify")(verify)
    app.command("build-engine")(build_engine)
    app.command("inspect")(inspect)
    app.command("regenerate")(regenerate)
