"""Tests of scripts/make_assets.py on the small real dataset shipped in tests/data."""

from __future__ import annotations

import csv
import importlib.util
import zipfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from idc_core.data.dataset import scan_dataset
from idc_core.data.image_io import read_image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_assets.py"


@pytest.fixture(scope="module")
def make_assets() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_assets", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(
    make_assets: ModuleType, small_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("assets")
    argv = ["--data", str(small_data), "--slide-patient", "10256", "--zip-patient", "10253",
            "--sample-patients", "10256", "10257", "--out", str(out)]
    assert make_assets.main(argv) == 0
    return out


def test_slide_is_rebuilt_with_each_patch_at_its_grid_shifted_xy(
    built: Path, small_data: Path
) -> None:
    slide = read_image(built / "sample_slide.png")
    with open(built / "sample_slide_tiles.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and {row["label"] for row in rows} == {"0", "1"}
    for row in rows:
        x, y = int(row["x"]), int(row["y"])
        assert x % 50 == 0 and y % 50 == 0  # the dataset's 1-pixel offset is removed
        patch = read_image(small_data / "10256" / row["label"] / row["file"])
        np.testing.assert_array_equal(slide[y : y + 50, x : x + 50], patch)
    height = max(int(row["y"]) for row in rows) + 50
    width = max(int(row["x"]) for row in rows) + 50
    assert slide.shape == (height, width, 3)


def test_patient_zip_holds_the_patient_in_the_dataset_layout(
    built: Path, small_data: Path
) -> None:
    path = built / "sample_patient_10253.zip"
    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
    files = (small_data / "10253").rglob("*.png")
    expected = sorted(file.relative_to(small_data).as_posix() for file in files)
    assert names == expected
    scan = scan_dataset(path)
    assert scan.patients() == ["10253"] and scan.summary()["class_counts"] == {"0": 6, "1": 3}


def test_sample_patches_are_balanced_copies_under_original_names(
    built: Path, small_data: Path
) -> None:
    files = sorted((built / "patches").glob("*.png"))
    assert len(files) == 24  # 6 per class and patient: exactly the cap
    for patient in ("10256", "10257"):
        for label in ("0", "1"):
            mine = [
                f for f in files
                if f.name.startswith(f"{patient}_") and f.name.endswith(f"class{label}.png")
            ]
            assert len(mine) == 6
            for file in mine:
                assert file.read_bytes() == (small_data / patient / label / file.name).read_bytes()


def test_readme_names_the_dataset_patients_and_split_placeholder(built: Path) -> None:
    text = (built / "README.md").read_text()
    assert "Breast Histopathology Images" in text
    assert "Patients: see models/cnn/config.json split_patients" in text
    assert "patient 10256" in text and "sample_patient_10253.zip" in text
    assert "patient 10257: 6 without IDC (class0), 6 with IDC (class1)" in text


def test_total_cap_keeps_classes_balanced(
    make_assets: ModuleType, small_data: Path, tmp_path: Path
) -> None:
    argv = ["--data", str(small_data), "--slide-patient", "10253", "--zip-patient", "10253",
            "--sample-patients", "10256", "10257", "--max-patches", "8", "--out", str(tmp_path)]
    assert make_assets.main(argv) == 0
    names = [f.name for f in (tmp_path / "patches").glob("*.png")]
    assert len(names) == 8 and sum(n.endswith("class1.png") for n in names) == 4


def test_unknown_patient_is_an_error_naming_it(
    make_assets: ModuleType, small_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--data", str(small_data), "--slide-patient", "99999", "--zip-patient", "10253",
            "--sample-patients", "10256", "--out", str(tmp_path)]
    assert make_assets.main(argv) == 1
    assert "patient '99999': no patches in the data" in capsys.readouterr().err
