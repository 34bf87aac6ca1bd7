"""Datasets: ``digits`` (scikit-learn's bundled 8×8 digits), ``cifar10:PATH`` (the CIFAR-10 "python
version" batches) and ``folder:PATH`` (an ImageFolder tree), each as train/val/test splits with a content
fingerprint, class names and a description of how the split was made (written to a run's ``data.json``).
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from model_export.training.config import TrainConfig

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
SPLITS = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset that is missing, malformed or unreadable; the message says where and why."""


@dataclass
class Split:
    """One split: images in memory (uint8 [N, H, W, 3]) or as files, and int64 labels."""

    labels: np.ndarray
    arrays: np.ndarray | None = None
    paths: list[Path] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, index: int) -> Image.Image:
        if self.arrays is not None:
            return Image.fromarray(self.arrays[index])
        assert self.paths is not None
        with Image.open(self.paths[index]) as image:
            return image.convert("RGB")

    def subset(self, indices: np.ndarray) -> Split:
        indices = np.asarray(indices, dtype=np.int64)
        return Split(
            labels=self.labels[indices],
            arrays=None if self.arrays is None else self.arrays[indices],
            paths=None if self.paths is None else [self.paths[i] for i in indices],
        )


@dataclass
class Dataset:
    spec: str
    kind: str
    classes: list[str]
    splits: dict[str, Split]
    fingerprint: str
    split_method: str
    corrupt: list[dict[str, str]] = field(default_factory=list)

    def describe(self, config: TrainConfig) -> dict[str, Any]:
        """The content of a run's ``data.json``."""
        splits = {}
        for name, split in self.splits.items():
            counts = np.bincount(split.labels, minlength=len(self.classes))
            splits[name] = {
                "size": len(split),
                "per_class": counts.tolist(),
                "labels_sha256": hashlib.sha256(split.labels.tobytes()).hexdigest(),
            }
        return {
            "dataset": self.spec,
            "kind": self.kind,
            "fingerprint": self.fingerprint,
            "classes": self.classes,
            "split": {
                "method": self.split_method,
                "split_seed": config.split_seed,
                "val_fraction": config.val_fraction,
                "test_fraction": config.test_fraction,
                "train_limit": config.train_limit,
                "sizes": {name: info["size"] for name, info in splits.items()},
                "splits": splits,
            },
            "seed": config.seed,
            "skipped_corrupt": self.corrupt,
        }


def load_dataset(config: TrainConfig) -> Dataset:
    """Parse ``config.dataset`` and load it (with its split); raises DatasetError with a clear message."""
    spec = config.dataset
    kind, _, location = spec.partition(":")
    if kind == "digits" and not location:
        dataset = _load_digits(config)
    elif kind == "cifar10" and location:
        dataset = _load_cifar10(Path(location), config)
    elif kind == "folder" and location:
        dataset = _load_folder(Path(location), config)
    else:
        raise DatasetError(f"unknown dataset {spec!r}; use 'digits', 'cifar10:PATH' or 'folder:PATH'")
    dataset.spec = spec
    if config.train_limit is not None and config.train_limit < len(dataset.splits["train"]):
        order = np.random.default_rng(config.split_seed).permutation(len(dataset.splits["train"]))
        dataset.splits["train"] = dataset.splits["train"].subset(np.sort(order[: config.train_limit]))
        dataset.split_method += f"; training set limited to {config.train_limit} (random subset)"
    for name in ("train", "test"):
        if len(dataset.splits.get(name, Split(np.zeros(0, np.int64)))) == 0:
            raise DatasetError(f"{spec}: the {name} split is empty")
    return dataset


def load_eval_arrays(
    config: dict[str, Any], split: str = "test", limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A run's split (``config`` is its config.json) through the model's evaluation preprocessing:
    uint8 [N, H, W, 3] RGB and int64 labels, exactly what the exported graphs take.

    ``limit`` keeps a fixed random subset of that many images (seeded, in the split's order).
    """
    from model_export.training.modeling import eval_preprocessing
    from model_export.training.transforms import eval_transform

    train_config = TrainConfig.from_dict(config)
    dataset = load_dataset(train_config)
    if split not in dataset.splits:
        raise DatasetError(f"{train_config.dataset} has no {split!r} split; it has {sorted(dataset.splits)}")
    chosen = dataset.splits[split]
    if limit is not None and limit < len(chosen):
        chosen = chosen.subset(np.sort(np.random.default_rng(0).permutation(len(chosen))[:limit]))
    transform = eval_transform(eval_preprocessing(train_config))
    images = np.stack([transform(chosen.image(i)) for i in range(len(chosen))])
    return images, chosen.labels.astype(np.int64)


# -- digits ------------------------------------------------------------------------------------------


def _load_digits(config: TrainConfig) -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    gray = np.clip(np.round(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    images = np.repeat(gray[..., None], 3, axis=-1)  # [1797, 8, 8, 3]
    labels = digits.target.astype(np.int64)
    digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    splits = _stratified_split(labels, config)
    return Dataset(
        spec="digits",
        kind="digits",
        classes=[str(i) for i in range(10)],
        splits={name: Split(labels[idx], arrays=images[idx]) for name, idx in splits.items()},
        fingerprint=f"sha256:{digest}",
        split_method=(
            f"stratified: test {config.test_fraction:g} and val {config.val_fraction:g} of all "
            f"{len(labels)} images (scikit-learn train_test_split, random_state={config.split_seed})"
        ),
    )


def _stratified_split(labels: np.ndarray, config: TrainConfig) -> dict[str, np.ndarray]:
    """Indices of a stratified train/val/test split; val and test are fractions of the whole."""
    try:
        return _stratified_indices(labels, config)
    except ValueError as exc:
        raise DatasetError(f"cannot split {len(labels)} images by the given fractions: {exc}") from exc


def _stratified_indices(labels: np.ndarray, config: TrainConfig) -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    result: dict[str, np.ndarray] = {}
    if config.test_fraction > 0:
        indices, result["test"] = train_test_split(
            indices, test_size=config.test_fraction, stratify=labels, random_state=config.split_seed
        )
    if config.val_fraction > 0:
        share = config.val_fraction / (1.0 - config.test_fraction)
        indices, result["val"] = train_test_split(
            indices, test_size=share, stratify=labels[indices], random_state=config.split_seed
        )
    result["train"] = indices
    return {name: np.asarray(result[name], dtype=np.int64) for name in SPLITS if name in result}


def _holdout(split: Split, fraction: float, seed: int) -> tuple[Split, Split | None]:
    """Carve a stratified validation split out of a training split."""
    if fraction <= 0:
        return split, None
    from sklearn.model_selection import train_test_split

    try:
        train_idx, val_idx = train_test_split(
            np.arange(len(split)), test_size=fraction, stratify=split.labels, random_state=seed
        )
    except ValueError as exc:
        raise DatasetError(
            f"cannot hold out a stratified {fraction:g} of {len(split)} images: {exc}"
        ) from exc
    return split.subset(np.sort(train_idx)), split.subset(np.sort(val_idx))


# -- CIFAR-10 ----------------------------------------------------------------------------------------


class _RestrictedUnpickler(pickle.Unpickler):
    """CIFAR-10 batches are pickles: allow plain containers and NumPy arrays, never other classes."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol < 3
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not allowed in a CIFAR-10 batch")


def read_cifar_batch(path: Path) -> dict[Any, Any]:
    try:
        with open(path, "rb") as handle:
            data = _RestrictedUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: not a readable CIFAR-10 batch ({exc})") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: a CIFAR-10 batch must be a dict, got {type(data).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def _cifar_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = read_cifar_batch(path)
    if "data" not in batch or "labels" not in batch:
        raise DatasetError(f"{path}: a CIFAR-10 batch needs 'data' and 'labels'")
    raw = batch["data"]
    data = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, bytes) else np.asarray(raw)
    data = data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if len(labels) != len(data):
        raise DatasetError(f"{path}: {len(data)} images but {len(labels)} labels")
    return np.ascontiguousarray(data), labels


def _load_cifar10(root: Path, config: TrainConfig) -> Dataset:
    if not root.is_dir():
        raise DatasetError(f"CIFAR-10 directory not found: {root}")
    train_files = [root / f"data_batch_{i}" for i in range(1, 6)]
    needed = [*train_files, root / "test_batch", root / "batches.meta"]
    missing = [p.name for p in needed if not p.is_file()]
    if missing:
        raise DatasetError(f"{root} is not a CIFAR-10 python directory: missing {missing}")
    digest = hashlib.sha256()
    for path in needed:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    meta = read_cifar_batch(root / "batches.meta")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("label_names", [])]
    train_parts = [_cifar_arrays(p) for p in train_files]
    train = Split(
        labels=np.concatenate([labels for _, labels in train_parts]),
        arrays=np.concatenate([images for images, _ in train_parts]),
    )
    test_images, test_labels = _cifar_arrays(root / "test_batch")
    if not classes or max(train.labels.max(), test_labels.max()) >= len(classes):
        raise DatasetError(f"{root}/batches.meta: label_names do not cover the labels")
    train, val = _holdout(train, config.val_fraction, config.split_seed)
    splits = {"train": train, "test": Split(test_labels, arrays=test_images)}
    if val is not None:
        splits["val"] = val
    return Dataset(
        spec="",
        kind="cifar10",
        classes=classes,
        splits=splits,
        fingerprint=f"sha256:{digest.hexdigest()}",
        split_method=(
            "train: data_batch_1..5, test: test_batch; "
            f"val: stratified {config.val_fraction:g} of train (random_state={config.split_seed})"
        ),
    )


# -- ImageFolder -----------------------------------------------------------------------------------


def _scan_tree(root: Path, digest: Any, corrupt: list[dict[str, str]]) -> tuple[list[str], list[list[Path]]]:
    """Class folders (sorted) and their readable image files; every file is decoded once to find
    corrupt ones and hashed (relative path + bytes, in sorted order) into ``digest``."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{root}: no class folders")
    files: list[list[Path]] = []
    for name in classes:
        good: list[Path] = []
        candidates = sorted(
            p for p in (root / name).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        for path in candidates:
            data = path.read_bytes()
            digest.update(str(path.relative_to(root.parent)).encode() + b"\0" + data)
            try:
                with Image.open(io.BytesIO(data)) as image:
                    image.load()
            except Exception as exc:  # Pillow raises many kinds for bad files
                corrupt.append({"path": str(path), "reason": f"{type(exc).__name__}: {exc}"})
                continue
            good.append(path)
        files.append(good)
    return classes, files


def _tree_split(classes: list[str], files: list[list[Path]]) -> Split:
    paths = [p for group in files for p in group]
    labels = np.concatenate([np.full(len(g), i, dtype=np.int64) for i, g in enumerate(files)])
    return Split(labels=labels, paths=paths)


def _load_folder(root: Path, config: TrainConfig) -> Dataset:
    if not root.is_dir():
        raise DatasetError(f"image folder not found: {root}")
    digest = hashlib.sha256()
    corrupt: list[dict[str, str]] = []
    present = [name for name in SPLITS if (root / name).is_dir()]
    trees: dict[str, tuple[list[str], list[list[Path]]]] = {}
    if "train" in present:
        if len(present) == 1:
            raise DatasetError(f"{root}: train/ needs val/ and/or test/ beside it")
        for name in present:
            trees[name] = _scan_tree(root / name, digest, corrupt)
    else:
        trees["all"] = _scan_tree(root, digest, corrupt)
    _check_trees(root, trees, corrupt, config.skip_corrupt)
    classes = next(iter(trees.values()))[0]
    if "all" in trees:
        whole = _tree_split(*trees["all"])
        indices = _stratified_split(whole.labels, config)
        splits = {name: whole.subset(np.sort(idx)) for name, idx in indices.items()}
        method = (
            f"one tree split stratified: test {config.test_fraction:g}, val {config.val_fraction:g} "
            f"(random_state={config.split_seed})"
        )
    else:
        splits = {name: _tree_split(*tree) for name, tree in trees.items()}
        method = f"folders {', '.join(f'{n}/' for n in trees)}"
        if "test" not in splits:
            splits["test"] = splits.pop("val")
            method += "; val/ serves as test"
        if "val" not in splits:
            splits["train"], val = _holdout(splits["train"], config.val_fraction, config.split_seed)
            if val is not None:
                splits["val"] = val
                method += (
                    f"; val: stratified {config.val_fraction:g} of train/ (random_state={config.split_seed})"
                )
    return Dataset(
        spec="",
        kind="folder",
        classes=classes,
        splits=splits,
        fingerprint=f"sha256:{digest.hexdigest()}",
        split_method=method,
        corrupt=corrupt,
    )


def _check_trees(
    root: Path,
    trees: dict[str, tuple[list[str], list[list[Path]]]],
    corrupt: list[dict[str, str]],
    skip_corrupt: bool,
) -> None:
    problems: list[str] = []
    class_sets = {name: tree[0] for name, tree in trees.items()}
    reference = next(iter(class_sets.values()))
    for name, classes in class_sets.items():
        if classes != reference:
            problems.append(f"{name}/ has classes {classes}, expected {reference}")
    for name, (classes, files) in trees.items():
        prefix = "" if name == "all" else f"{name}/"
        problems += [
            f"{prefix}{c}/ has no readable images" for c, f in zip(classes, files, strict=True) if not f
        ]
    if corrupt and not skip_corrupt:
        listing = "\n".join(f"  {item['path']}: {item['reason']}" for item in corrupt)
        problems.append(
            f"{len(corrupt)} unreadable image file(s) (pass --skip-corrupt to leave them out):\n{listing}"
        )
    if problems:
        raise DatasetError(f"{root}: " + "\n".join(problems))


def write_data_json(path: Path, description: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(description, indent=2) + "\n")
