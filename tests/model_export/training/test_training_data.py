"""Dataset loaders on generated fixtures in each real format: digits, CIFAR-10 pickles, ImageFolder."""

from __future__ import annotations

import math
import os
import pickle

import numpy as np
import pytest

from model_export.training.config import TrainConfig
from model_export.training.data import DatasetError, load_dataset, load_eval_arrays, read_cifar_batch
from tests.model_export.training.training_fixtures import write_cifar10_dir, write_image_folder

CLASSES = ["cat", "dog", "eel"]


def test_digits_split_is_stratified_disjoint_and_fixed():
    dataset = load_dataset(TrainConfig(dataset="digits"))
    sizes = {name: len(split) for name, split in dataset.splits.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == math.ceil(0.2 * 1797)
    # disjoint and complete: the splits together are exactly the whole set (as a multiset: digits has
    # a few duplicate images)
    from sklearn.datasets import load_digits

    raw = load_digits()
    gray = np.round(raw.images * 255 / 16).astype(np.uint8)
    whole = sorted(
        np.repeat(gray[i][..., None], 3, -1).tobytes() + bytes([raw.target[i]]) for i in range(1797)
    )
    parts = [
        s.arrays[i].tobytes() + bytes([s.labels[i]]) for s in dataset.splits.values() for i in range(len(s))
    ]
    assert sorted(parts) == whole
    for split in dataset.splits.values():
        counts = np.bincount(split.labels, minlength=10)
        assert counts.min() >= 0.8 * counts.max()  # stratified: classes balanced within each split
    again = load_dataset(TrainConfig(dataset="digits"))
    assert again.fingerprint == dataset.fingerprint
    for name in dataset.splits:
        assert np.array_equal(again.splits[name].labels, dataset.splits[name].labels)
    other = load_dataset(TrainConfig(dataset="digits", split_seed=1))
    assert not np.array_equal(other.splits["test"].labels, dataset.splits["test"].labels)
    assert other.fingerprint == dataset.fingerprint  # content hash does not depend on the split


def test_digits_pixels_are_grayscale_rgb_covering_0_to_255():
    images = np.concatenate([s.arrays for s in load_dataset(TrainConfig(dataset="digits")).splits.values()])
    assert np.array_equal(images[..., 0], images[..., 1]) and np.array_equal(images[..., 0], images[..., 2])
    assert images.min() == 0 and images.max() == 255


def test_cifar10_batches_in_the_real_layout(tmp_path):
    root = write_cifar10_dir(tmp_path / "cifar-10-batches-py", per_batch=20, test_size=30)
    dataset = load_dataset(TrainConfig(dataset=f"cifar10:{root}", val_fraction=0.2))
    assert dataset.classes[:3] == ["airplane", "automobile", "bird"] and len(dataset.classes) == 10
    assert len(dataset.splits["train"]) + len(dataset.splits["val"]) == 100
    assert len(dataset.splits["val"]) == 20 and len(dataset.splits["test"]) == 30
    # pixel layout: the stored row is 1024 R, then G, then B values, each 32 rows of 32
    batch = pickle.loads((root / "test_batch").read_bytes(), encoding="bytes")
    row = batch[b"data"][7]
    expected = np.stack(
        [row[:1024].reshape(32, 32), row[1024:2048].reshape(32, 32), row[2048:].reshape(32, 32)], -1
    )
    assert np.array_equal(dataset.splits["test"].arrays[7], expected)
    assert dataset.splits["test"].labels[7] == batch[b"labels"][7]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_cifar10_reader_refuses_pickled_code(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Exploit(), b"labels": [0]}, protocol=2))
    with pytest.raises(DatasetError, match="refusing to load"):
        read_cifar_batch(path)


def test_cifar10_missing_batches_fail_clearly(tmp_path):
    root = write_cifar10_dir(tmp_path / "c", per_batch=4, test_size=4)
    (root / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_dataset(TrainConfig(dataset=f"cifar10:{root}"))
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(TrainConfig(dataset=f"cifar10:{tmp_path / 'nowhere'}"))


def test_folder_with_train_and_test(tmp_path):
    root = write_image_folder(tmp_path / "imgs", CLASSES, {"train": 10, "test": 4})
    dataset = load_dataset(TrainConfig(dataset=f"folder:{root}", val_fraction=0.2))
    assert dataset.classes == CLASSES
    assert len(dataset.splits["test"]) == 12
    assert len(dataset.splits["val"]) == 6 and len(dataset.splits["train"]) == 24
    assert set(dataset.splits["test"].labels.tolist()) == {0, 1, 2}
    image = dataset.splits["train"].image(0)
    assert image.mode == "RGB" and image.size == (24, 20)
    # the fingerprint covers file contents
    before = dataset.fingerprint
    write_image_folder(tmp_path / "imgs", CLASSES, {"test": 4}, size=(21, 24))
    assert load_dataset(TrainConfig(dataset=f"folder:{root}")).fingerprint != before


def test_folder_single_tree_is_split_by_ratio(tmp_path):
    root = write_image_folder(tmp_path / "imgs", CLASSES, {"": 10})
    dataset = load_dataset(TrainConfig(dataset=f"folder:{root}", val_fraction=0.2, test_fraction=0.2))
    sizes = {name: len(split) for name, split in dataset.splits.items()}
    assert sizes == {"train": 18, "val": 6, "test": 6}
    paths = [p for split in dataset.splits.values() for p in split.paths]
    assert len(set(paths)) == 30


def test_folder_corrupt_file_is_reported_or_skipped(tmp_path):
    root = write_image_folder(tmp_path / "imgs", CLASSES, {"train": 5, "test": 2})
    bad = root / "train" / "dog" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DatasetError) as error:
        load_dataset(TrainConfig(dataset=f"folder:{root}"))
    assert str(bad) in str(error.value) and "--skip-corrupt" in str(error.value)
    dataset = load_dataset(TrainConfig(dataset=f"folder:{root}", skip_corrupt=True, val_fraction=0.0))
    assert [item["path"] for item in dataset.corrupt] == [str(bad)]
    assert len(dataset.splits["train"]) == 15
    assert dataset.describe(TrainConfig())["skipped_corrupt"][0]["path"] == str(bad)


def test_folder_empty_class_and_mismatched_classes_fail(tmp_path):
    root = write_image_folder(tmp_path / "imgs", CLASSES, {"train": 3, "test": 2})
    (root / "train" / "fox").mkdir()
    (root / "test" / "fox").mkdir()
    with pytest.raises(DatasetError, match="fox/ has no readable images"):
        load_dataset(TrainConfig(dataset=f"folder:{root}"))
    (root / "test" / "fox").rmdir()
    with pytest.raises(DatasetError, match="has classes"):
        load_dataset(TrainConfig(dataset=f"folder:{root}"))


def test_too_small_for_a_stratified_split_fails_clearly(tmp_path):
    root = write_image_folder(tmp_path / "imgs", CLASSES, {"train": 2, "test": 1})
    with pytest.raises(DatasetError, match="cannot hold out"):
        load_dataset(TrainConfig(dataset=f"folder:{root}", val_fraction=0.1))


def test_unknown_dataset_spec_fails():
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset(TrainConfig(dataset="imagenet"))


def test_load_eval_arrays_gives_graph_input(tmp_path):
    root = write_image_folder(tmp_path / "imgs", CLASSES, {"train": 4, "test": 3})
    config = TrainConfig(
        dataset=f"folder:{root}", image_size=16, mean=[0.5] * 3, std=[0.5] * 3, val_fraction=0.25
    )
    images, labels = load_eval_arrays(config.to_dict(), split="test")
    assert images.shape == (9, 16, 16, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    subset, subset_labels = load_eval_arrays(config.to_dict(), split="test", limit=4)
    assert subset.shape == (4, 16, 16, 3)
    # the subset is made of the same images as the full split
    full = {images[i].tobytes(): labels[i] for i in range(len(images))}
    assert all(full[subset[i].tobytes()] == subset_labels[i] for i in range(4))
    with pytest.raises(DatasetError, match="no 'val' split"):
        load_eval_arrays({**config.to_dict(), "val_fraction": 0.0}, split="val")
