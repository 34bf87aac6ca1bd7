"""``manifest.json``: what a bundle holds, how to feed its graphs, and how to check it is intact."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
LABELS_FILE = "labels.json"
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")
RESIZE_MODES = ("shorter_side", "exact")
PURPOSES = ("classify", "explain")
VARIANTS = ("fp32", "fp16", "int8")


class BundleError(ValueError):
    """A bundle that is missing, malformed, tampered with or incompatible; the message says which."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise BundleError(message)


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Preprocessing:
    """From an arbitrary RGB image to the graph's [H, W, 3] uint8 input.

    ``shorter_side``: resize so the shorter side is ``resize_size`` (aspect kept), then centre-crop
    ``input_size`` (timm/DeiT evaluation). ``exact``: resize straight to ``input_size`` (Google/HF).
    ``mean``/``std`` are applied inside the graph, on pixels scaled to [0, 1].
    """

    input_size: tuple[int, int]
    resize: str = "exact"
    resize_size: int | None = None
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        _require(len(self.input_size) == 2 and min(self.input_size) > 0, "bad input_size")
        _require(self.resize in RESIZE_MODES, f"resize must be one of {RESIZE_MODES}")
        _require(self.interpolation in INTERPOLATIONS, f"interpolation must be one of {INTERPOLATIONS}")
        _require(len(self.mean) == 3 and len(self.std) == 3, "mean and std need 3 values")
        _require(all(s > 0 for s in self.std), "std must be positive")
        if self.resize == "shorter_side":
            _require(
                self.resize_size is not None and self.resize_size >= max(self.input_size),
                "shorter_side resize needs resize_size >= the crop size",
            )

    @property
    def crop_pct(self) -> float:
        if self.resize != "shorter_side" or self.resize_size is None:
            return 1.0
        return min(self.input_size) / self.resize_size

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(input_size=list(self.input_size), mean=list(self.mean), std=list(self.std))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(**_known(cls, data, "preprocessing"))


@dataclass(frozen=True)
class Architecture:
    patch_size: int
    dim: int
    depth: int
    heads: int
    mlp_dim: int
    image_size: tuple[int, int]
    num_classes: int
    in_chans: int = 3
    num_prefix_tokens: int = 1
    preset: str | None = None
    params: int | None = None
    flops_per_image: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))

    @property
    def grid_size(self) -> tuple[int, int]:
        return (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["image_size"] = list(self.image_size)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        return cls(**_known(cls, data, "architecture"))


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # "uint8", "float32", "float16"
    shape: tuple[int | str, ...]  # symbolic dims as strings, e.g. ("N", 224, 224, 3)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(name=data["name"], dtype=data["dtype"], shape=tuple(data["shape"]))


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph: which job it does, in which precision, its signature and measured figures."""

    file: str
    purpose: str  # "classify" | "explain"
    variant: str = "fp32"  # "fp32" | "fp16" | "int8"
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    parity: dict[str, float] = field(default_factory=dict)  # e.g. max_abs_logits vs PyTorch
    accuracy: dict[str, float] = field(default_factory=dict)  # test top-1 and change vs fp32

    def __post_init__(self) -> None:
        _require(self.purpose in PURPOSES, f"graph purpose must be one of {PURPOSES}")
        _require(self.variant in VARIANTS, f"graph variant must be one of {VARIANTS}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "purpose": self.purpose,
            "variant": self.variant,
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs],
            "parity": dict(self.parity),
            "accuracy": dict(self.accuracy),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphSpec:
        return cls(
            file=data["file"],
            purpose=data["purpose"],
            variant=data.get("variant", "fp32"),
            inputs=tuple(TensorSpec.from_dict(d) for d in data.get("inputs", [])),
            outputs=tuple(TensorSpec.from_dict(d) for d in data.get("outputs", [])),
            parity=dict(data.get("parity", {})),
            accuracy=dict(data.get("accuracy", {})),
        )


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    architecture: Architecture
    preprocessing: Preprocessing
    graphs: tuple[GraphSpec, ...]
    files: dict[str, str]  # relative path -> sha256, every file of the bundle but the manifest
    labels_file: str = LABELS_FILE
    schema_version: int = SCHEMA_VERSION
    created: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    # -- access ---------------------------------------------------------------------------------

    def graph(self, purpose: str, variant: str = "fp32") -> GraphSpec:
        for spec in self.graphs:
            if spec.purpose == purpose and spec.variant == variant:
                return spec
        available = sorted(f"{g.purpose}/{g.variant}" for g in self.graphs)
        raise BundleError(f"bundle has no {purpose} graph in {variant}; it has {available}")

    def variants(self, purpose: str) -> list[str]:
        return [g.variant for g in self.graphs if g.purpose == purpose]

    # -- (de)serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "version": self.version,
            "created": self.created,
            "architecture": self.architecture.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
            "labels_file": self.labels_file,
            "graphs": [g.to_dict() for g in self.graphs],
            "files": dict(sorted(self.files.items())),
            "training": self.training,
            "metrics": self.metrics,
            "source": self.source,
        }

    def write(self, bundle_dir: Path) -> Path:
        path = Path(bundle_dir) / MANIFEST_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        _require(isinstance(data, dict), "manifest must be a JSON object")
        version = data.get("schema_version")
        _require(
            version == SCHEMA_VERSION,
            f"unsupported bundle schema version {version!r}; this build reads {SCHEMA_VERSION}",
        )
        missing = [
            k
            for k in ("name", "version", "architecture", "preprocessing", "graphs", "files")
            if k not in data
        ]
        _require(not missing, f"manifest is missing {missing}")
        try:
            return cls(
                schema_version=version,
                name=str(data["name"]),
                version=str(data["version"]),
                created=str(data.get("created", "")),
                architecture=Architecture.from_dict(data["architecture"]),
                preprocessing=Preprocessing.from_dict(data["preprocessing"]),
                labels_file=data.get("labels_file", LABELS_FILE),
                graphs=tuple(GraphSpec.from_dict(g) for g in data["graphs"]),
                files=dict(data["files"]),
                training=dict(data.get("training", {})),
                metrics=dict(data.get("metrics", {})),
                source=dict(data.get("source", {})),
            )
        except (KeyError, TypeError) as exc:
            raise BundleError(f"malformed manifest: {exc!r}") from exc

    @classmethod
    def read(cls, bundle_dir: Path) -> Manifest:
        path = Path(bundle_dir) / MANIFEST_FILE
        _require(path.is_file(), f"{bundle_dir} is not a bundle: no {MANIFEST_FILE}")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{path} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    # -- integrity ----------------------------------------------------------------------------------

    def verify_files(self, bundle_dir: Path) -> None:
        """Every listed file exists with its recorded sha256, and every graph file is listed."""
        root = Path(bundle_dir)
        for graph in self.graphs:
            _require(graph.file in self.files, f"graph {graph.file} is not in the manifest's files")
        _require(self.labels_file in self.files, f"{self.labels_file} is not in the manifest's files")
        for relative, expected in self.files.items():
            path = root / relative
            _require(".." not in Path(relative).parts, f"illegal path in manifest: {relative}")
            _require(path.is_file(), f"bundle file missing: {relative}")
            actual = file_sha256(path)
            _require(
                actual == expected,
                f"checksum mismatch for {relative}: manifest says {expected[:12]}…, file is "
                f"{actual[:12]}… (tampered or truncated)",
            )

    def read_labels(self, bundle_dir: Path) -> list[str]:
        labels = json.loads((Path(bundle_dir) / self.labels_file).read_text())
        _require(
            isinstance(labels, list) and len(labels) == self.architecture.num_classes,
            f"labels.json has {len(labels) if isinstance(labels, list) else '?'} entries, "
            f"the model has {self.architecture.num_classes} classes",
        )
        return [str(label) for label in labels]


def _known(cls: type, data: dict[str, Any], what: str) -> dict[str, Any]:
    _require(isinstance(data, dict), f"{what} must be a JSON object")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    _require(not unknown, f"unknown {what} keys: {unknown}")
    return data
