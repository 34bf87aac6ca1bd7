"""Generated datasets in the real on-disk formats (ImageFolder trees, CIFAR-10 python batches)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

SHORT_DEFAULT_EPOCHS = 20  # the shortened default run used by tests (the real default trains 40)

TINY: dict = dict(
    image_size=16,
    patch_size=4,
    dim=32,
    depth=2,
    heads=2,
    mlp_dim=64,
    epochs=2,
    batch_size=64,
    train_limit=320,
    threads=1,
    workers=0,
)


def _pattern_image(label: int, index: int, size: tuple[int, int]) -> np.ndarray:
    """A class-dependent colour with a little per-image noise, so images differ but classes are easy."""
    rng = np.random.default_rng((label, index))
    colour = np.array([(label * 97) % 256, (label * 53 + 80) % 256, (label * 29 + 160) % 256])
    noise = rng.integers(-20, 21, size=(*size, 3))
    return np.clip(colour + noise, 0, 255).astype(np.uint8)


def write_image_folder(
    root: Path,
    classes: list[str],
    per_class: dict[str, int],
    size: tuple[int, int] = (20, 24),
    suffix: str = ".png",
) -> Path:
    """``root/<split>/<class>/NNN.png`` for each split in ``per_class`` (split -> images per class);
    a split named "" writes a single tree ``root/<class>/``."""
    for split, count in per_class.items():
        for label, name in enumerate(classes):
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                seed = index + (1000 if split == "test" else 0)
                Image.fromarray(_pattern_image(label, seed, size)).save(folder / f"{index:03d}{suffix}")
    return root


def write_cifar10_dir(root: Path, per_batch: int = 20, test_size: int = 30) -> Path:
    """The CIFAR-10 "python version" layout: pickled dicts (Python-2 style bytes keys), ``data`` a uint8
    [N, 3072] array (channel planes, rows of 32), ``labels`` a list of ints; batches.meta with label_names."""
    root.mkdir(parents=True, exist_ok=True)
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    rng = np.random.default_rng(0)

    def batch(count: int, label: bytes, offset: int) -> dict:
        labels = [(offset + i) % 10 for i in range(count)]
        images = np.stack([_pattern_image(lab, offset + i, (32, 32)) for i, lab in enumerate(labels)])
        images[:, 0, 0] = rng.integers(0, 256, size=(count, 3))  # a few random pixels
        data = images.transpose(0, 3, 1, 2).reshape(count, 3072)
        filenames = [f"img_{offset + i}.png".encode() for i in range(count)]
        return {b"batch_label": label, b"labels": labels, b"data": data, b"filenames": filenames}

    for index in range(1, 6):
        content = batch(per_batch, f"training batch {index} of 5".encode(), index * 1000)
        (root / f"data_batch_{index}").write_bytes(pickle.dumps(content, protocol=2))
    (root / "test_batch").write_bytes(pickle.dumps(batch(test_size, b"testing batch 1 of 1", 0), protocol=2))
    meta = {b"num_cases_per_batch": per_batch, b"label_names": names, b"num_vis": 3072}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root
