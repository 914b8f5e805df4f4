"""The TFLite export run by LiteRT as a scorer: export records, load_model_dir's choice, predict_patches, and
--runtime / --lite in the predict and evaluate CLIs."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from idc_core.cli import evaluate, predict
from idc_core.config import ModelConfig
from idc_core.errors import ModelError
from idc_core.inference.predict import predict_patches
from idc_core.model.builders import build_model
from idc_core.model.folder import load_model_dir, save_model_dir
from idc_core.model.lite import REPORT_FILE, LiteScorer, read_exports, verified_export
from idc_core.workflows.evaluate import evaluate_model
from idc_core.workflows.export import export_model_dir


@pytest.fixture(scope="module")
def patches() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (9, 50, 50, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, patches):
    """A model folder with its float32 TFLite export (exact, so labels can be compared one to one)."""
    model = build_model("cnn", seed=1)
    folder = save_model_dir(tmp_path_factory.mktemp("lite") / "m", model,
                            ModelConfig(name="m", arch="cnn", threshold=0.5))
    out, _ = export_model_dir(folder, quantize="none", check=patches)
    assert out is not None
    return folder


def test_a_folder_with_a_verified_export_is_scored_by_litert(exported, patches):
    loaded = load_model_dir(exported)
    assert isinstance(loaded.scorer, LiteScorer) and loaded.scored_by == {"runtime": "litert", "file": "model.tflite"}
    assert loaded.runtime_note == "" and read_exports(exported)[0]["n"] == 9
    done = []
    probs = predict_patches(loaded.scorer, patches, batch_size=4, progress=lambda d, n: done.append((d, n)))
    keras_probs = predict_patches(load_model_dir(exported, runtime="keras").scorer, patches)
    np.testing.assert_allclose(probs, keras_probs, atol=1e-5)
    assert done == [(4, 9), (8, 9), (9, 9)]


def test_a_folder_without_export_says_how_to_make_one_without_naming_an_exception(tmp_path):
    folder = save_model_dir(tmp_path / "m", build_model("cnn", seed=0), ModelConfig(name="m", arch="cnn"))
    assert verified_export(folder) is None
    with pytest.raises(ModelError, match=r"no verified TFLite export.*idc export --model") as caught:
        load_model_dir(folder, runtime="litert")
    assert "Error" not in str(caught.value)
    loaded = load_model_dir(folder)  # auto: Keras, saying why in one line
    assert loaded.scorer.runtime == "keras" and "no verified TFLite export: scored by Keras" in loaded.runtime_note


def test_an_export_report_pointing_outside_the_folder_is_not_used(exported, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / REPORT_FILE).write_text(json.dumps({"file": "../../etc/passwd"}))
    assert verified_export(folder) is None
    (folder / REPORT_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="not a valid export record"):
        verified_export(folder)


def test_predict_cli_lite_scores_like_keras(exported, small_data, capsys):
    inputs = [str(small_data / "10253" / "1")]
    assert predict.main(["--model", str(exported), "--runtime", "keras", *inputs]) == 0
    captured = capsys.readouterr()
    keras_rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert "scored by Keras, model.keras" in captured.err
    assert predict.main(["--model", str(exported), "--lite", *inputs]) == 0
    captured = capsys.readouterr()
    lite_rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert "scored by LiteRT, model.tflite" in captured.err and len(lite_rows) == len(keras_rows) == 3
    for k, li in zip(keras_rows, lite_rows):
        assert k["file"] == li["file"] and k["label"] == li["label"]
        assert float(k["prob_idc"]) == pytest.approx(float(li["prob_idc"]), abs=1e-5)


def test_lite_without_an_export_is_one_error_line_and_exit_2(tmp_path, small_data, capsys):
    folder = save_model_dir(tmp_path / "m", build_model("cnn", seed=0), ModelConfig(name="m", arch="cnn"))
    assert predict.main(["--model", str(folder), "--lite", str(small_data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "idc export --model" in err[0]
    assert "FileNotFoundError" not in err[0]


def test_evaluate_cli_lite_reports_what_scored(exported, small_data, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert evaluate.main(["--model", str(exported), "--data", str(small_data), "--out", str(out)]) == 0
    assert "scored by LiteRT (model.tflite)" in capsys.readouterr().out
    lite_report = json.loads(out.read_text())
    keras_report = evaluate_model(load_model_dir(exported, runtime="keras"), small_data)
    assert lite_report["model"]["scored_by"] == {"runtime": "litert", "file": "model.tflite"}
    assert keras_report["model"]["scored_by"] == {"runtime": "keras", "file": "model.keras"}
    assert lite_report["confusion_matrix"] == keras_report["confusion_matrix"]
    assert lite_report["roc_auc"] == pytest.approx(keras_report["roc_auc"], abs=1e-4)
