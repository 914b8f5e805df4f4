"""Golden outputs: every shipped model still says what it said about the bundled samples.

The reference CSVs in tests/data/golden/<model>/ are written by `python scripts/make_golden.py` (see its
docstring for the inputs and the paths they go through); this test re-scores and compares them within
ATOL (1e-4, why in the script). After a model is changed on purpose, rerun that command and commit.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_golden.py"

pytestmark = pytest.mark.usefixtures("shipped_models_loaded_once")  # each models/ folder loaded once: conftest


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_golden", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


golden = _load_script()
MODELS = golden.shipped_models()


@pytest.mark.skipif(not MODELS, reason="no shipped models under models/")
def test_every_shipped_model_has_golden_outputs_and_no_other() -> None:
    made = sorted(p.name for p in golden.GOLDEN.iterdir() if p.is_dir()) if golden.GOLDEN.is_dir() else []
    assert made == [m.name for m in MODELS], f"golden outputs and models/ disagree: run {golden.COMMAND}"


@pytest.mark.parametrize("model_dir", MODELS, ids=[m.name for m in MODELS])
def test_model_predicts_what_its_golden_outputs_say(model_dir: Path, tmp_path: Path) -> None:
    new = golden.score_model(model_dir, tmp_path / model_dir.name)
    problems = golden.compare_model(golden.GOLDEN / model_dir.name, new)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _write(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return path


def test_comparison_lists_rows_beyond_the_tolerance_and_flipped_labels_only(tmp_path: Path) -> None:
    head = ["x", "y", "size", "prob_idc", "label"]
    gold = _write(tmp_path / "gold.csv", [head, ["0", "0", "50", "0.100000", "0"], ["50", "0", "50", "0.900000", "1"],
                                          ["100", "0", "50", "0.500020", "1"], ["150", "0", "50", "0.300000", "0"],
                                          ["200", "0", "50", "0.200000", "0"]])
    new = _write(tmp_path / "new.csv", [head, ["0", "0", "50", "0.100050", "0"],  # within 1e-4
                                         ["50", "0", "50", "0.900200", "1"],  # beyond
                                         ["100", "0", "50", "0.499990", "0"],  # flipped, but at the threshold
                                         ["150", "0", "50", "0.300000", "1"],  # flipped: a real difference
                                         ["250", "0", "50", "0.200000", "0"]])  # a tile moved
    problems = golden.compare_csv(gold, new, threshold=0.5)
    text = "\n".join(problems)
    assert "2 of 5 rows differ" in text and "largest |d| 0.000200" in text
    assert "[x=50, y=0, size=50] prob_idc 0.900000 -> 0.900200" in text
    assert "[x=150, y=0, size=50]" in text and "x=0, y=0," not in text and "x=100, y=0," not in text
    assert "1 rows missing (in golden, not scored now): [x=200, y=0, size=50]" in text
    assert "1 rows new (scored now, not in golden): [x=250, y=0, size=50]" in text
    assert golden.compare_csv(gold, gold, threshold=0.5) == []


def _perturbed(path: Path, out: Path, delta: float) -> Path:
    """A copy of a golden CSV with every probability column (prob_*) moved by +-delta (sign alternating by row)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
        header = list(rows[0]) if rows else []
    for i, row in enumerate(rows):
        for column in header:
            if column.startswith("prob") and row[column]:
                row[column] = f"{float(row[column]) + (delta if i % 2 else -delta):.6f}"
    return _write(out, [header, *[[row[c] for c in header] for row in rows]])


GOLDEN_CSVS = sorted(golden.GOLDEN.glob("*/*.csv")) if golden.GOLDEN.is_dir() else []


@pytest.mark.parametrize("path", GOLDEN_CSVS, ids=[f"{p.parent.name}/{p.name}" for p in GOLDEN_CSVS])
def test_every_probability_column_is_compared_within_the_tolerance_not_as_text(path: Path, tmp_path: Path) -> None:
    threshold = json.loads((path.parent / golden.META_FILE).read_text())["threshold"]
    assert golden.compare_csv(path, _perturbed(path, tmp_path / "near.csv", 2e-6), threshold=threshold) == []
    far = golden.compare_csv(path, _perturbed(path, tmp_path / "far.csv", 3e-4), threshold=threshold)
    assert far and "rows differ" in far[0] and "missing" not in "".join(far)


def test_a_context_models_tile_probability_is_compared_too(tmp_path: Path) -> None:
    head = ["x", "y", "size", "prob_idc", "label", "prob_idc_tile"]
    gold = _write(tmp_path / "gold.csv", [head, ["0", "0", "50", "0.100000", "0", "0.002000"]])
    noise = _write(tmp_path / "noise.csv", [head, ["0", "0", "50", "0.100000", "0", "0.001999"]])
    moved = _write(tmp_path / "moved.csv", [head, ["0", "0", "50", "0.100000", "0", "0.012000"]])
    assert golden.compare_csv(gold, noise, threshold=0.5) == []
    assert "[x=0, y=0, size=50] prob_idc_tile 0.002000 -> 0.012000" in "\n".join(
        golden.compare_csv(gold, moved, threshold=0.5))


def test_a_changed_model_is_told_apart_from_changed_code(tmp_path: Path) -> None:
    model = MODELS[0] if MODELS else pytest.skip("no shipped models under models/")
    stored = golden.GOLDEN / model.name
    if not stored.is_dir():
        pytest.skip(f"no golden outputs for {model.name}")
    new = shutil.copytree(stored, tmp_path / model.name)
    rows = (new / "patches.csv").read_text().splitlines()
    file, prob, label = rows[1].split(",")
    rows[1] = f"{file},{float(prob) + 0.01:.6f},{label}"
    (new / "patches.csv").write_text("\n".join(rows) + "\n")
    problems = golden.compare_model(stored, new)
    assert "so the code changed what it predicts" in problems[0] and file in "\n".join(problems)
    meta = json.loads((new / golden.META_FILE).read_text())
    meta["sha256"]["model.keras"] = "0" * 64
    meta["sha256"]["calibration.json"] = "1" * 64
    (new / golden.META_FILE).write_text(json.dumps(meta))
    first = golden.compare_model(stored, new)[0]
    assert "the model folder changed since the golden outputs were made" in first
    assert "model.keras changed" in first and "calibration.json added" in first
