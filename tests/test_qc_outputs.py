"""Tiles set aside by artefact QC in a slide's outputs: the command (--qc on|off), tiles.csv, summary.json,
slides.csv, the GeoJSON, the heatmap, the context step, and the slide page."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from slide_files import sample_crop, upsample, write_pyramid

from idc_core.cli.slide import main as slide_main
from idc_core.data.image_io import encode_png
from idc_core.wsi.context import ContextSettings, apply_context
from idc_core.wsi.outputs import geojson_regions, heatmap_image, tile_rows, tiles_csv
from idc_core.wsi.result import SlideResult

sys.path.insert(0, str(REPO / "bench"))
from drawn_artefacts import draw_ink  # noqa: E402  (bench/drawn_artefacts.py)

pytestmark = pytest.mark.usefixtures("shipped_models_loaded_once")  # each models/ folder loaded once: conftest

STROKE = [(60, 80), (740, 380)]


def inked_crop() -> tuple[np.ndarray, np.ndarray]:
    """The sample crop (800 x 600 px at 4 um/px) with a red marker stroke across it, and the stroke's mask."""
    return draw_ink(sample_crop(), "red ink", STROKE, width=50)


@pytest.fixture(scope="module")
def inked_slide(tmp_path_factory) -> Path:
    """The inked crop as a JPEG pyramid at 1 um/px."""
    return write_pyramid(tmp_path_factory.mktemp("qc") / "inked.tif", upsample(inked_crop()[0], 4), mpp=1.0)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_command_sets_inked_tiles_aside_and_says_so_everywhere(inked_slide, tmp_path, capsys):
    shapely = pytest.importorskip("shapely")
    from shapely.geometry import box, shape

    assert slide_main([str(inked_slide), "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    out = tmp_path / "inked"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scoring"]["qc"] is True and summary["qc"] is True
    counts = summary["artefact_tiles"]
    assert set(counts) == {"red ink"} and counts["red ink"] >= 15
    tiles = _rows(out / "tiles.csv")
    aside = [t for t in tiles if t["label"] == "artefact"]
    assert len(aside) == counts["red ink"] and {t["qc"] for t in aside} == {"red ink"}
    assert all(t["prob_idc"] == "" for t in aside) and {t["qc"] for t in tiles if t not in aside} == {""}
    scored = [t for t in tiles if t not in aside]
    assert len(scored) == summary["tissue_tiles"] and sum(t["label"] == "1" for t in scored) == summary["idc_tiles"]
    assert summary["artefact_share"] == pytest.approx(len(aside) / len(tiles), abs=1e-6)
    assert summary["idc_share_of_tissue"] == pytest.approx(summary["idc_tiles"] / summary["tissue_tiles"], abs=1e-6)
    row = _rows(tmp_path / "slides.csv")[0]
    assert float(row["artefact_share"]) == pytest.approx(summary["artefact_share"], abs=1e-6)
    assert f"qc: inked.tif: {len(aside)} tiles set aside as artefacts" in err and "red ink" in err
    geo = json.loads((out / "slide.geojson").read_text())
    ink = [f for f in geo["features"] if f["properties"]["classification"]["name"] == "Artefact: red ink"]
    assert ink and sum(f["properties"]["measurements"]["tiles"] for f in ink) == len(aside)
    union = shapely.unary_union([shape(f["geometry"]) for f in ink])
    for t in aside:  # level-0 boxes (200 px at 1 um/px), merged into regions like the IDC ones
        x, y, w, h = (int(t[c]) for c in ("x", "y", "width", "height"))
        assert union.buffer(1).contains(box(x, y, x + w, y + h))
    assert Image.open(out / "heatmap.png").size[1] > 600  # the slide, then the artefacts' legend below it


def test_qc_off_scores_every_tissue_tile_and_a_rerun_with_the_other_setting_redoes_the_slide(inked_slide, tmp_path):
    assert slide_main([str(inked_slide), "--out", str(tmp_path)]) == 0
    on = json.loads((tmp_path / "inked" / "summary.json").read_text())
    assert slide_main([str(inked_slide), "--out", str(tmp_path), "--qc", "off"]) == 0
    row = _rows(tmp_path / "slides.csv")[0]
    assert row["status"] == "ok" and row["artefact_share"] == ""  # redone, not skipped
    off = json.loads((tmp_path / "inked" / "summary.json").read_text())
    assert off["scoring"]["qc"] is False and off["artefact_tiles"] is None and off["artefact_share"] is None
    tiles = _rows(tmp_path / "inked" / "tiles.csv")
    assert "qc" not in tiles[0] and "artefact" not in {t["label"] for t in tiles}
    assert off["tissue_tiles"] == on["tissue_tiles"] + sum(on["artefact_tiles"].values())
    assert slide_main([str(inked_slide), "--out", str(tmp_path), "--qc", "off"]) == 0
    assert _rows(tmp_path / "slides.csv")[0]["status"] == "skipped"


def _result(artefact: np.ndarray | None) -> SlideResult:
    """A 1 x 4 strip of tissue tiles, P(IDC) 0.9, 0.8, 0.1, 0.2; `artefact` marks tiles set aside."""
    coords = np.array([[0, 0], [0, 50], [0, 100], [0, 150]])
    aside = np.zeros(4, bool) if artefact is None else artefact != ""
    probs = np.where(aside, np.nan, [0.9, 0.8, 0.1, 0.2]).astype(np.float32)
    return SlideResult(coords, ~aside, probs, (50, 200), 50, 50, 15.0, 0.5, artefact=artefact)


def test_a_tile_set_aside_is_not_idc_not_tissue_and_no_neighbour_of_the_context_step():
    result = _result(np.array(["", "blur", "", ""]))
    assert (result.n_tissue, result.n_idc, result.n_artefact) == (3, 1, 1)
    assert result.idc_fraction == pytest.approx(1 / 3) and result.artefact_share == pytest.approx(0.25)
    assert result.artefact_counts() == {"blur": 1}
    settings = ContextSettings(method="gaussian", sigma=1.0)
    with_qc = apply_context(result, settings)
    # the tile beside the blurred one is smoothed with its remaining neighbours only: as if the blurred tile were
    # not there (replaced by glass), not as if its 0.8 were still counted
    without = apply_context(dataclasses.replace(_result(None), probs=np.array([0.9, 0.8, 0.1, 0.2], np.float32)),
                            settings)
    assert np.isnan(with_qc.probs[1]) and with_qc.probs[2] != pytest.approx(float(without.probs[2]), abs=1e-4)
    rows = tile_rows(result, result.level0_boxes(1.0))
    assert [r["label"] for r in rows] == [1, "artefact", 0, 0] and [r["qc"] for r in rows] == ["", "blur", "", ""]
    assert tiles_csv(result, result.level0_boxes(1.0)).splitlines()[2] == "50,0,50,50,,artefact,blur"
    geo = geojson_regions(result, 2.0, 4.0)
    names = [f["properties"]["classification"]["name"] for f in geo["features"]]
    assert names == ["IDC", "Artefact: blur"]
    corners = {tuple(xy) for xy in geo["features"][1]["geometry"]["coordinates"][0]}
    assert corners == {(100.0, 0.0), (200.0, 0.0), (100.0, 100.0), (200.0, 100.0)}  # level 0: x2
    plain = heatmap_image(np.full((50, 200, 3), 230, np.uint8), _result(None))
    hatched = heatmap_image(np.full((50, 200, 3), 230, np.uint8), result)
    assert hatched.shape[0] == plain.shape[0] + 24  # the legend strip
    assert not np.array_equal(hatched[:50, 50:100], plain[:50, 50:100])  # the blurred tile is hatched
    np.testing.assert_array_equal(hatched[5:45, 155:195], plain[5:45, 155:195])  # the others are not


def test_the_slide_page_hatches_tiles_set_aside_and_its_toggle_turns_qc_off(tiny_models_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("IDC_MODELS_DIR", str(tiny_models_root))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=90).run()
    at.session_state["slide_source"] = "Upload"
    at.switch_page("app_pages/slide.py").run()
    at.file_uploader(key="slide_upload").set_value(("inked.png", encode_png(inked_crop()[0]), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    result = at.session_state["slide_result"]
    assert at.toggle(key="slide_qc").value is True and result.artefact_counts().keys() == {"red ink"}
    legend = " ".join(m.value for m in at.markdown)
    assert "Hatched, not scored" in legend and f"red ink ({result.n_artefact} tiles)" in legend
    at.toggle(key="slide_qc").set_value(False).run()
    assert not at.exception, [e.value for e in at.exception]
    off = at.session_state["slide_result"]
    assert off.artefact is None and off.n_tissue == result.n_tissue + result.n_artefact
    assert "Hatched, not scored" not in " ".join(m.value for m in at.markdown)


def test_ray_workers_set_the_same_tiles_aside_as_the_command_in_process(inked_slide, tmp_path):
    pytest.importorskip("ray")
    assert slide_main([str(inked_slide), "--out", str(tmp_path / "here")]) == 0
    assert slide_main([str(inked_slide), "--out", str(tmp_path / "ray"), "--ray", "local"]) == 0
    here, there = (_rows(tmp_path / side / "inked" / "tiles.csv") for side in ("here", "ray"))
    assert [(t["x"], t["y"], t["label"], t["qc"]) for t in there] == [(t["x"], t["y"], t["label"], t["qc"])
                                                                       for t in here]
    assert "artefact" in {t["label"] for t in here}
    assert (_rows(tmp_path / "ray" / "slides.csv")[0]["artefact_share"]
            == _rows(tmp_path / "here" / "slides.csv")[0]["artefact_share"] != "")
