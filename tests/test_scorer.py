"""The runtime seam (idc_core.model.scorer): Keras and LiteRT score alike, both give the penultimate features, and
scoring a slide or patches with a folder that has an export never imports TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import ASSETS, REPO

from idc_core.config import ModelConfig
from idc_core.inference.predict import predict_features, predict_patches
from idc_core.inference.uncertainty import predict_with_uncertainty
from idc_core.model.builders import build_model
from idc_core.model.folder import load_model_dir, save_model_dir
from idc_core.model.lite import LiteScorer, verified_export
from idc_core.model.scorer import KerasScorer, as_scorer
from idc_core.workflows.export import export_model_dir


@pytest.fixture(scope="module")
def patches() -> np.ndarray:
    return np.random.default_rng(5).integers(0, 256, (11, 50, 50, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return build_model("cnn", seed=3, width=0.25, head="gap")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, model, patches) -> Path:
    config = ModelConfig(name="m", arch="cnn", threshold=0.5)
    out = save_model_dir(tmp_path_factory.mktemp("scorer") / "m", model, config)
    written, _ = export_model_dir(out, quantize="none", check=patches)
    assert written is not None
    return out


def test_litert_and_keras_give_the_same_probabilities_and_penultimate_features(folder, model, patches):
    lite, kept = load_model_dir(folder).scorer, load_model_dir(folder, runtime="keras").scorer
    assert (lite.runtime, lite.file, kept.runtime, kept.file) == ("litert", "model.tflite", "keras", "model.keras")
    penultimate = keras.Model(model.inputs, model.get_layer("idc_probability").input)
    expected = penultimate(patches.astype("float32"), training=False).numpy()
    for scorer in (lite, kept, as_scorer(model)):
        probs, feats = predict_features(scorer, patches, batch_size=4)
        assert feats.shape == (11, expected.shape[1]) and feats.dtype == np.float32
        np.testing.assert_allclose(feats, expected, atol=1e-4)
        np.testing.assert_allclose(probs, predict_patches(model, patches), atol=1e-5)
    empty = lite.predict_features(patches[:0])
    assert empty[0].shape == (0,)


def test_an_export_without_the_features_output_takes_them_from_the_keras_model(model, patches):
    import tensorflow as tf

    content = tf.lite.TFLiteConverter.from_keras_model(model).convert()  # one output, as exports before features
    lite = LiteScorer(content, keras_loader=lambda: model)
    assert not lite.has_features
    probs, feats = lite.predict_features(patches)
    np.testing.assert_allclose(feats, KerasScorer(model).predict_features(patches)[1], atol=1e-6)
    np.testing.assert_allclose(probs, predict_patches(model, patches), atol=1e-5)


def test_uncertainty_runs_on_litert_tta_alike_and_mc_through_the_keras_model(folder, patches):
    lite, kept = load_model_dir(folder).scorer, load_model_dir(folder, runtime="keras").scorer
    tta_lite = predict_with_uncertainty(lite, patches, method="tta", threshold=0.5)
    tta_keras = predict_with_uncertainty(kept, patches, method="tta", threshold=0.5)
    np.testing.assert_allclose(tta_lite.logit_mean, tta_keras.logit_mean, atol=1e-3)
    np.testing.assert_allclose(tta_lite.uncertainty, tta_keras.uncertainty, atol=1e-3)
    mc = predict_with_uncertainty(lite, patches, method="mc", samples=4, threshold=0.5)
    assert mc.uncertainty.shape == (11,) and np.isfinite(mc.uncertainty).all()
    np.testing.assert_allclose(mc.prob, tta_lite.prob)  # P(IDC) beside it is the export's plain score


def test_a_bare_keras_model_is_wrapped_once_and_refuses_bad_batches(model, patches):
    assert as_scorer(model) is as_scorer(model) and as_scorer(model).model is model
    with pytest.raises(ValueError, match="batch_size"):
        as_scorer(model).predict(patches, batch_size=0)


@pytest.mark.skipif(verified_export(REPO / "models" / "cnn-jpeg") is None, reason="models/cnn-jpeg has no export")
def test_a_slide_run_and_a_predict_run_never_import_tensorflow_nor_scipy(tmp_path):
    code = f"""
import json, sys
from idc_core.__main__ import main
slide = main(["slide", {str(ASSETS / "sample_slide.png")!r}, "--out", {str(tmp_path / "out")!r},
              "--model", {str(REPO / "models" / "cnn-jpeg")!r}])
patches = main(["predict", {str(ASSETS / "patches")!r}, "--csv", {str(tmp_path / "p.csv")!r},
                "--model", {str(REPO / "models" / "cnn-jpeg")!r}])
heavy = ("tensorflow", "keras", "scipy", "sklearn")
print(json.dumps({{"status": [slide, patches], "loaded": [m for m in heavy if m in sys.modules]}}))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=600)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"status": [0, 0], "loaded": []}, done.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "sample_slide" / "summary.json").read_text())
    assert summary["scored_by"] == {"runtime": "litert", "file": "model.tflite"}
    assert "scored by LiteRT, model.tflite" in done.stderr
    assert "XNNPACK" not in done.stderr and "cuInit" not in done.stderr


@pytest.mark.skipif(verified_export(REPO / "models" / "cnn-jpeg") is None, reason="models/cnn-jpeg has no export")
def test_the_apps_home_and_classify_pages_open_without_tensorflow_and_score_with_litert(tmp_path):
    code = f"""
import json, sys
from streamlit.testing.v1 import AppTest
loaded = lambda: [m for m in ("tensorflow", "keras") if m in sys.modules]
at = AppTest.from_file({str(REPO / "app.py")!r}, default_timeout=600).run()
home = loaded()
at.switch_page("app_pages/classify.py").run()
classify = loaded()
next(b for b in at.button if b.label == "Try the sample patches").click().run()
print(json.dumps({{"errors": [e.value for e in at.exception], "loaded": [home, classify],
                   "predictions": any(h.value == "Predictions" for h in at.subheader),
                   "card": " ".join(m.value for m in at.sidebar.markdown)}}))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "IDC_MODELS_DIR": str(REPO / "models")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=900)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == [] and result["predictions"], done.stderr[-2000:]
    assert result["loaded"] == [[], []]  # the Grad-CAM of the selected patch, drawn after the table, needs Keras
    assert "**Scored by** LiteRT, `model.tflite`" in result["card"]
