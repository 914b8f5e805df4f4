"""Tests of idc_core.wsi.tissue: saturation-based tissue mask and per-tile fractions."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest

from idc_core.wsi import tissue
from idc_core.wsi.tiling import tile_coordinates
from idc_core.wsi.tissue import MIN_OTSU, tile_tissue_fraction, tissue_mask

PINK = (200, 100, 180)  # H&E-like eosin pink: HSV saturation 128


def _half_pink(height: int = 20, width: int = 40) -> np.ndarray:
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    image[:, : width // 2] = PINK
    return image


def test_white_image_gives_empty_mask_and_floored_threshold() -> None:
    mask, threshold = tissue_mask(np.full((30, 40, 3), 255, dtype=np.uint8))
    assert mask.shape == (30, 40) and mask.dtype == np.bool_
    assert not mask.any()
    assert threshold == MIN_OTSU


def test_white_image_with_faint_noise_gives_empty_mask() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(245, 256, size=(30, 40, 3), dtype=np.uint8)
    mask, threshold = tissue_mask(image)
    assert threshold >= MIN_OTSU
    assert not mask.any()


def test_half_pink_half_white_image_is_half_tissue() -> None:
    mask, threshold = tissue_mask(_half_pink())
    assert MIN_OTSU <= threshold < 128
    assert mask.mean() == pytest.approx(0.5)
    assert mask[:, :20].all() and not mask[:, 20:].any()


def test_explicit_threshold_overrides_otsu() -> None:
    mask, threshold = tissue_mask(_half_pink(), threshold=200)
    assert threshold == 200.0
    assert not mask.any()
    mask, threshold = tissue_mask(_half_pink(), threshold=0)
    assert threshold == 0.0
    assert mask.mean() == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        (-1, "threshold must be in 0..255, got -1"),
        ("10", "threshold must be a number in 0..255 or None, got '10'"),
    ],
)
def test_bad_threshold_raises_value_error(threshold: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tissue_mask(_half_pink(), threshold=threshold)


def test_tissue_mask_rejects_grayscale_image() -> None:
    with pytest.raises(ValueError, match=r"image must be an RGB array .*, got \(4, 4\)"):
        tissue_mask(np.zeros((4, 4), dtype=np.uint8))


def test_tile_tissue_fraction_matches_brute_force_per_tile() -> None:
    rng = np.random.default_rng(42)
    mask = rng.random((13, 17)) < 0.4
    size = 5
    coords = tile_coordinates(13, 17, size=size, stride=3)
    fractions = tile_tissue_fraction(mask, coords, size=size)
    padded = np.zeros((13 + size, 17 + size), dtype=bool)  # out of bounds = background
    padded[:13, :17] = mask
    expected = [padded[y : y + size, x : x + size].mean() for y, x in coords]
    assert fractions.dtype == np.float32 and fractions.shape == (len(coords),)
    np.testing.assert_allclose(fractions, expected, rtol=0, atol=1e-6)


def test_tile_tissue_fraction_of_full_and_border_tiles() -> None:
    mask = np.ones((3, 3), dtype=bool)
    fractions = tile_tissue_fraction(mask, np.array([[0, 0], [2, 2]]), size=2)
    np.testing.assert_allclose(fractions, [1.0, 0.25])


def test_tile_tissue_fraction_rejects_non_bool_mask() -> None:
    with pytest.raises(ValueError, match=r"mask must be a 2-D bool array, got uint8 \(3, 3\)"):
        tile_tissue_fraction(np.ones((3, 3), dtype=np.uint8), np.array([[0, 0]]))


def _reference_mask(image: np.ndarray, threshold: float | None) -> tuple[np.ndarray, float]:
    """The whole-image computation tissue_mask must reproduce: full HSV copy, Otsu, floor."""
    saturation = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)[:, :, 1]
    if threshold is None:
        otsu, _ = cv2.threshold(saturation, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        threshold = max(float(otsu), MIN_OTSU)
    return saturation > threshold, float(threshold)


def _reference_fractions(mask: np.ndarray, coords: np.ndarray, size: int) -> np.ndarray:
    """Per tile, the mean of the tile cut from a zero-padded mask (out of bounds = background)."""
    pad = size + int(np.abs(coords).max())
    padded = np.pad(mask, pad)
    return np.array([padded[y + pad : y + pad + size, x + pad : x + pad + size].mean() for y, x in coords])


@pytest.fixture(params=[64, 10**6], ids=["tiny-bands", "default-bands"])
def band_bytes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run with bands of a few rows (many bands, a last short one) and with the default."""
    if request.param != 10**6:
        monkeypatch.setattr(tissue, "BAND_BYTES", request.param)
    return request.param


@pytest.mark.parametrize("threshold", [None, 0, 37.5, np.float32(100.5), 255])
def test_tissue_mask_in_bands_equals_whole_image_reference(band_bytes: int, threshold: float | None) -> None:
    rng = np.random.default_rng(7)
    images = [
        rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8),  # noise: Otsu above the floor
        rng.integers(240, 256, size=(41, 29, 3), dtype=np.uint8),  # near white: Otsu below the floor
        _half_pink(23, 61),
        rng.integers(0, 256, size=(19, 31, 3), dtype=np.uint8)[::-1, ::2],  # not contiguous
        rng.integers(0, 256, size=(1, 1, 3), dtype=np.uint8),
    ]
    for image in images:
        mask, used = tissue_mask(image, threshold)
        expected, expected_threshold = _reference_mask(image, threshold)
        assert mask.dtype == np.bool_ and mask.shape == image.shape[:2]
        assert used == expected_threshold
        np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize(("height", "width"), [(127, 203), (50, 100), (49, 1), (1, 151)])
@pytest.mark.parametrize("stride", [25, 50])
def test_tile_tissue_fraction_on_grid_equals_brute_force(
    band_bytes: int, height: int, width: int, stride: int
) -> None:
    rng = np.random.default_rng(height * width + stride)
    mask = rng.random((height, width)) < 0.6
    coords = tile_coordinates(height, width, size=50, stride=stride)
    fractions = tile_tissue_fraction(mask, coords)
    assert fractions.dtype == np.float32 and fractions.shape == (len(coords),)
    np.testing.assert_array_equal(fractions, _reference_fractions(mask, coords, 50).astype(np.float32))


@pytest.mark.parametrize("size", [1, 7, 50])
def test_tile_tissue_fraction_of_arbitrary_coords_equals_brute_force(band_bytes: int, size: int) -> None:
    rng = np.random.default_rng(size)
    mask = rng.random((61, 87)) < 0.5
    coords = np.concatenate(
        [rng.integers(-60, 150, size=(200, 2)), [[0, 0], [60, 86], [-size, 0], [61, 87], [-500, 900]]]
    )
    fractions = tile_tissue_fraction(mask, coords, size=size)
    np.testing.assert_array_equal(fractions, _reference_fractions(mask, coords, size).astype(np.float32))


def test_tile_tissue_fraction_of_no_coords_is_empty_float32() -> None:
    fractions = tile_tissue_fraction(np.ones((4, 4), dtype=bool), np.zeros((0, 2), np.int64))
    assert fractions.dtype == np.float32 and fractions.shape == (0,)


def test_tissue_mask_and_fractions_allocate_no_more_than_the_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tissue, "BAND_BYTES", 2**16)
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(401, 777, 3), dtype=np.uint8)  # 0.9 MB; mask 0.3 MB
    mask_bytes = 401 * 777
    coords = tile_coordinates(401, 777, size=50, stride=25)
    tracemalloc.start()
    try:
        mask, _ = tissue_mask(image)
        mask_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        tile_tissue_fraction(mask, coords)
        fraction_peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert mask_peak < mask_bytes + 3 * 2**16  # the mask and one band, no HSV copy of the image
    assert fraction_peak < mask_bytes // 2  # no uint8 copy or integral image of the mask


def test_default_detector_keeps_the_labelled_patches_of_the_bundled_slide_and_zip() -> None:
    """Every labelled patch of the dataset is tissue: the defaults skip at most 5% on the bundled samples."""
    from conftest import ASSETS

    from idc_core.data.image_io import read_image
    from idc_core.wsi.tissue import MIN_TISSUE, TISSUE_THRESHOLD
    from idc_core.wsi.truth import load_slide_input, read_truth_csv

    slide = read_image(ASSETS / "sample_slide.png")
    truth = read_truth_csv((ASSETS / "sample_slide_tiles.csv").read_bytes())
    zipped = load_slide_input("z.zip", (ASSETS / "sample_patient_8980.zip").read_bytes())
    for image, tiles in ((slide, truth), (zipped.image, zipped.truth)):
        coords = np.stack([tiles.ys, tiles.xs], 1)
        fraction = tile_tissue_fraction(tissue_mask(image, TISSUE_THRESHOLD)[0], coords, 50)
        assert (fraction < MIN_TISSUE).mean() <= 0.05
        # and the white background around the patches stays background
        grid = tile_coordinates(image.shape[0], image.shape[1], 50, 50)
        kept = tile_tissue_fraction(tissue_mask(image, TISSUE_THRESHOLD)[0], grid, 50) >= MIN_TISSUE
        assert kept.sum() <= len(tiles) * 1.02


def test_default_threshold_leaves_tinted_glass_out() -> None:
    from idc_core.wsi.tissue import TISSUE_THRESHOLD

    glass = np.full((100, 100, 3), (245, 240, 232), np.uint8)  # slightly warm white: saturation 13.5
    stain = np.full((100, 100, 3), (200, 150, 190), np.uint8)  # pale eosin: saturation 63
    assert not tissue_mask(glass, TISSUE_THRESHOLD)[0].any()
    assert tissue_mask(stain, TISSUE_THRESHOLD)[0].all()
