"""Hostile and unusual inputs through the three command lines (predict, evaluate, train).

Each bad input gets exactly one line on stderr that names it and says why, and a row (predict) or a
report entry (evaluate); the rest of the batch goes on; the exit status is non-zero; no traceback.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from hostile_files import (
    dataset_files,
    encode,
    hostile_zips,
    layout_name,
    readable_images,
    tissue,
    unreadable_files,
    zip_bytes,
)
from slide_files import sample_crop, upsample, write_pyramid

from idc_core.cli.evaluate import main as evaluate_main
from idc_core.cli.predict import main as predict_main
from idc_core.cli.train import main as train_main
from idc_core.config import ModelConfig
from idc_core.data.image_io import DEFAULT_MAX_PIXELS
from idc_core.model.builders import build_model
from idc_core.model.folder import save_model_dir

REPO = Path(__file__).resolve().parents[1]

# Why each unreadable input is refused: a regex its message must match.
REASONS = {
    "text.png": "not a readable image .*unknown file format",
    "doc.pdf": "not a readable image .*unknown file format",
    "program.exe": "not a readable image .*unknown file format",
    "zero_bytes.png": r"empty file \(0 bytes\)",
    "truncated.png": "truncated",
    "truncated.jpg": "(?i)truncated",
    "truncated.tif": "truncated",
    "zip_named.png": "not a readable image",
    "pixel_bomb.png": f"limit is {DEFAULT_MAX_PIXELS:,} pixels",
    "corrupt.zip": "not a readable zip file",
    "empty.zip": r"the zip is empty \(no files\)",
    "encrypted.zip": r"every file is encrypted \(password-protected zip\)",
    "bomb.zip": r"compression ratio \d+:1, over the limit of 200:1 \(possible zip bomb\)",
    "only_text.zip": "zip holds no image files",
    "no_images": "folder holds no image files",
    "missing.png": "cannot read file",
    "blank_slide.png": "slide 200x200: no tissue found",
    "strip_1x400.png": "slide 400x1: no tissue found",
}
MEMBER_REASONS = {  # members of mixed.zip
    "../evil.png": r"refused zip member \(parent directory \(\.\.\) in path\)",
    "/abs.png": r"refused zip member \(absolute path\)",
    "C:/drive.png": r"refused zip member \(absolute path\)",
    "inner.zip": r"refused zip member \(nested archive",
    "corrupt.png": "not a readable image",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "tiny"
    model = build_model("cnn", weights=None, seed=0)
    return save_model_dir(out, model, ModelConfig(name="tiny", arch="cnn", threshold=0.5))


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> tuple[list[str], dict[str, str], set[str]]:
    """A mixed batch: (arguments, {bad input name: reason regex}, good input names)."""
    root = tmp_path_factory.mktemp("batch")
    files = {**readable_images(), **unreadable_files(), **hostile_zips()}
    strip = np.full((60, 3000, 3), 255, np.uint8)  # a long thin slide: tissue on its left half
    strip[:, :1500] = tissue(60, 1500)
    files["slide_strip.png"] = encode(strip)
    files["blank_slide.png"] = encode(np.full((200, 200, 3), 255, np.uint8))
    files["strip_1x400.png"] = encode(tissue(1, 400))
    files["only_text.zip"] = zip_bytes({"readme.txt": b"hello"})
    good_member = layout_name("101", 1, 1, 1)
    files["mixed.zip"] = zip_bytes({good_member: encode(tissue(50, 50)), "readme.txt": b"skipped",
                                    "corrupt.png": b"\x89PNG broken", "inner.zip": zip_bytes({"a.png": b"x"}),
                                    "../evil.png": b"x", "/abs.png": b"x", "C:/drive.png": b"x"})
    for name, data in files.items():
        (root / name).write_bytes(data)
    (root / "no_images").mkdir()
    (root / "no_images" / "notes.txt").write_text("no images here")
    args = [str(root / name) for name in files] + [str(root / "no_images"), str(root / "missing.png")]
    bad = {str(root / name): reason for name, reason in REASONS.items()}
    bad.update({f"{root / 'mixed.zip'}/{name}": reason for name, reason in MEMBER_REASONS.items()})
    good = {str(root / name) for name in readable_images()} | {str(root / "slide_strip.png")}
    good.add(f"{root / 'mixed.zip'}/{good_member}")
    return args, bad, good


def _error_lines(stderr: str, name: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"{name}: ")]


def _assert_one_line_per_bad_input(stderr: str, bad: dict[str, str]) -> None:
    assert "Traceback" not in stderr
    for name, reason in bad.items():
        lines = _error_lines(stderr, name)
        assert len(lines) == 1, (name, lines)
        assert re.search(reason, lines[0]), (name, lines[0])


def test_predict_cli_mixed_batch_reports_each_bad_input_once_and_classifies_the_rest(
    model_dir, batch, tmp_path, capsys
) -> None:
    args, bad, good = batch
    out = tmp_path / "out.csv"

    code = predict_main([*args, "--model", str(model_dir), "--csv", str(out)])

    assert code == 1
    stderr = capsys.readouterr().err
    _assert_one_line_per_bad_input(stderr, bad)
    with open(out, newline="") as f:
        rows = {row["file"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(bad) | good  # every input has a row; readme.txt in mixed.zip is skipped
    for name in good:
        assert rows[name]["error"] == "" and 0.0 <= float(rows[name]["prob_idc"]) <= 1.0, name
    for name in bad:
        assert rows[name]["prob_idc"] == "" and rows[name]["error"] in _error_lines(stderr, name)
    root = Path(args[0]).parent
    assert rows[str(root / "size_1x1.png")]["note"] == "padded from 1x1"
    assert rows[str(root / "size_50x42.png")]["note"] == "padded from 50x42"
    assert rows[str(root / "size_49x50.png")]["note"] == "padded from 49x50"
    assert rows[str(root / "exif_rotated.jpg")]["note"] == "padded from 50x40"  # 40x50 turned by EXIF
    # 30 full tiles and 30 edge tiles with 10 of 50 rows of tissue (>= MIN_TISSUE 0.1)
    assert re.match(r"slide 3000x60: \d+ of 60 tissue tiles IDC", rows[str(root / "slide_strip.png")]["note"])
    assert f"{len(good)} classified, {len(bad)} failed" in stderr
    assert re.search(rf"predict: 100%.*\| {len(rows)}/{len(rows)} ", stderr)  # the bar knew its total


def test_predict_cli_refuses_every_whole_slide_file_with_one_pointer_to_the_slide_command(
    model_dir, tmp_path, capsys
) -> None:
    """Single-level and pyramid .svs, a tiled TIFF, named or in a folder: never tiled at their own pixels."""
    crop = sample_crop()
    folder = tmp_path / "slides"
    folder.mkdir()
    slides = {
        write_pyramid(folder / "single.svs", crop[:300, :400], aperio="AppMag = 20|MPP = 0.499"): "aperio",
        write_pyramid(folder / "pyramid.svs", upsample(crop, 2), aperio="AppMag = 20|MPP = 2"): "aperio",
        write_pyramid(tmp_path / "tiled.tif", crop, mpp=4.0): "generic-tiff",
    }
    patch = tmp_path / "patch.png"
    patch.write_bytes(encode(tissue(50, 50)))
    out = tmp_path / "out.csv"

    assert predict_main([str(folder), str(tmp_path / "tiled.tif"), str(patch), "--model", str(model_dir),
                         "--csv", str(out)]) == 1

    stderr = capsys.readouterr().err
    rows = {row["file"]: row for row in csv.DictReader(out.open())}
    assert rows[str(patch)]["error"] == "" and rows[str(patch)]["prob_idc"]
    for path, fmt in slides.items():
        [line] = _error_lines(stderr, str(path))
        assert line == (f"{path}: a whole-slide file ({fmt}): this command would tile it at its own pixels; "
                        f"`idc slide {path} --out DIR` reads it at the model's scale")
        assert rows[str(path)]["prob_idc"] == "" and rows[str(path)]["error"] == line
    assert re.search(r"predict: 100%.*\| 4/4 ", stderr)


def test_predict_cli_unwritable_csv_fails_at_once_in_one_line(model_dir, batch, tmp_path, capsys) -> None:
    code = predict_main([batch[0][0], "--model", str(model_dir), "--csv", str(tmp_path / "no" / "out.csv")])
    assert code == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("note: ")]
    assert len(err) == 1 and err[0].startswith("error: cannot write ") and "No such file or directory" in err[0]


def _broken_models(root: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Model folders that must be refused: name -> (folder, regex of the reason)."""
    def copy(name: str) -> Path:
        return Path(shutil.copytree(good, root / name))

    no_model = copy("no_model")
    (no_model / "model.keras").unlink()
    no_config = copy("no_config")
    (no_config / "config.json").unlink()
    corrupt = copy("corrupt")
    corrupt.joinpath("model.keras").write_bytes(np.random.default_rng(0).bytes(2048))
    bad_config = copy("bad_config")
    bad_config.joinpath("config.json").write_text('{"name": "x", "arch": "cnn", "split_patients": [1]}')
    other_arch = copy("other_arch")
    ModelConfig(name="other", arch="cancernet").save(other_arch / "config.json")

    x = keras.Input((10,))
    foreign = keras.Model(x, keras.layers.Dense(1, activation="sigmoid")(x), name="cnn")
    save_model_dir(root / "foreign", foreign, ModelConfig(name="foreign", arch="cnn"))
    wide = build_model("cnn", input_shape=(64, 64, 3), weights=None)
    save_model_dir(root / "input_64", wide, ModelConfig(name="input_64", arch="cnn"))
    x = keras.Input((50, 50, 3))
    code = keras.layers.Lambda(lambda v: v * 2.0)(x)  # arbitrary Python: refused by safe_mode
    lam = keras.Model(x, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(code)), name="cnn")
    save_model_dir(root / "lambda", lam, ModelConfig(name="lambda", arch="cnn"))
    return {
        "missing": (root / "missing", "does not exist"),
        "no_model": (no_model, "has no model.keras"),
        "no_config": (no_config, "has no config.json"),
        "corrupt": (corrupt, "corrupt or truncated"),
        "bad_config": (bad_config, "\"split_patients\" must be an object, got \\[1\\]"),
        "other_arch": (other_arch, "says arch 'cancernet' but model.keras holds model 'cnn'"),
        "foreign": (root / "foreign", r"takes input shape \(10,\), expected \(50, 50, 3\)"),
        "input_64": (root / "input_64", r"takes input shape \(64, 64, 3\), expected \(50, 50, 3\)"),
        "lambda": (root / "lambda", "could not be loaded .*Lambda.*arbitrary code execution"),
    }


@pytest.fixture(scope="module")
def broken_models(model_dir, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    return _broken_models(tmp_path_factory.mktemp("broken"), model_dir)


@pytest.fixture(scope="module")
def data_zip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "data.zip"
    path.write_bytes(zip_bytes(dataset_files()))
    return path


def _only_error_line(stderr: str, reason: str) -> None:
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert re.search(reason, errors[0]), errors[0]


def test_every_broken_model_folder_is_one_line_from_predict_and_evaluate(
    broken_models, batch, data_zip, capsys
) -> None:
    for name, (folder, reason) in broken_models.items():
        assert predict_main([batch[0][0], "--model", str(folder)]) == 2, name
        captured = capsys.readouterr()
        _only_error_line(captured.err, reason)
        assert captured.out == ""
        assert evaluate_main(["--model", str(folder), "--data", str(data_zip)]) == 1, name
        _only_error_line(capsys.readouterr().err, reason)


def test_evaluate_cli_leaves_out_bad_members_lists_each_once_and_reports_the_rest(
    model_dir, tmp_path, capsys
) -> None:
    files = dataset_files()  # 3 patients x 2 classes x 2 patches
    bad = {
        layout_name("101", 0, 901, 901): "unusable patch: .*not a readable image",
        "../evil.png": r"parent directory \(\.\.\) in path",
        "/abs.png": "absolute path",
        "README.txt": "name is not <patient>_idx5_x<X>_y<Y>_class<0|1>.png",
        "103/0/103_idx5_x9_y9_class1.png": "label folder '0' differs from class1",
        "inner.zip": "nested archive",
    }
    files.update({name: b"\x89PNG broken" for name in bad})
    data = tmp_path / "labelled.zip"
    data.write_bytes(zip_bytes(files))
    out = tmp_path / "report.json"

    code = evaluate_main(["--model", str(model_dir), "--data", str(data), "--out", str(out)])

    assert code == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    left_out = [line for line in captured.err.splitlines() if line.startswith("left out: ")]
    assert len(left_out) == len(bad)
    for name, reason in bad.items():
        [line] = [line for line in left_out if line.startswith(f"left out: {name}: ")]
        assert re.search(reason, line) and line.count(name) == 1 and "training" not in line, line
    assert ": 12 patches (6 IDC) of 3 patients" in captured.out
    assert f"{len(bad)} file(s) left out" in captured.out
    report = json.loads(out.read_text())
    assert report["n_patches"] == 12
    assert len(report["data"]["rejected"]) == len(bad) - 1 and len(report["data"]["unreadable"]) == 1


@pytest.mark.parametrize("name", ["corrupt.zip", "empty.zip", "encrypted.zip", "bomb.zip", "only_text.zip"])
def test_evaluate_and_train_refuse_a_hostile_zip_in_one_line(name, model_dir, tmp_path, capsys) -> None:
    data = tmp_path / name
    zips = {**hostile_zips(), "only_text.zip": zip_bytes({"readme.txt": b"hello"})}
    data.write_bytes(zips[name])
    reason = REASONS[name] if name != "only_text.zip" else "no patches found. Expected <root>/<patient>"
    assert evaluate_main(["--model", str(model_dir), "--data", str(data)]) == 1
    _only_error_line(capsys.readouterr().err, reason)
    assert train_main(["--data", str(data), "--out", str(tmp_path / "m"), "--cache-dir", ""]) == 1
    _only_error_line(capsys.readouterr().err, reason)
    assert not (tmp_path / "m").exists()


def test_train_refuses_a_corrupt_training_patch_naming_it(tmp_path, capsys) -> None:
    files = dataset_files()
    bad = layout_name("102", 1, 901, 901)
    files[bad] = encode(tissue(60, 60))[:100]
    data = tmp_path / "train.zip"
    data.write_bytes(zip_bytes(files))
    assert train_main(["--data", str(data), "--out", str(tmp_path / "m"), "--cache-dir", ""]) == 1
    error = capsys.readouterr().err
    _only_error_line(error, f"{bad}: unusable patch: .*truncated")
    assert error.count(bad) == 1
    assert not (tmp_path / "m").exists()


def test_evaluate_cli_unwritable_report_is_one_error_line_after_the_report(model_dir, data_zip, tmp_path, capsys):
    code = evaluate_main(["--model", str(model_dir), "--data", str(data_zip), "--out", str(tmp_path / "no" / "r.json")])
    assert code == 1
    captured = capsys.readouterr()
    assert "balanced_accuracy" in captured.out
    _only_error_line(captured.err, "cannot write the report to .*No such file or directory")


def test_evaluate_cli_bars_count_the_patches_once_per_phase_and_draw_each_100_percent_once(
    model_dir, data_zip, capsys
) -> None:
    assert evaluate_main(["--model", str(model_dir), "--data", str(data_zip)]) == 0
    drawn = re.split(r"[\r\n]", capsys.readouterr().err)
    for phase in ("reading", "scoring"):
        lines = [line for line in drawn if line.startswith(f"{phase}:")]
        assert lines and all(re.search(r"\| \d+/12 ", line) for line in lines), lines  # 12 patches, not 24 steps
        assert sum("100%" in line for line in lines) == 1, lines


@pytest.mark.parametrize("option", [["--threshold", "1.5"], ["--threshold", "nan"], ["--batch-size", "0"]])
def test_evaluate_cli_refuses_bad_options(option, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        evaluate_main(["--data", "x.zip", *option])
    assert info.value.code == 2
    assert f"argument {option[0]}" in capsys.readouterr().err


# Through a real `python -m idc_core predict` process: nothing but one line per bad input reaches stderr, and
# nothing from TensorFlow about the GPU this machine lacks (TF_CPP_MIN_LOG_LEVEL left as a user has it).
# (One process: TensorFlow's import costs seconds; broken model folders are covered in-process above.)

def test_predict_process_mixed_batch_has_no_traceback_and_no_tensorflow_lines(model_dir, batch, tmp_path) -> None:
    args, bad, good = batch
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "idc_core", "predict", *args, "--model", str(model_dir)],
                            cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result.stderr
    _assert_one_line_per_bad_input(result.stderr, bad)
    assert "cuInit" not in result.stderr and not re.search(r"^[IWE]\d{4} ", result.stderr, re.M), result.stderr[:2000]
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {row["file"] for row in rows} == set(bad) | good
