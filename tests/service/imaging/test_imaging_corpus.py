"""Every bad and odd upload in the shared corpus, through the request path (``load_for_model``)."""

from __future__ import annotations

import pytest

from service.bundle import Preprocessing
from service.imaging import ImageError, decode_image, load_for_model
from tests.service.corpus import MAX_PIXELS_RANGE, Case, bad_and_odd_images

CASES = bad_and_odd_images()
PREPROCESSING = Preprocessing(input_size=(32, 32), resize="shorter_side", resize_size=36)


def test_corpus_names_are_unique_and_cover_every_status() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert {case.expected_status for case in CASES} == {200, 400, 413, 415}


@pytest.mark.parametrize("max_pixels", MAX_PIXELS_RANGE)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_load_for_model_answers_as_the_corpus_expects(case: Case, max_pixels: int) -> None:
    if case.expected_status != 200:
        with pytest.raises(ImageError) as caught:
            load_for_model(case.bytes, PREPROCESSING, max_pixels=max_pixels)
        assert (caught.value.status, caught.value.code) == (case.expected_status, case.expected_code)
        assert caught.value.message
        return
    pixels, image = load_for_model(case.bytes, PREPROCESSING, max_pixels=max_pixels)
    assert pixels.shape == (*PREPROCESSING.input_size, 3)
    assert pixels.dtype.name == "uint8"
    assert image.mode == "RGB"
    assert image.size == case.expected_size
    for x, y, expected in case.probes:
        actual = image.getpixel((x, y))
        assert all(abs(a - e) <= case.tolerance for a, e in zip(actual, expected, strict=True)), (
            f"{case.name}: pixel ({x}, {y}) is {actual}, expected {expected} ± {case.tolerance}"
        )


@pytest.mark.parametrize("case", [c for c in CASES if c.expected_status == 200], ids=lambda c: c.name)
def test_full_decode_agrees_with_the_request_path(case: Case) -> None:
    image = decode_image(case.bytes, max_pixels=MAX_PIXELS_RANGE[0])
    _, via_request_path = load_for_model(case.bytes, PREPROCESSING, max_pixels=MAX_PIXELS_RANGE[0])
    assert image.tobytes() == via_request_path.tobytes()  # corpus images are too small to be drafted
