"""What the pages say in words and how fast the Evaluation page redraws: areas in mm², blank cells, short metric
values, the split said once, one message for a bad model folder, held-out figures made once per model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from app_support import REPO, make_tiny_models_root
from streamlit.testing.v1 import AppTest

from idc_core.data.split import split_words
from ui import SAMPLE_SLIDE

APP = str(REPO / "app.py")
pytestmark = pytest.mark.usefixtures("frozen_heap")  # AppTest collects garbage after every run: see conftest


@pytest.fixture(autouse=True)
def _models_env(monkeypatch, tiny_models_root):
    monkeypatch.setenv("IDC_MODELS_DIR", str(tiny_models_root))


def open_page(page: str, **state: object) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90).run()
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.skipif(not SAMPLE_SLIDE.is_file(), reason="bundled assets/ not present")
def test_the_slide_page_gives_the_idc_area_in_mm2_beside_its_share():
    at = open_page("slide")
    metrics = {m.label: m.value for m in at.metric}
    n_idc, n_tissue = int(metrics["IDC tiles"].replace(",", "")), int(metrics["Tissue tiles"].replace(",", ""))
    tile_mm2 = (50 * 4.0 / 1000) ** 2  # a 50-px tile on the 50-px grid at the model's 4 um/px: 0.2 x 0.2 mm
    assert f"{n_idc * tile_mm2:.2f} mm² of {n_tissue * tile_mm2:.2f} mm² tissue" in [c.value for c in at.caption]


def test_the_classify_table_leaves_missing_labels_blank_and_says_uncertainty_is_off(small_data):
    labelled = sorted(small_data.rglob("*class1.png"))[0]
    at = open_page("classify", classify_measure=False)
    at.file_uploader[0].set_value([(labelled.name, labelled.read_bytes(), "image/png"),
                                   ("unlabelled.png", labelled.read_bytes(), "image/png"),
                                   ("bad.png", b"not an image", "image/png")]).run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("file")
    assert table.loc[labelled.name, "true"] == "IDC" and table.loc[labelled.name, "correct"] in ("yes", "no")
    assert table.loc["unlabelled.png", "true"] == "" and table.loc["unlabelled.png", "correct"] == ""
    assert (table.loc["bad.png", ["predicted", "true", "correct"]] == "").all()
    assert table.loc[labelled.name, "error"] == "" and table.loc[labelled.name, "note"] == ""
    assert not table[["predicted", "true", "correct", "note", "error"]].isna().any().any()  # drawn as "None"
    uncertain = next(m for m in at.metric if m.label == "Uncertain")
    assert uncertain.value == "off" and "not measured" in uncertain.proto.help


def test_the_evaluation_header_says_the_split_once(tmp_path, monkeypatch):
    assert split_words("patient") == "patient split"
    assert split_words("patient (fixed test patients)") == "patient split, fixed test patients"
    root = make_tiny_models_root(tmp_path)
    metrics_file = root / "tiny" / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    metrics["evaluated_on"] = ("test split (patient (fixed test patients) split): 5 patients, 200 patches, none "
                               "used for training")  # as train.py wrote it before split_words
    metrics["split"] = {"mode": "patient (fixed test patients)"}
    metrics_file.write_text(json.dumps(metrics))
    monkeypatch.setenv("IDC_MODELS_DIR", str(root))
    at = open_page("evaluation")
    header = next(m.value for m in at.main.markdown if "patches**" in m.value)
    assert "test split (patient split, fixed test patients): 5 patients" in header
    card = " ".join(m.value for m in at.sidebar.markdown)
    assert "(test split (patient split, fixed test patients): 5 patients" in card
    assert "(fixed test patients) split" not in header + card


def test_a_bad_model_folder_is_reported_once(tmp_path):
    at = open_page("classify")
    at.sidebar.selectbox[0].set_value("Another folder…").run()
    at.sidebar.text_input[0].set_value(str(tmp_path / "no_such_model")).run()
    assert not at.exception
    errors = [e.value for e in at.get("error")]  # the sidebar's and the page's
    assert len(errors) == 1 and "could not be loaded" in errors[0] and "no_such_model" in errors[0], errors


def test_the_held_out_figures_are_made_once_per_model_metrics_and_threshold(tmp_path, monkeypatch):
    import ui.figures

    made: list[float] = []
    roc = ui.figures.roc_figure

    def counted(*args, **kwargs):
        made.append(args[2][0])  # the operating point's false-positive rate
        return roc(*args, **kwargs)

    monkeypatch.setattr(ui.figures, "roc_figure", counted)  # the page imports it from ui.figures on every run
    monkeypatch.setenv("IDC_MODELS_DIR", str(make_tiny_models_root(tmp_path)))  # a folder no other test has drawn
    at = open_page("evaluation")
    at.run()
    open_page("evaluation")  # another session
    assert len(made) == 1
    at.slider(key="evaluation_model_threshold").set_value(0.3).run()
    assert not at.exception and len(made) == 2  # another threshold: its own figures
    at.slider(key="evaluation_model_threshold").set_value(0.5).run()
    assert len(made) == 2
    charts = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("Confusion matrix at 0.500" in spec for spec in charts)
    assert np.isfinite(made).all()
