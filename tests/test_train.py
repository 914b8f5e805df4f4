"""A tiny real training run: one epoch on real patches, saved, reloaded and evaluated."""

import contextlib
import io
import json

import pytest

from idc_core.cli.evaluate import main as evaluate_main
from idc_core.cli.train import main as train_main
from idc_core.cli.train import parse_args
from idc_core.config import TrainConfig
from idc_core.model.folder import load_model_dir
from idc_core.workflows.evaluate import evaluate_model, format_report
from idc_core.workflows.train import train


@pytest.fixture(scope="module")
def trained_run(small_data, tmp_path_factory):
    """One training for the whole module: its folder, what it said through log and progress, and what it printed."""
    out = tmp_path_factory.mktemp("models") / "tiny"
    config = TrainConfig(
        arch="cnn", data=str(small_data), out=str(out), fractions=(0.5, 0.25, 0.25),
        epochs=1, batch_size=16, cache_dir=None, seed=1,
    )
    messages, steps, printed = [], [], io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        folder = train(config, command="test", verbose=0, log=messages.append,
                       progress=lambda d, n: steps.append((d, n)))
    return folder, messages, steps, printed.getvalue()


@pytest.fixture(scope="module")
def trained(trained_run):
    return trained_run[0]


def test_training_writes_a_complete_model_folder(trained):
    for name in ("model.keras", "config.json", "metrics.json", "history.json"):
        assert (trained / name).is_file(), name
    assert not (trained / "checkpoint.keras").exists()
    history = json.loads((trained / "history.json").read_text())
    assert {"loss", "val_loss", "auc", "val_auc", "accuracy"} <= set(history)
    assert len(history["loss"]) == 1


def test_training_ends_calibrated_with_an_uncertainty_measure_chosen_on_validation(trained):
    from idc_core.model.builders import ProbabilityCalibration
    from idc_core.model.folder import load_model_dir

    loaded = load_model_dir(trained)
    assert isinstance(loaded.model.layers[-1], ProbabilityCalibration)
    assert loaded.config.calibration["method"] == loaded.model.layers[-1].method
    assert loaded.config.uncertainty is not None
    candidates = loaded.config.uncertainty.candidates
    assert loaded.config.uncertainty.method == max(candidates, key=candidates.get)
    metrics = loaded.metrics
    assert {"calibration", "calibration_before", "uncertainty", "scores"} <= set(metrics)
    assert len(metrics["scores"]["prob"]) == metrics["n_patches"]


def test_config_records_a_patient_split_without_overlap(trained):
    config = json.loads((trained / "config.json").read_text())
    parts = config["split_patients"]
    assert all(parts[k] for k in ("train", "val", "test"))
    assert not set(parts["train"]) & set(parts["test"])
    assert not set(parts["train"]) & set(parts["val"])
    assert config["data_summary"]["patches"] == 61
    assert config["train"]["split"] == "patient"
    assert 0.0 <= config["threshold"] <= 1.0


def test_metrics_come_from_test_patients_only(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    config = json.loads((trained / "config.json").read_text())
    test_patients = set(config["split_patients"]["test"])
    assert {row["patient"] for row in metrics["per_patient"]} == test_patients
    assert metrics["n_patches"] == sum(row["patches"] for row in metrics["per_patient"])
    assert "none used for training" in metrics["evaluated_on"]


def test_reloaded_model_evaluates_on_any_folder(trained, small_data):
    loaded = load_model_dir(trained)
    report = evaluate_model(loaded, small_data)
    assert report["n_patches"] == 61
    seen = report["data"]["patients_seen_in_training_or_validation"]
    assert len(seen) >= 2  # the whole folder includes the training patients, and the report says so
    assert "WARNING" in format_report(report)
    held_out = evaluate_model(loaded, small_data, split="test")
    assert held_out["data"]["patients_seen_in_training_or_validation"] == []
    stored = json.loads((trained / "metrics.json").read_text())
    assert held_out["n_patches"] == stored["n_patches"]
    assert held_out["accuracy"] == pytest.approx(stored["accuracy"], abs=1e-6)


def test_evaluate_cli_writes_a_report(trained, small_data, tmp_path, capsys):
    out = tmp_path / "report.json"
    code = evaluate_main(["--model", str(trained), "--data", str(small_data), "--out", str(out)])
    assert code == 0
    assert "balanced_accuracy" in capsys.readouterr().out
    assert json.loads(out.read_text())["n_patches"] == 61


def test_evaluate_cli_reports_a_missing_model_in_one_line(tmp_path, small_data, capsys):
    code = evaluate_main(["--model", str(tmp_path / "nope"), "--data", str(small_data)])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_train_cli_refuses_bad_data_with_a_message(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert train_main(["--data", str(tmp_path / "empty"), "--epochs", "1"]) == 1
    assert "error:" in capsys.readouterr().err


def test_parse_args_maps_options_onto_the_config():
    config = parse_args(["--data", "d", "--arch", "resnet50", "--weights", "none", "--split", "patch",
                         "--imbalance", "oversample", "--no-augment"])
    assert config.weights is None and config.split == "patch" and config.imbalance == "oversample"
    assert config.augment is False and config.out == "models/resnet50"
    assert (config.width, config.block_dropout) == (1.0, 0.25)
    wide = parse_args(["--data", "d", "--width", "1.5", "--block-dropout", "0.1", "--head-dropout", "0"])
    assert (wide.arch, wide.width, wide.block_dropout, wide.head_dropout) == ("cnn", 1.5, 0.1, 0.0)
    assert config.head_dropout == TrainConfig.from_dict({"arch": "cnn"}).head_dropout == 0.5  # as before the option
    recipe = parse_args(["--data", "d", "--head", "gap", "--convs-per-block", "2", "--dense-units", "64",
                         "--augment-mode", "hed", "--test-patients-from", "m/config.json"])
    assert (recipe.head, recipe.convs_per_block, recipe.dense_units) == ("gap", 2, 64)
    assert (recipe.augment_mode, recipe.test_patients_from) == ("hed", "m/config.json")


def test_training_keeps_the_test_patients_of_another_model(trained, small_data, tmp_path):
    first = load_model_dir(trained).config
    config = TrainConfig(
        arch="cnn", data=str(small_data), out=str(tmp_path / "again"), fractions=(0.5, 0.25, 0.25),
        epochs=1, batch_size=16, cache_dir=None, seed=5, head="gap", augment_mode="hed",
        test_patients_from=str(trained / "config.json"), calibration="none",  # the split is checked, not calibration
    )
    second = load_model_dir(train(config, command="test", verbose=0)).config
    assert second.split_patients["test"] == first.split_patients["test"]
    assert second.train["head"] == "gap" and second.train["augment_mode"] == "hed"



def test_transfer_model_trains_in_two_stages(small_data, tmp_path):
    config = TrainConfig(
        arch="mobilenetv2", data=str(small_data), out=str(tmp_path / "mnv2"), fractions=(0.5, 0.25, 0.25),
        epochs=1, fine_tune_epochs=1, batch_size=32, cache_dir=None, seed=1,
        calibration="none",  # the two stages are checked here; calibration is, on the cnn, in the tests above
        augment=False,  # and so is augmentation (its tf.data graph traced here too would only add time)
    )
    out = train(config, verbose=0)
    history = json.loads((out / "history.json").read_text())
    assert len(history["loss"]) == 2  # one epoch head-only, one epoch fine-tuning
    assert load_model_dir(out).config.arch == "mobilenetv2"


def test_train_cli_without_imagenet_weights_says_what_to_do(small_data, tmp_path, capsys, monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(keras.src.utils.file_utils, "get_file", offline)
    code = train_main(["--data", str(small_data), "--arch", "resnet50", "--weights", "imagenet",
                       "--out", str(tmp_path / "r"), "--epochs", "1", "--cache-dir", ""])
    err = capsys.readouterr().err
    assert code == 1
    assert "--weights" in err and "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in err


def test_batchnorm_recalibration_matches_the_statistics_of_clean_patches():
    import keras
    import numpy as np

    from idc_core.model.builders import build_model
    from idc_core.workflows.train import recalibrate_batchnorm

    model = build_model("cnn", seed=0)
    patches = np.random.default_rng(0).integers(0, 256, (64, 50, 50, 3), dtype=np.uint8)
    bn = model.get_layer("block2_bn")
    before = bn.moving_variance.numpy().copy()
    recalibrate_batchnorm(model, patches, batch_size=16)
    inputs = keras.Model(model.inputs, bn.input)(patches.astype("float32"), training=False).numpy()
    flat = inputs.reshape(-1, inputs.shape[-1])
    assert np.allclose(bn.moving_mean.numpy(), flat.mean(0), atol=1e-4)
    assert np.allclose(bn.moving_variance.numpy(), flat.var(0), rtol=1e-3, atol=1e-6)
    assert not np.allclose(before, bn.moving_variance.numpy())


def test_the_library_reports_through_callbacks_and_prints_nothing(trained_run):
    _, messages, steps, printed = trained_run  # the module's one training, run with both callbacks
    assert messages[0].startswith("data: ") and any(m.startswith("calibration: ") for m in messages)
    assert "wrote " in messages[-1] and "balanced_accuracy" in messages[-1]
    assert steps and steps[-1][0] == steps[-1][1] == 61
    assert "data: " not in printed  # the command line prints; the library does not
