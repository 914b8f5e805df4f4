"""classify_images: one row per item, bad items reported, slides never squashed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from idc_core.data.image_io import encode_png
from idc_core.errors import ArchiveError
from idc_core.inference.batch import classify_images
from idc_core.inference.items import true_label_from_name
from idc_core.inference.predict import predict_patches
from idc_core.model.builders import build_model
from ui.uploads import prediction_rows


@pytest.fixture(scope="module")
def model():
    return build_model("cnn", weights=None, seed=0)


def _png(h: int, w: int, value: int = 120) -> bytes:
    rng = np.random.default_rng(h * 1000 + w)
    return encode_png(rng.integers(0, 255, (h, w, 3), dtype=np.uint8) // 2 + value // 2)


def _patches(small_data: Path, n: int) -> list[tuple[str, bytes]]:
    files = sorted(small_data.rglob("*.png"))[:n]
    return [(f"{p.parent.parent.name}/{p.parent.name}/{p.name}", p.read_bytes()) for p in files]


def test_every_item_gets_a_row_in_input_order_and_bad_ones_an_error(model, small_data):
    good = _patches(small_data, 4)
    items = [good[0], ("notes.png", b"not an image"), ("empty.png", b""), *good[1:],
             ("broken.zip", ArchiveError("broken.zip: not a readable zip file"))]
    result = classify_images(model, items, threshold=0.5)
    assert [row.name for row in result.items] == [name for name, _ in items]
    assert len(result.predicted) == 4
    assert all(row.patch is not None and row.patch.shape == (50, 50, 3) for row in result.predicted)
    errors = {row.name: row.error for row in result.failed}
    assert "not a readable image" in errors["notes.png"]
    assert "empty file (0 bytes)" in errors["empty.png"]
    assert errors["broken.zip"] == "broken.zip: not a readable zip file"


def test_probabilities_match_predict_patches_whatever_the_batch_size(model, small_data):
    items = _patches(small_data, 7)
    one = classify_images(model, items, threshold=0.5)
    small = classify_images(model, items, threshold=0.5, batch_size=2)
    direct = predict_patches(model, np.stack([row.patch for row in one.items]))
    np.testing.assert_allclose([r.prob_idc for r in one.items], direct, rtol=1e-5)
    np.testing.assert_allclose([r.prob_idc for r in small.items], direct, rtol=1e-5)


def test_patch_sized_images_are_padded_or_resized_and_larger_ones_become_slides(model):
    items = [("crop.png", _png(34, 50)), ("big_patch.png", _png(64, 64)), ("region.png", _png(150, 200))]
    rows = {row.name: row for row in classify_images(model, items, threshold=0.5).items}
    assert rows["crop.png"].note == "padded from 50x34" and rows["crop.png"].prob_idc is not None
    assert rows["big_patch.png"].note == "resized from 64x64" and rows["big_patch.png"].prob_idc is not None
    region = rows["region.png"]
    assert region.is_slide and region.prob_idc is None and region.patch is None
    assert region.note == "200x150, larger than a patch"


def test_true_labels_come_from_the_name_or_a_0_1_folder():
    assert true_label_from_name("up.zip/10253/0/10253_idx5_x1_y1_class1.png") == 1
    assert true_label_from_name("set/0/any_name.jpg") == 0
    assert true_label_from_name("set/1/any_name.jpg") == 1
    assert true_label_from_name("plain.png") is None


def test_batch_metrics_and_labels_follow_the_threshold_without_repredicting(model, small_data):
    result = classify_images(model, _patches(small_data, 10) + [("unlabelled.png", _png(50, 50))], threshold=0.5)
    probs = np.array([r.prob_idc for r in result.items])
    metrics = result.batch_metrics()
    assert metrics["n_labelled"] == 10
    assert np.sum(metrics["confusion_matrix"]) == 10
    assert result.batch_metrics(0.0)["recall"] == 1.0  # everything is IDC at threshold 0
    rows = prediction_rows(result, threshold=float(np.median(probs)))
    assert [row["predicted"] == "IDC" for row in rows] == list(probs >= np.median(probs))
    assert rows[-1]["true"] is None and rows[-1]["correct"] is None


def test_no_labels_means_no_batch_metrics(model):
    assert classify_images(model, [("a.png", _png(50, 50))], threshold=0.5).batch_metrics() is None


def test_progress_reaches_the_number_of_items(model, small_data):
    calls = []
    classify_images(model, _patches(small_data, 5), threshold=0.5, batch_size=2,
                    progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (5, 5) and all(total == 5 for _, total in calls)


def test_threshold_out_of_range_is_a_programmer_error(model):
    with pytest.raises(ValueError, match="threshold must be in"):
        classify_images(model, [], threshold=1.5)
