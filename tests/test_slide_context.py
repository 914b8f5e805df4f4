"""The slide-context step on synthetic logit maps: what smoothing keeps, damps and never crosses; fitting it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import idc_core.wsi.context as slide_context
from idc_core.workflows.context_fit import TileScores, complete_patients, fit_context
from idc_core.wsi.context import (
    ContextSettings,
    apply_context,
    context_features,
    context_logits,
    context_summary,
    read_context,
)
from idc_core.wsi.outputs import tiles_csv
from idc_core.wsi.result import SlideResult

GAUSSIAN = ContextSettings("gaussian", sigma=1.0)
# a hand-made logistic step: own logit, smoothed logit, tissue fraction, slide mean logit, slide IDC share
LOGISTIC = ContextSettings("logistic", sigmas=(1.0,), weights=(0.5, 1.0, 0.0, 0.0, 0.0), intercept=0.0)


def grid(rows: int, cols: int, stride: int = 50) -> np.ndarray:
    """(rows * cols, 2) top-left (row, col) pixels of a full grid of tiles `stride` apart."""
    r, c = np.mgrid[0:rows, 0:cols]
    return np.column_stack([r.ravel(), c.ravel()]) * stride


@pytest.mark.parametrize("settings", [GAUSSIAN, LOGISTIC], ids=["gaussian", "logistic"])
def test_a_uniform_map_stays_uniform_edges_and_holes_included(settings):
    coords = grid(12, 15)
    logits = np.full(len(coords), 1.7)
    logits[[20, 21, 50, 97]] = np.nan  # holes: background tiles inside the tissue
    out = context_logits(coords, logits, 50, settings)
    expected = 1.7 * (1.5 if settings is LOGISTIC else 1.0)
    assert np.allclose(out[np.isfinite(logits)], expected, atol=1e-9)  # borders and holes average tissue only
    assert np.isnan(out[[20, 21, 50, 97]]).all()


def test_an_isolated_positive_tile_is_damped_and_a_negative_one_lifted():
    coords = grid(9, 9)
    logits = np.full(len(coords), -3.0)
    logits[40] = 4.0  # the centre
    out = context_logits(coords, logits, 50, GAUSSIAN)
    assert out[40] < 0 < logits[40]  # below the 0.5 threshold now
    assert np.all(out[np.arange(len(out)) != 40] <= -1.0)  # the neighbours stay negative
    flipped = context_logits(coords, -logits, 50, GAUSSIAN)
    assert np.allclose(flipped, -out)


@pytest.mark.parametrize("stride", [50, 25, 10])
def test_a_region_keeps_its_border_within_a_tile_at_any_stride(stride):
    side = 600  # pixels at the model's scale
    coords = grid(side // stride, side // stride, stride)
    centre_y, centre_x = coords[:, 0] + 25, coords[:, 1] + 25
    inside = (centre_y - 300) ** 2 + (centre_x - 300) ** 2 < 180 ** 2  # a disc of IDC, 3.6 tiles in radius
    logits = np.where(inside, 3.0, -3.0)
    called = context_logits(coords, logits, stride, GAUSSIAN) >= 0
    wrong = called != inside
    assert wrong.sum() < inside.sum() / 4
    distance = np.abs(np.hypot(centre_y - 300, centre_x - 300) - 180)
    assert distance[wrong].max(initial=0) <= 50  # every changed call is within one tile width of the border


def test_the_width_is_in_tiles_whatever_the_stride():
    fine, coarse = grid(40, 40, 10), grid(8, 8, 50)
    logits = np.random.default_rng(0).normal(size=len(coarse))
    upsampled = logits.reshape(8, 8).repeat(5, 0).repeat(5, 1).ravel()  # the same map at a 10-px stride
    at_fine = context_logits(fine, upsampled, 10, ContextSettings("gaussian", sigma=2.0)).reshape(40, 40)
    at_coarse = context_logits(coarse, logits, 50, ContextSettings("gaussian", sigma=2.0)).reshape(8, 8)
    assert np.abs(at_fine[2::5, 2::5] - at_coarse).max() < 0.15  # tile centres agree; 10x the tiles


def test_slides_never_see_each_other():
    coords = np.concatenate([grid(6, 6), grid(6, 6)])  # two slides on the same pixels
    logits = np.concatenate([np.full(36, -4.0), np.full(36, 4.0)])
    slides = np.array(["a"] * 36 + ["b"] * 36)
    out = context_logits(coords, logits, 50, GAUSSIAN, groups=slides)
    assert np.allclose(out, logits)
    features = context_features(coords, logits, 50, (1.0,), tile_threshold=0.5, groups=slides)
    assert np.allclose(features[:36, 3:], [np.log(np.exp(-4.0)), 0.0], atol=1e-6)  # slide mean logit, IDC share
    assert np.allclose(features[36:, 3:], [4.0, 1.0], atol=1e-6)


def test_the_step_is_deterministic_and_does_not_depend_on_tile_order():
    coords = grid(20, 25)
    logits = np.random.default_rng(1).normal(size=len(coords)) * 2
    first = context_logits(coords, logits, 50, LOGISTIC)
    assert np.array_equal(first, context_logits(coords, logits, 50, LOGISTIC))
    order = np.random.default_rng(2).permutation(len(coords))
    assert np.allclose(context_logits(coords[order], logits[order], 50, LOGISTIC), first[order], atol=1e-12)


def test_blocks_give_the_same_answer_as_one_grid(monkeypatch):
    coords = grid(30, 41)
    logits = np.random.default_rng(3).normal(size=len(coords))
    logits[np.random.default_rng(4).random(len(coords)) < 0.3] = np.nan
    whole = context_features(coords, logits, 50, (0.5, 1.5))
    monkeypatch.setattr(slide_context, "BLOCK", 7)  # many blocks, each with the filter's reach around it
    assert np.allclose(context_features(coords, logits, 50, (0.5, 1.5)), whole, atol=1e-12, equal_nan=True)


def test_far_apart_tiles_use_memory_for_their_neighbourhoods_only():
    coords = np.array([[0, 0], [0, 50], [10**9, 10**9]])  # a grid of their extent would be 2e7 x 2e7 tiles
    out = context_logits(coords, np.array([1.0, 3.0, -2.0]), 50, GAUSSIAN)
    assert out[2] == pytest.approx(-2.0) and 1.0 < out[0] < out[1] < 3.0


def result_of(probs: np.ndarray, rows: int, cols: int) -> SlideResult:
    coords = grid(rows, cols)
    tissue = np.isfinite(probs)
    return SlideResult(coords, tissue, probs.astype(np.float32), (rows * 50, cols * 50), 50, 50, 15.0, 0.3)


def test_applied_to_a_slide_probs_become_context_aware_and_the_tiles_own_are_kept():
    probs = np.full(30, 0.1)
    probs[7] = 0.9
    probs[[0, 29]] = np.nan
    result = result_of(probs, 5, 6)
    settings = ContextSettings("gaussian", sigma=1.0, scale=1.2, shift=0.1, threshold=0.4)
    aware = apply_context(result, settings)
    assert aware.threshold == 0.4 and np.array_equal(aware.probs_tile, result.probs, equal_nan=True)
    assert aware.probs[7] < 0.4 < result.probs[7] and np.isnan(aware.probs[[0, 29]]).all()
    assert apply_context(aware, settings).probs.tolist() == pytest.approx(aware.probs.tolist(), nan_ok=True)
    assert apply_context(result, None) is result
    assert apply_context(result, ContextSettings("none")) is result
    rows = aware.to_rows()
    assert rows[7]["prob_idc_tile"] == pytest.approx(0.9) and rows[7]["label"] == 0 and rows[0]["prob_idc_tile"] is None


def test_tiles_csv_has_the_tiles_own_score_only_when_context_was_used():
    probs = np.linspace(0.05, 0.95, 12)
    result = result_of(probs, 3, 4)
    aware = apply_context(result, ContextSettings("gaussian", sigma=1.0, threshold=0.5))
    header, *rows = [line.split(",") for line in tiles_csv(aware, aware.level0_boxes(2.0)).splitlines()]
    assert header == ["x", "y", "width", "height", "prob_idc", "label", "prob_idc_tile"]
    assert [float(r[6]) for r in rows] == pytest.approx(probs.tolist(), abs=1e-6)
    assert [int(r[5]) for r in rows] == [int(float(r[4]) >= 0.5) for r in rows]
    assert tiles_csv(result, result.level0_boxes(2.0)).splitlines()[0] == "x,y,width,height,prob_idc,label"


def test_settings_round_trip_and_bad_ones_are_refused(tmp_path):
    assert ContextSettings.from_dict(json.loads(json.dumps(LOGISTIC.to_dict()))) == LOGISTIC
    with pytest.raises(ValueError, match="method"):
        ContextSettings("crf")
    with pytest.raises(ValueError, match="5 weights"):
        ContextSettings("logistic", sigmas=(1.0,), weights=(1.0,))
    assert read_context(tmp_path, "") is None
    with pytest.raises(ValueError, match="context.json"):
        read_context(tmp_path, "context.json")
    (tmp_path / "context.json").write_text(json.dumps(ContextSettings("none").to_dict()))
    assert read_context(tmp_path, "context.json") is None  # chosen off: tiles alone
    (tmp_path / "context.json").write_text(json.dumps(GAUSSIAN.to_dict()))
    assert read_context(tmp_path, "context.json") == GAUSSIAN
    assert context_summary(None) == {"used": False} and context_summary(GAUSSIAN)["sigma"] == 1.0


def synthetic_slides(seed: int, patients: list[str]) -> TileScores:
    """Slides of 30x30 tiles with one or two discs of IDC; each tile's score is its truth seen through noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for patient in patients:
        r, c = np.mgrid[0:30, 0:30]
        truth = np.zeros((30, 30), dtype=bool)
        for _ in range(rng.integers(1, 3)):
            y, x, radius = rng.integers(5, 25), rng.integers(5, 25), rng.integers(2, 6)
            truth |= (r - y) ** 2 + (c - x) ** 2 < radius ** 2
        logits = np.where(truth, 1.0, -1.5) + rng.normal(scale=1.6, size=truth.shape)
        rows.append((np.full(900, patient), c.ravel() * 50 + 1, r.ravel() * 50 + 1, truth.ravel().astype(np.int64),
                     (1 / (1 + np.exp(-logits.ravel()))).astype(np.float32)))
    return TileScores(*(np.concatenate(parts) for parts in zip(*rows)))


def test_fitting_chooses_on_validation_and_reports_every_test_slide():
    splits = {"train": [f"t{i}" for i in range(6)], "val": ["v0", "v1", "v2"], "test": ["x0", "x1"]}
    scores = synthetic_slides(0, [p for ids in splits.values() for p in ids])
    assert complete_patients(scores) == sorted(p for ids in splits.values() for p in ids)
    settings, report = fit_context(scores, splits, 0.5, log=lambda _: None)
    assert settings.used and report["complete_slides"]["test"] == ["x0", "x1"]
    assert [row["patient"] for row in report["test"]["slides"]] == ["x0", "x1"]
    assert report["test"]["gain"]["balanced_accuracy"] > 0.03  # noise around regions: context helps
    assert report["validation"]["mean"]["context"]["balanced_accuracy"] == pytest.approx(
        max(c["validation_mean"]["balanced_accuracy"] for c in report["candidates"]))
    again, _ = fit_context(scores, splits, 0.5, log=lambda _: None)
    assert again == settings


def test_fitting_keeps_the_tiles_alone_when_context_does_not_help():
    splits = {"train": [f"t{i}" for i in range(4)], "val": ["v0", "v1"]}
    scores = synthetic_slides(1, [p for ids in splits.values() for p in ids])
    rng = np.random.default_rng(5)
    noisy = rng.random(len(scores.labels)) < 0.5  # labels with no spatial structure: neighbours say nothing
    scores = TileScores(scores.patients, scores.xs, scores.ys, noisy.astype(np.int64),
                        np.where(noisy, 0.8, 0.2).astype(np.float32))
    settings, report = fit_context(scores, splits, 0.5, log=lambda _: None)
    assert not settings.used and settings.threshold == 0.5 and "test" not in report


def test_the_slide_command_writes_context_aware_outputs_and_redoes_slides_when_the_step_changes(tmp_path):
    import csv
    import shutil

    from conftest import REPO
    from PIL import Image
    from slide_files import sample_crop

    from idc_core.cli.slide import main as slide_main

    model = Path(shutil.copytree(REPO / "models" / "cnn-2conv", tmp_path / "model",
                                 ignore=shutil.ignore_patterns("*.tflite")))
    config = json.loads((model / "config.json").read_text())
    slide = tmp_path / "crop.png"
    Image.fromarray(sample_crop()).save(slide)
    out = tmp_path / "out"

    def run() -> tuple[list[dict], dict, str]:
        assert slide_main([str(slide), "--out", str(out), "--model", str(model)]) == 0
        status = next(csv.DictReader((out / "slides.csv").open()))["status"]
        return (list(csv.DictReader((out / "crop" / "tiles.csv").open())),
                json.loads((out / "crop" / "summary.json").read_text()), status)

    (model / "config.json").write_text(json.dumps({**config, "context": ""}))  # an older folder: no step
    alone, summary, status = run()
    assert status == "ok" and "prob_idc_tile" not in alone[0] and summary["context"] == {"used": False}
    assert run()[2] == "skipped"
    (model / "config.json").write_text(json.dumps(config))  # the step named again: the same model.keras, redone
    aware, summary, status = run()
    assert status == "ok" and summary["context"]["used"] and summary["threshold"] == summary["context"]["threshold"]
    assert [t["prob_idc_tile"] for t in aware] == [t["prob_idc"] for t in alone]
    assert [t["label"] for t in aware] == [str(int(float(t["prob_idc"]) >= summary["threshold"])) for t in aware]
    assert summary["idc_tiles"] == sum(t["label"] == "1" for t in aware)
    assert [t["prob_idc"] for t in aware] != [t["prob_idc"] for t in alone]
