"""Open a bundle (directory or ``.tar``) for serving: verify it, then say which graph files to load.

Everything that could make serving wrong is refused here with a clear message, before a session
is built: schema version, checksums, labels, and graph signatures that do not match the contract
(``pixels`` uint8 [N, H, W, 3] in; ``logits`` [N, C], and ``rollout`` [N, h, w] for explain graphs).
"""

from __future__ import annotations

import atexit
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from service.bundle.manifest import MANIFEST_FILE, BundleError, GraphSpec, Manifest, file_sha256

INPUT_NAME = "pixels"


@dataclass(frozen=True)
class LoadedBundle:
    root: Path
    manifest: Manifest
    labels: list[str]
    digest: str  # sha256 of manifest.json: names the exact bundle being served
    variant: str
    classify: GraphSpec
    explain: GraphSpec | None

    def graph_path(self, spec: GraphSpec) -> Path:
        return self.root / spec.file


def load_bundle(path: Path, variant: str = "fp32") -> LoadedBundle:
    """Verify and open ``path``; raises BundleError naming what is wrong."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"bundle not found: {path}")
    root = _extract(path) if path.is_file() else path
    manifest = Manifest.read(root)
    manifest.verify_files(root)
    labels = manifest.read_labels(root)
    classify = manifest.graph("classify", variant)
    check_signature(classify, manifest)
    explain = None
    if "explain" in {g.purpose for g in manifest.graphs}:
        explain = _explain_graph(manifest, variant)
        check_signature(explain, manifest)
    return LoadedBundle(
        root=root,
        manifest=manifest,
        labels=labels,
        digest=file_sha256(root / MANIFEST_FILE),
        variant=variant,
        classify=classify,
        explain=explain,
    )


def _explain_graph(manifest: Manifest, variant: str) -> GraphSpec:
    """The explain graph in the served variant, else fp32: rollouts need no reduced precision."""
    try:
        return manifest.graph("explain", variant)
    except BundleError:
        return manifest.graph("explain", "fp32")


def check_signature(spec: GraphSpec, manifest: Manifest) -> None:
    """The manifest's declared signature of ``spec`` matches what the service feeds and reads."""
    height, width = manifest.preprocessing.input_size
    if tuple(manifest.architecture.image_size) != (height, width):
        raise BundleError(
            f"architecture image size {manifest.architecture.image_size} differs from the "
            f"preprocessing input size {[height, width]}"
        )
    inputs = {t.name: t for t in spec.inputs}
    pixels = inputs.get(INPUT_NAME)
    if len(inputs) != 1 or pixels is None:
        raise BundleError(f"{spec.file}: expected one input {INPUT_NAME!r}, manifest lists {sorted(inputs)}")
    if pixels.dtype != "uint8" or list(pixels.shape[1:]) != [height, width, 3] or len(pixels.shape) != 4:
        raise BundleError(
            f"{spec.file}: input {INPUT_NAME} must be uint8 [N, {height}, {width}, 3], "
            f"manifest says {pixels.dtype} {list(pixels.shape)}"
        )
    outputs = {t.name: t for t in spec.outputs}
    expected = {"logits": [manifest.architecture.num_classes]}
    if spec.purpose == "explain":
        expected["rollout"] = list(manifest.architecture.grid_size)
    for name, tail in expected.items():
        tensor = outputs.get(name)
        if tensor is None:
            raise BundleError(f"{spec.file}: missing output {name!r} (has {sorted(outputs)})")
        if list(tensor.shape[1:]) != tail:
            raise BundleError(
                f"{spec.file}: output {name} must be [N, {', '.join(map(str, tail))}], "
                f"manifest says {list(tensor.shape)}"
            )


def _extract(archive: Path) -> Path:
    """Unpack a bundle tarball into a private temporary directory (removed at exit)."""
    if not tarfile.is_tarfile(archive):
        raise BundleError(f"{archive} is neither a bundle directory nor a tar archive")
    target = Path(tempfile.mkdtemp(prefix="vit-bundle-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")  # refuses absolute paths, '..', devices, links out
    except (tarfile.TarError, OSError) as exc:
        raise BundleError(f"cannot unpack {archive}: {exc}") from exc
    if (target / MANIFEST_FILE).is_file():
        return target
    children = [p for p in target.iterdir() if p.is_dir()]
    if len(children) == 1 and (children[0] / MANIFEST_FILE).is_file():
        return children[0]
    raise BundleError(f"{archive} holds no {MANIFEST_FILE} at its top level")
