"""The real DeiT-Tiny from ../shared/data through export: parity at 224 px on real photos, and the graph
recognises them (the same photos the import tests use)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from model_export.export.bundle import export_bundle
from model_export.export.evaluation import SAMPLE_PHOTOS, sample_photos
from model_export.importers import import_checkpoint
from service.bundle import Manifest

DEIT_TINY = (
    Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "deit_tiny_patch16_224.safetensors"
)
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.slow,
    pytest.mark.skipif(not DEIT_TINY.is_file(), reason=f"{DEIT_TINY} is absent"),
]
pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def deit_bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("deit")
    checkpoint = import_checkpoint("deit", DEIT_TINY, root / "ckpt")
    return export_bundle(checkpoint, root / "bundle", verify=False)


def test_real_checkpoint_meets_the_parity_tolerances_on_photos(deit_bundle):
    manifest = Manifest.read(deit_bundle)
    for purpose in ("classify", "explain"):
        parity = manifest.graph(purpose).parity
        assert parity["max_abs_logits_photos"] <= 1e-4 and parity["top1_agreement_photos"] == 1.0
    assert manifest.graph("explain").parity["max_abs_rollout_photos"] <= 1e-5
    assert manifest.architecture.params == 5_717_416 and manifest.architecture.preset == "ti"


def test_classify_graph_recognises_the_cat_photo(deit_bundle):
    manifest = Manifest.read(deit_bundle)
    labels = manifest.read_labels(deit_bundle)
    photos = sample_photos(manifest.preprocessing)
    (logits,) = ort.InferenceSession(str(deit_bundle / "classify.onnx")).run(None, {"pixels": photos})
    cat = SAMPLE_PHOTOS.index("chelsea")
    assert "cat" in labels[int(np.argmax(logits[cat]))].lower()
    _, rollout = ort.InferenceSession(str(deit_bundle / "explain.onnx")).run(None, {"pixels": photos[:2]})
    assert rollout.shape == (2, 14, 14) and np.all(rollout > 0)
