"""Cohort scoring on a local Ray instance: same results as in-process, failures listed, re-runs resume."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tqdm
from slide_files import sample_crop, upsample, write_pyramid

from idc_core.cli.slide import main as slide_main

pytest.importorskip("ray")

pytestmark = pytest.mark.usefixtures("shipped_models_loaded_once")  # each models/ folder loaded once: conftest


def _rows(out: Path) -> dict[str, dict[str, str]]:
    return {Path(r["slide"]).name: r for r in csv.DictReader((out / "slides.csv").open())}


def _probs(out: Path, stem: str) -> np.ndarray:
    return np.array([float(r["prob_idc"]) for r in csv.DictReader((out / stem / "tiles.csv").open())])


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cohort")
    crop = sample_crop()
    write_pyramid(folder / "a.svs", upsample(crop, 2), aperio="AppMag = 5|MPP = 2.0")
    write_pyramid(folder / "b.tif", upsample(crop[:300], 4), mpp=1.0)
    write_pyramid(folder / "c.tif", upsample(crop[300:], 2))  # no scale: refused
    (folder / "d.svs").write_bytes(b"not a slide at all")
    return folder


class _Bars(tqdm.tqdm):
    """tqdm that keeps every bar it makes, to read where they ended."""

    made: list[tqdm.tqdm] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _Bars.made.append(self)


def test_ray_results_equal_in_process_ones_and_a_rerun_resumes(cohort, tmp_path, monkeypatch):
    here, there = tmp_path / "here", tmp_path / "ray"
    # "killed after the first slide": only a.svs done, and a half-written temporary folder left behind
    assert slide_main([str(cohort / "a.svs"), "--out", str(there)]) == 0
    (there / ".b.tmp-99999").mkdir()
    with monkeypatch.context() as patch:
        patch.setattr(tqdm, "tqdm", _Bars)
        assert slide_main([str(cohort), "--out", str(there), "--ray", "local"]) == 1
    rows = _rows(there)
    # The tile bar, fed by the workers through a Ray actor, ends at the tiles of the slides scored (b.tif only).
    (tiles,) = [bar for bar in _Bars.made if bar.unit == "tile"]
    assert tiles.n == tiles.total == int(rows["b.tif"]["tiles"]) > 0
    assert {k: r["status"] for k, r in rows.items()} == {"a.svs": "skipped", "b.tif": "ok", "c.tif": "failed",
                                                         "d.svs": "failed"}
    assert "--mpp" in rows["c.tif"]["reason"] and rows["d.svs"]["reason"].startswith("d.svs: ")
    assert rows["b.tif"]["worker"]
    assert slide_main([str(cohort), "--out", str(here)]) == 1  # in-process, from scratch
    for stem in ("a", "b"):
        np.testing.assert_allclose(_probs(there, stem), _probs(here, stem), atol=1e-4)
    assert slide_main([str(cohort), "--out", str(there), "--ray", "local"]) == 1  # again: nothing redone
    assert {k: r["status"] for k, r in _rows(there).items()} == {"a.svs": "skipped", "b.tif": "skipped",
                                                                 "c.tif": "failed", "d.svs": "failed"}
