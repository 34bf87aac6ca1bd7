"""Bundles as directories or as ``.tar`` files of one (files at the archive's root)."""

from __future__ import annotations

import contextlib
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from service.bundle import BundleError


def is_tar(path: Path) -> bool:
    return Path(path).suffix == ".tar"


def write_tar(directory: Path, target: Path, overwrite: bool = False) -> Path:
    """Pack a finished bundle directory; written beside the target and renamed, so never half there."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists (pass --overwrite to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    try:
        with tarfile.open(staging, "w") as archive:
            for path in sorted(Path(directory).rglob("*")):
                if path.is_file():
                    archive.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return target


@contextlib.contextmanager
def opened(bundle: Path) -> Iterator[Path]:
    """The bundle as a directory: itself, or a tar unpacked (with the safe ``data`` filter) to a temp dir."""
    bundle = Path(bundle)
    if bundle.is_dir():
        yield bundle
        return
    if not bundle.is_file():
        raise BundleError(f"no bundle at {bundle}")
    with tempfile.TemporaryDirectory(prefix="bundle-") as scratch:
        try:
            with tarfile.open(bundle) as archive:
                archive.extractall(scratch, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise BundleError(f"{bundle} is not a readable bundle archive: {exc}") from exc
        yield Path(scratch)
