"""ui.uploads: what the app does with uploads around idc_core: zips opened (macOS junk passed over), rows worded."""

from __future__ import annotations

import numpy as np
import pytest
from hostile_files import zip_bytes

from idc_core.data.image_io import encode_png
from idc_core.inference.batch import classify_images
from idc_core.model.builders import build_model
from ui.uploads import SLIDE_HINT, expand_uploads, prediction_rows


@pytest.fixture(scope="module")
def model():
    return build_model("cnn", weights=None, seed=0)


def _png(h: int, w: int) -> bytes:
    return encode_png(np.random.default_rng(h * 1000 + w).integers(60, 190, (h, w, 3), dtype=np.uint8))


def test_expand_uploads_opens_zips_and_keeps_going_past_bad_members():
    data = zip_bytes({
        "10253/0/10253_idx5_x1_y1_class0.png": _png(50, 50),
        "README.txt": b"hello",
        "../evil.png": _png(50, 50),
        "inner.zip": b"PK",
        "__MACOSX/._x.png": b"junk",
        "corrupt.png": b"\x89PNG broken",
    })
    items = list(expand_uploads([("set.zip", data), ("single.png", _png(50, 50)), ("bad.zip", b"not a zip")]))
    names = [name for name, _ in items]
    assert "set.zip/10253/0/10253_idx5_x1_y1_class0.png" in names and "single.png" in names
    assert not any("README" in n or "__MACOSX" in n for n in names)
    errors = {name: str(value) for name, value in items if isinstance(value, Exception)}
    assert "parent directory" in errors["set.zip/../evil.png"]
    assert "nested archive" in errors["set.zip/inner.zip"]
    assert "not a readable zip" in errors["bad.zip"]
    corrupt = dict(items)["set.zip/corrupt.png"]
    assert isinstance(corrupt, bytes)  # read fine; decoding fails later, in classify_images


def test_a_corrupt_zip_member_is_one_error_row(model):
    data = zip_bytes({"a/1/p_idx5_x1_y1_class1.png": _png(50, 50), "a/0/bad.png": b"\x89PNG broken"})
    result = classify_images(model, list(expand_uploads([("up.zip", data)])), threshold=0.5)
    assert len(result.predicted) == 1 and result.predicted[0].true_label == 1
    assert len(result.failed) == 1 and "up.zip/a/0/bad.png" in result.failed[0].error


def test_a_slide_sized_image_says_where_to_analyse_it(model):
    result = classify_images(model, [("region.png", _png(150, 200)), ("p.png", _png(50, 50))], threshold=0.5)
    notes = [row["note"] for row in prediction_rows(result)]
    assert notes == [f"200x150, larger than a patch: {SLIDE_HINT}", ""]
