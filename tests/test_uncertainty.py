"""Per-patch uncertainty: Monte-Carlo dropout leaves the model alone and is batched, TTA views, the referral curve,
and the --uncertainty options of predict and evaluate."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from idc_core.cli import evaluate, predict
from idc_core.config import ModelConfig, UncertaintySettings
from idc_core.inference import uncertainty
from idc_core.inference.predict import predict_patches
from idc_core.inference.tiles import predict_slide
from idc_core.inference.uncertainty import dihedral_views, predict_with_uncertainty
from idc_core.model.builders import build_model
from idc_core.model.folder import save_model_dir
from idc_core.stats.metrics import confidence_uncertainty, referral_curve, threshold_metrics


@pytest.fixture(scope="module")
def model():
    return build_model("cnn", seed=7, width=0.25)


@pytest.fixture(scope="module")
def patches() -> np.ndarray:
    return np.random.default_rng(8).integers(0, 256, (20, 50, 50, 3), dtype=np.uint8)


def _bn_statistics(model) -> list[np.ndarray]:
    return [w.numpy().copy() for w in model.weights if "moving" in w.path]


def test_mc_dropout_varies_reports_the_plain_score_and_leaves_batch_norm_statistics_alone(model, patches):
    before, plain = _bn_statistics(model), predict_patches(model, patches)
    assert before  # the cnn has batch normalisation
    measured = predict_with_uncertainty(model, patches, method="mc", samples=8)
    np.testing.assert_array_equal(measured.prob, plain)
    assert np.all(measured.logit_std > 0)  # dropout is really active in the passes
    assert np.all((measured.uncertainty > 0) & (measured.uncertainty <= 1))
    for a, b in zip(before, _bn_statistics(model)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(predict_patches(model, patches), plain)  # the shared model still deterministic


def test_mc_dropout_is_one_forward_pass_per_chunk_of_copies(model, patches, monkeypatch):
    calls = []
    real = uncertainty.predict_patches
    monkeypatch.setattr(uncertainty, "predict_patches",
                        lambda m, x, **kw: calls.append(len(x)) or real(m, x, **kw))
    predict_with_uncertainty(model, patches[:8], method="mc", samples=8, batch_size=64)
    assert calls == [8, 64]  # the plain pass, then 8 copies of the 8 patches in one call, not 8 calls


def test_tta_views_are_the_eight_dihedral_ones_and_a_symmetric_patch_has_no_spread(model):
    patch = np.random.default_rng(9).integers(0, 256, (1, 50, 50, 3), dtype=np.uint8)
    views = dihedral_views(patch)
    assert views.shape == (8, 1, 50, 50, 3)
    np.testing.assert_array_equal(views[0], patch)
    assert len({v.tobytes() for v in views}) == 8
    flat = np.full((3, 50, 50, 3), 200, dtype=np.uint8)
    measured = predict_with_uncertainty(model, flat, method="tta")
    np.testing.assert_allclose(measured.logit_std, 0.0, atol=1e-5)


def test_decision_uncertainty_is_one_at_the_threshold_and_falls_with_distance_and_certainty():
    from idc_core.inference.uncertainty import decision_uncertainty
    from idc_core.stats.calibration import logit

    at = logit([0.3])[0]
    u = decision_uncertainty(np.array([at, at + 1, at + 1, at - 4]), np.array([0.5, 0.5, 2.0, 0.5]), 0.3)
    assert u[0] == pytest.approx(1.0, abs=1e-5)
    assert u[1] < u[2]  # the same distance with a wider spread is less certain
    assert u[3] < u[1]  # farther from the threshold is more certain


def test_confidence_ranks_like_the_distance_to_the_threshold():
    p = np.array([0.1, 0.45, 0.5, 0.9, 0.3])
    u = confidence_uncertainty(p, 0.4)
    assert np.argsort(u).tolist() == np.argsort(-np.abs(p - 0.4)).tolist()
    assert u.max() <= 1.0 and u[np.argmin(np.abs(p - 0.4))] == u.max()


def test_referral_curve_starts_at_the_plain_balanced_accuracy_and_drops_the_most_uncertain():
    rng = np.random.default_rng(10)
    y = rng.integers(0, 2, 400)
    p = np.clip(y * 0.3 + rng.random(400) * 0.7, 0, 1)
    wrong = ((p >= 0.5) != y).astype(float)  # an oracle uncertainty: high exactly where the model is wrong
    curve = referral_curve(y, p, wrong + rng.random(400) * 0.01, 0.5)
    assert curve["balanced_accuracy"][0] == threshold_metrics(y, p, 0.5)["balanced_accuracy"]
    assert curve["kept"][0] == 400 and curve["kept"][-1] == 200 and curve["referred"][-1] == 0.5
    assert curve["balanced_accuracy"][-1] > curve["balanced_accuracy"][0]
    with pytest.raises(ValueError, match="one finite uncertainty per patch"):
        referral_curve(y, p, wrong[:10], 0.5)


def test_mc_needs_dropout_and_the_keras_model():
    import keras

    inputs = keras.Input((50, 50, 3))
    plain = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="no dropout layer"):
        predict_with_uncertainty(plain, np.zeros((2, 50, 50, 3), np.uint8), method="mc")


def test_slide_tiles_carry_uncertainty_off_tissue_none_and_the_uncertain_share(model):
    image = np.full((100, 150, 3), 255, dtype=np.uint8)
    image[:, :100] = np.random.default_rng(11).integers(0, 256, (100, 100, 3), dtype=np.uint8) // 2 + [90, 20, 90]
    settings = UncertaintySettings(method="tta", uncertain_above=-1.0)
    result = predict_slide(model, image, threshold=0.5, uncertainty=settings)
    assert result.uncertainty is not None
    assert np.isnan(result.uncertainty[~result.tissue]).all() and np.isfinite(result.uncertainty[result.tissue]).all()
    assert result.uncertain_fraction == 1.0  # every tissue tile is above a cut of -1
    rows = result.to_rows()
    assert all((row["uncertainty"] is None) == (not row["tissue"]) for row in rows)


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory, small_data):
    from idc_core.data.dataset import scan_dataset

    patients = sorted({r.patient for r in scan_dataset(small_data).records})
    config = ModelConfig(name="m", arch="cnn", threshold=0.5, split_patients={"test": patients},
                         uncertainty=UncertaintySettings(method="mc", samples=4, uncertain_above=0.01))
    return save_model_dir(tmp_path_factory.mktemp("unc") / "m", model, config)


def test_predict_cli_adds_the_uncertainty_columns(model_dir, small_data, capsys):
    code = predict.main([str(small_data), "--model", str(model_dir), "--uncertainty"])
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert code == 0 and rows
    assert list(rows[0])[:5] == ["file", "prob_idc", "label", "uncertainty", "uncertain"]
    assert all(float(r["uncertainty"]) >= 0 and r["uncertain"] in ("0", "1") for r in rows)
    assert predict.main([str(small_data), "--model", str(model_dir), "--uncertainty", "--lite"]) == 2
    assert "no verified TFLite export" in capsys.readouterr().err


def test_evaluate_reports_the_referral_curve_of_the_models_method_and_of_plain_confidence(model_dir, small_data,
                                                                                         tmp_path):
    out = tmp_path / "report.json"
    assert evaluate.main(["--model", str(model_dir), "--data", str(small_data), "--split", "test",
                          "--uncertainty", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    u = report["uncertainty"]
    assert u["method"] == "mc" and 0 <= u["uncertain_share"] <= 1
    assert u["referral_curve"]["balanced_accuracy"][0] == report["balanced_accuracy"]
    assert u["referral_curve_confidence"]["balanced_accuracy"][0] == report["balanced_accuracy"]
    assert report["calibration"]["ece_bins"] == 10
