"""Tests of idc_core.inference.predict and .tiles: batched patch inference, slide analysis and the CLI."""

from __future__ import annotations

import csv
import gc
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

import idc_core.inference.tiles as tiles
import idc_core.model.scorer as scorer
from idc_core.cli.predict import main
from idc_core.config import ModelConfig
from idc_core.data.image_io import encode_png, read_image
from idc_core.inference.predict import predict_patches
from idc_core.inference.tiles import predict_slide
from idc_core.model.builders import build_model
from idc_core.model.folder import save_model_dir
from idc_core.wsi.result import SlideResult
from idc_core.wsi.tiling import extract_patches

PINK = (200, 80, 160)  # a saturated H&E-like colour: tissue for tissue_mask


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return build_model("cnn", seed=0)


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "tiny"
    return save_model_dir(out, model, ModelConfig(name="tiny", arch="cnn", threshold=0.5))


def _patches(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 50, 50, 3), dtype=np.uint8)


def test_predict_patches_equals_calling_the_model_and_reports_progress(model) -> None:
    patches = _patches(11)
    calls = []
    probs = predict_patches(model, patches, batch_size=4, progress=lambda d, t: calls.append((d, t)))
    expected = model(patches.astype("float32"), training=False).numpy().ravel()
    assert probs.dtype == np.float32 and probs.shape == (11,)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert calls == [(4, 11), (8, 11), (11, 11)]


def test_predict_patches_traces_once_for_inputs_of_several_sizes() -> None:
    tiny = build_model("cnn")
    for n in (5, 9, 13):
        predict_patches(tiny, _patches(n), batch_size=4)
    assert scorer._WRAPPED[id(tiny)]._function(False).experimental_get_tracing_count() == 1


def test_small_input_is_padded_to_a_power_of_two_not_to_the_batch_size() -> None:
    assert [scorer.batch_rows(n, 256) for n in (1, 2, 3, 5, 200, 256, 1000)] == [
        1, 2, 4, 8, 256, 256, 256
    ]


def test_compiled_function_is_dropped_with_its_model() -> None:
    tiny = build_model("cnn")
    predict_patches(tiny, _patches(2))
    key = id(tiny)
    assert key in scorer._WRAPPED
    del tiny
    gc.collect()
    assert key not in scorer._WRAPPED


def test_predict_patches_of_nothing_is_empty(model) -> None:
    assert predict_patches(model, np.zeros((0, 50, 50, 3), np.uint8)).shape == (0,)


@pytest.mark.parametrize(
    ("patches", "message"),
    [
        (np.zeros((2, 50, 40, 3), np.uint8), r"must be an array \(N, 50, 50, 3\), got \(2, 50, 40, 3\)"),
        (np.zeros((2, 50, 50, 3), np.float32), "patches must be uint8"),
    ],
)
def test_predict_patches_rejects_wrong_arrays(model, patches, message) -> None:
    with pytest.raises(ValueError, match=message):
        predict_patches(model, patches)


def _slide() -> np.ndarray:
    """130x160 white slide with tissue in its top-left 100x100 corner: 12 tiles, 4 of tissue."""
    image = np.full((130, 160, 3), 255, np.uint8)
    image[:100, :100] = PINK
    image[:100, :100, 1] = np.random.default_rng(0).integers(60, 100, (100, 100))
    return image


def test_predict_slide_classifies_only_tissue_tiles_batch_by_batch(model, monkeypatch) -> None:
    image = _slide()
    sizes, calls = [], []
    original = tiles.predict_patches

    def recording(m, patches, **kwargs):
        sizes.append(len(patches))
        return original(m, patches, **kwargs)

    monkeypatch.setattr(tiles, "predict_patches", recording)
    result = predict_slide(
        model, image, batch_size=3, threshold=0.5, progress=lambda d, t: calls.append((d, t))
    )
    assert result.coords.shape == (12, 2) and result.image_shape == (130, 160)
    tissue_coords = [[0, 0], [0, 50], [50, 0], [50, 50]]
    np.testing.assert_array_equal(result.coords[result.tissue], tissue_coords)
    assert np.isnan(result.probs[~result.tissue]).all()
    expected = original(model, extract_patches(image, np.array(tissue_coords)))
    np.testing.assert_allclose(result.probs[result.tissue], expected, atol=1e-5)
    assert sizes == [3, 1] and calls == [(3, 4), (4, 4)]
    assert result.n_tissue == 4
    assert result.n_idc == int((expected >= 0.5).sum())
    assert result.idc_fraction == result.n_idc / 4


def test_slide_counts_follow_the_threshold_and_rows_cover_every_tile(model) -> None:
    result = predict_slide(model, _slide(), threshold=0.0)
    assert (result.n_idc, result.idc_fraction) == (4, 1.0)
    rows = result.to_rows()
    assert len(rows) == 12
    assert rows[0]["tissue"] is True and rows[0]["label"] == 1 and 0 <= rows[0]["prob_idc"] <= 1
    assert rows[-1] == {"y": 100, "x": 150, "tissue": False, "prob_idc": None, "label": None}


def test_blank_slide_has_no_tissue_and_no_crash(model) -> None:
    result = predict_slide(model, np.full((120, 120, 3), 255, np.uint8))
    assert isinstance(result, SlideResult)
    assert (result.n_tissue, result.n_idc, result.idc_fraction) == (0, 0, 0.0)
    assert np.isnan(result.probs).all()


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cli_classifies_patches_pads_border_crops_tiles_slides_and_reports_bad_files(
    model, model_dir, small_data, tmp_path, capsys
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    whole = small_data / "10253" / "1" / "10253_idx5_x801_y301_class1.png"
    crop = small_data / "12930" / "0" / "12930_idx5_x951_y2701_class0.png"
    shutil.copy(whole, inputs / "a_whole.png")
    shutil.copy(crop, inputs / "b_crop.png")
    (inputs / "c_bad.png").write_bytes(b"not an image")
    (inputs / "d_slide.png").write_bytes(encode_png(_slide()))
    out = tmp_path / "out.csv"

    code = main([str(inputs), "--model", str(model_dir), "--csv", str(out), "--batch-size", "8"])

    assert code == 1
    rows = {Path(r["file"]).name: r for r in _read_csv(out)}
    assert list(_read_csv(out)[0]) == ["file", "prob_idc", "label", "note", "error"]
    assert set(rows) == {"a_whole.png", "b_crop.png", "c_bad.png", "d_slide.png"}
    assert rows["a_whole.png"]["note"] == "" and rows["a_whole.png"]["error"] == ""
    assert rows["b_crop.png"]["note"] == "padded from 50x34"
    assert rows["c_bad.png"]["prob_idc"] == "" and "c_bad.png" in rows["c_bad.png"]["error"]
    assert rows["d_slide.png"]["note"].startswith("slide 160x130: ")
    assert "of 4 tissue tiles IDC" in rows["d_slide.png"]["note"]
    # why `idc slide` can give other IDC figures: the image is not rescaled, its tiles are scored alone
    assert rows["d_slide.png"]["note"].endswith("read at its own pixels as if at the model's scale, each tile alone "
                                                "(no neighbouring tiles)")
    expected = predict_patches(model, read_image(whole)[None])[0]
    assert float(rows["a_whole.png"]["prob_idc"]) == pytest.approx(expected, abs=1e-5)
    assert rows["a_whole.png"]["label"] == str(int(expected >= 0.5))
    err = capsys.readouterr().err
    assert "c_bad.png" in err
    assert ("warning: 1 image(s) larger than a patch (d_slide.png) carry no scale: tiled at their own pixels as if "
            "at the model's 4 µm/px, each tile alone;") in err  # this model has no slide-context step to name


def test_cli_reads_the_zips_in_a_folder_as_it_reads_a_zip_given_alone(model_dir, small_data, tmp_path) -> None:
    import zipfile

    patches = sorted((small_data / "10253").rglob("*.png"))[:3]
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(patches[0], inputs / "alone.png")
    with zipfile.ZipFile(inputs / "more.zip", "w") as archive:
        for patch in patches[1:]:
            archive.write(patch, patch.name)
    assert main([str(inputs), "--model", str(model_dir), "--csv", str(tmp_path / "folder.csv")]) == 0
    assert main([str(inputs / "more.zip"), "--model", str(model_dir), "--csv", str(tmp_path / "zip.csv")]) == 0
    rows = _read_csv(tmp_path / "folder.csv")
    assert [r["file"] for r in rows] == [str(inputs / "alone.png"), *(f"{inputs / 'more.zip'}/{p.name}"
                                                                       for p in patches[1:])]
    assert rows[1:] == _read_csv(tmp_path / "zip.csv")


def test_cli_threshold_overrides_the_models_and_prints_csv_to_stdout(model_dir, small_data, capsys) -> None:
    patch = small_data / "10253" / "1" / "10253_idx5_x801_y301_class1.png"
    assert main([str(patch), "--model", str(model_dir), "--threshold", "0"]) == 0
    stdout = capsys.readouterr().out.splitlines()
    assert stdout[0] == "file,prob_idc,label,note,error"
    assert stdout[1].startswith(f"{patch},") and ",1,," in stdout[1]


def test_cli_without_a_default_model_exits_2_and_says_why(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("IDC_MODELS_DIR", str(tmp_path))
    assert main(["x.png"]) == 2
    assert f"no default model: no '{tmp_path}/DEFAULT';" in capsys.readouterr().err


def test_cli_rejects_a_threshold_outside_0_1(model_dir) -> None:
    with pytest.raises(SystemExit) as info:
        main(["x.png", "--model", str(model_dir), "--threshold", "1.5"])
    assert info.value.code == 2
