"""The slide page with a pathologist's annotations (QuPath GeoJSON), with the shipped default model: the metrics
equal those of the same patient's labelled patches; the slides folder's <stem>.geojson; a bad file is one message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from annotation_files import PATIENT_ZIP, patient_pyramid
from app_support import REPO
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.usefixtures("frozen_heap")  # AppTest collects garbage after every run: see conftest
SHOWN = ("Balanced accuracy", "Recall (sensitivity)", "Specificity", "ROC AUC", "F1", "Dice of the IDC area")


@pytest.fixture(scope="module")
def slides(tmp_path_factory) -> Path:
    """A slides folder holding the bundled patient as a JPEG pyramid and <stem>.geojson of its labels."""
    folder = tmp_path_factory.mktemp("slides")
    patient_pyramid(folder, quality=95, chroma_subsampling=False)
    return folder


@pytest.fixture(autouse=True)
def _env(monkeypatch, slides):
    monkeypatch.setenv("IDC_MODELS_DIR", str(REPO / "models"))
    monkeypatch.setenv("IDC_SLIDES_DIR", str(slides))


def _page(**state: object) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=240).run()
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page("app_pages/slide.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metrics(at: AppTest) -> dict[str, float]:
    """The truth metrics the page shows, as fractions (percentages to 0.1% and scores to 0.001)."""
    shown = {m.label: m.value for m in at.metric if m.label in SHOWN}
    return {k: float(v.rstrip("%")) / 100 if v.endswith("%") else float(v) for k, v in shown.items()}


def test_the_page_gives_the_patient_zips_metrics_from_annotations_found_beside_the_slide(slides):
    at = _page(slide_source="Upload")
    at.file_uploader(key="slide_upload").set_value((PATIENT_ZIP.name, PATIENT_ZIP.read_bytes(),
                                                    "application/zip")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    from_patches = _metrics(at)
    assert set(from_patches) == set(SHOWN)

    at.radio(key="slide_source").set_value("Slides folder (server)").run()
    at.toggle(key="slide_annotations_on").set_value(True).run()
    at.selectbox(key="slide_server").set_value("patient_8980.tif").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.checkbox(key="slide_annotations_server").value is True  # patient_8980.geojson, found by the stem
    assert any(s.value == "Against the ground truth of patient_8980.geojson" for s in at.main.subheader)
    assert any(c.value.startswith("patient_8980.geojson: 2 annotations (1 Stroma, 1 Tumor);") for c in at.caption)
    from_annotations = _metrics(at)
    assert from_annotations.keys() == from_patches.keys()
    for name, value in from_annotations.items():
        assert value == pytest.approx(from_patches[name], abs=0.01), name

    at.toggle(key="slide_context").set_value(False).run()  # the tile scores alone: the same agreement
    assert not at.exception and not at.error
    alone = _metrics(at)
    assert alone["ROC AUC"] < from_annotations["ROC AUC"]  # neighbouring tiles help on this patient
    assert "agreement and errors (legend below)" in [c for image in at.get("image") for c in image.captions]


def test_a_bad_annotation_upload_is_one_message_and_the_heatmap_stays(slides):
    at = _page(slide_source="Slides folder (server)", slide_server="patient_8980.tif", slide_annotations_on=True)
    at.checkbox(key="slide_annotations_server").uncheck().run()
    at.file_uploader(key="slide_annotations_upload").set_value(
        ("mine.geojson", json.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [9e6, 0], [9e6, 9e6],
                                                                                   [0, 0]]]},
             "properties": {"objectType": "annotation", "classification": {"name": "Tumor"}}}]}).encode(),
         "application/geo+json")).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Reading mine.geojson: the annotations reach x 0 to 9,000,000")
    assert "IDC tiles" in {m.label for m in at.metric}  # the slide's own results are still there
    assert not any("Against the ground truth" in s.value for s in at.main.subheader)


def test_the_pages_tile_table_carries_the_truth_of_each_tile_like_the_commands_tiles_csv():
    import numpy as np

    from idc_core.wsi.annotations import TileTruth
    from idc_core.wsi.result import SlideResult
    from idc_core.wsi.tiling import tile_coordinates

    namespace: dict = {}
    source = (REPO / "app_pages" / "slide.py").read_text()
    exec(compile(source.split("\n\nst.title(")[0], "slide.py", "exec"), namespace)  # the page's functions only
    coords = tile_coordinates(100, 100, 50, 50)
    result = SlideResult(coords, np.array([True, True, True, False]), np.array([0.9, 0.1, 0.6, np.nan], np.float32),
                         (100, 100), 50, 50, 15.0, 0.5)
    truth = TileTruth(np.array([0.8, 0.0, np.nan, np.nan], np.float32), np.array([1, 0, np.nan, np.nan], np.float32),
                      np.zeros((100, 100), bool), 1, 1.0)
    rows = namespace["table_rows"](result, 2.0, 0.5, truth)
    assert [(r["truth"], r["truth_idc_share"]) for r in rows] == [(1, pytest.approx(0.8)), (0, 0.0), (None, None)]
    assert "truth" not in namespace["table_rows"](result, 2.0, 0.5)[0]
