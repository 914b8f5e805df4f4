"""Calibration: the ECE by hand, fits that recover known maps, the calibration layer in model.keras (saved, reloaded
with safe_mode, monotone, exported to TFLite) and the calibrate command on a model folder."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from idc_core.config import ModelConfig
from idc_core.data.dataset import load_labelled, scan_dataset
from idc_core.inference.predict import predict_patches
from idc_core.model.builders import ProbabilityCalibration, build_model, uncalibrated, with_calibration
from idc_core.model.folder import load_model_dir, save_model_dir
from idc_core.stats.calibration import Calibration, fit_calibration, logit
from idc_core.stats.metrics import calibration_report, expected_calibration_error
from idc_core.workflows.calibrate import calibrate_folder, choose_calibration
from idc_core.workflows.export import export_model_dir


def test_ece_matches_a_hand_computed_example():
    # bins [0, .1], (.1, .2], ... : scores 0.05, 0.05 -> bin 0 (rate 0, mean 0.05); 0.62, 0.68 -> bin 6 (rate 0.5,
    # mean 0.65); 0.95 -> bin 9 (rate 1, mean 0.95). ECE = 2/5 * 0.05 + 2/5 * 0.15 + 1/5 * 0.05 = 0.09
    y = [0, 0, 1, 0, 1]
    p = [0.05, 0.05, 0.62, 0.68, 0.95]
    assert expected_calibration_error(y, p) == pytest.approx(0.09)
    report = calibration_report(y, p)
    assert report["ece"] == pytest.approx(0.09)
    assert report["reliability"]["patches"] == [2, 2, 1]
    assert report["reliability"]["idc_rate"] == [0.0, 0.5, 1.0]
    assert report["brier"] == pytest.approx(np.mean((np.array(p) - np.array(y)) ** 2))


def test_a_perfectly_calibrated_score_has_ece_near_zero_and_a_shifted_one_does_not():
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(len(p)) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, np.clip(p + 0.2, 0, 1)) > 0.15


@pytest.mark.parametrize(("method", "scale", "shift"), [("platt", 0.6, -1.2), ("temperature", 0.5, 0.0)])
def test_fits_recover_the_map_that_generated_the_labels(method, scale, shift):
    rng = np.random.default_rng(1)
    raw = 1 / (1 + np.exp(-rng.normal(0, 3, 50_000)))
    y = (rng.random(len(raw)) < Calibration(method, scale, shift).apply(raw)).astype(int)
    fit = fit_calibration(y, raw, method)
    assert fit.scale == pytest.approx(scale, abs=0.03) and fit.shift == pytest.approx(shift, abs=0.05)


def test_auto_keeps_the_lower_validation_log_loss_and_platt_fixes_a_shifted_score():
    rng = np.random.default_rng(2)
    raw = 1 / (1 + np.exp(-rng.normal(0, 2, 20_000)))
    y = (rng.random(len(raw)) < Calibration("platt", 1.0, -1.5).apply(raw)).astype(int)  # class weights' shift
    chosen, candidates = choose_calibration(y, raw)
    assert chosen.method == "platt" and candidates["platt"]["log_loss"] < candidates["temperature"]["log_loss"]
    assert candidates["platt"]["ece"] < 0.02 < expected_calibration_error(y, raw)


@pytest.fixture(scope="module")
def patches() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (64, 50, 50, 3), dtype=np.uint8)


def test_calibration_layer_is_saved_reloaded_with_safe_mode_monotone_and_removable(tmp_path, patches):
    model = build_model("cnn", seed=1, width=0.25)
    raw = predict_patches(model, patches)
    calibrated = with_calibration(model, "platt", 0.7, -0.9)
    assert calibrated.name == model.name and isinstance(calibrated.layers[-1], ProbabilityCalibration)
    calibrated.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    prob = predict_patches(reloaded, patches)
    np.testing.assert_allclose(prob, Calibration("platt", 0.7, -0.9).apply(raw), atol=1e-5)
    assert not np.allclose(prob, raw, atol=1e-3)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(prob[order]) >= -1e-7)  # monotone: the ranking (ROC-AUC) is the raw one
    again = with_calibration(reloaded, "temperature", 2.0, 0.0)  # re-calibrating replaces, never stacks
    assert sum(isinstance(layer, ProbabilityCalibration) for layer in again.layers) == 1
    np.testing.assert_allclose(predict_patches(uncalibrated(again), patches), raw, atol=1e-6)


def test_calibration_layer_refuses_a_map_that_is_not_increasing():
    with pytest.raises(ValueError, match="monotone"):
        ProbabilityCalibration("platt", -1.0, 0.0)


def test_the_tflite_export_outputs_the_calibrated_probability(tmp_path, patches):
    model = with_calibration(build_model("cnn", seed=2, width=0.25), "platt", 1.4, 0.8)
    folder = save_model_dir(tmp_path / "m", model, ModelConfig(name="m", arch="cnn", threshold=0.5))
    written, _ = export_model_dir(folder, quantize="none", check=patches)
    assert written is not None
    lite = load_model_dir(folder, runtime="litert").scorer
    assert lite.runtime == "litert"
    np.testing.assert_allclose(predict_patches(lite, patches), predict_patches(model, patches), atol=1e-5)


def test_a_config_saved_before_calibration_loads_as_uncalibrated(tmp_path):
    data = ModelConfig(name="m", arch="cnn").to_dict()
    del data["calibration"], data["uncertainty"]
    config = ModelConfig.from_dict(data)
    assert config.calibration == {} and config.uncertainty is None


def test_calibrate_folder_fits_on_validation_patients_and_rewrites_the_folder(tmp_path, small_data):
    patients = sorted({r.patient for r in scan_dataset(small_data).records})
    split = {"train": patients[:1], "val": patients[1:4], "test": patients[4:]}
    model = build_model("cnn", seed=4, width=0.25)
    folder = save_model_dir(tmp_path / "m", model, ModelConfig(name="m", arch="cnn", threshold=0.5,
                                                               split_patients=split, context="context.json"))
    (folder / "context.json").write_text(json.dumps({"method": "gaussian", "sigma": 1.0}))
    assert load_model_dir(folder).context is not None
    metrics = calibrate_folder(folder, small_data, log=lambda _m: None)
    loaded = load_model_dir(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["context"] == "" and loaded.context is None  # fitted on the old scores: off until re-fitted
    assert isinstance(loaded.model.layers[-1], ProbabilityCalibration)
    assert config["calibration"]["method"] in ("platt", "temperature")
    candidates = config["uncertainty"]["candidates"]  # auto: every method measured on validation, the best kept
    assert set(candidates) == {"mc", "tta", "confidence"}
    assert config["uncertainty"]["method"] == max(candidates, key=candidates.get)
    assert config["uncertainty"]["uncertain_above"] >= 0 and metrics["uncertainty"]["method"] == max(
        candidates, key=candidates.get)
    assert config["threshold"] == metrics["threshold"] == loaded.config.threshold
    val = load_labelled(small_data, set(split["val"]))
    raw_loss = log_loss(val.labels, np.clip(predict_patches(model, val.patches), 1e-7, 1 - 1e-7), labels=[0, 1])
    chosen = config["calibration"]["candidates"][config["calibration"]["method"]]
    assert chosen["log_loss"] <= raw_loss + 1e-6  # maximum likelihood over a family that holds the identity
    test = load_labelled(small_data, set(split["test"]))
    raw_auc = roc_auc_score(test.labels, predict_patches(model, test.patches))
    # a monotone map keeps the ranking; an untrained model's map is nearly flat, so a few float32 scores tie
    assert metrics["roc_auc"] == pytest.approx(raw_auc, abs=0.01)
    assert set(metrics) >= {"calibration", "calibration_before", "per_patient", "validation"}
    assert all(row["patient"] in split["test"] for row in metrics["per_patient"])
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["calibration"]["ece"] == pytest.approx(metrics["calibration"]["ece"])


def test_log_loss_of_the_fit_never_exceeds_the_raw_one():
    rng = np.random.default_rng(5)
    raw = rng.random(5000)
    y = (rng.random(5000) < 0.3).astype(int)  # scores carry no information: calibration should flatten them
    fit = fit_calibration(y, raw, "platt")
    assert log_loss(y, fit.apply(raw)) <= log_loss(y, raw)
    assert 0 < fit.scale < 0.1 and logit([0.5])[0] == 0.0


def test_a_score_that_ranks_backwards_is_flattened_not_turned_around():
    rng = np.random.default_rng(6)
    raw = rng.random(5000)
    y = (rng.random(5000) < 1 - raw).astype(int)
    for method in ("platt", "temperature"):
        assert fit_calibration(y, raw, method).scale > 0
