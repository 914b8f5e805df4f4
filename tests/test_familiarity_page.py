"""The familiarity check on the pages, with the shipped default model: the slide page's warning above the heatmap
for a lung image (its tiles still shown), none for the bundled breast slide, the Classify page's batch verdict, and
the rule and rates on the model card."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO
from streamlit.testing.v1 import AppTest

from idc_core.stats.familiarity import UNFAMILIAR_BATCH_WORDS, UNFAMILIAR_WORDS

APP = str(REPO / "app.py")
DEFAULT = (REPO / "models" / "DEFAULT").read_text().strip()
LUNG = REPO / "tests" / "data" / "familiarity" / "tcga-lung-crop.png"

pytestmark = pytest.mark.usefixtures("frozen_heap")  # AppTest collects garbage after every run: see conftest


@pytest.fixture(scope="module")
def models_root(tmp_path_factory) -> Path:
    """A models root with the shipped default alone (the app loads it once)."""
    root = tmp_path_factory.mktemp("models")
    shutil.copytree(REPO / "models" / DEFAULT, root / DEFAULT)
    (root / "DEFAULT").write_text(DEFAULT + "\n")
    return root


@pytest.fixture(autouse=True)
def _models_env(monkeypatch, models_root):
    monkeypatch.setenv("IDC_MODELS_DIR", str(models_root))


def _slide_page(**state: object) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page("app_pages/slide.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_lung_image_gets_the_warning_above_its_heatmap_and_its_tiles_are_still_shown():
    at = _slide_page(slide_source="Upload")
    at.file_uploader(key="slide_upload").set_value(("lung.png", LUNG.read_bytes(), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert any(UNFAMILIAR_WORDS in e for e in errors), errors
    assert len(at.get("plotly_chart")) >= 1  # the heatmap is still drawn
    tiles = {m.label: m.value for m in at.metric}["Tissue tiles"]
    assert int(tiles.replace(",", "")) > 0
    # the warning comes before the heatmap on the page
    order = list(_walk(at.main))
    first_error = next(i for i, e in enumerate(order) if UNFAMILIAR_WORDS in str(getattr(e, "value", "")))
    first_chart = next(i for i, e in enumerate(order) if getattr(e, "type", "") == "plotly_chart")
    assert first_error < first_chart


def _walk(node):
    """The page's elements in the order they are drawn."""
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def test_the_bundled_breast_slide_gets_no_warning_and_says_it_looks_familiar():
    at = _slide_page()  # the bundled sample slide
    assert not any(UNFAMILIAR_WORDS in e.value for e in at.error)
    assert any(c.value.startswith("Familiarity check: looks like the breast H&E") for c in at.caption)


def test_the_classify_page_judges_the_batch_and_the_card_states_the_rule():
    at = AppTest.from_file(APP, default_timeout=120).run()
    card = " ".join(m.value for m in at.sidebar.markdown)
    assert "**Familiarity check** A slide or batch is flagged unfamiliar" in card and "flagged" in card
    at.switch_page("app_pages/classify.py").run()
    next(b for b in at.button if b.label == "Try the sample patches").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any(UNFAMILIAR_BATCH_WORDS in e.value for e in at.error)
    assert any(c.value.startswith("Familiarity check: looks like") for c in at.caption)
