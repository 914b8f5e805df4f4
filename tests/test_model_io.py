"""Tests of idc_core.model.folder: saving, loading and rejecting broken model folders."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from idc_core.config import ModelConfig, UncertaintySettings
from idc_core.errors import ModelError
from idc_core.model.builders import build_model
from idc_core.model.folder import (
    default_model_dir,
    list_model_dirs,
    load_model_dir,
    read_model_card,
    save_model_dir,
)

METRICS = {"test": {"auc": 0.9}}
HISTORY = {"loss": [0.7, 0.5]}


@pytest.fixture(scope="module")
def cnn() -> keras.Model:
    return build_model("cnn", seed=0)


@pytest.fixture(scope="module")
def saved(cnn, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "tiny"
    config = ModelConfig(name="tiny", arch="cnn", threshold=0.4)
    return save_model_dir(out, cnn, config, history=HISTORY, metrics=METRICS)


@pytest.fixture()
def copy(saved, tmp_path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "copy"))


def test_saved_folder_round_trips_model_config_metrics_and_history(cnn, saved) -> None:
    assert sorted(p.name for p in saved.iterdir()) == [
        "config.json", "history.json", "metrics.json", "model.keras"
    ]
    loaded = load_model_dir(saved)
    x = np.random.default_rng(1).integers(0, 256, (3, 50, 50, 3)).astype("float32")
    np.testing.assert_allclose(loaded.model(x).numpy(), cnn(x).numpy(), atol=1e-6)
    assert loaded.config == ModelConfig(name="tiny", arch="cnn", threshold=0.4)
    assert (loaded.metrics, loaded.history, loaded.path) == (METRICS, HISTORY, saved)


def test_optional_metrics_and_history_are_none_when_absent(copy) -> None:
    (copy / "metrics.json").unlink()
    (copy / "history.json").unlink()
    loaded = load_model_dir(copy)
    assert loaded.metrics is None and loaded.history is None


def test_save_refuses_a_config_for_another_architecture(cnn, tmp_path) -> None:
    with pytest.raises(ValueError, match="config.arch 'resnet50' does not match model.name 'cnn'"):
        save_model_dir(tmp_path, cnn, ModelConfig(name="x", arch="resnet50"))


def test_missing_folder_is_a_model_error(tmp_path) -> None:
    with pytest.raises(ModelError, match=f"model folder '{tmp_path / 'nope'}' does not exist"):
        load_model_dir(tmp_path / "nope")


def test_missing_model_file_is_a_model_error(copy) -> None:
    (copy / "model.keras").unlink()
    with pytest.raises(ModelError, match="has no model.keras"):
        load_model_dir(copy)


def test_missing_config_is_a_model_error(copy) -> None:
    (copy / "config.json").unlink()
    with pytest.raises(ModelError, match="has no config.json"):
        load_model_dir(copy)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object, got list"),
        ('{"arch": "cnn"}', "is not a valid model config"),
        ('{"name": "x", "arch": "cnn", "threshold": 3}', '"threshold" must be in'),
    ],
)
def test_invalid_config_is_a_model_error(copy, text, message) -> None:
    (copy / "config.json").write_text(text)
    with pytest.raises(ModelError, match=message):
        load_model_dir(copy)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": None}, '"name" is missing'),
        ({"mpp": "abc"}, '"mpp" must be a number, got "abc"'),
        ({"threshold": True}, '"threshold" must be a number, got true'),
        ({"input_shape": [50, 50]}, r'"input_shape" must be a list of 3 integers, got \[50, 50\]'),
        ({"split_patients": {"test": "p1"}}, '"split_patients.test" must be a list, got "p1"'),
        ({"split_patients": {"test": [1]}}, r'"split_patients.test\[0\]" must be a string, got 1'),
        ({"uncertainty": {"method": "mc", "uncertain_above": "high"}},
         '"uncertainty.uncertain_above" must be a number, got "high"'),
        ({"uncertainty": {"method": "dropout"}}, '"uncertainty.method" must be one of'),
        ({"uncertainty": [1]}, r'"uncertainty" must be an object, got \[1\]'),
    ],
)
def test_config_json_is_checked_against_the_model_config_and_the_message_names_the_field(copy, fields, message):
    config = {"name": "x", "arch": "cnn", **fields}
    (copy / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    with pytest.raises(ModelError, match=f"config.json' is not a valid model config: {message}"):
        read_model_card(copy)


def test_an_old_config_without_uncertainty_settings_loads_and_the_shipped_ones_round_trip_byte_for_byte(copy):
    (copy / "config.json").write_text('{"name": "x", "arch": "cnn", "uncertainty": {}}')
    assert load_model_dir(copy).config.uncertainty is None
    shipped = sorted(Path(__file__).resolve().parents[1].glob("models/*/config.json"))
    for path in shipped:
        text = path.read_text()
        config = ModelConfig.from_dict(json.loads(text))
        assert isinstance(config.uncertainty, UncertaintySettings), path
        assert json.dumps(config.to_dict(), indent=2) + "\n" == text, path


@pytest.mark.parametrize("damage", ["random bytes", "truncated", "empty"])
def test_corrupt_model_file_is_a_model_error(copy, damage) -> None:
    path = copy / "model.keras"
    data = path.read_bytes()
    broken = {
        "random bytes": np.random.default_rng(0).bytes(4096),
        "truncated": data[: len(data) // 2],
        "empty": b"",
    }[damage]
    path.write_bytes(broken)
    with pytest.raises(ModelError, match="model.keras' is corrupt or truncated"):
        load_model_dir(copy)


def test_zip_that_is_not_a_keras_model_is_a_model_error(copy) -> None:
    with zipfile.ZipFile(copy / "model.keras", "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ModelError, match="could not be loaded"):
        load_model_dir(copy)


def test_wrong_input_shape_is_a_model_error(tmp_path) -> None:
    model = build_model("cnn", input_shape=(64, 64, 3))
    save_model_dir(tmp_path, model, ModelConfig(name="big", arch="cnn"))
    with pytest.raises(ModelError, match=r"takes input shape \(64, 64, 3\), expected \(50, 50, 3\)"):
        load_model_dir(tmp_path)


def test_config_arch_that_differs_from_the_model_is_a_model_error(copy) -> None:
    ModelConfig(name="tiny", arch="cancernet").save(copy / "config.json")
    with pytest.raises(ModelError, match="says arch 'cancernet' but model.keras holds model 'cnn'"):
        load_model_dir(copy)


def test_model_card_reads_config_and_metrics_without_the_model(copy) -> None:
    (copy / "model.keras").unlink()
    card = read_model_card(copy)
    assert card["config"]["arch"] == "cnn" and card["config"]["threshold"] == 0.4
    assert card["metrics"] == METRICS


def test_list_model_dirs_finds_folders_with_a_config(saved, tmp_path) -> None:
    shutil.copytree(saved, tmp_path / "b")
    shutil.copytree(saved, tmp_path / "a")
    (tmp_path / "empty").mkdir()
    assert list_model_dirs(tmp_path) == [tmp_path / "a", tmp_path / "b"]
    assert list_model_dirs(tmp_path / "missing") == []


def test_default_model_dir_follows_the_default_file(tmp_path) -> None:
    (tmp_path / "best").mkdir()
    (tmp_path / "DEFAULT").write_text("best\n")
    assert default_model_dir(tmp_path) == tmp_path / "best"


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no default model: no '.*DEFAULT'; pass --model DIR"), ("", "is empty"), ("gone", "names 'gone', but")],
)
def test_default_model_dir_errors_say_what_is_wrong(tmp_path, content, message) -> None:
    if content is not None:
        (tmp_path / "DEFAULT").write_text(content)
    with pytest.raises(ModelError, match=message):
        default_model_dir(tmp_path)



def test_the_context_step_its_config_names_is_loaded_and_a_missing_or_broken_one_is_a_model_error(copy) -> None:
    from idc_core.wsi.context import ContextSettings

    assert load_model_dir(copy).context is None  # a folder without one: tiles alone, as before
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "context": "context.json"}))
    with pytest.raises(ModelError, match="context.json"):
        load_model_dir(copy)
    (copy / "context.json").write_text('{"method": "crf"}')
    with pytest.raises(ModelError, match="context method must be one of"):
        load_model_dir(copy)
    settings = ContextSettings("gaussian", sigma=1.5, threshold=0.3)
    (copy / "context.json").write_text(json.dumps(settings.to_dict()))
    assert load_model_dir(copy).context == settings
