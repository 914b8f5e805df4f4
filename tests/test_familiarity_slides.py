"""The familiarity check with real models: the features, the shipped default's fitted file on real unfamiliar
images (tests/data/familiarity: lung H&E, kidney IHC) and on the bundled breast samples, the slide outputs and
the command's warning line, and an old model folder without the file."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import ASSETS, REPO
from PIL import Image

from idc_core.cli.slide import main as slide_main
from idc_core.config import ModelConfig
from idc_core.errors import ModelError
from idc_core.inference.familiarity import check_image, model_features
from idc_core.model.features import patch_features, penultimate_layer
from idc_core.model.folder import load_model_dir
from idc_core.stats.familiarity import FAMILIARITY_FILE, UNFAMILIAR_WORDS
from idc_core.workflows.slide_analysis import read_scaled_slide

pytestmark = pytest.mark.usefixtures("shipped_models_loaded_once")  # each models/ folder loaded once: conftest
FIXTURES = REPO / "tests" / "data" / "familiarity"
DEFAULT = REPO / "models" / (REPO / "models" / "DEFAULT").read_text().strip()
UNFAMILIAR = sorted(FIXTURES.glob("*.png"))


@pytest.fixture(scope="module")
def shipped():
    return load_model_dir(DEFAULT)


def _check(loaded, path: Path):
    image = read_scaled_slide(path, model_mpp=loaded.config.mpp).image
    return check_image(loaded.model, image, loaded.familiarity)


def test_the_penultimate_features_are_the_pool_of_a_gap_model_and_the_dense_input_of_a_flatten_one(shipped):
    assert penultimate_layer(shipped.model) == "head_pool"
    assert penultimate_layer(load_model_dir(REPO / "models" / "cnn").model) == "head_dropout"
    patches = np.random.default_rng(0).integers(0, 256, (5, 50, 50, 3), dtype=np.uint8)
    together = patch_features(shipped.model, patches)
    assert together.shape == (5, 128) and together.dtype == np.float32
    alone = np.concatenate([patch_features(shipped.model, patches[i:i + 1], batch_size=4) for i in range(5)])
    np.testing.assert_allclose(alone, together, rtol=1e-4, atol=1e-5)  # batch and padding do not change them
    with pytest.raises(ValueError, match="no layer 'nope'"):
        patch_features(shipped.model, patches, layer="nope")


def test_the_shipped_defaults_litert_export_outputs_the_checks_features_so_it_needs_no_tensorflow(shipped):
    assert shipped.scorer.runtime == "litert" and shipped.scorer.feature_layer == shipped.familiarity.layer
    patches = np.stack([np.asarray(Image.open(p).convert("RGB"))
                        for p in sorted((ASSETS / "patches").glob("*.png"))[:16]])
    from_export = model_features(shipped.scorer, patches, layer=shipped.familiarity.layer)
    from_keras = patch_features(shipped.model, patches, layer=shipped.familiarity.layer)
    assert from_export.shape == (16, shipped.familiarity.width)
    np.testing.assert_allclose(from_export, from_keras, rtol=1e-4, atol=1e-4)  # float32 export vs Keras: ~1e-5


def test_the_shipped_default_has_its_check_with_the_rule_and_rates_on_its_card(shipped):
    fitted = shipped.familiarity
    assert fitted is not None and shipped.config.familiarity == FAMILIARITY_FILE
    assert fitted.layer == "block1_pool+block2_pool+head_pool" and fitted.width == 32 + 64 + 128
    assert "at most 2%" in fitted.rule
    val = [fitted.rates[f"val_{kind}"] for kind in ("patients", "slides")]
    assert sum(r["flagged"] for r in val) <= 0.02 * sum(r["units"] for r in val)


@pytest.mark.parametrize("path", UNFAMILIAR, ids=lambda p: p.name)
def test_the_shipped_default_flags_lung_and_kidney_ihc(shipped, path):
    check = _check(shipped, path)
    assert check.familiar is False, check
    assert check.score > check.threshold


@pytest.mark.parametrize("path", [ASSETS / "sample_slide.png", *sorted(ASSETS.glob("sample_patient_*.zip"))],
                         ids=lambda p: p.name)
def test_the_shipped_default_finds_the_bundled_breast_samples_familiar(shipped, path):
    check = _check(shipped, path)
    assert check.familiar is True, check
    assert check.tiles > 100


def test_a_flagged_slide_is_said_so_in_its_outputs_and_on_the_command_line(tmp_path, capsys):
    lung = tmp_path / "lung.png"
    shutil.copy(FIXTURES / "tcga-lung-crop.png", lung)
    shutil.copy(ASSETS / "sample_slide.png", tmp_path / "breast.png")
    assert slide_main([str(lung), str(tmp_path / "breast.png"), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert f"warning: lung.png: unfamiliar: {UNFAMILIAR_WORDS}" in err
    assert "breast.png: unfamiliar" not in err
    flagged = json.loads((tmp_path / "out" / "lung" / "summary.json").read_text())
    assert flagged["familiar"] is False and flagged["familiarity_score"] > flagged["familiarity_threshold"]
    assert any(w.startswith("unfamiliar:") for w in flagged["warnings"])
    assert flagged["tissue_tiles"] > 0  # its tiles are still scored and written
    fine = json.loads((tmp_path / "out" / "breast" / "summary.json").read_text())
    assert fine["familiar"] is True and fine["familiarity_score"] <= fine["familiarity_threshold"]
    with open(tmp_path / "out" / "slides.csv", newline="") as handle:
        rows = {Path(r["slide"]).stem: r for r in csv.DictReader(handle)}
    assert rows["lung"]["familiar"] == "False" and rows["breast"]["familiar"] == "True"
    assert float(rows["lung"]["familiarity_score"]) == pytest.approx(flagged["familiarity_score"], rel=1e-6)


def _copy_model(tmp_path: Path, **changes) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(DEFAULT, folder)
    config = ModelConfig.load(folder / "config.json")
    dataclasses.replace(config, **changes).save(folder / "config.json")
    return folder


def test_an_old_model_folder_without_the_check_works_and_says_it_is_unavailable(tmp_path, capsys):
    folder = _copy_model(tmp_path, familiarity="")
    (folder / FAMILIARITY_FILE).unlink()
    data = json.loads((folder / "config.json").read_text())
    del data["familiarity"]  # as a folder saved before the field existed
    (folder / "config.json").write_text(json.dumps(data))
    assert load_model_dir(folder).familiarity is None
    shutil.copy(FIXTURES / "tcga-lung-crop.png", tmp_path / "lung.png")
    assert slide_main([str(tmp_path / "lung.png"), "--out", str(tmp_path / "out"), "--model", str(folder)]) == 0
    summary = json.loads((tmp_path / "out" / "lung" / "summary.json").read_text())
    assert summary["familiar"] is None and summary["familiarity_score"] is None
    assert "no familiarity check" in summary["familiarity_note"]
    assert "unfamiliar" not in capsys.readouterr().err


def test_a_corrupt_or_mismatched_file_stops_the_model_with_one_line(tmp_path):
    folder = _copy_model(tmp_path)
    (folder / FAMILIARITY_FILE).write_text('{"layer": "head_pool"')
    with pytest.raises(ModelError, match="is not a valid familiarity check") as caught:
        load_model_dir(folder)
    assert "\n" not in str(caught.value)
    data = json.loads((DEFAULT / FAMILIARITY_FILE).read_text())
    (folder / FAMILIARITY_FILE).write_text(json.dumps({**data, "model_sha256": "0" * 64}))
    with pytest.raises(ModelError, match="fitted for another model.keras.*idc familiarity"):
        load_model_dir(folder)
    assert load_model_dir(folder, familiarity=False).familiarity is None  # to fit it again


def test_the_command_fits_the_check_on_training_patients_and_names_it_in_the_config(tmp_path, small_data, capsys):
    from app_support import make_tiny_models_root

    from idc_core.cli.familiarity import main as familiarity_main

    folder = make_tiny_models_root(tmp_path) / "tiny"
    assert familiarity_main(["--model", str(folder), "--data", str(small_data), "--max-flagged", "0"]) == 0
    out = capsys.readouterr().out
    assert "familiarity check written" in out and "val patients: 0 of 1 flagged" in out
    loaded = load_model_dir(folder)
    assert loaded.config.familiarity == FAMILIARITY_FILE and loaded.familiarity is not None
    assert loaded.familiarity.layer == "head_dropout"  # the tiny cnn has a flatten head: the last Dense's input
    assert loaded.familiarity.notes["fitted_on_tiles"] > 0
    assert familiarity_main(["--model", str(folder), "--data", str(tmp_path / "missing")]) == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("error: ") and "no such folder or zip file" in last
