"""``vit-export verify``: is this bundle intact, self-consistent, and do its graphs still match PyTorch?"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from model_export.checkpoint import load_checkpoint
from model_export.export import archive, graphs, parity
from service.bundle import BundleError, Manifest


@dataclass
class VerifyReport:
    name: str
    version: str
    files_checked: int
    graphs: dict[str, dict[str, float]] = field(default_factory=dict)  # file -> re-measured parity


def verify_bundle(bundle: Path) -> VerifyReport:
    """Checksums, schema, graph signatures, then fp32 parity re-run; raises BundleError naming the file."""
    from model_export.export.bundle import LOGITS_TOLERANCE, ROLLOUT_TOLERANCE

    with archive.opened(Path(bundle)) as root:
        manifest = Manifest.read(root)
        manifest.verify_files(root)
        manifest.read_labels(root)
        try:
            model, info = load_checkpoint(root)
        except Exception as exc:
            raise BundleError(f"cannot rebuild the model from model.json/weights.safetensors: {exc}") from exc
        if info.preprocessing != manifest.preprocessing:
            raise BundleError("model.json preprocessing differs from manifest.json preprocessing")
        from model_export.export.bundle import architecture_of

        if architecture_of(model) != manifest.architecture:
            raise BundleError("manifest.json architecture does not describe model.json/weights.safetensors")
        report = VerifyReport(manifest.name, manifest.version, len(manifest.files))
        batches = {"random": parity.random_pixels(model.config.image_size)}
        references = {"random": parity.torch_reference(model, info.preprocessing, batches["random"])}
        for spec in manifest.graphs:
            path = root / spec.file
            try:
                actual_in, actual_out = graphs.read_signature(path)
            except Exception as exc:
                raise BundleError(f"{spec.file} is not a readable ONNX graph: {exc}") from exc
            float_dtype = "float32"
            want_in, want_out = graphs.expected_signature(spec.purpose, model, float_dtype)
            problems = graphs.signature_mismatches(actual_in, spec.inputs)
            problems += graphs.signature_mismatches(actual_out, spec.outputs)
            problems += graphs.signature_mismatches(actual_in, want_in)
            problems += graphs.signature_mismatches(actual_out, want_out)
            if problems:
                raise BundleError(f"{spec.file}: graph signature does not match the manifest: {problems}")
            if spec.variant != "fp32":
                continue
            try:
                figures = parity.measure(parity.session(path), batches, references)
            except Exception as exc:
                raise BundleError(f"{spec.file} failed to run in ONNX Runtime: {exc}") from exc
            logits_gap, rollout_gap = figures["max_abs_logits"], figures.get("max_abs_rollout", 0.0)
            if logits_gap > LOGITS_TOLERANCE:
                raise BundleError(f"{spec.file}: logits differ from PyTorch by {logits_gap:.3g}")
            if rollout_gap > ROLLOUT_TOLERANCE:
                raise BundleError(f"{spec.file}: rollout differs from NumPy by {rollout_gap:.3g}")
            report.graphs[spec.file] = figures
        return report
