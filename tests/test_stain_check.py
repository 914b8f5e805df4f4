"""The H&E check before a slide is scored: real H&E passes, fluorescence, greyscale and other stains do not."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import ASSETS

from idc_core.data.image_io import encode_png, read_image
from idc_core.wsi.stain_check import not_he_reason
from idc_core.wsi.truth import load_slide_input

pytestmark = pytest.mark.usefixtures("shipped_models_loaded_once")  # each models/ folder loaded once: conftest


@pytest.fixture(scope="module")
def slide() -> np.ndarray:
    return read_image(ASSETS / "sample_slide.png")


def fluorescence(seed: int = 0) -> np.ndarray:
    """Dark background with bright blue nuclei, as a DAPI channel rendered in RGB."""
    rng = np.random.default_rng(seed)
    image = np.full((400, 400, 3), 10, np.uint8)
    for y, x in rng.integers(0, 390, (300, 2)):
        image[y : y + 8, x : x + 8] = (40, 60, 230)
    return image


def test_real_he_passes(slide):
    assert not_he_reason(slide) is None
    assert not_he_reason(load_slide_input("z.zip", (ASSETS / "sample_patient_8980.zip").read_bytes()).image) is None
    assert not_he_reason(np.full((80, 80, 3), 255, np.uint8)) is None  # no tissue: the tissue detector says so


def test_fluorescence_greyscale_and_another_stain_are_refused_with_the_reason(slide):
    assert "fluorescence" in not_he_reason(fluorescence())
    grey = np.repeat(slide.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    assert not_he_reason(grey).startswith("greyscale")
    brown = slide.copy()
    stained = slide.mean(axis=2) < 220
    brown[stained] = (150, 100, 50)  # DAB-like brown where the tissue is
    assert "not those of H&E" in not_he_reason(brown) and "brown or yellow: another stain" in not_he_reason(brown)


def test_an_image_mostly_under_green_ink_is_refused_as_ink_not_as_another_stain():
    from PIL import Image

    inked = np.asarray(Image.open(Path(__file__).parent / "data" / "qc" / "green_ink_on_glass.jpg").convert("RGB"))
    reason = not_he_reason(inked)
    assert "marker ink" in reason and "DAB" not in reason


def test_the_slide_command_flags_a_fluorescence_image_and_goes_on(slide, tmp_path, capsys):
    from idc_core.cli.slide import main

    (tmp_path / "dapi.png").write_bytes(encode_png(fluorescence()))
    (tmp_path / "he.png").write_bytes(encode_png(slide[:600, :800]))
    assert main([str(tmp_path / "dapi.png"), str(tmp_path / "he.png"), "--out", str(tmp_path / "out")]) == 1
    rows = {r["slide"].rsplit("/", 1)[-1]: r for r in csv.DictReader((tmp_path / "out" / "slides.csv").open())}
    assert rows["he.png"]["status"] == "ok"
    assert rows["dapi.png"]["status"] == "failed" and "not H&E: not scored" in rows["dapi.png"]["reason"]
    assert "fluorescence" in capsys.readouterr().err
