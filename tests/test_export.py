"""TFLite export: conversion, the predictor's contract, the agreement check, and the guarded write."""

from __future__ import annotations

import json

import numpy as np
import pytest

from idc_core.cli.export import main
from idc_core.config import ModelConfig
from idc_core.data.image_io import encode_png
from idc_core.errors import ModelError
from idc_core.inference.predict import predict_patches
from idc_core.model.builders import build_model
from idc_core.model.folder import save_model_dir
from idc_core.model.lite import LiteScorer, read_exports, verified_export
from idc_core.workflows.export import compare, export_model_dir, read_check_patches, to_tflite


@pytest.fixture(scope="module")
def model():
    return build_model("cnn", seed=0)


@pytest.fixture(scope="module")
def patches():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (7, 50, 50, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def float_lite(model):
    return LiteScorer(to_tflite(model, quantize="none"), num_threads=1)


def test_float_export_gives_the_keras_probabilities(model, patches, float_lite):
    np.testing.assert_allclose(float_lite.predict(patches, batch_size=4), predict_patches(model, patches), atol=1e-5)


def test_dynamic_quantisation_is_smaller_and_close(model, patches):
    content = to_tflite(model, quantize="dynamic")
    assert len(content) < len(to_tflite(model, quantize="none")) / 2
    agreement = compare(model, LiteScorer(content, num_threads=1), patches, 0.5)
    assert agreement.n == 7 and agreement.max_abs_diff < 0.05


def test_predict_returns_float32_per_patch_for_any_count(float_lite, patches):
    assert float_lite.predict(patches[:0]).shape == (0,)
    probs = float_lite.predict(patches[:3], batch_size=2)
    assert probs.dtype == np.float32 and probs.shape == (3,) and ((probs >= 0) & (probs <= 1)).all()


def test_predict_rejects_wrong_patches_and_batch_size(float_lite, patches):
    with pytest.raises(ValueError, match="uint8"):
        float_lite.predict(patches.astype(np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        float_lite.predict(patches, batch_size=0)


def test_unknown_quantisation_and_invalid_files_raise(model, tmp_path):
    with pytest.raises(ValueError, match="quantize"):
        to_tflite(model, quantize="int4")
    with pytest.raises(ModelError, match="not found"):
        LiteScorer.load(tmp_path / "missing.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelError, match="not a valid TFLite model"):
        LiteScorer.load(bad)


def _model_dir(tmp_path, model):
    return save_model_dir(tmp_path / "m", model, ModelConfig(name="m", arch="cnn", threshold=0.5))


def test_export_is_written_with_its_report_when_it_matches(tmp_path, model, patches):
    folder = _model_dir(tmp_path, model)
    out, agreement = export_model_dir(folder, quantize="none", check=patches)
    assert out == folder / "model.tflite" and agreement.label_agreement == 1.0
    [report] = json.loads((folder / "export.json").read_text())["exports"]
    assert report["file"] == "model.tflite" and report["n"] == 7
    np.testing.assert_allclose(LiteScorer.load(out).predict(patches), predict_patches(model, patches), atol=1e-5)
    int8, _ = export_model_dir(folder, quantize="dynamic", check=patches)  # a second export is recorded beside it
    assert int8 is not None and [r["file"] for r in read_exports(folder)] == ["model.tflite", "model-int8.tflite"]
    assert verified_export(folder)[0] == out  # the most exact one scores


def test_export_is_refused_when_it_does_not_match(tmp_path, model, patches):
    folder = _model_dir(tmp_path, model)
    out, agreement = export_model_dir(folder, quantize="dynamic", check=patches, max_diff=-1.0)
    assert out is None and agreement.n == 7 and not (folder / "model-int8.tflite").exists()
    (tmp_path / "p.png").write_bytes(encode_png(patches[0]))
    args = ["--model", str(folder), "--quantize", "dynamic", "--check", str(tmp_path / "p.png")]
    assert main(args + ["--max-diff", "-1"]) == 1 and not (folder / "export.json").exists()
    assert main(["--model", str(folder), "--check", str(tmp_path / "none.png")]) == 2


def test_check_patches_come_from_patch_files_and_slide_tissue(tmp_path):
    patch = np.full((50, 50, 3), 200, np.uint8)
    slide = np.full((100, 150, 3), 255, np.uint8)
    slide[:, :50] = (180, 60, 150)  # one column of tissue tiles
    (tmp_path / "p.png").write_bytes(encode_png(patch))
    (tmp_path / "slide.png").write_bytes(encode_png(slide))
    assert read_check_patches([tmp_path / "p.png"]).shape == (1, 50, 50, 3)
    assert read_check_patches([tmp_path / "slide.png"]).shape == (2, 50, 50, 3)
    with pytest.raises(ModelError, match="no readable patches"):
        read_check_patches([tmp_path / "missing.png"])


def test_recalibrating_remakes_every_export_or_removes_them_all(tmp_path, model, patches):
    from idc_core.workflows.calibrate import _refresh_export

    folder = _model_dir(tmp_path, model)
    for quantize in ("none", "dynamic"):
        export_model_dir(folder, quantize=quantize, check=patches)
    (tmp_path / "p.png").write_bytes(encode_png(patches[0]))
    said: list[str] = []
    _refresh_export(folder, said.append, [tmp_path / "p.png"])
    assert [r["file"] for r in read_exports(folder)] == ["model.tflite", "model-int8.tflite"]
    assert [r["n"] for r in read_exports(folder)] == [1, 1] and len(said) == 2
    _refresh_export(folder, said.append, [])  # nothing to check a new export on: none is left stale
    assert not list(folder.glob("*.tflite")) and not (folder / "export.json").exists()
