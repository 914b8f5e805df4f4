"""The benchmark scripts run (--quick, tiny sizes) and their helpers count what they claim. No timings asserted."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import common  # noqa: E402  (bench/common.py)


def _run_quick(script: str, out: Path, monkeypatch, capsys) -> str:
    """What `python bench/<script> --quick --out <out>` prints, run in this process as __main__ (a fresh interpreter
    would only add another TensorFlow start-up); SystemExit other than 0 fails the test."""
    path = REPO / "bench" / script
    monkeypatch.setattr(sys, "argv", [str(path), "--quick", "--out", str(out)])
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr().err[-2000:]
    return capsys.readouterr().out


def test_quick_gradcam_benchmark_prints_a_table_and_writes_json(tmp_path, monkeypatch, capsys):
    out = _run_quick("bench_gradcam.py", tmp_path, monkeypatch, capsys)
    assert "Grad-CAM time" in out and "1 patch ms" in out
    data = json.loads((tmp_path / "gradcam.json").read_text())
    assert data["quick"] is True and data["machine"]["logical_cores"] >= 1
    (row,) = data["results"]["rows"]
    assert row["arch"] == "cnn" and row["one_patch_ms"] > 0


def test_flops_of_the_cnn_match_its_multiply_adds():
    from idc_core.model.builders import build_model

    model = build_model("cnn", seed=0)
    macs = 50 * 50 * 27 * 32 + 25 * 25 * 288 * 64 + 12 * 12 * 576 * 128 + 6 * 6 * 128 * 128 + 128
    assert common.layer_macs(model) == macs
    flops, method = common.flops_per_patch(model)
    assert flops == pytest.approx(2 * macs, rel=0.05), method


def test_real_patches_repeat_the_bundled_samples():
    patches, labels = common.real_patches(50)
    assert patches.shape == (50, 50, 50, 3) and patches.dtype.name == "uint8"
    assert (patches[24] == patches[0]).all() and labels[24] == labels[0] and set(labels) == {0, 1}


def test_table_aligns_columns_and_shows_missing_values(capsys):
    common.print_table("T", [{"a": "x", "b": 1.234}, {"a": "longer"}], [("a", "name", ""), ("b", "value", ".1f")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:] == ["name    value", "------  -----", "x         1.2", "longer      -"]


def test_quick_uncertainty_benchmark_times_every_method(tmp_path, monkeypatch, capsys):
    out = _run_quick("bench_uncertainty.py", tmp_path, monkeypatch, capsys)
    assert "Uncertainty cost on 64 patches" in out
    rows = json.loads((tmp_path / "uncertainty.json").read_text())["results"]["rows"]
    assert [r["method"] for r in rows] == ["plain", "confidence", "tta", "mc", "mc unbatched"]
    assert all(r["patches_per_s"] > 0 for r in rows)


def test_quick_context_benchmark_times_the_step_and_compares_with_the_truth(tmp_path, monkeypatch, capsys):
    _run_quick("bench_context.py", tmp_path, monkeypatch, capsys)
    data = json.loads((tmp_path / "context.json").read_text())["results"]
    assert [row["tiles"] for row in data["grids"]] == [1665, 6660, 41625, 2500]
    assert all(row["seconds"] > 0 for row in data["grids"])
    truth = data["sample_slide"]["against_truth"]
    assert truth["alone"]["tiles_compared"] == truth["context"]["tiles_compared"] > 0


def test_quick_jpeg_reading_benchmark_scores_every_file_and_read_mode(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(REPO / "bench" / "bench_jpeg_reading.py"), "--quick", "--out", str(tmp_path),
                                      "--data", str(REPO / "tests" / "data" / "idc_small"), "--patients", "10260",
                                      "--models", str(REPO / "models" / "cnn-jpeg")])
    runpy.run_path(str(REPO / "bench" / "bench_jpeg_reading.py"), run_name="__main__")
    rows = json.loads((tmp_path / "jpeg_reading.json").read_text())["results"]["rows"]
    assert {(r["file"], r["mode"]) for r in rows} == {("dataset patches (PNG)", "-")} | {
        (f"20x {codec}", mode) for codec in ("lossless", "JPEG Q90", "JPEG Q70") for mode in ("model", "2x", "4x")}
    assert all(r["truth_tiles_scored"] for r in rows)  # each read was scored against the patient's labels
    assert all(r["auto"] == (r["mode"] == "model") for r in rows if r["mode"] != "-")  # cnn-jpeg: the nearest level


def test_quick_phases_benchmark_times_the_slide_command_with_one_scoring_pass(tmp_path, monkeypatch, capsys):
    out = _run_quick("bench_phases.py", tmp_path, monkeypatch, capsys)
    assert "idc_core slide SLIDE" in out and "idc_core predict ONE.png" in out
    results = json.loads((tmp_path / "phases.json").read_text())["results"]
    slide = results["slide"]
    assert slide["status"] == 0 and results["predict"]["status"] == 0
    phases = slide["phases"]
    # the tiles are scored once, P(IDC) and the familiarity features together, and the check passes no tile again
    assert "scoring (P(IDC) and features, one pass)" in phases and "scoring (P(IDC) only)" not in phases
    assert {"read at the model's scale", "QC", "familiarity check", "heatmap.png"} <= phases.keys()
    assert slide["total_s"] >= sum(v for k, v in phases.items() if not k.startswith("  "))
