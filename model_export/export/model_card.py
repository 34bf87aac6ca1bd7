"""MODEL_CARD.md, generated from the manifest so the card cannot disagree with the bundle."""

from __future__ import annotations

from typing import Any

from service.bundle import Manifest


def _fmt(value: Any) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(manifest: Manifest) -> str:
    arch, pre, training = manifest.architecture, manifest.preprocessing, manifest.training
    lines = [
        f"# {manifest.name} {manifest.version}",
        "",
        f"A Vision Transformer image classifier exported {manifest.created}.",
        "",
        "## Architecture",
        "",
        f"- ViT{'-' + arch.preset.upper() if arch.preset else ''}/{arch.patch_size}: width {arch.dim}, "
        f"depth {arch.depth}, {arch.heads} heads, MLP {arch.mlp_dim}",
        f"- input {arch.image_size[0]}×{arch.image_size[1]} RGB, {arch.grid_size[0]}×{arch.grid_size[1]} "
        f"patches, {arch.num_prefix_tokens} prefix token(s), {arch.num_classes} classes",
        f"- {_fmt(arch.params)} parameters, {_fmt(arch.flops_per_image)} FLOPs per image",
        "",
        "## Preprocessing",
        "",
        f"- resize: {pre.resize}"
        + (f" (shorter side {pre.resize_size}, centre crop)" if pre.resize == "shorter_side" else "")
        + f", {pre.interpolation}",
        f"- mean {list(pre.mean)}, std {list(pre.std)} on pixels/255, applied inside the graphs",
        "",
        "## Data and provenance",
        "",
    ]
    if training.get("kind") == "run":
        lines += [
            f"- trained by this project on `{_fmt(training.get('dataset'))}`, "
            f"seed {_fmt(training.get('seed'))}, {_fmt(training.get('epochs'))} epochs",
            f"- data fingerprint: `{_fmt(training.get('data_fingerprint'))}`",
            "- code, dependency pins and exact configuration: `training/`; rebuild with "
            "`vit-export regenerate`",
        ]
    else:
        lines += [
            f"- imported checkpoint: `{_fmt(training.get('source'))}`",
            "- the training data and recipe are those of the original publisher; not reproducible from here",
        ]
    lines += [f"- weights sha256: `{_fmt(training.get('weights_sha256'))}`", "", "## Graphs", ""]
    lines += ["| file | purpose | variant | max abs logits vs PyTorch | top-1 agreement | test top-1 |"]
    lines += ["|---|---|---|---|---|---|"]
    for graph in manifest.graphs:
        lines.append(
            f"| {graph.file} | {graph.purpose} | {graph.variant} "
            f"| {_fmt(graph.parity.get('max_abs_logits'))} | {_fmt(graph.parity.get('top1_agreement'))} "
            f"| {_fmt(graph.accuracy.get('test_top1'))} |"
        )
    metrics = {k: v for k, v in manifest.metrics.items() if isinstance(v, int | float)}
    if metrics:
        lines += ["", "## Metrics", ""] + [f"- {k}: {_fmt(v)}" for k, v in sorted(metrics.items())]
    lines += [
        "",
        "## Intended use",
        "",
        "Classifying images like those it was trained on, into its listed classes, through the ViT "
        "service; the `explain` graph's attention rollout is a coarse indication of where the model "
        "looked, not a proof.",
        "",
        "## Limitations",
        "",
        "- Accuracy holds only for images resembling the training distribution; anything else gets a "
        "confident answer from a closed label set.",
        "- Attention rollout ignores the MLPs and the value vectors; treat heatmaps as qualitative.",
        "- Reduced-precision graphs (fp16, int8) change some predictions; their measured change is "
        "listed above.",
        "",
    ]
    return "\n".join(lines)
