"""The slide page with a model that has a slide-context step: the toggle, its threshold, the tile's own score."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from app_support import REPO, make_tiny_models_root
from streamlit.testing.v1 import AppTest

from idc_core.config import ModelConfig
from idc_core.wsi.context import CONTEXT_FILE, ContextSettings

CONTEXT = ContextSettings("gaussian", sigma=1.0, scale=1.1, shift=0.2, threshold=0.37)


@pytest.fixture(scope="module")
def models_root(tmp_path_factory) -> Path:
    root = make_tiny_models_root(tmp_path_factory.mktemp("models"))
    folder = root / "tiny"
    (folder / CONTEXT_FILE).write_text(json.dumps(CONTEXT.to_dict()))
    config = ModelConfig.load(folder / "config.json")
    dataclasses.replace(config, context=CONTEXT_FILE).save(folder / "config.json")
    return root


@pytest.fixture(autouse=True)
def _models_env(monkeypatch, models_root):
    monkeypatch.setenv("IDC_MODELS_DIR", str(models_root))


def test_the_toggle_switches_between_context_and_tiles_alone_and_the_inspector_shows_both():
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=90).run()
    at.switch_page("app_pages/slide.py").run()  # the bundled sample slide
    assert not at.exception, [e.value for e in at.exception]
    assert at.toggle(key="slide_context").value is True
    assert at.slider(key="slide_threshold_context").value == pytest.approx(0.37)
    labels = {m.label: m.value for m in at.metric}
    assert "P(IDC) with neighbours" in labels
    assert any(m.value.startswith("The tile alone: P(IDC) ") for m in at.markdown)

    at.toggle(key="slide_context").set_value(False).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="slide_threshold").value == pytest.approx(0.5)  # the model's own threshold
    labels = {m.label: m.value for m in at.metric}
    assert "P(IDC)" in labels and "P(IDC) with neighbours" not in labels
    assert not any(m.value.startswith("The tile alone") for m in at.markdown)
