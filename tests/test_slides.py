"""Slide inputs (images, patient zips rebuilt from x/y), truth comparison, and curve operating points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hostile_files import zip_bytes

from idc_core.data.dataset import parse_patch_name
from idc_core.data.image_io import decode_image, encode_png
from idc_core.errors import DatasetError, ImageError, ImageTooLargeError
from idc_core.stats.curves import operating_point
from idc_core.stats.metrics import compute_metrics, threshold_metrics
from idc_core.wsi.overlay import OUTCOME_COLORS
from idc_core.wsi.result import SlideResult
from idc_core.wsi.tiling import tile_coordinates
from idc_core.wsi.truth import TruthTiles, compare_to_truth, load_slide_input, read_truth_csv


def _patientzip_bytes(small_data: Path, patient: str = "10253") -> tuple[bytes, list[Path]]:
    files = sorted((small_data / patient).rglob("*.png"))
    return zip_bytes({f"{patient}/{p.parent.name}/{p.name}": p.read_bytes() for p in files}), files


def test_patient_zip_is_rebuilt_with_each_patch_at_its_xy(small_data):
    data, files = _patientzip_bytes(small_data)
    slide = load_slide_input("10253.zip", data)
    parsed = [parse_patch_name(p.name) for p in files]
    x0, y0 = min(p[1] for p in parsed), min(p[2] for p in parsed)
    assert slide.patient == "10253" and slide.origin == (x0, y0) and not slide.skipped
    assert slide.image.shape == (max(p[2] for p in parsed) - y0 + 50, max(p[1] for p in parsed) - x0 + 50, 3)
    for path, (_, x, y, _label) in zip(files, parsed):
        patch = decode_image(path.read_bytes())
        h, w = patch.shape[:2]
        np.testing.assert_array_equal(slide.image[y - y0:y - y0 + h, x - x0:x - x0 + w], patch)
    truth = {(int(x), int(y)): int(lab) for x, y, lab in zip(slide.truth.xs, slide.truth.ys, slide.truth.labels)}
    assert truth == {(x - x0, y - y0): label for _, x, y, label in parsed}


def test_patient_zip_skips_a_corrupt_patch_and_says_so(small_data):
    files = sorted((small_data / "10253").rglob("*.png"))
    members = {f"10253/{p.parent.name}/{p.name}": p.read_bytes() for p in files}
    members["10253/0/10253_idx5_x1_y1_class0.png"] = b"\x89PNG broken"
    slide = load_slide_input("p.zip", zip_bytes(members))
    assert len(slide.truth) == len(files)
    assert len(slide.skipped) == 1 and slide.skipped[0].startswith("10253/0/10253_idx5_x1_y1_class0.png:")


def test_zip_of_two_patients_or_of_other_files_is_refused_with_the_reason(small_data):
    files = sorted((small_data / "10253").rglob("*.png"))[:2] + sorted((small_data / "10254").rglob("*.png"))[:2]
    two = zip_bytes({f"{p.parents[1].name}/{p.parent.name}/{p.name}": p.read_bytes() for p in files})
    with pytest.raises(DatasetError, match=r"two.zip: holds 2 patients \(10253, 10254\)"):
        load_slide_input("two.zip", two)
    with pytest.raises(DatasetError, match="no patches named like the dataset"):
        load_slide_input("other.zip", zip_bytes({"a.png": encode_png(np.zeros((5, 5, 3), np.uint8))}))


def test_rebuilt_slide_over_the_pixel_limit_is_refused_before_decoding():
    members = {"9/0/9_idx5_x0_y0_class0.png": b"x", "9/0/9_idx5_x5000_y5000_class0.png": b"x"}
    with pytest.raises(ImageTooLargeError, match="5050x5050"):
        load_slide_input("p.zip", zip_bytes(members), max_pixels=1_000_000)


def test_image_input_and_its_truth_csv():
    image = np.full((100, 150, 3), 200, np.uint8)
    slide = load_slide_input("region.png", encode_png(image), truth_csv=b"x,y,label\n0,0,1\n50,50,0\n")
    assert slide.image.shape == (100, 150, 3) and slide.truth is not None
    assert slide.truth.xs.tolist() == [0, 50] and slide.truth.labels.tolist() == [1, 0]
    with pytest.raises(ImageError, match="region.png"):
        load_slide_input("region.png", b"garbage")


@pytest.mark.parametrize("csv, message", [
    (b"a,b\n1,2\n", "needs the columns x,y,label"),
    (b"x,y,label\n1,two,0\n", "must be integers"),
    (b"x,y,label\n1,2,3\n", "labels 0/1"),
    (b"\xff\xfe\x00", "not a readable CSV"),
])
def test_bad_truth_csv_is_a_dataset_error(csv, message):
    with pytest.raises(DatasetError, match=message):
        read_truth_csv(csv)


def _result(shape, stride, probs_of) -> SlideResult:
    coords = tile_coordinates(shape[0], shape[1], 50, stride)
    probs = np.array([probs_of(y, x) for y, x in coords], dtype=np.float32)
    return SlideResult(coords, ~np.isnan(probs), probs, shape, 50, stride, 20.0, 0.5)


def test_truth_comparison_on_the_50px_grid_is_exact():
    truth = TruthTiles(np.array([0, 50, 100, 0]), np.array([0, 0, 0, 50]), np.array([1, 0, 1, 0]))
    table = {(0, 0): 0.9, (0, 50): 0.7, (0, 100): 0.2, (50, 0): np.nan}  # (y, x) -> P; (50, 0) background
    result = _result((100, 150), 50, lambda y, x: table.get((y, x), 0.1))
    cmp = compare_to_truth(result, truth, 0.5)
    np.testing.assert_allclose(cmp.tile_probs[:3], [0.9, 0.7, 0.2], rtol=1e-6)
    assert np.isnan(cmp.tile_probs[3]) and cmp.n_not_analysed == 1
    expected = compute_metrics([1, 0, 1], [0.9, 0.7, 0.2], 0.5)
    assert cmp.metrics["confusion_matrix"] == expected["confusion_matrix"] == [[0, 1], [1, 1]]
    assert cmp.metrics["idc_fraction_true"] == pytest.approx(2 / 3)
    assert tuple(cmp.outcome[10, 10]) == OUTCOME_COLORS["TP"]
    assert tuple(cmp.outcome[10, 60]) == OUTCOME_COLORS["FP"]
    assert tuple(cmp.outcome[10, 110]) == OUTCOME_COLORS["FN"]
    assert tuple(cmp.outcome[60, 10]) == (255, 255, 255)


def test_truth_comparison_with_overlapping_tiles_averages_them():
    truth = TruthTiles(np.array([0]), np.array([0]), np.array([1]))
    result = _result((75, 75), 25, lambda y, x: 1.0 if (y, x) == (0, 0) else 0.0)
    cmp = compare_to_truth(result, truth, 0.5)
    assert 0.0 < cmp.tile_probs[0] < 1.0  # the (0, 0) tile is averaged with its overlapping neighbours


def test_operating_point_is_exact_at_the_stored_threshold_and_at_curve_thresholds():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 120)
    prob = np.round(np.clip(0.4 * y + 0.6 * rng.random(120), 0, 1), 2)
    report = compute_metrics(y, prob, 0.5)
    at_stored = operating_point(report, 0.5)
    assert at_stored["exact"] and at_stored["confusion_matrix"] == report["confusion_matrix"]
    for t in report["roc_curve"]["thresholds"][1:]:
        point = operating_point(report, t)
        expected = threshold_metrics(y, prob, t)
        assert point["confusion_matrix"] == expected["confusion_matrix"]
        assert point["f1"] == pytest.approx(expected["f1"])
        assert point["balanced_accuracy"] == pytest.approx(expected["balanced_accuracy"])


def test_operating_point_of_a_one_class_report_is_the_stored_one():
    report = compute_metrics([0, 0, 0], [0.1, 0.7, 0.2], 0.5)
    assert operating_point(report, 0.9)["confusion_matrix"] == [[2, 1], [0, 0]]
